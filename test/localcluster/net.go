package localcluster

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// FreePort asks the kernel for a free TCP port on host.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// vethPair is a veth link the harness makes so that KEDA's metrics adapter can
// listen on an address the apiserver accepts in Endpoints (Endpoints refuse
// loopback and link-local addresses). Traffic never leaves the machine: both ends
// are local interfaces and the address is only ever dialled by the local apiserver.
type vethPair struct {
	name, peer string
	ip         string
}

// vethLinkPrefix names every link the harness makes, so leftovers can be found.
const vethLinkPrefix = "ghr"

// newVethPair creates a veth pair named after id and puts ip/30 on one end.
func newVethPair(id, ip string) (*vethPair, error) {
	v := &vethPair{name: vethLinkPrefix + id + "a", peer: vethLinkPrefix + id + "b", ip: ip}
	steps := [][]string{
		{"link", "add", v.name, "type", "veth", "peer", "name", v.peer},
		{"addr", "add", ip + "/30", "dev", v.name},
		{"link", "set", v.name, "up"},
		{"link", "set", v.peer, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			_ = v.delete()
			return nil, fmt.Errorf("ip %s: %w: %s (the harness needs root for a veth link)", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return v, nil
}

// delete removes the pair (deleting one end removes both). Missing is fine.
func (v *vethPair) delete() error {
	if !linkExists(v.name) {
		return nil
	}
	if out, err := exec.Command("ip", "link", "del", v.name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %w: %s", v.name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkExists reports whether a network link with that name exists.
func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}
