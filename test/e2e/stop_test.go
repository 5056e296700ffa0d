package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// Stop leaves no process and no veth link behind, by pid and by link name.
func TestStopLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{KEDA: true, Redis: true, Logf: t.Logf})
	if err != nil {
		t.Fatalf("starting: %v", err)
	}
	pids, links := c.Pids(), c.LinkNames()
	if len(pids) < 7 || len(links) != 2 {
		_ = c.Stop()
		t.Fatalf("expected 7+ components and a veth pair, got %v and %v", pids, links)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	assertGone(t, pids, links)
	_ = os.RemoveAll(c.Dir)
}

// The same when the test that started it fails or panics: a child test process
// starts a cluster, records what it started, then fails; afterwards nothing of it
// may remain.
func TestStopOnFailureAndPanicLeavesNothing(t *testing.T) {
	for _, mode := range []string{"fail", "panic"} {
		t.Run(mode, func(t *testing.T) {
			record := filepath.Join(t.TempDir(), "started")
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFailingCluster$", "-test.v")
			cmd.Env = append(os.Environ(), "HEADROOM_HELPER_MODE="+mode, "HEADROOM_HELPER_RECORD="+record)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helper test should have failed; output:\n%s", out)
			}
			if mode == "fail" && !strings.Contains(string(out), "component logs are kept in") {
				t.Errorf("a failing test should print where the component logs are; output:\n%s", out)
			}
			pids, links := readRecord(t, record)
			if len(pids) < 7 || len(links) != 2 {
				t.Fatalf("helper recorded %v and %v; output:\n%s", pids, links, out)
			}
			assertGone(t, pids, links)
		})
	}
}

// TestHelperFailingCluster is run only as the child of the test above.
func TestHelperFailingCluster(t *testing.T) {
	mode := os.Getenv("HEADROOM_HELPER_MODE")
	if mode == "" {
		t.Skip("run only as a child process of TestStopOnFailureAndPanicLeavesNothing")
	}
	c := localcluster.StartT(t, localcluster.Options{KEDA: true, Redis: true})
	f, err := os.Create(os.Getenv("HEADROOM_HELPER_RECORD"))
	if err != nil {
		t.Fatalf("creating record: %v", err)
	}
	for name, pid := range c.Pids() {
		fmt.Fprintf(f, "pid %s %d\n", name, pid)
	}
	for _, l := range c.LinkNames() {
		fmt.Fprintf(f, "link %s\n", l)
	}
	f.Close()
	if mode == "panic" {
		panic("deliberate panic with a running cluster")
	}
	t.Fatal("deliberate failure with a running cluster")
}

func readRecord(t *testing.T, path string) (map[string]int, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading record: %v", err)
	}
	defer f.Close()
	pids := map[string]int{}
	var links []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		switch {
		case len(fs) == 3 && fs[0] == "pid":
			n, _ := strconv.Atoi(fs[2])
			pids[fs[1]] = n
		case len(fs) == 2 && fs[0] == "link":
			links = append(links, fs[1])
		}
	}
	return pids, links
}

func assertGone(t *testing.T, pids map[string]int, links []string) {
	t.Helper()
	for name, pid := range pids {
		if syscall.Kill(-pid, 0) == nil {
			t.Errorf("%s (process group %d) still running", name, pid)
		}
	}
	for _, l := range links {
		if out, err := exec.Command("ip", "link", "show", l).CombinedOutput(); err == nil {
			t.Errorf("link %s still exists: %s", l, out)
		}
	}
}
