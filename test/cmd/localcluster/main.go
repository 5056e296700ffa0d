// Command localcluster starts and stops the local GPU cluster for a person:
// `make cluster-up` and `make cluster-down` call it. The cluster runs in a
// detached supervisor process; its state lives in one folder (default .cluster).
//
//	localcluster up   [--dir .cluster] [--zones zone-a,zone-b,zone-c] ...
//	localcluster down [--dir .cluster]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// state is what `up` leaves in the folder for `down` and for people.
type state struct {
	Supervisor int            `json:"supervisorPid"`
	Kubeconfig string         `json:"kubeconfig"`
	Redis      string         `json:"redis"`
	APIServer  string         `json:"apiServer"`
	Logs       string         `json:"logs"`
	Pids       map[string]int `json:"pids"`
	Links      []string       `json:"links"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", ".cluster", "folder for the cluster's state, kubeconfig and logs")
	zones := fs.String("zones", "zone-a,zone-b,zone-c", "zones, one H100 node group each")
	minNodes := fs.Int("nodes-per-zone", 1, "GPU nodes per zone at start (the group's min size)")
	maxNodes := fs.Int("max-nodes-per-zone", 4, "max size of each zone's node group")
	provision := fs.Duration("provision-delay", 20*time.Second, "stand-in autoscaler: time until a new Node exists")
	gpuReady := fs.Duration("gpu-ready-delay", 10*time.Second, "stand-in autoscaler: further time until its GPUs are allocatable")
	unneeded := fs.Duration("unneeded-time", 2*time.Minute, "stand-in autoscaler: idle time before a node is removed")
	_ = fs.Parse(os.Args[2:])
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fatal(err)
	}
	switch os.Args[1] {
	case "up":
		fatal(up(abs, os.Args[2:]))
	case "serve":
		groups := localcluster.H100Zones(strings.Split(*zones, ","), *minNodes, *maxNodes)
		fatal(serve(abs, localcluster.Options{
			KEDA: true, Redis: true, NodeGroups: groups,
			Provisioner: &localcluster.ProvisionerOptions{
				ScanInterval: 2 * time.Second, ProvisionDelay: *provision, GPUReadyDelay: *gpuReady, UnneededTime: *unneeded,
			},
		}))
	case "down":
		fatal(down(abs))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: localcluster up|down [--dir DIR] [flags]  (run with -h for flags)")
	os.Exit(2)
}

func fatal(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", statePath(dir), err)
	}
	return &s, nil
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// up starts the supervisor in its own session and waits until it says ready.
func up(dir string, args []string) error {
	if s, err := readState(dir); err == nil && alive(s.Supervisor) {
		fmt.Println("local cluster already running")
		printState(s)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	_ = os.Remove(statePath(dir))
	logPath := filepath.Join(dir, "supervisor.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating %s: %w", logPath, err)
	}
	defer logFile.Close()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own binary: %w", err)
	}
	cmd := exec.Command(self, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Printf("starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok, KEDA, Redis); log: %s\n", logPath)
	deadline := time.After(5 * time.Minute)
	for {
		if s, err := readState(dir); err == nil {
			printState(s)
			return nil
		}
		select {
		case err := <-exited:
			data, _ := os.ReadFile(logPath)
			return fmt.Errorf("supervisor exited (%v):\n%s", err, data)
		case <-deadline:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
			return errors.New("cluster not ready after 5 minutes; see " + logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printState(s *state) {
	fmt.Printf(`
local GPU cluster is up
  export KUBECONFIG=%s
  kubectl get nodes -L topology.kubernetes.io/zone,nvidia.com/gpu.product
  Redis (request queue): %s
  component logs:        %s
  stop it with:          make cluster-down
`, s.Kubeconfig, s.Redis, s.Logs)
}

// serve runs the cluster until SIGTERM or SIGINT, then stops it.
func serve(dir string, opts localcluster.Options) error {
	opts.Dir = filepath.Join(dir, "cluster")
	_ = os.RemoveAll(opts.Dir)
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", opts.Dir, err)
	}
	opts.Logf = func(f string, a ...any) { fmt.Printf(time.Now().Format("15:04:05 ")+f+"\n", a...) }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := localcluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	s := &state{Supervisor: os.Getpid(), Kubeconfig: c.KubeconfigPath, Redis: c.RedisAddr, APIServer: c.APIServerURL,
		Logs: c.LogDir, Pids: c.Pids(), Links: c.LinkNames()}
	data, _ := json.MarshalIndent(s, "", "  ")
	tmp := statePath(dir) + ".tmp"
	err = os.WriteFile(tmp, data, 0o644)
	if err == nil {
		err = os.Rename(tmp, statePath(dir))
	}
	if err != nil {
		_ = c.Stop()
		return fmt.Errorf("writing state: %w", err)
	}
	<-ctx.Done()
	fmt.Println("stopping the local cluster")
	err = c.Stop()
	_ = os.Remove(statePath(dir))
	return err
}

// down stops the supervisor and makes sure nothing of the cluster remains.
func down(dir string) error {
	s, err := readState(dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("no local cluster running (no state in " + dir + ")")
		return nil
	}
	if err != nil {
		return err
	}
	if alive(s.Supervisor) {
		_ = syscall.Kill(s.Supervisor, syscall.SIGTERM)
		deadline := time.Now().Add(90 * time.Second)
		for alive(s.Supervisor) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond) // polling another process's exit; there is no event to wait on
		}
	}
	// Whatever the supervisor did, leave nothing behind.
	var left []string
	for name, pid := range s.Pids {
		if syscall.Kill(-pid, 0) == nil {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			left = append(left, name)
		}
	}
	for _, l := range s.Links {
		if exec.Command("ip", "link", "show", l).Run() == nil {
			_ = exec.Command("ip", "link", "del", l).Run()
			left = append(left, "link "+l)
		}
	}
	_ = os.Remove(statePath(dir))
	if len(left) > 0 {
		fmt.Printf("local cluster stopped (had to force-remove %v)\n", left)
	} else {
		fmt.Println("local cluster stopped; no process or network link left")
	}
	return nil
}
