package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
	"github.com/gpu-headroom/gpu-headroom/nodes/nvml"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fakeReader is a small nvml.Reader whose answers a test sets directly.
type fakeReader struct {
	mu      sync.Mutex
	initErr error
	inited  bool
	gpus    []nvml.GPU
	listErr error
	events  chan nvml.Event
}

func (f *fakeReader) Init() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.initErr != nil {
		return f.initErr
	}
	f.inited = true
	return nil
}
func (f *fakeReader) Shutdown() error { return nil }
func (f *fakeReader) Status() nvml.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.inited {
		return nvml.Status{Reason: "not initialised"}
	}
	return nvml.Status{Available: true, DriverVersion: "550.54.15"}
}
func (f *fakeReader) GPUs() ([]nvml.GPU, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]nvml.GPU(nil), f.gpus...), f.listErr
}
func (f *fakeReader) WatchEvents(ctx context.Context, fn func(nvml.Event)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-f.events:
			fn(e)
		}
	}
}
func (f *fakeReader) set(fn func(*fakeReader)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func ptr[T any](v T) *T { return &v }

func h100s(n int) []nvml.GPU {
	var out []nvml.GPU
	for i := range n {
		out = append(out, nvml.GPU{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Name: "NVIDIA H100 80GB HBM3",
			MemoryTotalBytes: 80 << 30, Utilization: ptr(0.0), ComputeProcesses: ptr(0)})
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newMonitor(t *testing.T, r nvml.Reader) (*Monitor, *prometheus.Registry, *clock) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := &clock{t0}
	m := NewMonitor(Config{NodeName: "gpu-a", AgentVersion: "v-test", BootID: "boot-1", Now: c.now},
		r, NewMetrics(reg, "v-test"), zap.NewNop())
	return m, reg, c
}

func valid(t *testing.T, s agentreport.Summary) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatalf("summary does not validate: %v\n%+v", err, s)
	}
}

