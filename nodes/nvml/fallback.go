package nvml

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// Fallback wraps a Reader and behaves as Null while the wrapped Reader's Init
// fails: the library is missing (no driver yet, or not mounted), the driver and
// library disagree, or the binary has no cgo. Init never fails; calling it again
// retries the wrapped Reader, so an agent that started before the driver was
// installed picks NVML up once it appears. It logs once per distinct reason, at
// warning level, so the cause is in the pod's log without repeating it every
// interval. Compare NVIDIA's device plugin, NewFallbackToNullOnInitError.
type Fallback struct {
	inner Reader
	log   *zap.Logger

	mu         sync.Mutex
	ready      bool
	reason     string
	lastLogged string
}

var _ Reader = (*Fallback)(nil)

// NewFallback wraps inner.
func NewFallback(inner Reader, log *zap.Logger) *Fallback {
	return &Fallback{inner: inner, log: log, reason: "NVML not initialised yet"}
}

// Init initialises the wrapped Reader, or falls back to null.
func (f *Fallback) Init() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ready {
		return nil
	}
	if err := f.inner.Init(); err != nil {
		f.reason = "no NVML: " + err.Error()
		if f.reason != f.lastLogged {
			f.log.Warn("no NVML: serving without GPU data; will retry every interval",
				zap.Error(err),
				zap.String("needs", "libnvidia-ml.so.1 on the library path and /dev/nvidia* devices; see nodes/nvml/README.md"))
			f.lastLogged = f.reason
		}
		return nil
	}
	if f.lastLogged != "" {
		f.log.Info("NVML initialised after earlier failures", zap.String("previous", f.lastLogged))
	}
	f.ready, f.reason, f.lastLogged = true, "", ""
	return nil
}

// Shutdown shuts the wrapped Reader down if it was initialised.
func (f *Fallback) Shutdown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return nil
	}
	f.ready = false
	f.reason = "NVML shut down"
	return f.inner.Shutdown()
}

// Status is the wrapped Reader's while it is initialised.
func (f *Fallback) Status() Status {
	f.mu.Lock()
	ready, reason := f.ready, f.reason
	f.mu.Unlock()
	if !ready {
		return Status{Reason: reason}
	}
	return f.inner.Status()
}

// GPUs reads the wrapped Reader, or returns none while falling back.
func (f *Fallback) GPUs() ([]GPU, error) {
	if !f.isReady() {
		return nil, nil
	}
	return f.inner.GPUs()
}

// WatchEvents watches the wrapped Reader, or waits for ctx while falling back.
// The agent starts a new watch once Status turns available.
func (f *Fallback) WatchEvents(ctx context.Context, fn func(Event)) error {
	if !f.isReady() {
		return Null{}.WatchEvents(ctx, fn)
	}
	return f.inner.WatchEvents(ctx, fn)
}

func (f *Fallback) isReady() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}
