//go:build cgo && linux

package nvml

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Real reads GPUs through go-nvml. It maps every nvml.Return to an error (see
// returnError) and treats "not supported" as "unknown", never as a fault.
type Real struct {
	lib gonvml.Interface

	mu     sync.Mutex
	inited bool
	driver string
}

var _ Reader = (*Real)(nil)

// New wraps an nvml.Interface: the real library (nvml.New) or one of go-nvml's
// mocks in tests.
func New(lib gonvml.Interface) *Real { return &Real{lib: lib} }

// NewLibrary loads libnvidia-ml from path, or from the default search path
// (libnvidia-ml.so.1) when path is "". Loading happens in Init.
func NewLibrary(path string) Reader {
	if path == "" {
		return New(gonvml.New())
	}
	return New(gonvml.New(gonvml.WithLibraryPath(path)))
}

// returnError turns an nvml.Return into an error that says which call failed
// and matches this package's sentinel errors.
func returnError(op string, ret gonvml.Return) error {
	if ret == gonvml.SUCCESS {
		return nil
	}
	var base error
	switch ret {
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		base = ErrLibraryNotFound
	case gonvml.ERROR_NOT_SUPPORTED:
		base = ErrNotSupported
	case gonvml.ERROR_GPU_IS_LOST:
		base = ErrGPULost
	case gonvml.ERROR_UNINITIALIZED:
		base = ErrNotInitialised
	}
	if base != nil {
		return fmt.Errorf("%s: %w (%s)", op, base, ret.Error())
	}
	return fmt.Errorf("%s: %s (nvml return %d)", op, ret.Error(), int32(ret))
}

// Init initialises NVML and reads the driver version.
func (r *Real) Init() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inited {
		return nil
	}
	if err := returnError("initialising NVML", r.lib.Init()); err != nil {
		return err
	}
	r.inited = true
	if v, ret := r.lib.SystemGetDriverVersion(); ret == gonvml.SUCCESS {
		r.driver = v
	}
	return nil
}

// Shutdown shuts NVML down.
func (r *Real) Shutdown() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inited {
		return nil
	}
	r.inited = false
	return returnError("shutting NVML down", r.lib.Shutdown())
}

// Status reports NVML available once Init succeeded.
func (r *Real) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inited {
		return Status{Reason: ErrNotInitialised.Error()}
	}
	return Status{Available: true, DriverVersion: r.driver}
}

func (r *Real) ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inited {
		return ErrNotInitialised
	}
	return nil
}

// GPUs reads every GPU.
func (r *Real) GPUs() ([]GPU, error) {
	if err := r.ready(); err != nil {
		return nil, fmt.Errorf("reading GPUs: %w", err)
	}
	n, ret := r.lib.DeviceGetCount()
	if err := returnError("counting GPUs", ret); err != nil {
		return nil, err
	}
	out := make([]GPU, 0, n)
	for i := range n {
		out = append(out, r.readGPU(i))
	}
	return out, nil
}

// sample collects the result of one GPU's calls.
type sample struct{ g *GPU }

// ok records a failed call and reports whether ret is SUCCESS. "Not supported"
// is silent; "GPU is lost" marks the GPU as not answering.
func (s sample) ok(op string, ret gonvml.Return) bool {
	switch ret {
	case gonvml.SUCCESS:
		return true
	case gonvml.ERROR_NOT_SUPPORTED:
		return false
	case gonvml.ERROR_GPU_IS_LOST:
		if !s.g.NotAnswering {
			s.g.NotAnswering, s.g.Err = true, returnError(op, ret).Error()
		}
		return false
	}
	s.g.QueryErrors = append(s.g.QueryErrors, QueryError{Op: op, Err: returnError(op, ret).Error()})
	return false
}

