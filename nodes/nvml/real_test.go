//go:build cgo && linux

package nvml

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// machine returns go-nvml's DGX H100 mock with the calls it leaves unset filled
// in as a healthy, idle GPU would answer them, and an event set fed by events.
func machine(t *testing.T, events chan gonvml.EventData) *server.Server {
	t.Helper()
	s := dgxh100.New()
	for _, d := range s.Devices {
		healthy(d.(*server.Device))
	}
	s.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (gonvml.EventData, gonvml.Return) {
				select {
				case e := <-events:
					return e, gonvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
		}, gonvml.SUCCESS
	}
	return s
}

func healthy(d *server.Device) {
	d.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) { return gonvml.Utilization{}, gonvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) { return nil, gonvml.SUCCESS }
	d.GetRetiredPagesPendingStatusFunc = func() (gonvml.EnableState, gonvml.Return) {
		return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
	}
	// Hopper uses row remapping, not page retirement.
	d.GetRetiredPagesFunc = func(gonvml.PageRetirementCause) ([]uint64, gonvml.Return) {
		return nil, gonvml.ERROR_NOT_SUPPORTED
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, gonvml.Return) { return 0, 0, false, false, gonvml.SUCCESS }
	d.GetTotalEccErrorsFunc = func(gonvml.MemoryErrorType, gonvml.EccCounterType) (uint64, gonvml.Return) {
		return 0, gonvml.SUCCESS
	}
	d.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) { return watchedEvents, gonvml.SUCCESS }
	d.RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS }
	d.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return 7, gonvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_NOT_FOUND }
}

func initReal(t *testing.T, lib gonvml.Interface) *Real {
	t.Helper()
	r := New(lib)
	if err := r.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { _ = r.Shutdown() })
	return r
}

func TestHealthyMachine(t *testing.T) {
	r := initReal(t, machine(t, nil))
	st := r.Status()
	if !st.Available || st.DriverVersion != "550.54.15" {
		t.Fatalf("Status = %+v", st)
	}
	gpus, err := r.GPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 8 {
		t.Fatalf("got %d GPUs, want 8", len(gpus))
	}
	for i, g := range gpus {
		if g.Index != i || !strings.HasPrefix(g.UUID, "GPU-") || g.Name != "NVIDIA H100 80GB HBM3" ||
			g.MemoryTotalBytes != 80<<30 || g.MIGEnabled || g.NotAnswering || len(g.QueryErrors) != 0 {
			t.Errorf("gpu %d = %+v", i, g)
		}
		if r := Reasons(g); len(r) != 0 {
			t.Errorf("gpu %d unhealthy: %v", i, r)
		}
		if !Idle(g) {
			t.Errorf("gpu %d not idle", i)
		}
	}
}

func TestBusyAndFaultyMemory(t *testing.T) {
	s := machine(t, nil)
	busy := s.Devices[2].(*server.Device)
	busy.MemoryInfo.Used = 60 << 30
	busy.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
		return gonvml.Utilization{Gpu: 85}, gonvml.SUCCESS
	}
	busy.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
		return []gonvml.ProcessInfo{{Pid: 42}}, gonvml.SUCCESS
	}
	remap := s.Devices[5].(*server.Device)
	remap.GetRemappedRowsFunc = func() (int, int, bool, bool, gonvml.Return) { return 0, 1, true, false, gonvml.SUCCESS }
	remap.GetTotalEccErrorsFunc = func(gonvml.MemoryErrorType, gonvml.EccCounterType) (uint64, gonvml.Return) {
		return 2, gonvml.SUCCESS
	}
	flaky := s.Devices[6].(*server.Device)
	flaky.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
		return gonvml.Utilization{}, gonvml.ERROR_UNKNOWN
	}

	gpus, err := initReal(t, s).GPUs()
	if err != nil {
		t.Fatal(err)
	}
	if g := gpus[2]; Idle(g) || *g.Utilization != 0.85 || *g.ComputeProcesses != 1 || g.MemoryUsedBytes != 60<<30 {
		t.Errorf("busy gpu = %+v", g)
	}
	if r := Reasons(gpus[5]); len(r) != 2 || !strings.Contains(r[0], "row remap pending") || !strings.Contains(r[1], "2 uncorrected ECC") {
		t.Errorf("remap gpu reasons = %v", r)
	}
	if g := gpus[6]; len(g.QueryErrors) != 1 || g.QueryErrors[0].Op != "reading utilization" || g.NotAnswering {
		t.Errorf("flaky gpu = %+v", g)
	}
	// No utilisation but no processes either: still idle, from the process list.
	if !Idle(gpus[6]) {
		t.Error("gpu with no processes and unknown utilisation should be idle")
	}
}