func TestHealthyMachine(t *testing.T) {
	r := &fakeReader{gpus: h100s(8)}
	m, reg, _ := newMonitor(t, r)
	s := m.Sample()
	valid(t, s)
	if !s.NVML.Available || s.UsableGPUs != 8 || s.UnhealthyGPUs != 0 || s.IdleGPUs != 8 {
		t.Fatalf("summary = %s", Describe(s))
	}
	if s.DriverReadyAt == nil || !s.DriverReadyAt.Equal(t0) {
		t.Fatalf("DriverReadyAt = %v", s.DriverReadyAt)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
	want := `
# HELP headroom_agent_usable_gpus GPUs on this node that are healthy.
# TYPE headroom_agent_usable_gpus gauge
headroom_agent_usable_gpus 8
# HELP headroom_agent_idle_gpus Healthy GPUs with no compute process and no utilisation.
# TYPE headroom_agent_idle_gpus gauge
headroom_agent_idle_gpus 8
# HELP headroom_agent_nvml_available 1 when NVML is loaded and answering, 0 when the agent runs without it (see the log for why).
# TYPE headroom_agent_nvml_available gauge
headroom_agent_nvml_available 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"headroom_agent_usable_gpus", "headroom_agent_idle_gpus", "headroom_agent_nvml_available"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.metrics.gpus, "headroom_agent_gpu_memory_total_bytes"); n != 8 {
		t.Fatalf("%d memory series, want 8", n)
	}
}

func TestCriticalXID(t *testing.T) {
	r := &fakeReader{gpus: h100s(8)}
	m, reg, _ := newMonitor(t, r)
	m.Sample()
	m.HandleEvent(nvml.Event{Type: nvml.EventXID, UUID: "GPU-4", XID: 79, GPUInstanceID: nvml.NoInstance, ComputeInstanceID: nvml.NoInstance})
	m.HandleEvent(nvml.Event{Type: nvml.EventXID, UUID: "GPU-5", XID: 13, GPUInstanceID: nvml.NoInstance, ComputeInstanceID: nvml.NoInstance})
	m.HandleEvent(nvml.Event{Type: nvml.EventXID, UUID: "GPU-4", XID: 79, GPUInstanceID: nvml.NoInstance, ComputeInstanceID: nvml.NoInstance})
	s := m.Sample()
	valid(t, s)
	if s.UsableGPUs != 7 || s.UnhealthyGPUs != 1 || s.IdleGPUs != 7 {
		t.Fatalf("summary = %s", Describe(s))
	}
	u := s.Unhealthy()[0]
	if u.UUID != "GPU-4" || len(u.CriticalXIDs) != 1 || !strings.Contains(u.Reasons[0], "fallen off the bus") {
		t.Fatalf("unhealthy = %+v", u)
	}
	want := `
# HELP headroom_agent_xid_events_total XID events from NVML, by GPU, XID code and whether the agent treats the code as critical.
# TYPE headroom_agent_xid_events_total counter
headroom_agent_xid_events_total{critical="false",gpu="5",uuid="GPU-5",xid="13"} 1
headroom_agent_xid_events_total{critical="true",gpu="4",uuid="GPU-4",xid="79"} 2
`
	if err := testutil.CollectAndCompare(m.metrics.xidEvents, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	healthy := `
# HELP headroom_agent_gpu_healthy 1 when the GPU is usable, 0 when it is not.
# TYPE headroom_agent_gpu_healthy gauge
headroom_agent_gpu_healthy{gpu="0",uuid="GPU-0"} 1
headroom_agent_gpu_healthy{gpu="1",uuid="GPU-1"} 1
headroom_agent_gpu_healthy{gpu="2",uuid="GPU-2"} 1
headroom_agent_gpu_healthy{gpu="3",uuid="GPU-3"} 1
headroom_agent_gpu_healthy{gpu="4",uuid="GPU-4"} 0
headroom_agent_gpu_healthy{gpu="5",uuid="GPU-5"} 1
headroom_agent_gpu_healthy{gpu="6",uuid="GPU-6"} 1
headroom_agent_gpu_healthy{gpu="7",uuid="GPU-7"} 1
`
	if err := testutil.CollectAndCompare(m.metrics.gpus, strings.NewReader(healthy), "headroom_agent_gpu_healthy"); err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
}

func TestMIG(t *testing.T) {
	gpus := h100s(2)
	gpus[0].MIGEnabled, gpus[0].Utilization = true, nil
	gpus[0].MIGDevices = []nvml.MIGDevice{
		{UUID: "MIG-a", Profile: "3g.40gb", GPUInstanceID: 1, ComputeInstanceID: 0},
		{UUID: "MIG-b", Profile: "1g.10gb", GPUInstanceID: 2, ComputeInstanceID: 0},
		{UUID: "MIG-c", Profile: "1g.10gb", GPUInstanceID: 3, ComputeInstanceID: 0},
	}
	m, _, _ := newMonitor(t, &fakeReader{gpus: gpus})
	m.Sample()
	// A critical XID on one MIG device marks that device, not the whole GPU.
	m.HandleEvent(nvml.Event{Type: nvml.EventXID, UUID: "GPU-0", XID: 94, GPUInstanceID: 2, ComputeInstanceID: 0})
	s := m.Sample()
	valid(t, s)
	if !s.GPUs[0].Healthy || !s.GPUs[0].MIGEnabled || s.GPUs[0].MIGDevices[1].Healthy {
		t.Fatalf("gpu 0 = %+v", s.GPUs[0])
	}
	if got := s.UsableMIGDevices; got["1g.10gb"] != 1 || got["3g.40gb"] != 1 {
		t.Fatalf("UsableMIGDevices = %v", got)
	}
	// Utilisation is unknown in MIG mode; the process list still says idle.
	if !s.GPUs[0].Idle || s.GPUs[0].UtilizationRatio != nil {
		t.Fatalf("gpu 0 = %+v", s.GPUs[0])
	}
}

func TestNVMLInitFailureFallsBackToNull(t *testing.T) {
	inner := &fakeReader{initErr: fmt.Errorf("initialising NVML: %w", nvml.ErrLibraryNotFound)}
	f := nvml.NewFallback(inner, zap.NewNop())
	m, reg, c := newMonitor(t, f)
	s := m.Sample()
	valid(t, s)
	if s.NVML.Available || !strings.Contains(s.NVML.Reason, "no NVML") || len(s.GPUs) != 0 || s.DriverReadyAt != nil {
		t.Fatalf("summary = %+v", s)
	}
	if !strings.HasPrefix(Describe(s), "no NVML") {
		t.Fatalf("Describe = %q", Describe(s))
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP headroom_agent_nvml_available 1 when NVML is loaded and answering, 0 when the agent runs without it (see the log for why).
# TYPE headroom_agent_nvml_available gauge
headroom_agent_nvml_available 0
`), "headroom_agent_nvml_available"); err != nil {
		t.Fatal(err)
	}
	// The driver finishes installing: the next sample retries Init and finds GPUs.
	inner.set(func(r *fakeReader) { r.initErr = nil; r.gpus = h100s(8) })
	c.t = t0.Add(7 * time.Minute)
	s = m.Sample()
	valid(t, s)
	if !s.NVML.Available || s.UsableGPUs != 8 || s.DriverReadyAt == nil || !s.DriverReadyAt.Equal(c.t) {
		t.Fatalf("after driver install: %s, ready %v", Describe(s), s.DriverReadyAt)
	}
}

