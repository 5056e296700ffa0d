package localcluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
)

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// lookPath finds a binary the harness does not build (redis-server) on PATH.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH: run `make deps` (it installs Debian's redis-server): %w", name, err)
	}
	return p, nil
}
