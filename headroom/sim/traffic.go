package sim

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast/backtest"
)

// Traffic is the arrivals of a whole run, binned per tick. It is built once and
// shared read-only by every policy's run, so all policies see exactly the same
// requests.
type Traffic struct {
	Name string
	// Start is the wall-clock time of tick 0: schedules and the forecaster's
	// time-of-day profile read it.
	Start time.Time
	Tick  time.Duration
	// Count is the number of requests arriving in each tick; Ctx and Gen sum their
	// context and generated tokens.
	Count []int32
	Ctx   []float32
	Gen   []float32
}

// Ticks returns the number of ticks.
func (t *Traffic) Ticks() int { return len(t.Count) }

// Total returns the number of requests.
func (t *Traffic) Total() int64 {
	var n int64
	for _, c := range t.Count {
		n += int64(c)
	}
	return n
}

// TrafficOptions shape a trace into Traffic.
type TrafficOptions struct {
	// Tick is the simulation tick (default 1 s).
	Tick time.Duration
	// Scale multiplies the request rate (default 1). For per-request traces a
	// scale of 2.5 replays every request twice and a seeded half of them a third
	// time.
	Scale float64
	// Overlays adds copies of the trace shifted later by these offsets (a
	// negative one earlier; wrapping around the trace's end), to reach GPU-scale
	// load with decorrelated bursts.
	Overlays []time.Duration
	// Span, if > 0, keeps only the first Span of the trace.
	Span time.Duration
	// ContextTokens and GeneratedTokens size each request of a rate-only trace
	// (ServeGen, plain CSV); defaults 1155 and 211, the Azure conversation means.
	ContextTokens, GeneratedTokens float64
	// Clients, if > 0, reads only the first Clients ServeGen files.
	Clients int
	// Seed drives thinning and arrival draws.
	Seed uint64
}

// defaults fills zero values and rejects negative or non-finite ones: a typo
// such as --scale -2 must not replay the trace at scale 1.
func (o *TrafficOptions) defaults() error {
	var errs []string
	for _, f := range []struct {
		flag string
		v    float64
	}{{"--scale", o.Scale}, {"--context-tokens", o.ContextTokens}, {"--generated-tokens", o.GeneratedTokens}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Sprintf("%s %v: must be a finite number >= 0 (0: default)", f.flag, f.v))
		}
	}
	if o.Tick < 0 {
		errs = append(errs, fmt.Sprintf("--tick %v: must not be negative", o.Tick))
	}
	if o.Span < 0 {
		errs = append(errs, fmt.Sprintf("--span %v: must not be negative", o.Span))
	}
	if o.Clients < 0 {
		errs = append(errs, fmt.Sprintf("--clients %d: must not be negative", o.Clients))
	}
	if len(errs) > 0 {
		return fmt.Errorf("traffic options: %s", strings.Join(errs, "; "))
	}
	if o.Tick == 0 {
		o.Tick = time.Second
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.ContextTokens == 0 {
		o.ContextTokens = 1155
	}
	if o.GeneratedTokens == 0 {
		o.GeneratedTokens = 211
	}
	return nil
}

// Request is one request of a per-request trace, at an offset from its start.
type Request struct {
	At       time.Duration
	Ctx, Gen int32
}

// ReadAzureRequests reads an Azure LLM inference trace (TIMESTAMP, ContextTokens,
// GeneratedTokens) keeping every request's tokens, which the forecast backtest
// reader (a rate series) does not expose.
func ReadAzureRequests(path string) (start time.Time, reqs []Request, err error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("reading trace: %w", err)
	}
	defer f.Close()
	err = backtest.ScanAzure(f, func(q backtest.AzureRequest) bool {
		if start.IsZero() {
			start = q.At.Truncate(time.Second)
		}
		reqs = append(reqs, Request{At: q.At.Sub(start), Ctx: q.Context, Gen: q.Generated})
		return true
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("reading trace %s: %w", path, err)
	}
	if len(reqs) == 0 {
		return time.Time{}, nil, fmt.Errorf("reading trace %s: no requests", path)
	}
	return start, reqs, nil
}

