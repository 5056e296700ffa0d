package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom/sim"
)

func TestBuildReplay(t *testing.T) {
	start := time.Date(2023, 11, 16, 18, 0, 0, 0, time.UTC)
	// One request per trace second for 10 minutes, 100 context and 10 generated tokens.
	var reqs []sim.Request
	for s := range 600 {
		reqs = append(reqs, sim.Request{At: time.Duration(s) * time.Second, Ctx: 100, Gen: 10})
	}
	reqs[120].Ctx, reqs[120].Gen = 300, 30 // in the window: moves the means
	cases := []struct {
		name      string
		o         ReplayOptions
		ticks     int
		perTick   int
		total     int
		meanCtx   float64
		wantError string
	}{
		{name: "2 min at 10x, 1s ticks: 10 trace seconds per tick",
			o:     ReplayOptions{From: time.Minute, Span: 2 * time.Minute, Scale: 1, Speed: 10, Tick: time.Second},
			ticks: 12, perTick: 10, total: 120, meanCtx: (119*100 + 300) / 120.0},
		{name: "rate x3",
			o:     ReplayOptions{From: 0, Span: time.Minute, Scale: 3, Speed: 6, Tick: time.Second},
			ticks: 10, perTick: 18, total: 180, meanCtx: 100},
		{name: "span not a whole number of ticks: the last tick is partial",
			o:     ReplayOptions{From: 0, Span: 25 * time.Second, Scale: 1, Speed: 10, Tick: time.Second},
			ticks: 3, total: 25, meanCtx: 100},
		{name: "past the end", o: ReplayOptions{From: 9 * time.Minute, Span: 2 * time.Minute, Scale: 1, Speed: 10, Tick: time.Second}, wantError: "past the trace's end"},
		{name: "speed below 1", o: ReplayOptions{Span: time.Minute, Scale: 1, Speed: 0.5, Tick: time.Second}, wantError: "speed 0.5"},
		{name: "zero scale and span", o: ReplayOptions{Speed: 10, Tick: time.Second}, wantError: "rate scale 0"},
		{name: "negative start", o: ReplayOptions{From: -time.Second, Span: time.Minute, Scale: 1, Speed: 10, Tick: time.Second}, wantError: "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rp, err := BuildReplay("test", start, reqs, c.o)
			if c.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantError) {
					t.Fatalf("error %v, want one mentioning %q", err, c.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rp.Arrivals) != c.ticks {
				t.Fatalf("ticks = %d, want %d", len(rp.Arrivals), c.ticks)
			}
			if c.perTick > 0 {
				for i, a := range rp.Arrivals {
					if a != c.perTick {
						t.Fatalf("tick %d: %d arrivals, want %d (%v)", i, a, c.perTick, rp.Arrivals)
					}
				}
			}
			if rp.Requests() != c.total {
				t.Errorf("requests = %d, want %d", rp.Requests(), c.total)
			}
			if math.Abs(rp.MeanCtx-c.meanCtx) > 1e-9 {
				t.Errorf("mean context = %g, want %g", rp.MeanCtx, c.meanCtx)
			}
			if want := time.Duration(c.ticks) * c.o.Tick; rp.Wall() != want {
				t.Errorf("wall = %s, want %s", rp.Wall(), want)
			}
		})
	}
	if _, err := BuildReplay("empty", start, nil, cases[0].o); err == nil {
		t.Error("an empty trace must be refused")
	}
}

func TestServerStep(t *testing.T) {
	// Constant service time of 2 s at any batch: easy to reason about.
	s := Server{Perf: sim.Perf{PrefillPerToken: 0, Batches: []float64{1}, DecodePerToken: []float64{0.2}}, Concurrency: 4, Ctx: 0, Gen: 10}
	if got := s.Capacity(); math.Abs(got-2) > 1e-9 {
		t.Fatalf("capacity = %g req/s, want 4 in service / 2 s = 2", got)
	}
	cases := []struct {
		name              string
		backlog, arrivals float64
		ready             int
		dt                float64
		wantNext          float64 // approximate
		wantServedAtMost  float64
	}{
		{name: "no replica serves nothing", backlog: 10, arrivals: 5, ready: 0, dt: 10, wantNext: 15},
		{name: "empty queue, no arrivals", backlog: 0, arrivals: 0, ready: 3, dt: 10, wantNext: 0},
		// Saturated: 2 replicas x 4 in service / 2 s = 4 req/s for 5 s = 20 served.
		{name: "saturated replicas serve at capacity", backlog: 100, arrivals: 0, ready: 2, dt: 5, wantNext: 80},
		// Steady state: arrivals of 1 req/s with service 2 s keep about 2 in the system.
		{name: "light load settles at arrival rate x service time", backlog: 2, arrivals: 100, ready: 5, dt: 100, wantNext: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next, served := s.Step(c.backlog, c.arrivals, c.ready, c.dt, 1000)
			if math.Abs(next-c.wantNext) > 0.3 {
				t.Errorf("backlog %g, want about %g", next, c.wantNext)
			}
			if math.Abs(c.backlog+c.arrivals-served-next) > 1e-6 {
				t.Errorf("requests not conserved: %g + %g != %g served + %g left", c.backlog, c.arrivals, served, next)
			}
			if served < 0 || next < 0 {
				t.Errorf("negative: served %g, next %g", served, next)
			}
		})
	}
}