func TestMIGEnabled(t *testing.T) {
	s := machine(t, nil)
	d := s.Devices[0].(*server.Device)
	if ret, _ := d.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		t.Fatal(ret)
	}
	// Lay out 3g.40gb + 2x 1g.10gb with go-nvml's own MIG profile data, then
	// expose the resulting MIG devices through the MIG handle calls.
	var migs []gonvml.Device
	for i, id := range []int{gonvml.GPU_INSTANCE_PROFILE_3_SLICE, gonvml.GPU_INSTANCE_PROFILE_1_SLICE, gonvml.GPU_INSTANCE_PROFILE_1_SLICE} {
		info, ret := d.GetGpuInstanceProfileInfo(id)
		if ret != gonvml.SUCCESS {
			t.Fatal(ret)
		}
		gi, ret := d.CreateGpuInstance(&info)
		if ret != gonvml.SUCCESS {
			t.Fatal(ret)
		}
		giInfo, _ := gi.GetInfo()
		uuid := "MIG-" + string(rune('a'+i))
		migs = append(migs, &mock.Device{
			GetUUIDFunc:              func() (string, gonvml.Return) { return uuid, gonvml.SUCCESS },
			GetGpuInstanceIdFunc:     func() (int, gonvml.Return) { return int(giInfo.Id), gonvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, gonvml.Return) { return 0, gonvml.SUCCESS },
			GetMemoryInfoFunc: func() (gonvml.Memory, gonvml.Return) {
				return gonvml.Memory{Total: info.MemorySizeMB << 20}, gonvml.SUCCESS
			},
			GetAttributesFunc: func() (gonvml.DeviceAttributes, gonvml.Return) {
				return gonvml.DeviceAttributes{GpuInstanceSliceCount: info.SliceCount, ComputeInstanceSliceCount: info.SliceCount,
					MemorySizeMB: info.MemorySizeMB}, gonvml.SUCCESS
			},
		})
	}
	d.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) { return gonvml.Utilization{}, gonvml.ERROR_NOT_SUPPORTED }
	d.GetMigDeviceHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
		if i < len(migs) {
			return migs[i], gonvml.SUCCESS
		}
		return nil, gonvml.ERROR_NOT_FOUND
	}

	gpus, err := initReal(t, s).GPUs()
	if err != nil {
		t.Fatal(err)
	}
	g := gpus[0]
	if !g.MIGEnabled || len(g.MIGDevices) != 3 || g.Utilization != nil || len(g.QueryErrors) != 0 {
		t.Fatalf("MIG gpu = %+v", g)
	}
	want := []string{"3g.40gb", "1g.10gb", "1g.10gb"}
	for i, m := range g.MIGDevices {
		if m.Profile != want[i] || m.UUID == "" {
			t.Errorf("mig %d = %+v, want profile %s", i, m, want[i])
		}
	}
	if gpus[1].MIGEnabled {
		t.Error("gpu 1 should not be in MIG mode")
	}
}

func TestMIGProfileName(t *testing.T) {
	const h100 = 81559 << 20 // what an 80 GB H100 reports as total memory
	const h200 = 143771 << 20
	tests := []struct {
		gi, ci uint32
		memMB  uint64
		parent uint64
		want   string
	}{
		{1, 1, 9856, h100, "1g.10gb"},
		{1, 1, 19968, h100, "1g.20gb"},
		{2, 2, 19968, h100, "2g.20gb"},
		{3, 3, 40192, h100, "3g.40gb"},
		{7, 7, 80896, h100, "7g.80gb"},
		{7, 1, 80896, h100, "1c.7g.80gb"},
		{1, 1, 16384, h200, "1g.18gb"},
		{1, 1, 9856, 0, "1g.10gb"},
	}
	for _, tc := range tests {
		if got := MIGProfileName(tc.gi, tc.ci, tc.memMB, tc.parent); got != tc.want {
			t.Errorf("MIGProfileName(%d,%d,%d,%d) = %q, want %q", tc.gi, tc.ci, tc.memMB, tc.parent, got, tc.want)
		}
	}
}

// initFails is an embed-and-override fake: the whole NVML interface, with Init
// answering as it does when libnvidia-ml.so.1 is not on the library path.
type initFails struct{ gonvml.Interface }

func (initFails) Init() gonvml.Return { return gonvml.ERROR_LIBRARY_NOT_FOUND }

func TestInitFailureFallsBackToNull(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	lib := &switchable{Interface: initFails{machine(t, nil)}}
	f := NewFallback(New(lib), zap.New(core))
	if err := f.Init(); err != nil {
		t.Fatalf("Fallback.Init must not fail: %v", err)
	}
	st := f.Status()
	if st.Available || !strings.Contains(st.Reason, "no NVML") || !strings.Contains(st.Reason, "not found") {
		t.Fatalf("Status = %+v", st)
	}
	if gpus, err := f.GPUs(); err != nil || gpus != nil {
		t.Fatalf("GPUs = %v, %v; want none", gpus, err)
	}
	_ = f.Init() // the same failure again is not logged again
	if n := logs.FilterMessageSnippet("no NVML").Len(); n != 1 {
		t.Fatalf("logged %d 'no NVML' lines, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := f.WatchEvents(ctx, func(Event) { t.Error("event from null") }); err != nil {
		t.Fatal(err)
	}

	// The driver appears (installed after the agent started): the next Init works.
	lib.Interface = machine(t, nil)
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); !st.Available {
		t.Fatalf("after the driver appeared: %+v", st)
	}
	if gpus, _ := f.GPUs(); len(gpus) != 8 {
		t.Fatalf("after the driver appeared: %d GPUs", len(gpus))
	}
	if logs.FilterMessageSnippet("NVML initialised").Len() != 1 {
		t.Fatal("recovery not logged")
	}
	if err := f.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

type switchable struct{ gonvml.Interface }

func TestInitErrorsMapToSentinels(t *testing.T) {
	err := New(initFails{}).Init()
	if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "initialising NVML") {
		t.Fatalf("Init error = %v", err)
	}
	if _, err := New(initFails{}).GPUs(); !errors.Is(err, ErrNotInitialised) {
		t.Fatalf("GPUs before Init = %v", err)
	}
}

