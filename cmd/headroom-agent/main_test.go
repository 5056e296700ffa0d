package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
	"github.com/gpu-headroom/gpu-headroom/nodes/nvml"
)

// gpuReader is a two-GPU node.
type gpuReader struct{ nvml.Null }

func (gpuReader) Status() nvml.Status { return nvml.Status{Available: true, DriverVersion: "570.1"} }
func (gpuReader) GPUs() ([]nvml.GPU, error) {
	zero, none := 0.0, 0
	var out []nvml.GPU
	for i := range 2 {
		out = append(out, nvml.GPU{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Name: "NVIDIA H200",
			MemoryTotalBytes: 141 << 30, Utilization: &zero, ComputeProcesses: &none})
	}
	return out, nil
}

func testDeps(r nvml.Reader, cs kubernetes.Interface) deps {
	return deps{
		reader: func(string) nvml.Reader { return r },
		client: func() (kubernetes.Interface, error) { return cs, nil },
	}
}

func TestOnceWithoutNVMLFailsLoudly(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--once", "--node-name", "n1"}, &out, &errb,
		testDeps(initFailing{}, nil))
	if code != 1 || !strings.Contains(errb.String(), "FAIL: no NVML") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(errb.String(), "no NVML: serving without GPU data") {
		t.Fatalf("no clear log line: %q", errb.String())
	}
	if !strings.Contains(out.String(), "headroom_agent_nvml_available 0") {
		t.Fatalf("no metrics scrape: %q", out.String())
	}
}

func TestOnceWithGPUs(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--once", "--node-name", "n1"}, &out, &errb, testDeps(gpuReader{}, nil))
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	for _, want := range []string{
		"node n1: NVML available (driver 570.1): 2 GPUs, 2 usable, 0 unhealthy, 2 idle",
		`gpu 1 GPU-1 "NVIDIA H200" memory 0.0/141.0 GiB util 0% MIG off idle true healthy`,
		`"usableGPUs": 2`,
		"headroom_agent_usable_gpus 2",
		`headroom_agent_gpu_memory_total_bytes{gpu="0",uuid="GPU-0"} 1.51397597184e+11`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--node-name or $NODE_NAME is required"},
		{[]string{"--node-name", "n", "--interval", "10m"}, "third of the controller's stale window"},
		{[]string{"--node-name", "n", "--interval", "10ms"}, "too short"},
		{[]string{"--node-name", "n", "--ignore-xids", "13,x"}, "parsing XID"},
		{[]string{"--node-name", "n", "--log-level", "loud"}, "--log-level"},
		{[]string{"--node-name", "n", "extra"}, "unexpected arguments"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb, testDeps(nvml.Null{}, nil)); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errb.String(), tc.want)
		}
	}
	if _, err := parseXIDs(" 13, 31 ,"); err != nil {
		t.Fatal(err)
	}
}

func TestRunWritesReportAndShutsDown(t *testing.T) {
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--node-name", "gpu-a", "--namespace", "hr", "--interval", "1s", "--listen", "127.0.0.1:0"},
			&out, &errb, testDeps(gpuReader{}, cs))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cm, err := cs.CoreV1().ConfigMaps("hr").Get(context.Background(), "headroom-agent-gpu-a", metav1.GetOptions{})
		if err == nil {
			s, err := agentreport.SummaryFromConfigMap(cm, time.Now())
			if err != nil || s.UsableGPUs != 2 || s.AgentVersion != version {
				t.Fatalf("report: %+v %v", s, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report written; log:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; log:\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not shut down")
	}
	if !strings.Contains(errb.String(), "shutting down") {
		t.Fatalf("log: %s", errb.String())
	}
}

// initFailing fails Init as a node without libnvidia-ml.so.1 does.
type initFailing struct{ nvml.Null }

func (initFailing) Init() error {
	return fmt.Errorf("initialising NVML: %w", nvml.ErrLibraryNotFound)
}
