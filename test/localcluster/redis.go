package localcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

func (c *Cluster) startRedis(ctx context.Context) error {
	port, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	dir := c.path("redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making redis folder: %w", err)
	}
	p, err := c.run("redis", "redis-server", []string{
		"--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
	})
	if err != nil {
		return err
	}
	c.RedisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	return waitAlive(ctx, p, 30*time.Second, func(ctx context.Context) (bool, error) {
		return redisPing(ctx, c.RedisAddr)
	})
}

// redisPing speaks just enough RESP to ask PING.
func redisPing(ctx context.Context, addr string) (bool, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false, err
	}
	buf := make([]byte, 16)
	n, err := conn.Read(buf)
	if err != nil {
		return false, err
	}
	return string(buf[:n]) == "+PONG\r\n", nil
}
