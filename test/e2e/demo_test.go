package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// `make demo` in a short mode (8 minutes of trace at 12x, faster nodes): it ends
// with a summary in which the run with headroom had no more replica starts waiting
// for a node than the run without, headroom cost GPU time, the plot is written,
// and every process and link the demo started is gone when it exits.
func TestDemo(t *testing.T) {
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(root, "..", "shared", "data", "traces", "azure-llm-2023-code", "AzureLLMInferenceTrace_code.csv")
	if _, err := os.Stat(trace); err != nil {
		t.Skipf("the demo's trace is not next to the repository (%v)", err)
	}
	if os.Getuid() != 0 {
		t.Skip("the demo runs KEDA's metrics adapter, which needs root for a veth link")
	}
	hd := headroomdBinary(t)
	helmBin := helmBinary(t)
	bin := buildBinary(t, "./test/cmd/demo")
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headroomd", hd, "--helm", helmBin, "--out", out,
		"--trace-span", "8m", "--speed", "12", "--provision-delay", "10s", "--gpu-ready-delay", "4s", "--unneeded-time", "10s")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DEMO_KEEP=")
	output, err := cmd.CombinedOutput()
	t.Logf("demo output:\n%s", output)
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}

	// Nothing the demo started is left.
	var st struct {
		Pids  map[string]int `json:"pids"`
		Links []string       `json:"links"`
	}
	data, err := os.ReadFile(filepath.Join(out, "state.json"))
	if err != nil {
		t.Fatalf("the demo's record of what it started: %v", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("decoding state.json: %v", err)
	}
	if _, ok := st.Pids["headroomd"]; !ok || len(st.Pids) < 8 || len(st.Links) != 2 {
		t.Fatalf("state.json lists %v and %v; want the cluster's components, headroomd and a veth pair", st.Pids, st.Links)
	}
	assertGone(t, st.Pids, st.Links)
	if !strings.Contains(string(output), "cleaned up: every process stopped") {
		t.Error("the demo did not report its cleanup")
	}

	// The summary: one row per run; columns starts, waited, p50, max, headroom
	// GPU-h, idle GPU-h, served/pushed.
	sum, err := os.ReadFile(filepath.Join(out, "summary.txt"))
	if err != nil {
		t.Fatalf("summary: %v", err)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(string(sum), "\n") {
		f := strings.Fields(l)
		if len(f) == 9 && f[1] == "headroom" {
			rows[f[0]] = f[2:]
		}
	}
	without, with := rows["without"], rows["with"]
	if without == nil || with == nil {
		t.Fatalf("summary lacks a row per run:\n%s", sum)
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("summary field %q: %v\n%s", s, err, sum)
		}
		return v
	}
	if num(without[0]) < 2 {
		t.Errorf("without headroom only %s replica starts: the trace's burst did not scale the Deployment\n%s", without[0], sum)
	}
	if num(with[1]) > num(without[1]) {
		t.Errorf("with headroom %s starts waited for a node, without %s: want fewer or equal\n%s", with[1], without[1], sum)
	}
	if num(with[4]) <= 0 || num(without[4]) != 0 {
		t.Errorf("headroom GPU-hours: with %s (want > 0), without %s (want 0)\n%s", with[4], without[4], sum)
	}
	if !strings.Contains(string(sum), "headroomd metrics:  http://127.0.0.1:") {
		t.Errorf("the summary does not say where the metrics endpoint is:\n%s", sum)
	}
	svg, err := os.ReadFile(filepath.Join(out, "demo.svg"))
	if err != nil || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "with headroom") {
		t.Errorf("plot %s missing or without the runs (%v)", filepath.Join(out, "demo.svg"), err)
	}
	if _, err := os.Stat(filepath.Join(out, "cluster")); !os.IsNotExist(err) {
		t.Errorf("the cluster folder should be removed after a good run (%v)", err)
	}
}