func (r *Real) readGPU(i int) GPU {
	g := GPU{Index: i}
	s := sample{&g}
	dev, ret := r.lib.DeviceGetHandleByIndex(i)
	if ret != gonvml.SUCCESS {
		g.NotAnswering, g.Err = true, returnError("getting handle", ret).Error()
		return g
	}
	uuid, ret := dev.GetUUID()
	if ret != gonvml.SUCCESS {
		g.NotAnswering, g.Err = true, returnError("reading UUID", ret).Error()
		return g
	}
	g.UUID = uuid
	if name, ret := dev.GetName(); s.ok("reading name", ret) {
		g.Name = name
	}
	if mem, ret := dev.GetMemoryInfo(); s.ok("reading memory", ret) {
		g.MemoryTotalBytes, g.MemoryUsedBytes = mem.Total, mem.Used
	}
	if g.NotAnswering {
		return g
	}
	if u, ret := dev.GetUtilizationRates(); s.ok("reading utilization", ret) {
		v := float64(u.Gpu) / 100
		g.Utilization = &v
	}
	if procs, ret := dev.GetComputeRunningProcesses(); s.ok("listing compute processes", ret) {
		n := len(procs)
		g.ComputeProcesses = &n
	}
	if cur, _, ret := dev.GetMigMode(); s.ok("reading MIG mode", ret) {
		g.MIGEnabled = cur == gonvml.DEVICE_MIG_ENABLE
	}
	if g.MIGEnabled {
		g.MIGDevices = r.readMIG(dev, g.MemoryTotalBytes, s)
	}
	if st, ret := dev.GetRetiredPagesPendingStatus(); s.ok("reading retired pages status", ret) {
		g.RetiredPagesPending = st == gonvml.FEATURE_ENABLED
	}
	for _, cause := range []gonvml.PageRetirementCause{
		gonvml.PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
		gonvml.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
	} {
		if pages, ret := dev.GetRetiredPages(cause); s.ok("reading retired pages", ret) {
			g.RetiredPages += len(pages)
		}
	}
	if _, _, pending, failed, ret := dev.GetRemappedRows(); s.ok("reading remapped rows", ret) {
		g.RowRemapPending, g.RowRemapFailed = pending, failed
	}
	if n, ret := dev.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC); s.ok("reading ECC errors", ret) {
		g.UncorrectedECCErrors = n
	}
	return g
}

// readMIG lists a MIG-mode GPU's MIG devices through the MIG device handles.
// Those calls need no MIG capability file (unlike listing GPU and compute
// instances), so they work in an unprivileged container.
func (r *Real) readMIG(dev gonvml.Device, parentMem uint64, s sample) []MIGDevice {
	maxN, ret := dev.GetMaxMigDeviceCount()
	if !s.ok("counting MIG devices", ret) {
		return nil
	}
	var out []MIGDevice
	for j := range maxN {
		mig, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT {
			continue // an empty slot
		}
		if !s.ok("getting MIG device handle", ret) {
			continue
		}
		var m MIGDevice
		if u, ret := mig.GetUUID(); s.ok("reading MIG device UUID", ret) {
			m.UUID = u
		} else {
			continue
		}
		if id, ret := mig.GetGpuInstanceId(); s.ok("reading GPU instance ID", ret) {
			m.GPUInstanceID = id
		}
		if id, ret := mig.GetComputeInstanceId(); s.ok("reading compute instance ID", ret) {
			m.ComputeInstanceID = id
		}
		if mem, ret := mig.GetMemoryInfo(); s.ok("reading MIG device memory", ret) {
			m.MemoryTotalBytes = mem.Total
		}
		if a, ret := mig.GetAttributes(); s.ok("reading MIG device attributes", ret) {
			m.Profile = MIGProfileName(a.GpuInstanceSliceCount, a.ComputeInstanceSliceCount, a.MemorySizeMB, parentMem)
		}
		out = append(out, m)
	}
	return out
}