func TestWaitStats(t *testing.T) {
	s := time.Second
	cases := []struct {
		name           string
		waits          []time.Duration
		starts, waited int
		p50, max       time.Duration
	}{
		{name: "none", starts: 0},
		{name: "all warm", waits: []time.Duration{0, s, 2 * s}, starts: 3},
		{name: "threshold is inclusive", waits: []time.Duration{5 * s}, starts: 1, waited: 1, p50: 5 * s, max: 5 * s},
		{name: "odd count", waits: []time.Duration{s, 30 * s, 10 * s, 20 * s}, starts: 4, waited: 3, p50: 20 * s, max: 30 * s},
		{name: "even count takes the lower middle", waits: []time.Duration{40 * s, 10 * s, 30 * s, 20 * s}, starts: 4, waited: 4, p50: 20 * s, max: 40 * s},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := append([]time.Duration(nil), c.waits...)
			starts, waited, p50, longest := WaitStats(c.waits, 5*s)
			if starts != c.starts || waited != c.waited || p50 != c.p50 || longest != c.max {
				t.Errorf("got %d %d %s %s, want %d %d %s %s", starts, waited, p50, longest, c.starts, c.waited, c.p50, c.max)
			}
			for i := range in {
				if in[i] != c.waits[i] {
					t.Fatal("WaitStats reordered its input")
				}
			}
		})
	}
	r := &RunResult{Speed: 12, Waits: []time.Duration{10 * s, 20 * s}, HeadroomGPUSeconds: 24 * 300}
	if _, _, p50, longest := r.Stats(5 * s); p50 != 2*time.Minute || longest != 4*time.Minute {
		t.Errorf("trace-time waits %s %s, want 2m and 4m at 12x", p50, longest)
	}
	// 24 GPUs for 300 wall seconds at 12x: 24 GPUs for an hour of trace time.
	if got := r.HeadroomGPUHours(); math.Abs(got-24) > 1e-9 {
		t.Errorf("headroom GPU-hours = %g, want 24", got)
	}
}

func TestFrameRendering(t *testing.T) {
	f := Frame{Run: "with headroom", At: 90 * time.Second, Span: 24 * time.Minute, Speed: 12, Queue: 321, Desired: 7, Pending: 2,
		Zones: []ZoneRow{
			{Zone: "zone-a", Replicas: 3, Serving: 2, Placeholders: 1, Nodes: 4, Provisioning: 1, Known: true},
			{Zone: "zone-b", Replicas: 2, Serving: 2, PendingHolders: 1, Nodes: 2, Known: true, Scarce: true},
		}}
	table := f.Table()
	for _, want := range []string{"with headroom", "trace 1:30 / 24:00 (x12)", "queue 321", "demand (KEDA desired) 7", "serving 4", "pending 2",
		"ZONE", "PLACEHOLDERS", "PROVISIONING", "SCARCE", "0 (+1)", "YES"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if n := strings.Count(table, "\n"); n != 4 {
		t.Errorf("table has %d lines, want header + column names + 2 zones:\n%s", n, table)
	}
	line := f.Line()
	want := "[with headroom] trace 1:30/24:00 queue=321 demand=7 replicas=5 serving=4 pending=2 placeholders=1(+1 pending) nodes=6 provisioning=1 scarce=zone-b"
	if line != want {
		t.Errorf("line\n got %s\nwant %s", line, want)
	}
	f.Zones[0].Known, f.Zones[1].Known, f.Zones[1].Scarce = false, false, false
	if strings.Contains(f.Table(), "YES") || !strings.Contains(f.Line(), "scarce=-") {
		t.Errorf("without headroomd the scarce column shows '-':\n%s\n%s", f.Table(), f.Line())
	}
	if got := clock(3*time.Hour + 4*time.Minute + 5*time.Second); got != "3:04:05" {
		t.Errorf("clock = %s", got)
	}
}

func TestWriteSummary(t *testing.T) {
	runs := []*RunResult{
		{Name: "without headroom", Speed: 10, Waits: []time.Duration{30 * time.Second, 40 * time.Second}, Pushed: 100, Served: 99},
		{Name: "with headroom", Speed: 10, Waits: []time.Duration{time.Second, 30 * time.Second}, HeadroomGPUSeconds: 8 * 360, Pushed: 100, Served: 100},
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, runs, SummaryInfo{Trace: "t", Speed: 10, Threshold: 5 * time.Second, Delays: "d", Metrics: "http://x/metrics", Plot: "/p.svg"}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"the demo ran 10x faster", "pending >= 5s (50s of trace time)",
		"http://x/metrics", "DEMO_KEEP=1", "/p.svg"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// Rows: starts, waited, p50 and max in trace time, headroom and idle GPU-hours, requests.
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		for _, r := range runs {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l), r.Name); ok {
				rows[r.Name] = strings.Join(strings.Fields(rest), " ")
			}
		}
	}
	if got, want := rows["without headroom"], "2 2 5:00 6:40 0.0 0.0 99/100"; got != want {
		t.Errorf("without row %q, want %q", got, want)
	}
	if got, want := rows["with headroom"], "2 1 5:00 5:00 8.0 0.0 100/100"; got != want {
		t.Errorf("with row %q, want %q", got, want)
	}
}
