package nvml

import "context"

// Null is a Reader with no GPUs. The agent uses it (through Fallback) when NVML
// cannot be loaded, so that it still runs, serves health and reports "no NVML".
type Null struct {
	// Reason is reported by Status; "no NVML" when empty.
	Reason string
}

var _ Reader = Null{}

// Init does nothing.
func (Null) Init() error { return nil }

// Shutdown does nothing.
func (Null) Shutdown() error { return nil }

// Status reports NVML unavailable.
func (n Null) Status() Status {
	if n.Reason == "" {
		return Status{Reason: "no NVML"}
	}
	return Status{Reason: n.Reason}
}

// GPUs returns no GPUs.
func (Null) GPUs() ([]GPU, error) { return nil, nil }

// WatchEvents waits for ctx to end; there are no events.
func (Null) WatchEvents(ctx context.Context, _ func(Event)) error {
	<-ctx.Done()
	return nil
}