func TestGPUStopsAnsweringMidRun(t *testing.T) {
	r := &fakeReader{gpus: h100s(8)}
	m, _, _ := newMonitor(t, r)
	m.Sample()

	// NVML still lists GPU 3 but cannot read its UUID.
	r.set(func(r *fakeReader) {
		r.gpus[3] = nvml.GPU{Index: 3, NotAnswering: true, Err: "reading UUID: GPU is lost"}
	})
	s := m.Sample()
	valid(t, s)
	if s.UnhealthyGPUs != 1 || s.GPUs[3].UUID != "GPU-3" || s.GPUs[3].Product != "NVIDIA H100 80GB HBM3" && s.GPUs[3].Product != "" {
		t.Fatalf("summary = %+v", s.GPUs[3])
	}
	if !strings.Contains(s.GPUs[3].Reasons[0], "GPU is lost") {
		t.Fatalf("reasons = %v", s.GPUs[3].Reasons)
	}

	// Then it disappears from the device list entirely.
	r.set(func(r *fakeReader) { r.gpus = append(r.gpus[:3:3], r.gpus[4:]...) })
	s = m.Sample()
	valid(t, s)
	if len(s.GPUs) != 8 || s.UnhealthyGPUs != 1 || !strings.Contains(s.GPUs[3].Reasons[0], "no longer listed") {
		t.Fatalf("summary = %s %+v", Describe(s), s.GPUs[3])
	}

	// And then NVML cannot list anything: every known GPU is reported unhealthy.
	r.set(func(r *fakeReader) { r.listErr = errors.New("counting GPUs: unknown error") })
	s = m.Sample()
	valid(t, s)
	if s.UsableGPUs != 0 || s.UnhealthyGPUs != 8 || !strings.Contains(s.GPUs[0].Reasons[0], "could not list") {
		t.Fatalf("summary = %s %v", Describe(s), s.GPUs[0].Reasons)
	}
}

func TestRestore(t *testing.T) {
	r := &fakeReader{gpus: h100s(2)}
	m, _, _ := newMonitor(t, r)
	ready := t0.Add(-time.Hour)
	prev := agentreport.Summary{Version: 1, NodeName: "gpu-a", BootID: "boot-1", ObservedAt: t0.Add(-time.Minute),
		DriverReadyAt: &ready,
		GPUs:          []agentreport.GPU{{Index: 1, UUID: "GPU-1", Reasons: []string{"critical XID 79"}, CriticalXIDs: []uint64{79}}}}
	if !m.Restore(prev) {
		t.Fatal("same boot not restored")
	}
	s := m.Sample()
	valid(t, s)
	if !s.DriverReadyAt.Equal(ready) || s.GPUs[1].Healthy || s.GPUs[0].Healthy == false {
		t.Fatalf("after restore: ready %v, gpus %+v", s.DriverReadyAt, s.GPUs)
	}
	m2, _, _ := newMonitor(t, r)
	prev.BootID = "boot-0"
	if m2.Restore(prev) {
		t.Fatal("a report from an earlier boot must not be restored")
	}
	prev.BootID, prev.NodeName = "boot-1", "other"
	if m2.Restore(prev) {
		t.Fatal("another node's report must not be restored")
	}
}

