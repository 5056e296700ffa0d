//go:build !(cgo && linux)

package nvml

import "context"

// NewLibrary returns a Reader whose Init always fails with ErrNoCgo: without cgo
// (or off Linux) go-nvml cannot load libnvidia-ml. Wrapped in a Fallback, the
// agent then runs as "no NVML", which is what a CGO_ENABLED=0 build should do.
func NewLibrary(string) Reader { return noCgo{} }

type noCgo struct{}

func (noCgo) Init() error                                    { return ErrNoCgo }
func (noCgo) Shutdown() error                                { return nil }
func (noCgo) Status() Status                                 { return Status{Reason: ErrNoCgo.Error()} }
func (noCgo) GPUs() ([]GPU, error)                           { return nil, ErrNoCgo }
func (noCgo) WatchEvents(context.Context, func(Event)) error { return ErrNoCgo }
