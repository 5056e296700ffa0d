package main

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom/sim"
)

// Replay is a window of a per-request trace, its rate multiplied by Scale and
// binned per wall-clock tick of the demo: one wall second plays Speed seconds of
// the trace.
type Replay struct {
	Name string
	// From and Span are the window of the trace, in trace time.
	From, Span time.Duration
	Scale      float64
	Speed      float64
	// Tick is the wall-clock tick; each tick plays Tick*Speed of the trace.
	Tick time.Duration
	// Arrivals are the requests to push in each wall tick.
	Arrivals []int
	// MeanCtx and MeanGen are the mean context and generated tokens per request of
	// the window, which size the service time.
	MeanCtx, MeanGen float64
}

// ReplayOptions choose the window and the compression.
type ReplayOptions struct {
	From, Span time.Duration
	Scale      float64
	Speed      float64
	Tick       time.Duration
	Seed       uint64
}

func (o ReplayOptions) validate() error {
	var errs []error
	if o.From < 0 {
		errs = append(errs, fmt.Errorf("trace start %s is negative", o.From))
	}
	if o.Span <= 0 {
		errs = append(errs, fmt.Errorf("trace span %s must be positive", o.Span))
	}
	if o.Scale <= 0 || math.IsNaN(o.Scale) || math.IsInf(o.Scale, 0) {
		errs = append(errs, fmt.Errorf("rate scale %g must be a positive number", o.Scale))
	}
	if o.Speed < 1 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) {
		errs = append(errs, fmt.Errorf("speed %g must be at least 1 (trace seconds per wall second)", o.Speed))
	}
	if o.Tick <= 0 {
		errs = append(errs, fmt.Errorf("tick %s must be positive", o.Tick))
	}
	return errors.Join(errs...)
}

// BuildReplay cuts [From, From+Span) out of the trace's requests and bins it per
// wall tick. Binning and rate scaling are the simulator's (sim.RequestTraffic), so
// the demo and `headroom simulate` replay the same requests.
func BuildReplay(name string, start time.Time, reqs []sim.Request, o ReplayOptions) (*Replay, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("replaying %s: %w", name, err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("replaying %s: the trace has no requests", name)
	}
	if last := reqs[len(reqs)-1].At; o.From+o.Span > last+time.Second {
		return nil, fmt.Errorf("replaying %s: window %s..%s is past the trace's end (%s)", name, o.From, o.From+o.Span, last.Round(time.Second))
	}
	var win []sim.Request
	var ctx, gen float64
	for _, r := range reqs {
		if r.At < o.From || r.At >= o.From+o.Span {
			continue
		}
		r.At -= o.From
		win = append(win, r)
		ctx += float64(r.Ctx)
		gen += float64(r.Gen)
	}
	if len(win) == 0 {
		return nil, fmt.Errorf("replaying %s: no requests in %s..%s", name, o.From, o.From+o.Span)
	}
	traceTick := time.Duration(float64(o.Tick) * o.Speed)
	if traceTick <= 0 {
		return nil, fmt.Errorf("replaying %s: tick %s at speed %g is too short", name, o.Tick, o.Speed)
	}
	tr, err := sim.RequestTraffic(name, start.Add(o.From), win, sim.TrafficOptions{Tick: traceTick, Scale: o.Scale, Span: o.Span, Seed: o.Seed})
	if err != nil {
		return nil, fmt.Errorf("replaying %s: %w", name, err)
	}
	n := int((o.Span + traceTick - 1) / traceTick)
	rp := &Replay{Name: name, From: o.From, Span: o.Span, Scale: o.Scale, Speed: o.Speed, Tick: o.Tick,
		Arrivals: make([]int, n), MeanCtx: ctx / float64(len(win)), MeanGen: gen / float64(len(win))}
	for i, c := range tr.Count {
		if i < n {
			rp.Arrivals[i] = int(c)
		}
	}
	return rp, nil
}

// Requests is the number of requests the replay pushes.
func (r *Replay) Requests() int {
	n := 0
	for _, a := range r.Arrivals {
		n += a
	}
	return n
}

// Wall is how long the replay takes on the wall clock.
func (r *Replay) Wall() time.Duration { return time.Duration(len(r.Arrivals)) * r.Tick }

// Server is the GPU performance model of one ready replica: continuous batching of
// up to Concurrency requests, each taking the perf model's service time at the
// current batch for the window's mean tokens.
type Server struct {
	Perf        sim.Perf
	Concurrency float64
	Ctx, Gen    float64
}

// Step advances the queue by dt seconds of trace time: arrivals come evenly over
// the step, ready replicas serve min(backlog, ready*Concurrency) requests at once,
// each finishing after the service time at that batch. It integrates in substeps
// and returns the new backlog (requests waiting or in service, what the Redis list
// holds) and how many finished.
func (s Server) Step(backlog, arrivals float64, ready int, dt float64, substeps int) (next, served float64) {
	if substeps < 1 {
		substeps = 1
	}
	h := dt / float64(substeps)
	for range substeps {
		backlog += arrivals / float64(substeps)
		if ready <= 0 || backlog <= 0 {
			continue
		}
		inService := math.Min(backlog, float64(ready)*s.Concurrency)
		st := s.Perf.ServiceTime(s.Ctx, s.Gen, inService/float64(ready))
		done := math.Min(backlog, inService*h/st)
		backlog -= done
		served += done
	}
	return backlog, served
}

// Capacity is the most requests per trace second one replica serves (at full batch).
func (s Server) Capacity() float64 {
	return s.Concurrency / s.Perf.ServiceTime(s.Ctx, s.Gen, s.Concurrency)
}