// RequestTraffic bins per-request arrivals into ticks, applying Scale, Overlays
// and Span.
func RequestTraffic(name string, start time.Time, reqs []Request, opt TrafficOptions) (*Traffic, error) {
	if err := opt.defaults(); err != nil {
		return nil, fmt.Errorf("building traffic %s: %w", name, err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("building traffic %s: no requests", name)
	}
	span := reqs[len(reqs)-1].At.Truncate(opt.Tick) + opt.Tick
	if opt.Span > 0 && opt.Span < span {
		span = opt.Span
	}
	// Round up: a Span that is not a whole number of ticks ends with a partial tick
	// (truncating left requests of that tick out of range).
	n := int((span + opt.Tick - 1) / opt.Tick)
	tr := &Traffic{Name: name, Start: start, Tick: opt.Tick, Count: make([]int32, n), Ctx: make([]float32, n), Gen: make([]float32, n)}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x7ea1))
	whole, frac := math.Modf(opt.Scale)
	for _, shift := range append([]time.Duration{0}, opt.Overlays...) {
		for _, r := range reqs {
			if r.At >= span {
				continue
			}
			copies := int(whole)
			if frac > 0 && rng.Float64() < frac {
				copies++
			}
			if copies == 0 {
				continue
			}
			at := (r.At + shift) % span
			if at < 0 {
				at += span
			}
			k := int(at / opt.Tick)
			tr.Count[k] += int32(copies)
			tr.Ctx[k] += float32(copies) * float32(r.Ctx)
			tr.Gen[k] += float32(copies) * float32(r.Gen)
		}
	}
	return tr, nil
}

// RateWindow is one window of one stream of a rate-only trace.
type RateWindow struct {
	// Rate is the mean request rate in the window, requests per second.
	Rate float64
	// Pattern is the inter-arrival distribution fitted to the window, "Gamma"
	// or "Weibull" with Shape (ServeGen), or "" for a Poisson stream.
	Pattern string
	Shape   float64
}

// RateSeries is a rate-only trace in equal windows: one or more streams of
// the same length (ServeGen: one per client), drawn independently.
type RateSeries struct {
	Name    string
	Start   time.Time
	Window  time.Duration
	Streams [][]RateWindow
}

// Len is the number of windows.
func (rs RateSeries) Len() int {
	n := 0
	for _, st := range rs.Streams {
		n = max(n, len(st))
	}
	return n
}

// Rate is the total rate of window k over all streams.
func (rs RateSeries) Rate(k int) float64 {
	r := 0.0
	for _, st := range rs.Streams {
		if k < len(st) {
			r += st[k].Rate
		}
	}
	return r
}

// ReadServeGen reads a ServeGen folder (or one chunk file): one stream per
// client, per window its rate and fitted inter-arrival distribution. The forecast
// backtest reader sums rates only; the simulator draws each client's arrivals.
func ReadServeGen(path string, clients int) (RateSeries, error) {
	files, err := backtest.ServeGenFiles(path, clients)
	if err != nil {
		return RateSeries{}, err
	}
	rs := RateSeries{Name: filepath.Base(path), Start: backtest.ServeGenEpoch, Window: backtest.ServeGenWindow}
	for _, file := range files {
		st, err := readServeGenFile(file)
		if err != nil {
			return RateSeries{}, fmt.Errorf("reading trace %s: %w", file, err)
		}
		rs.Streams = append(rs.Streams, st)
	}
	if rs.Len() == 0 {
		return RateSeries{}, fmt.Errorf("reading trace %s: no windows", path)
	}
	return rs, nil
}

// readServeGenFile is one client's stream; a busy window without a pattern is
// drawn as Poisson.
func readServeGenFile(path string) ([]RateWindow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ws []RateWindow
	err = backtest.ScanServeGen(f, func(r backtest.ServeGenRow) bool {
		for len(ws) <= r.Window {
			ws = append(ws, RateWindow{})
		}
		ws[r.Window] = RateWindow{Rate: r.Rate, Pattern: r.Pattern, Shape: r.Shape}
		return true
	})
	return ws, err
}

