package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// StartT starts a cluster for a test and stops it in t.Cleanup, which runs when
// the test passes, fails or panics. On failure it prints where the component
// logs are and the last lines of each; the folder is kept for reading.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if os.Getuid() != 0 && opts.KEDA {
		t.Skip("KEDA's metrics adapter needs a veth link, which needs root")
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "gpu-headroom-"+sanitize(t.Name())+"-")
		if err != nil {
			t.Fatalf("making cluster folder: %v", err)
		}
		opts.Dir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		dumpLogs(t, filepath.Join(opts.Dir, "logs"))
		t.Fatalf("starting local cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping local cluster: %v", err)
		}
		if left := c.Leftovers(); len(left) > 0 {
			t.Errorf("local cluster left behind: %v", left)
		}
		if t.Failed() {
			dumpLogs(t, c.LogDir)
			return
		}
		_ = os.RemoveAll(c.Dir)
	})
	return c
}

// dumpLogs prints the folder and the tail of every component log.
func dumpLogs(t testing.TB, dir string) {
	t.Logf("local cluster component logs are kept in %s", dir)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("--- last lines of %s:\n%s", e.Name(), strings.Join(lines, "\n"))
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
}
