package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinsEnv names the environment variable that lists the folders holding the
// control-plane binaries (colon separated). make sets it; without it the harness
// asks hack/cluster-bins.sh where its cache is.
const BinsEnv = "HEADROOM_CLUSTER_BINS"

// binaries is where each component and its data files are.
type binaries struct {
	dirs []string
}

func findBinaries() (*binaries, error) {
	list := os.Getenv(BinsEnv)
	if list == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		out, err := exec.Command(filepath.Join(root, "hack", "cluster-bins.sh"), "path").Output()
		if err != nil {
			return nil, fmt.Errorf("asking hack/cluster-bins.sh for the binary cache: %w", err)
		}
		list = strings.TrimSpace(string(out))
	}
	b := &binaries{dirs: filepath.SplitList(list)}
	var missing []string
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := b.path(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("control-plane binaries %v not found in %v: run `make cluster-bins` first (about 30 minutes cold on 2 cores, once per machine)", missing, b.dirs)
	}
	return b, nil
}

// path returns the first file called name in the binary folders.
func (b *binaries) path(name string) (string, error) {
	for _, d := range b.dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %v", name, b.dirs)
}

// RepoRoot finds the product module's root by walking up from the working
// directory to the go.mod that declares it.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getting working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module github.com/gpu-headroom/gpu-headroom\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/gpu-headroom/gpu-headroom) not found above the working directory")
		}
		dir = parent
	}
}