// ReadRateCSV reads a plain CSV of timestamp,rate (an optional header line;
// timestamps in Unix seconds or RFC 3339, increasing, equally spaced; rate in
// requests per second). Arrivals are Poisson.
func ReadRateCSV(path string) (RateSeries, error) {
	f, err := os.Open(path)
	if err != nil {
		return RateSeries{}, fmt.Errorf("reading trace: %w", err)
	}
	defer f.Close()
	var (
		times []time.Time
		rates []float64
	)
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		ts, rs, ok := strings.Cut(text, ",")
		if !ok {
			return RateSeries{}, fmt.Errorf("reading trace %s: line %d: want timestamp,rate", path, line)
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
		if err != nil && len(times) == 0 && line == 1 {
			continue // header
		}
		if err != nil || rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
			return RateSeries{}, fmt.Errorf("reading trace %s: line %d: bad rate %q", path, line, rs)
		}
		ts = strings.TrimSpace(ts)
		var t time.Time
		if sec, err := strconv.ParseFloat(ts, 64); err == nil {
			t = time.Unix(0, int64(sec*1e9)).UTC()
		} else if t, err = time.Parse(time.RFC3339, ts); err != nil {
			return RateSeries{}, fmt.Errorf("reading trace %s: line %d: parsing timestamp: %w", path, line, err)
		}
		if n := len(times); n > 0 && !t.After(times[n-1]) {
			return RateSeries{}, fmt.Errorf("reading trace %s: line %d: timestamps must increase", path, line)
		}
		times = append(times, t)
		rates = append(rates, rate)
	}
	if err := sc.Err(); err != nil {
		return RateSeries{}, fmt.Errorf("reading trace %s: %w", path, err)
	}
	if len(times) < 2 {
		return RateSeries{}, fmt.Errorf("reading trace %s: need at least 2 rows", path)
	}
	step := times[1].Sub(times[0])
	rs := RateSeries{Name: strings.TrimSuffix(filepath.Base(path), ".csv"), Start: times[0], Window: step}
	var win []RateWindow
	for i, r := range rates {
		if i > 0 && times[i].Sub(times[i-1]) != step {
			return RateSeries{}, fmt.Errorf("reading trace %s: row %d: step %v differs from the first step %v", path, i+1, times[i].Sub(times[i-1]), step)
		}
		win = append(win, RateWindow{Rate: r})
	}
	rs.Streams = [][]RateWindow{win}
	return rs, nil
}