func TestWriter(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	w := Writer{Client: cs, Namespace: "gpu-headroom"}
	m, _, _ := newMonitor(t, &fakeReader{gpus: h100s(4)})
	s := m.Sample()
	if _, ok, err := w.Previous(ctx, "gpu-a"); ok || err != nil {
		t.Fatalf("Previous before any write: %v %v", ok, err)
	}
	if err := w.Write(ctx, s); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("gpu-headroom").Get(ctx, "headroom-agent-gpu-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := agentreport.SummaryFromConfigMap(cm, t0.Add(time.Minute))
	if err != nil || got.UsableGPUs != 4 {
		t.Fatalf("controller view: %+v %v", got, err)
	}

	// An update keeps labels others added and replaces the data.
	cm.Labels["team"] = "infra"
	if _, err := cs.CoreV1().ConfigMaps("gpu-headroom").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first update hits a conflict, as when another writer got there first.
	conflicts := 0
	cs.PrependReactor("update", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), "headroom-agent-gpu-a", errors.New("stale"))
		}
		return false, nil, nil
	})
	m.HandleEvent(nvml.Event{Type: nvml.EventXID, UUID: "GPU-2", XID: 48, GPUInstanceID: nvml.NoInstance, ComputeInstanceID: nvml.NoInstance})
	if err := w.Write(ctx, m.Sample()); err != nil {
		t.Fatal(err)
	}
	if conflicts != 1 {
		t.Fatal("conflict reactor not hit")
	}
	cm, _ = cs.CoreV1().ConfigMaps("gpu-headroom").Get(ctx, "headroom-agent-gpu-a", metav1.GetOptions{})
	got, err = agentreport.SummaryFromConfigMap(cm, t0)
	if err != nil || got.UnhealthyGPUs != 1 || cm.Labels["team"] != "infra" {
		t.Fatalf("after update: %+v %v labels %v", got, err, cm.Labels)
	}
	prev, ok, err := w.Previous(ctx, "gpu-a")
	if !ok || err != nil || prev.GPUs[2].CriticalXIDs[0] != 48 {
		t.Fatalf("Previous: %v %v %+v", ok, err, prev)
	}

	// Only get, create and update are used: what the agent's Role grants.
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "get", "create", "update":
		default:
			t.Errorf("writer used verb %q", a.GetVerb())
		}
	}

	// A permanent API error is returned, wrapped with what was being done.
	cs.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("configmaps"), "x", errors.New("no"))
	})
	if err := w.Write(ctx, s); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "writing report gpu-headroom/headroom-agent-gpu-a") {
		t.Fatalf("Write error = %v", err)
	}
}

func TestHealthEndpoints(t *testing.T) {
	r := &fakeReader{initErr: errors.New("libnvidia-ml.so.1: cannot open shared object file")}
	f := nvml.NewFallback(r, zap.NewNop())
	m, reg, c := newMonitor(t, f)
	h := Handler(m, reg, 30*time.Second, t0)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no GPU sample yet") {
		t.Fatalf("readyz before sample: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz while starting: %d", code)
	}
	m.Sample()
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, "no NVML") {
		t.Fatalf("readyz without NVML: %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "no NVML") || !strings.Contains(body, "cannot open shared object") {
		t.Fatalf("healthz without NVML: %d %q", code, body)
	}
	c.t = t0.Add(2 * time.Minute)
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "stalled") {
		t.Fatalf("healthz stalled: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "headroom_agent_build_info") {
		t.Fatalf("metrics: %d", code)
	}
}

func TestRun(t *testing.T) {
	r := &fakeReader{gpus: h100s(2), events: make(chan nvml.Event, 1)}
	reg := prometheus.NewRegistry()
	m := NewMonitor(Config{NodeName: "gpu-a", BootID: "b"}, r, NewMetrics(reg, "v"), zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan agentreport.Summary, 100)
	done := make(chan struct{})
	go func() {
		m.Run(ctx, 10*time.Millisecond, func(_ context.Context, s agentreport.Summary) error {
			published <- s
			return nil
		})
		close(done)
	}()
	<-published
	r.events <- nvml.Event{Type: nvml.EventXID, UUID: "GPU-1", XID: 79, GPUInstanceID: nvml.NoInstance, ComputeInstanceID: nvml.NoInstance}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-published:
			if s.UnhealthyGPUs == 1 {
				cancel()
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("Run did not return after cancel")
				}
				return
			}
		case <-deadline:
			t.Fatal("XID from the watcher never reached a report")
		}
	}
}