// stopsAnswering is a fake whose GPU 3 starts failing once lost is set, the way
// NVML answers after XID 79 (fallen off the bus).
type stopsAnswering struct {
	gonvml.Interface
	lost atomic.Bool
}

func (s *stopsAnswering) DeviceGetHandleByIndex(i int) (gonvml.Device, gonvml.Return) {
	d, ret := s.Interface.DeviceGetHandleByIndex(i)
	if i == 3 && s.lost.Load() {
		return lostDevice{d}, ret
	}
	return d, ret
}

type lostDevice struct{ gonvml.Device }

func (lostDevice) GetMemoryInfo() (gonvml.Memory, gonvml.Return) {
	return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST
}

func TestGPUStopsAnsweringMidRun(t *testing.T) {
	lib := &stopsAnswering{Interface: machine(t, nil)}
	r := initReal(t, lib)
	before, err := r.GPUs()
	if err != nil || before[3].NotAnswering {
		t.Fatalf("before: %+v %v", before[3], err)
	}
	lib.lost.Store(true)
	after, err := r.GPUs()
	if err != nil {
		t.Fatal(err)
	}
	g := after[3]
	if !g.NotAnswering || g.UUID != before[3].UUID || Idle(g) {
		t.Fatalf("lost gpu = %+v", g)
	}
	if rs := Reasons(g); len(rs) != 1 || !strings.Contains(rs[0], "GPU is lost") || !strings.Contains(rs[0], "reading memory") {
		t.Fatalf("reasons = %v", rs)
	}
	for i, g := range after {
		if i != 3 && g.NotAnswering {
			t.Errorf("gpu %d also lost", i)
		}
	}
}

func TestNoHandle(t *testing.T) {
	s := machine(t, nil)
	s.DeviceGetHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
		if i == 1 {
			return nil, gonvml.ERROR_UNKNOWN
		}
		return s.Devices[i], gonvml.SUCCESS
	}
	gpus, err := initReal(t, s).GPUs()
	if err != nil {
		t.Fatal(err)
	}
	if g := gpus[1]; !g.NotAnswering || g.UUID != "" || !strings.Contains(g.Err, "getting handle") {
		t.Fatalf("gpu 1 = %+v", g)
	}
	s.DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, gonvml.ERROR_UNKNOWN }
	if _, err := New(s).GPUs(); err == nil {
		t.Fatal("expected an error before Init")
	}
}

func TestWatchEventsCriticalXID(t *testing.T) {
	events := make(chan gonvml.EventData, 4)
	s := machine(t, events)
	r := initReal(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Event, 8)
	done := make(chan error, 1)
	go func() { done <- r.WatchEvents(ctx, func(e Event) { got <- e }) }()

	dev := s.Devices[4]
	uuid, _ := dev.GetUUID()
	events <- gonvml.EventData{Device: dev, EventType: gonvml.EventTypeXidCriticalError, EventData: 79,
		GpuInstanceId: NoInstance, ComputeInstanceId: NoInstance}
	events <- gonvml.EventData{Device: dev, EventType: gonvml.EventTypeDoubleBitEccError,
		GpuInstanceId: NoInstance, ComputeInstanceId: NoInstance}

	e := <-got
	if e.Type != EventXID || e.XID != 79 || e.UUID != uuid || e.GPUInstanceID != NoInstance {
		t.Fatalf("event = %+v", e)
	}
	if !(XIDPolicy{}).IsCritical(e.XID) {
		t.Fatal("XID 79 must be critical")
	}
	if e := <-got; e.Type != EventDoubleBitECC || e.UUID != uuid {
		t.Fatalf("event = %+v", e)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchEvents did not stop on cancel")
	}
}

func TestWatchEventsRegistrationFailure(t *testing.T) {
	s := machine(t, nil)
	s.Devices[2].(*server.Device).RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.ERROR_UNKNOWN }
	r := initReal(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var errs []Event
	if err := r.WatchEvents(ctx, func(e Event) { errs = append(errs, e) }); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Type != EventError || errs[0].UUID == "" {
		t.Fatalf("events = %+v", errs)
	}
}