// MIGProfileName names a MIG device the way the device plugin names its
// resources ("1g.10gb", or "1c.2g.20gb" when the compute instance is smaller
// than its GPU instance). The memory is the slice's share of the parent's
// memory, rounded up to an eighth, times the parent's memory in whole GB,
// which is how NVIDIA's profile names come out (e.g. 9856 MiB of an 80 GB H100
// is "10gb", 80896 MiB is "80gb"). parentBytes 0 falls back to rounding MiB.
func MIGProfileName(giSlices, ciSlices uint32, memMB, parentBytes uint64) string {
	var gb uint64
	if parentBytes > 0 {
		frac := float64(memMB) * (1 << 20) / float64(parentBytes)
		frac = math.Ceil(frac*8) / 8
		parentGB := float64((parentBytes + (1<<30 - 1)) >> 30)
		gb = uint64(math.Round(frac * parentGB))
	} else {
		gb = (memMB + 1023) / 1024
	}
	if ciSlices != 0 && ciSlices < giSlices {
		return fmt.Sprintf("%dc.%dg.%dgb", ciSlices, giSlices, gb)
	}
	return fmt.Sprintf("%dg.%dgb", giSlices, gb)
}

// watchedEvents is what the agent subscribes to, masked by what each GPU supports.
const watchedEvents = uint64(gonvml.EventTypeXidCriticalError |
	gonvml.EventTypeDoubleBitEccError | gonvml.EventTypeSingleBitEccError)

// waitTimeout bounds one EventSet.Wait so that cancellation is seen promptly.
const waitTimeout = 500 * time.Millisecond

// WatchEvents registers every GPU on one event set and reports events until ctx
// ends. A GPU that cannot be registered is reported as an EventError (the
// sampler still checks it every interval); Wait errors other than a timeout are
// reported and retried after a pause.
func (r *Real) WatchEvents(ctx context.Context, fn func(Event)) error {
	if err := r.ready(); err != nil {
		return fmt.Errorf("watching events: %w", err)
	}
	set, ret := r.lib.EventSetCreate()
	if err := returnError("creating event set", ret); err != nil {
		return err
	}
	defer set.Free()
	n, ret := r.lib.DeviceGetCount()
	if err := returnError("counting GPUs", ret); err != nil {
		return err
	}
	for i := range n {
		dev, ret := r.lib.DeviceGetHandleByIndex(i)
		if ret != gonvml.SUCCESS {
			fn(Event{Type: EventError, Op: "registering events", Err: returnError(fmt.Sprintf("getting handle %d", i), ret).Error()})
			continue
		}
		uuid, _ := dev.GetUUID()
		supported, ret := dev.GetSupportedEventTypes()
		if ret != gonvml.SUCCESS {
			fn(Event{Type: EventError, UUID: uuid, Op: "registering events", Err: returnError("reading supported events", ret).Error()})
			continue
		}
		mask := watchedEvents & supported
		if mask == 0 {
			continue
		}
		if ret := dev.RegisterEvents(mask, set); ret != gonvml.SUCCESS {
			fn(Event{Type: EventError, UUID: uuid, Op: "registering events", Err: returnError("registering events", ret).Error()})
			continue
		}
	}
	for ctx.Err() == nil {
		data, ret := set.Wait(uint32(waitTimeout / time.Millisecond))
		switch {
		case ret == gonvml.ERROR_TIMEOUT:
			continue
		case ret != gonvml.SUCCESS:
			fn(Event{Type: EventError, Op: "waiting for events", Err: returnError("waiting for events", ret).Error()})
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		fn(toEvent(data))
	}
	return nil
}

func toEvent(d gonvml.EventData) Event {
	e := Event{GPUInstanceID: d.GpuInstanceId, ComputeInstanceID: d.ComputeInstanceId}
	if d.Device != nil {
		if u, ret := d.Device.GetUUID(); ret == gonvml.SUCCESS {
			e.UUID = u
		}
	}
	switch {
	case d.EventType&gonvml.EventTypeXidCriticalError != 0:
		e.Type, e.XID = EventXID, d.EventData
	case d.EventType&gonvml.EventTypeDoubleBitEccError != 0:
		e.Type = EventDoubleBitECC
	case d.EventType&gonvml.EventTypeSingleBitEccError != 0:
		e.Type = EventSingleBitECC
	default:
		e.Type, e.Op, e.Err = EventError, "decoding event", fmt.Sprintf("unexpected event type %#x", d.EventType)
	}
	return e
}
