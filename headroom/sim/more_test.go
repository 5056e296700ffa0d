package sim

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// TestInvariantsUnderCapsAndStockout runs the forecast policy with tight zone
// caps and budget, and a zone that stocks out, checking every tick that no GPU is
// allocated twice, placeholders stay within the plan's caps and budget, and
// requests are conserved; and that the stocked-out zone's headroom moves.
func TestInvariantsUnderCapsAndStockout(t *testing.T) {
	hc, err := headroom.ParseConfig([]byte("budgetGPUs: 14\nleadTime: 7m\ncooldown: 2m\ndefaults: {max: 6}\nzones:\n  zone-b: {max: 4}\nscarcity: {pendingThreshold: 8m, initialBackoff: 5m, maxBackoff: 10m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := stepTraffic(3*time.Hour, 50*time.Minute, 3, 50)
	for k := 100 * 60; k < len(tr.Count); k++ { // a second step down and up
		if (k/1200)%2 == 0 {
			tr.Count[k], tr.Ctx[k], tr.Gen[k] = 10, 10000, 1000
		}
	}
	cfg := DefaultConfig()
	cfg.CheckInvariants = true
	cfg.Stockouts = []Stockout{{Zone: "zone-a", From: 20 * time.Minute, To: 2 * time.Hour}}
	rep, err := Simulate(tr, cfg, []PolicySpec{{Kind: KindForecast, Headroom: hc, BudgetGPUs: 100}, {Kind: KindOracle, BudgetGPUs: 10}, {Kind: KindStatic, N: 3}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	fc := find(t, rep, "forecast")
	if fc.FailedScaleUps == 0 {
		t.Error("the stockout never failed a scale-up")
	}
	for _, r := range rep.Results {
		for _, p := range r.Series {
			if r.Kind == KindForecast && p.Headroom > 7 {
				t.Fatalf("forecast holds %v placeholders (2 GPUs each) at %v, over the 14-GPU budget", p.Headroom, p.At)
			}
		}
	}
}

// TestCheckCatches makes sure the invariant checker is not vacuous.
func TestCheckCatches(t *testing.T) {
	tr := stepTraffic(20*time.Minute, 5*time.Minute, 3, 3)
	cfg := DefaultConfig()
	dem := newDemandCurve(tr, &cfg)
	dem.zeroWait = dem.want
	for name, corrupt := range map[string]func(r *run){
		"double allocation": func(r *run) { r.nodes[0].replicas++ },
		"lost request":      func(r *run) { r.done++ },
		"over cap":          func(r *run) { r.caps[0] = 0; r.setHolders(0, 1) },
		"ready miscounted":  func(r *run) { r.ready++ },
	} {
		r, err := newRun(&cfg, tr, dem, PolicySpec{Kind: KindReactive})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.check(); err != nil {
			t.Fatalf("%s: fresh run fails the check: %v", name, err)
		}
		corrupt(r)
		if err := r.check(); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}
}

func TestParsers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Dist
	}{
		{"5m", Const(5 * time.Minute)},
		{"4m..6m", Dist{Kind: "uniform", A: 4 * time.Minute, B: 6 * time.Minute}},
		{"lognormal:5m,0.2", Dist{Kind: "lognormal", A: 5 * time.Minute, Sigma: 0.2}},
	} {
		got, err := ParseDist(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDist(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if back, err := ParseDist(got.String()); err != nil || back != got {
			t.Errorf("ParseDist(%q.String()) = %+v, %v", c.in, back, err)
		}
	}
	for _, bad := range []string{"", "-1m", "6m..4m", "lognormal:5m", "lognormal:5m,9", "x..1m"} {
		if _, err := ParseDist(bad); err == nil {
			t.Errorf("ParseDist(%q) accepted", bad)
		}
	}
	ws, err := ParseWindows("08:00-20:00=2, 22:00-06:00=1")
	if err != nil {
		t.Fatal(err)
	}
	p := PolicySpec{Kind: KindSchedule, Windows: ws}
	for m, want := range map[int]int32{7 * 60: 0, 8 * 60: 2, 19*60 + 59: 2, 20 * 60: 0, 23 * 60: 1, 3 * 60: 1} {
		if got := p.count(m); got != want {
			t.Errorf("schedule at minute %d: %d, want %d", m, got, want)
		}
	}
	for _, bad := range []string{"", "8-20=1", "08:00-20:00=x", "08:00-20:00"} {
		if _, err := ParseWindows(bad); err == nil {
			t.Errorf("ParseWindows(%q) accepted", bad)
		}
	}
	if s, err := ParseStockout("zone-b@2h-4h"); err != nil || s != (Stockout{Zone: "zone-b", From: 2 * time.Hour, To: 4 * time.Hour}) {
		t.Errorf("ParseStockout = %+v, %v", s, err)
	}
	if err := (Config{}).Validate(); err == nil {
		t.Error("empty config validated")
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"slo":        func(c *Config) { c.SLO = 0 },
		"activation": func(c *Config) { c.ActivationThreshold = -1 },
		"cooldown":   func(c *Config) { c.CooldownPeriod = -time.Minute },
		"unneeded":   func(c *Config) { c.ScaleDownUnneeded = -time.Minute },
		"target":     func(c *Config) { c.Target = math.Inf(1) },
		"tolerance":  func(c *Config) { c.HPATolerance = -0.1 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: bad value validated", name)
		}
	}
}

func TestRateCSVAndPlots(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rate.csv")
	var b strings.Builder
	b.WriteString("timestamp,rate\n")
	for i := range 12 {
		rate := 20.0
		if i >= 4 && i < 8 {
			rate = 80
		}
		b.WriteString(time.Date(2024, 3, 1, 0, 5*i, 0, 0, time.UTC).Format(time.RFC3339) + "," + strconv.FormatFloat(rate, 'g', -1, 64) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := ReadRateCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Window != 5*time.Minute || rs.Len() != 12 || rs.Rate(5) != 80 {
		t.Fatalf("rate series %+v", rs)
	}
	tr, err := RateTraffic(rs, TrafficOptions{Seed: 3, Scale: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := float64(tr.Total()), 0.5*(8*20+4*80)*300.0; got < 0.95*want || got > 1.05*want {
		t.Errorf("%v requests drawn, want about %v", got, want)
	}
	cfg := DefaultConfig()
	rep, err := Simulate(tr, cfg, []PolicySpec{{Kind: KindReactive}, {Kind: KindStatic, N: 1}, {Kind: KindStatic, N: 2}, {Kind: KindOracle}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var svg, pngb bytes.Buffer
	if err := WriteSVG(&svg, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg.String(), "<svg") || !strings.Contains(svg.String(), "static-2") || !strings.HasSuffix(svg.String(), "</svg>\n") {
		t.Error("SVG lacks its frame or a policy")
	}
	if err := WritePNG(&pngb, rep); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&pngb)
	if err != nil {
		t.Fatal(err)
	}
	if w, h := plotSize(rep); img.Bounds().Dx() != int(w) || img.Bounds().Dy() != int(h) {
		t.Errorf("PNG is %v", img.Bounds())
	}
	for _, bad := range []string{"timestamp,rate\n0,1\n", "0,1\n60,x\n", "0,1\n60,1\n90,1\n", "60,1\n0,1\n"} {
		p := filepath.Join(dir, "bad.csv")
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadRateCSV(p); err == nil {
			t.Errorf("ReadRateCSV accepted %q", bad)
		}
	}
}

func TestPerfModel(t *testing.T) {
	dir := tracesDir(t)
	p, err := ReadPerf(filepath.Join(dir, "..", "perf", "splitwise-perf-model", "perf_model.csv"), "llama2-70b", "h100-80gb", 8)
	if err != nil {
		t.Fatal(err)
	}
	// README: 30.5 ms per token at batch 1, 38.9 ms at batch 32 (means of 5 runs).
	if d := p.Decode(1); d < 0.029 || d > 0.032 {
		t.Errorf("decode at batch 1: %v s", d)
	}
	if d := p.Decode(32); d < 0.037 || d > 0.041 {
		t.Errorf("decode at batch 32: %v s", d)
	}
	for i := 1; i < len(p.DecodePerToken); i++ {
		if p.DecodePerToken[i] < p.DecodePerToken[i-1] {
			t.Errorf("decode time falls with batch: %v", p.DecodePerToken)
		}
	}
	if _, err := ReadPerf(filepath.Join(dir, "..", "perf", "splitwise-perf-model", "perf_model.csv"), "llama2-70b", "h100-80gb", 3); err == nil {
		t.Error("tensor parallelism 3 accepted")
	}
	def := DefaultPerf()
	p2, err := ReadPerf(filepath.Join(dir, "..", "perf", "splitwise-perf-model", "perf_model.csv"), "llama2-70b", "h100-80gb", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []float64{1, 8, 32} {
		if a, c := def.Decode(b), p2.Decode(b); a < 0.9*c || a > 1.1*c {
			t.Errorf("DefaultPerf decode at %v: %v, the file says %v", b, a, c)
		}
	}
	if a, c := def.PrefillPerToken, p2.PrefillPerToken; a < 0.8*c || a > 1.2*c {
		t.Errorf("DefaultPerf prefill %v, the file says %v", a, c)
	}
}

func TestRequestTrafficScaleAndOverlay(t *testing.T) {
	start := time.Date(2023, 11, 16, 18, 0, 0, 0, time.UTC)
	var reqs []Request
	for i := range 1000 {
		reqs = append(reqs, Request{At: time.Duration(i) * 600 * time.Millisecond, Ctx: 100, Gen: 10})
	}
	tr, err := RequestTraffic("x", start, reqs, TrafficOptions{Scale: 2.5, Overlays: []time.Duration{time.Minute}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Two copies, each every request 2 or 3 times (half of them 3): about 5000.
	if n := tr.Total(); n < 4800 || n > 5200 {
		t.Errorf("%d requests, want about 5000", n)
	}
	var ctx, gen float64
	for k := range tr.Count {
		ctx += float64(tr.Ctx[k])
		gen += float64(tr.Gen[k])
	}
	if ctx != 100*float64(tr.Total()) || gen != 10*float64(tr.Total()) {
		t.Errorf("token sums %v, %v for %d requests", ctx, gen, tr.Total())
	}
	if tr.Ticks() != 600 {
		t.Errorf("%d ticks, want 600 (the trace's span)", tr.Ticks())
	}
	again, _ := RequestTraffic("x", start, reqs, TrafficOptions{Scale: 2.5, Overlays: []time.Duration{time.Minute}, Seed: 1})
	if again.Total() != tr.Total() {
		t.Error("same seed, different thinning")
	}
	// An overlay shifts its copy later, wrapping at the end, for both kinds of trace.
	one := []Request{{At: 10 * time.Second, Ctx: 1, Gen: 1}, {At: 59 * time.Second, Ctx: 1, Gen: 1}}
	sh, err := RequestTraffic("x", start, one, TrafficOptions{Overlays: []time.Duration{20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if sh.Count[30] != 1 || sh.Count[10] != 1 || sh.Total() != 4 {
		t.Errorf("overlay +20s of arrivals at 10 s and 59 s: counts at 10 s %d, 30 s %d, total %d", sh.Count[10], sh.Count[30], sh.Total())
	}
	rs := RateSeries{Name: "r", Start: start, Window: time.Minute, Streams: [][]RateWindow{{{Rate: 1}, {}, {}}}}
	rsh, err := RateTraffic(rs, TrafficOptions{Overlays: []time.Duration{2 * time.Minute}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var first, last int64
	for k, c := range rsh.Count {
		if k < 60 {
			first += int64(c)
		} else if k >= 120 {
			last += int64(c)
		}
	}
	if first == 0 || last == 0 || first+last != rsh.Total() {
		t.Errorf("rate overlay +2m: %d arrivals in the first minute, %d in the last, %d in all", first, last, rsh.Total())
	}
	// Negative or non-finite options are errors, not defaults.
	for _, o := range []TrafficOptions{{Scale: -1}, {Scale: math.NaN()}, {Scale: math.Inf(1)}, {ContextTokens: -1}, {GeneratedTokens: -1}, {Tick: -time.Second}, {Span: -time.Minute}, {Clients: -1}} {
		if _, err := RequestTraffic("x", start, reqs, o); err == nil {
			t.Errorf("RequestTraffic accepted %+v", o)
		}
		if _, err := RateTraffic(rs, o); err == nil {
			t.Errorf("RateTraffic accepted %+v", o)
		}
	}
}

func TestTrafficRepeat(t *testing.T) {
	tr := &Traffic{Name: "x", Start: time.Unix(0, 0), Tick: time.Second, Count: []int32{1, 0, 3}, Ctx: []float32{10, 0, 30}, Gen: []float32{1, 0, 3}}
	r, err := tr.Repeat(3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ticks() != 9 || r.Total() != 12 || r.Name != "x x3" || !r.Start.Equal(tr.Start) || r.Tick != tr.Tick {
		t.Errorf("repeat 3: %d ticks, %d requests, name %q", r.Ticks(), r.Total(), r.Name)
	}
	for k := range r.Count {
		if r.Count[k] != tr.Count[k%3] || r.Ctx[k] != tr.Ctx[k%3] || r.Gen[k] != tr.Gen[k%3] {
			t.Errorf("tick %d: %d %v %v", k, r.Count[k], r.Ctx[k], r.Gen[k])
		}
	}
	if one, err := tr.Repeat(1); err != nil || one != tr {
		t.Errorf("repeat 1: %v, %v", one, err)
	}
	for _, n := range []int{0, MaxRepeat + 1} {
		if _, err := tr.Repeat(n); err == nil {
			t.Errorf("repeat %d: no error", n)
		}
	}
	long := &Traffic{Name: "14 days", Tick: time.Second, Count: make([]int32, 14*24*3600), Ctx: make([]float32, 14*24*3600), Gen: make([]float32, 14*24*3600)}
	if _, err := long.Repeat(100); err == nil || !strings.Contains(err.Error(), "a year") {
		t.Errorf("100 copies of 14 days: error %v, want one about the size", err)
	}
}

// TestForecastUsesConfig checks that the ConfigMap reaches the planner: a zone
// max of 0 leaves the forecast policy without placeholders.
func TestForecastUsesConfig(t *testing.T) {
	hc, err := headroom.ParseConfig([]byte("defaults: {max: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := stepTraffic(40*time.Minute, 20*time.Minute, 3, 40)
	cfg := DefaultConfig()
	cfg.CheckInvariants = true
	rep, err := Simulate(tr, cfg, []PolicySpec{{Kind: KindForecast, Headroom: hc}, {Kind: KindForecast}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; r.GPUHoursPlaceholders != 0 {
		t.Errorf("max 0: %v placeholder GPU-hours", r.GPUHoursPlaceholders)
	}
	if r := rep.Results[1]; r.GPUHoursPlaceholders == 0 {
		t.Error("default config: no placeholders at all on a step")
	}
}

func TestServeGenArrivals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Client 0: a near-regular stream (Gamma shape 1000, CV 0.03), then idle,
	// then a very bursty one (Weibull shape 0.2, CV about 15). Client 1: Gamma
	// shape 1 (Poisson-like) throughout, with a fractional count per window.
	write("chunk-0-trace.csv", "0,10,0.03,Gamma,1000,0.0001\n600,0,0,,0,0\n1200,10,15,Weibull,0.2,0.01\n")
	write("chunk-1-trace.csv", "0,0.5005,1,Gamma,1,2\n600,0.5005,1,Gamma,1,2\n1200,0.5005,1,Gamma,1,2\n")
	rs, err := ReadServeGen(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 3 || len(rs.Streams) != 2 || rs.Rate(0) != 10.5005 || rs.Streams[0][2].Pattern != "Weibull" || rs.Streams[0][1].Pattern != "" {
		t.Fatalf("series %+v", rs)
	}
	tr, err := RateTraffic(rs, TrafficOptions{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	perWindow := func(k int) (total int64, maxTick int32, busy int) {
		for _, c := range tr.Count[600*k : 600*(k+1)] {
			total += int64(c)
			maxTick = max(maxTick, c)
			if c > 0 {
				busy++
			}
		}
		return
	}
	// Counts are the trace's: 6,000 + 300.3 (300 or 301) per busy window.
	for k, want := range []int64{6300, 300, 6300} {
		if got, _, _ := perWindow(k); got < want || got > want+1 {
			t.Errorf("window %d: %d arrivals, want %d or %d", k, got, want, want+1)
		}
	}
	// Client 0 alone: the regular window spreads its arrivals, the bursty one
	// clumps them.
	one, err := ReadServeGen(filepath.Join(dir, "chunk-0-trace.csv"), 0)
	if err != nil {
		t.Fatal(err)
	}
	all := tr
	if tr, err = RateTraffic(one, TrafficOptions{Seed: 7}); err != nil {
		t.Fatal(err)
	}
	_, regMax, regBusy := perWindow(0)
	_, burstMax, burstBusy := perWindow(2)
	tr = all
	if regBusy < 590 || regMax > 20 {
		t.Errorf("regular window: %d of 600 ticks busy, max %d per tick; want nearly all, about 10.5", regBusy, regMax)
	}
	if burstBusy > 300 || burstMax < 5*regMax {
		t.Errorf("bursty window: %d ticks busy, max %d per tick; want clumps", burstBusy, burstMax)
	}
	// Same seed, same arrivals; another seed, other ones.
	again, _ := RateTraffic(rs, TrafficOptions{Seed: 7})
	other, _ := RateTraffic(rs, TrafficOptions{Seed: 8})
	if !slices.Equal(again.Count, tr.Count) || slices.Equal(other.Count, tr.Count) {
		t.Error("arrivals are not a function of the seed")
	}
	// Scale and overlays multiply the volume; tokens follow the counts.
	scaled, err := RateTraffic(rs, TrafficOptions{Seed: 7, Scale: 2, Overlays: []time.Duration{10 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := scaled.Total(), int64(4*(6300+300+6300)); got < want-8 || got > want+8 {
		t.Errorf("scale 2 with one overlay: %d arrivals, want about %d", got, want)
	}
	if scaled.Ctx[100] != float32(scaled.Count[100])*1155 {
		t.Errorf("tick 100: %v context tokens for %d requests", scaled.Ctx[100], scaled.Count[100])
	}
	if _, err := RateTraffic(rs, TrafficOptions{Seed: 7, Scale: 1e4}); err == nil || !strings.Contains(err.Error(), "--scale") {
		t.Errorf("60 M arrivals in one window: error %v, want one naming --scale", err)
	}
	for name, body := range map[string]string{
		"chunk-2-trace.csv": "0,1,1,Pareto,1,1\n",
		"chunk-3-trace.csv": "0,1,1,Gamma,-1,1\n",
		"chunk-4-trace.csv": "0,1,1,Weibull,x,1\n",
	} {
		p := write(name, body)
		if _, err := ReadServeGen(p, 0); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the file", body, err)
		}
	}
}
