// Package nvml is headroom-agent's view of the NVIDIA driver: a small Reader
// interface of the project's own, with a real implementation over go-nvml, a null
// implementation, and a fallback that serves as null while the driver library is
// missing or fails to initialise. This is the shape NVIDIA's device plugin uses
// (internal/resource: nvml-lib.go, null.go, fallback.go), for the same reason: the
// agent must start, serve its health endpoint and report "no NVML" on a node whose
// driver is still being installed, instead of crash-looping.
//
// Only the real implementation (real.go) imports go-nvml, and only when cgo is
// enabled on Linux; everything else here is plain Go, so the rest of the module,
// including code that imports this package's types, builds with CGO_ENABLED=0.
//
// What the agent needs on the node to use NVML unprivileged is in README.md.
package nvml

import (
	"context"
	"errors"
	"fmt"
)

// Reader reads GPUs. Implementations must be safe for concurrent use: the agent
// samples GPUs and waits for events from different goroutines (NVML itself is
// thread-safe).
type Reader interface {
	// Init loads and initialises the library. It may be called again after a
	// failure (the driver may appear later) and after Shutdown.
	Init() error
	// Shutdown releases the library.
	Shutdown() error
	// Status says whether the library is usable, and if not, why.
	Status() Status
	// GPUs reads every GPU once. A GPU that fails to answer is returned with
	// NotAnswering set, not dropped; an error means the device list itself could
	// not be read.
	GPUs() ([]GPU, error)
	// WatchEvents subscribes to XID and ECC events on every GPU and calls fn for
	// each, and for each error while waiting, until ctx ends. It returns an error
	// only when the subscription cannot be set up at all.
	WatchEvents(ctx context.Context, fn func(Event)) error
}

// Status is the state of the driver library.
type Status struct {
	// Available is true when NVML is initialised and answering.
	Available bool
	// Reason says why it is not; "" when Available.
	Reason string
	// DriverVersion is the kernel driver version, when known.
	DriverVersion string
}

// GPU is one sample of one physical GPU.
type GPU struct {
	Index int
	// UUID is "" only when the GPU did not answer far enough to tell it.
	UUID string
	// Name is the product name, e.g. "NVIDIA H100 80GB HBM3".
	Name             string
	MemoryTotalBytes uint64
	MemoryUsedBytes  uint64
	// Utilization is the fraction of the last sample period in which a kernel
	// ran (0..1); nil when NVML does not report it (MIG mode, some products).
	Utilization *float64
	// ComputeProcesses is the number of compute processes on the GPU; nil when
	// unknown.
	ComputeProcesses *int
	MIGEnabled       bool
	MIGDevices       []MIGDevice
	// RetiredPages counts pages retired for ECC errors (pre-Ampere page
	// retirement); RetiredPagesPending means a retirement waits for a GPU reset.
	RetiredPages        int
	RetiredPagesPending bool
	// RowRemapPending means a row remap (Ampere and later) waits for a GPU reset;
	// RowRemapFailed means the GPU ran out of spare rows.
	RowRemapPending bool
	RowRemapFailed  bool
	// UncorrectedECCErrors is the volatile count (since the driver loaded) of
	// uncorrected ECC errors.
	UncorrectedECCErrors uint64
	// NotAnswering is set when NVML could not reach the GPU (no handle, no UUID,
	// or "GPU is lost"); Err says which call failed.
	NotAnswering bool
	Err          string
	// QueryErrors lists calls that failed without making the GPU unreachable.
	// "Not supported" is not an error and does not appear here.
	QueryErrors []QueryError
}

// MIGDevice is one MIG device of a GPU in MIG mode.
type MIGDevice struct {
	UUID              string
	Profile           string
	GPUInstanceID     int
	ComputeInstanceID int
	MemoryTotalBytes  uint64
}

// QueryError is one failed NVML call.
type QueryError struct {
	Op  string
	Err string
}

// EventType is the kind of an NVML event.
type EventType int

// Event types the agent subscribes to.
const (
	EventXID EventType = iota + 1
	EventDoubleBitECC
	EventSingleBitECC
	// EventError is not an NVML event: the watch itself failed (Err says why).
	EventError
)

func (t EventType) String() string {
	switch t {
	case EventXID:
		return "xid"
	case EventDoubleBitECC:
		return "double_bit_ecc"
	case EventSingleBitECC:
		return "single_bit_ecc"
	case EventError:
		return "error"
	}
	return fmt.Sprintf("event(%d)", int(t))
}

// NoInstance is NVML's GPU/compute instance ID for an event on a whole GPU.
const NoInstance = 0xFFFFFFFF

// Event is one NVML event (or a watch error).
type Event struct {
	Type EventType
	// UUID of the physical GPU; "" when NVML could not say.
	UUID string
	// XID is the XID code for EventXID.
	XID uint64
	// GPUInstanceID and ComputeInstanceID locate a MIG device; NoInstance for a
	// whole GPU.
	GPUInstanceID     uint32
	ComputeInstanceID uint32
	// Op and Err describe an EventError.
	Op  string
	Err string
}

// Errors returned by Readers; test with errors.Is.
var (
	// ErrLibraryNotFound: libnvidia-ml.so.1 could not be loaded.
	ErrLibraryNotFound = errors.New("NVML library not found")
	// ErrNoCgo: the binary was built without cgo (or not for Linux), so it cannot
	// load NVML at all.
	ErrNoCgo = errors.New("built without cgo: NVML cannot be loaded")
	// ErrNotSupported: the call is not supported on this GPU or driver.
	ErrNotSupported = errors.New("not supported")
	// ErrGPULost: the GPU has fallen off the bus or is otherwise inaccessible.
	ErrGPULost = errors.New("GPU is lost")
	// ErrNotInitialised: the Reader was used before a successful Init.
	ErrNotInitialised = errors.New("NVML not initialised")
)
