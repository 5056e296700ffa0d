package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom/sim"
)

// RunResult is what one run (without or with headroom) measured. Times are wall
// clock as measured; Stats and the GPU-hours convert them to trace time.
type RunResult struct {
	Name string
	// Kind is "without" or "with" (the plot's legend).
	Kind  string
	Speed float64
	// Waits are, per replica start of the replay, the wall time from the pod's
	// creation to its binding to a node (pods deleted or still pending at the end
	// count with the wait they had).
	Waits []time.Duration
	// HeadroomGPUSeconds are wall GPU-seconds held by running placeholders;
	// IdleGPUSeconds wall GPU-seconds of usable nodes that ran nothing.
	HeadroomGPUSeconds, IdleGPUSeconds float64
	// Pushed and Served count requests; Left is the queue when the replay ended.
	Pushed, Served, Left int64
	// Series is sampled every tick, At in trace time, counts in replicas.
	Series []sim.Point
}

// WaitStats counts the starts that waited at least threshold for a node and the
// median and longest of those waits. It does not change waits.
func WaitStats(waits []time.Duration, threshold time.Duration) (starts, waited int, p50, longest time.Duration) {
	var w []time.Duration
	for _, d := range waits {
		if d >= threshold {
			w = append(w, d)
		}
	}
	if len(w) == 0 {
		return len(waits), 0, 0, 0
	}
	slices.Sort(w)
	// Nearest rank: the smallest wait at or above half of them.
	return len(waits), len(w), w[(len(w)+1)/2-1], w[len(w)-1]
}

// Stats are WaitStats in trace time (wall time times Speed).
func (r *RunResult) Stats(threshold time.Duration) (starts, waited int, p50, longest time.Duration) {
	starts, waited, p50, longest = WaitStats(r.Waits, threshold)
	return starts, waited, r.trace(p50), r.trace(longest)
}

func (r *RunResult) trace(d time.Duration) time.Duration { return time.Duration(float64(d) * r.Speed) }

// HeadroomGPUHours is the placeholders' GPU time in trace hours.
func (r *RunResult) HeadroomGPUHours() float64 { return r.HeadroomGPUSeconds * r.Speed / 3600 }

// IdleGPUHours is idle node GPU time in trace hours.
func (r *RunResult) IdleGPUHours() float64 { return r.IdleGPUSeconds * r.Speed / 3600 }

// simResult turns the run into the simulator's result type, so sim.WriteSVG draws it.
func (r *RunResult) simResult(threshold time.Duration) *sim.Result {
	starts, waited, p50, longest := r.Stats(threshold)
	res := &sim.Result{Policy: r.Name, Kind: r.Kind, ReplicaStarts: starts, WaitedStarts: waited,
		WaitP50: p50.Seconds(), WaitMax: longest.Seconds(), Requests: r.Pushed, Completed: r.Served,
		GPUHoursPlaceholders: r.HeadroomGPUHours(), GPUHoursIdleNodes: r.IdleGPUHours(), Series: r.Series}
	if starts > 0 {
		res.WaitedShare = float64(waited) / float64(starts)
	}
	res.GPUHoursTotal = res.GPUHoursPlaceholders + res.GPUHoursIdleNodes
	return res
}

// SummaryInfo is what the summary states besides the runs.
type SummaryInfo struct {
	Trace     string
	Speed     float64
	Threshold time.Duration // wall
	Delays    string        // the stand-in autoscaler's delays, already stated in both clocks
	Metrics   string        // headroomd's metrics URL
	Plot      string        // path of the SVG
	Kept      bool
}

// WriteSummary prints the runs side by side and where to look next.
func WriteSummary(w io.Writer, runs []*RunResult, info SummaryInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSummary (%s; times and GPU-hours in trace time, the demo ran %gx faster)\n", info.Trace, info.Speed)
	fmt.Fprintf(&b, "  %s\n", info.Delays)
	fmt.Fprintf(&b, "  a replica start \"waited for a node\" when it was pending >= %s (%s of trace time)\n\n",
		info.Threshold, time.Duration(float64(info.Threshold)*info.Speed))
	fmt.Fprintf(&b, "  %-20s %14s %14s %10s %10s %17s %15s %10s\n", "RUN", "REPLICA STARTS", "WAITED (NODE)", "WAIT P50", "WAIT MAX", "HEADROOM GPU-H", "IDLE NODE GPU-H", "REQUESTS")
	for _, r := range runs {
		starts, waited, p50, longest := r.Stats(info.Threshold)
		fmt.Fprintf(&b, "  %-20s %14d %14d %10s %10s %17.1f %15.1f %10s\n", r.Name, starts, waited, fmtWait(p50, waited), fmtWait(longest, waited),
			r.HeadroomGPUHours(), r.IdleGPUHours(), fmt.Sprintf("%d/%d", r.Served, r.Pushed))
	}
	b.WriteString("\n")
	if info.Metrics != "" {
		fmt.Fprintf(&b, "  headroomd metrics:  %s", info.Metrics)
		if !info.Kept {
			b.WriteString("  (up while the demo ran; DEMO_KEEP=1 keeps it)")
		}
		b.WriteString("\n")
	}
	if info.Plot != "" {
		fmt.Fprintf(&b, "  timeline plot:      %s\n", info.Plot)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtWait(d time.Duration, waited int) string {
	if waited == 0 {
		return "-"
	}
	return clock(d)
}
