// Package chart renders the Helm chart with the repository's helm binary for
// tests and the demo, which then apply the objects to a local cluster.
package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Helm runs the helm binary with args in a scratch home (tmp), away from a
// person's repositories, plugins and kubeconfig, and returns its stdout; stderr
// is in the error.
func Helm(ctx context.Context, helmBin, tmp string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, helmBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+tmp, "HELM_CONFIG_HOME="+tmp, "HELM_DATA_HOME="+tmp, "KUBECONFIG=/dev/null")
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Decode splits rendered manifests into objects, skipping empty documents.
func Decode(s string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("decoding rendered chart: %w", err)
		}
		if len(m) == 0 {
			continue
		}
		// Through JSON into Unstructured, so integers are int64 as the API
		// machinery expects, not float64.
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("re-encoding rendered object: %w", err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("decoding rendered object: %w", err)
		}
		objs = append(objs, u)
	}
}