// RateTraffic draws the arrivals of a rate series with the seed, applying Scale,
// Overlays and Span. Each stream's window gets its measured count of arrivals
// (rate x scale x window, rounded up or down at random so the mean is exact) for
// a fitted pattern, or a Poisson count for a plain rate. Where they fall inside
// the window follows the pattern: n+1 inter-arrival gaps are drawn from the
// fitted Gamma or Weibull shape and rescaled to span the window (as ServeGen's
// generator rescales its draws to the rate), so a client whose inter-arrival CV
// is 100 sends its window's requests in a few clumps, and a Poisson stream's
// fall uniformly. Each request gets the constant token sizes of the options.
func RateTraffic(rs RateSeries, opt TrafficOptions) (*Traffic, error) {
	if err := opt.defaults(); err != nil {
		return nil, fmt.Errorf("building traffic %s: %w", rs.Name, err)
	}
	windows := rs.Len()
	if windows == 0 || rs.Window <= 0 {
		return nil, fmt.Errorf("building traffic %s: empty rate series", rs.Name)
	}
	full := rs.Window * time.Duration(windows)
	span := full
	if opt.Span > 0 && opt.Span < span {
		span = opt.Span
	}
	// Round up: a Span that is not a whole number of ticks ends with a partial tick
	// (truncating left requests of that tick out of range).
	n := int((span + opt.Tick - 1) / opt.Tick)
	if n < 1 {
		return nil, fmt.Errorf("building traffic %s: span %v is shorter than a tick", rs.Name, span)
	}
	tr := &Traffic{Name: rs.Name, Start: rs.Start, Tick: opt.Tick, Count: make([]int32, n), Ctx: make([]float32, n), Gen: make([]float32, n)}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x5e49))
	shifts := append([]time.Duration{0}, opt.Overlays...)
	winSec := rs.Window.Seconds()
	var gaps []float64
	for _, shift := range shifts {
		for _, st := range rs.Streams {
			for k, w := range st {
				x := w.Rate * opt.Scale * winSec
				if !(x > 0) {
					continue
				}
				if x > maxWindowArrivals {
					return nil, fmt.Errorf("building traffic %s: %.0f arrivals in one window of one stream is beyond the model (at most %d; lower --scale)", rs.Name, x, maxWindowArrivals)
				}
				var cnt int64
				if w.Pattern == "" {
					cnt = poisson(rng, x)
				} else {
					cnt = int64(x)
					if rng.Float64() < x-float64(cnt) {
						cnt++
					}
				}
				if cnt == 0 {
					continue
				}
				// Where each arrival falls, as a fraction of the window.
				gaps = gaps[:0]
				total := 0.0
				if w.Pattern != "" {
					for range cnt + 1 {
						total += interArrival(rng, w)
						gaps = append(gaps, total)
					}
				}
				// A Poisson stream given its count falls uniformly; so does a
				// pattern whose gaps all underflowed to 0.
				fitted := total > 0 && !math.IsInf(total, 0)
				start := rs.Window * time.Duration(k)
				for i := range cnt {
					var f float64
					if fitted {
						f = gaps[i] / total
					} else {
						f = rng.Float64()
					}
					at := (start + time.Duration(f*float64(rs.Window)) + shift) % full
					if at < 0 {
						at += full
					}
					if at >= span {
						continue
					}
					tr.Count[at/opt.Tick]++
				}
			}
		}
	}
	for k, c := range tr.Count {
		tr.Ctx[k] = float32(float64(c) * opt.ContextTokens)
		tr.Gen[k] = float32(float64(c) * opt.GeneratedTokens)
	}
	return tr, nil
}

// maxWindowArrivals bounds one stream's window (the gaps are held in memory
// while a window is placed: 128 MiB at this bound).
const maxWindowArrivals = 1 << 24

// interArrival draws one inter-arrival gap of the window's fitted pattern with
// unit scale (RateTraffic rescales the gaps to the window).
func interArrival(r *rand.Rand, w RateWindow) float64 {
	switch w.Pattern {
	case "Gamma":
		return gamma(r, w.Shape)
	case "Weibull":
		return math.Pow(-math.Log(1-r.Float64()), 1/w.Shape)
	}
	return 0
}

// MaxRepeat bounds Repeat's count; maxTicks bounds what it builds (a year at
// 1 s ticks, about 0.4 GB of traffic), so 1,000 copies of a 1-hour trace fit
// and 1,000 of a 14-day one are refused rather than exhausting memory.
const (
	MaxRepeat = 1000
	maxTicks  = 366 * 24 * 3600
)

// Repeat returns n copies of the traffic back to back. It exists for the
// 1-hour Azure traces: a forecaster learns nothing it can use in one hour
// that starts cold, and the first ten minutes are not scored; replayed for a
// day, the same real traffic shows what the policy does once it has history.
func (t *Traffic) Repeat(n int) (*Traffic, error) {
	if n < 1 || n > MaxRepeat {
		return nil, fmt.Errorf("repeating traffic %s: %d must be in 1..%d", t.Name, n, MaxRepeat)
	}
	if n == 1 {
		return t, nil
	}
	if total := n * len(t.Count); total > maxTicks {
		return nil, fmt.Errorf("repeating traffic %s: %d copies of %d ticks are %d ticks, more than the %d (a year of 1 s ticks) a run holds", t.Name, n, len(t.Count), total, maxTicks)
	}
	out := &Traffic{Name: fmt.Sprintf("%s x%d", t.Name, n), Start: t.Start, Tick: t.Tick,
		Count: make([]int32, 0, n*len(t.Count)), Ctx: make([]float32, 0, n*len(t.Ctx)), Gen: make([]float32, 0, n*len(t.Gen))}
	for range n {
		out.Count = append(out.Count, t.Count...)
		out.Ctx = append(out.Ctx, t.Ctx...)
		out.Gen = append(out.Gen, t.Gen...)
	}
	return out, nil
}
