package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// process is one component of the cluster, run in its own process group so that
// Stop can kill it together with anything it started.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // set before done is closed
}

// startProcess runs bin with args, writing stdout and stderr to logDir/name.log.
func startProcess(name, bin string, args []string, env []string, logDir string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	// Own process group: Stop signals the group. Pdeathsig: if the harness dies
	// without running Stop (SIGKILL, OOM), the kernel still kills the component.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id (and process group id) of the component.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs the
// group. kube-apiserver and etcd do not always exit promptly on SIGTERM.
func (p *process) stop(grace time.Duration) error {
	pgid := p.pid()
	if ok, _ := p.exited(); !ok {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Kill the whole group even if the leader exited: a child may linger.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s (pgid %d): %w", p.name, pgid, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
	return nil
}

// Process is a program started the way the cluster starts its components: in
// its own process group, killed by the kernel if the caller dies, its output
// appended to a log. Tools and tests that run headroomd next to the cluster
// (the demo, the scale benchmark, the e2e tests) start it with StartProcess.
type Process struct{ p *process }

// StartProcess runs bin with args and the caller's environment plus env,
// writing stdout and stderr to logDir/name.log.
func StartProcess(name, bin string, args, env []string, logDir string) (*Process, error) {
	p, err := startProcess(name, bin, args, env, logDir)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// Pid is the process id, which is also its process group id.
func (p *Process) Pid() int { return p.p.pid() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// LogPath is where its output goes.
func (p *Process) LogPath() string { return p.p.logPath }

// Stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs
// the group (children included) and waits for the exit.
func (p *Process) Stop(grace time.Duration) error { return p.p.stop(grace) }

// processGroupAlive reports whether any process of group pgid still exists.
func processGroupAlive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// waitFor polls cond until it returns true, returns an error, or the deadline
// passes. It is the harness's only way to wait: never a fixed sleep.
func waitFor(ctx context.Context, what string, timeout, every time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), lastErr)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}
