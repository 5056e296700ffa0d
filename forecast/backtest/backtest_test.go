package backtest

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
)

var epoch = time.Unix(1234567890, 0).UTC()

func series(step time.Duration, vals ...float64) Series {
	s := Series{Name: "synthetic", Step: step}
	for i, v := range vals {
		s.Samples = append(s.Samples, Sample{At: epoch.Add(time.Duration(i+1) * step), V: v})
	}
	return s
}

func TestRealisedPeaks(t *testing.T) {
	s := series(time.Minute, 1, 5, 2, 8, 3, 4)
	hs := []time.Duration{30 * time.Second, time.Minute, 90 * time.Second, 3 * time.Minute}
	got := realisedPeaks(s, hs)
	nan := math.NaN()
	want := [][]float64{
		{5, 2, 8, 3, 4, nan},     // h < step: the next sample covers t+h
		{5, 2, 8, 3, 4, nan},     // h = step
		{5, 8, 8, 4, nan, nan},   // 1.5 steps: next two samples, the second covers t+h
		{8, 8, 8, nan, nan, nan}, // 3 steps
	}
	for j := range hs {
		for i := range want[j] {
			g, w := got[j][i], want[j][i]
			if !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("h=%v i=%d: peak %v, want %v", hs[j], i, g, w)
			}
		}
	}
}

func TestRunScores(t *testing.T) {
	// Constant series: last value is perfect (and its ratio to itself
	// undefined, 0/0).
	rep, err := Run(series(30*time.Second, 5, 5, 5, 5, 5, 5, 5, 5), DefaultCandidates()[:1], []time.Duration{time.Minute}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if r.N != 6 || r.MAE != 0 || r.Pinball != 0 || r.Coverage != 1 || r.Below != 0 || !math.IsNaN(r.PinballVsLast) {
		t.Errorf("constant series: %+v", r)
	}
	// Known pinball: last value on 0,10,0,10: predicting 0 under a peak
	// of 10 costs 0.95·10; predicting 10 over a peak of 0 costs 0.05·10.
	rep, err = Run(series(time.Minute, 0, 10, 0, 10, 0), DefaultCandidates()[:1], []time.Duration{time.Minute}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	r = rep.Results[0]
	if r.N != 4 || !near(r.Pinball, (9.5+0.5)/2) || r.Coverage != 0.5 || r.Below != 0.5 || r.MAE != 10 || r.MeanExcess != 5 {
		t.Errorf("alternating series: %+v", r)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRunDeterministicAndValidates(t *testing.T) {
	vals := make([]float64, 500)
	for i := range vals {
		vals[i] = 10 + 5*math.Sin(float64(i)/20) + float64(i%7)
	}
	s := series(30*time.Second, vals...)
	hs := []time.Duration{5 * time.Minute, 3 * time.Minute, 5 * time.Minute}
	a, err := Run(s, DefaultCandidates(), hs, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Run(s, DefaultCandidates(), hs, 0.95)
	var ja, jb bytes.Buffer
	if err := a.WriteJSON(&ja); err != nil {
		t.Fatal(err)
	}
	_ = b.WriteJSON(&jb)
	if ja.String() != jb.String() {
		t.Error("two runs differ")
	}
	if len(a.Results) != 2*len(DefaultCandidates()) {
		t.Errorf("%d results, want horizons deduplicated to 2 per candidate", len(a.Results))
	}
	var decoded map[string]any
	if err := json.Unmarshal(ja.Bytes(), &decoded); err != nil {
		t.Fatalf("JSON report does not parse: %v", err)
	}
	var txt bytes.Buffer
	if err := a.WriteText(&txt); err != nil || !strings.Contains(txt.String(), "q-combined") {
		t.Errorf("text report: %v\n%s", err, txt.String())
	}
	for _, bad := range []struct {
		name string
		err  error
	}{
		{"q=1", func() error { _, err := Run(s, DefaultCandidates(), hs, 1); return err }()},
		{"no horizons", func() error { _, err := Run(s, DefaultCandidates(), nil, 0.95); return err }()},
		{"zero step", func() error { x := s; x.Step = 0; _, err := Run(x, DefaultCandidates(), hs, 0.95); return err }()},
		{"unsorted", func() error {
			x := series(time.Minute, 1, 2, 3)
			x.Samples[2].At = x.Samples[0].At
			_, err := Run(x, DefaultCandidates(), hs, 0.95)
			return err
		}()},
	} {
		if bad.err == nil {
			t.Errorf("%s: accepted", bad.name)
		}
	}
}

func TestParseAzure(t *testing.T) {
	csv := "TIMESTAMP,ContextTokens,GeneratedTokens\n" +
		"2023-11-16 18:17:03.9799600,4808,10\n" +
		"2023-11-16 18:17:04.0319600,3180,8\n" +
		"2023-11-16 18:17:40.5,100,1\n" +
		"2023-11-16 18:18:10.0,100,1\n" +
		"2023-11-16 18:18:20.0,100,1\n" // last step (18:18:03-18:18:33) is partial: dropped
	s, err := ParseAzure(strings.NewReader(csv), "t", AzureOptions{Step: 30 * time.Second, ReplicaRPS: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	// Steps from 18:17:03: [03,33) 2 requests, [33,03) 1 request.
	want := []float64{2.0 / 30 / 0.1, 1.0 / 30 / 0.1}
	if len(s.Samples) != len(want) {
		t.Fatalf("%d samples, want %d: %+v", len(s.Samples), len(want), s.Samples)
	}
	for i, w := range want {
		if !near(s.Samples[i].V, w) {
			t.Errorf("sample %d = %v, want %v", i, s.Samples[i].V, w)
		}
	}
	if got := s.Samples[0].At.Format("15:04:05"); got != "18:17:33" {
		t.Errorf("first sample at %s, want the end of its step 18:17:33", got)
	}
	for name, bad := range map[string]string{
		"no header": "2023-11-16 18:17:03.9799600,4808,10\n",
		"bad time":  "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n",
		"one step":  "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,1,1\n",
	} {
		if _, err := ParseAzure(strings.NewReader(bad), name, AzureOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadServeGen(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("chunk-0-trace.csv", "0,1.5,8.5,Weibull,0.37,0.39\n600,0,0,,0,0\n1200,2,1,Gamma,1,1\n")
	write("chunk-1-trace.csv", "0,0.5,1,Gamma,1,1\n600,1,1,Gamma,1,1\n1200,1,1,Gamma,1,1\n")
	write("notes.txt", "ignored")
	s, err := ReadServeGen(dir, ServeGenOptions{ReplicaRPS: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{4, 2, 6} // (1.5+0.5)/0.5, (0+1)/0.5, (2+1)/0.5
	if len(s.Samples) != 3 || s.Step != ServeGenWindow {
		t.Fatalf("got %+v", s)
	}
	for i, w := range want {
		if s.Samples[i].V != w || !s.Samples[i].At.Equal(ServeGenEpoch.Add(time.Duration(i+1)*ServeGenWindow)) {
			t.Errorf("sample %d = %+v, want %v at the window end", i, s.Samples[i], w)
		}
	}
	one, err := ReadServeGen(filepath.Join(dir, "chunk-1-trace.csv"), ServeGenOptions{ReplicaRPS: 0.5, Span: 20 * time.Minute})
	if err != nil || len(one.Samples) != 2 || one.Samples[0].V != 1 {
		t.Errorf("single file with span: %+v, %v", one, err)
	}
	write("chunk-2-trace.csv", "0,abc,1,Gamma,1,1\n")
	if _, err := ReadServeGen(dir, ServeGenOptions{}); err == nil || !strings.Contains(err.Error(), "chunk-2-trace.csv") {
		t.Errorf("bad rate: error %v, want one naming the file", err)
	}
}

// tracesDir finds ../shared/data/traces relative to the repository root.
func tracesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found")
		}
		dir = parent
	}
	traces := filepath.Join(dir, "..", "shared", "data", "traces")
	if _, err := os.Stat(traces); err != nil {
		t.Skipf("shared traces not found at %s (checkout without ../shared): %v", traces, err)
	}
	return traces
}

func TestBacktestRealTraceSlices(t *testing.T) {
	traces := tracesDir(t)
	hs := []time.Duration{3 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute}

	az, err := ReadAzure(filepath.Join(traces, "azure-llm-2023-conv", "AzureLLMInferenceTrace_conv.csv"), AzureOptions{Span: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(az.Samples) < 55 || az.Mean() < 5 {
		t.Fatalf("30 min of the conversation trace gave %d samples, mean %.1f", len(az.Samples), az.Mean())
	}
	rep, err := Run(az, DefaultCandidates(), hs, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		last, _ := rep.Find("last", h)
		q, _ := rep.Find("q-combined", h)
		if q.N == 0 || q.Coverage < 0.8 || q.Pinball >= last.Pinball {
			t.Errorf("azure conv h=%v: q-combined %+v vs last %+v: want coverage >= 0.8 and lower pinball", h, q, last)
		}
	}

	sg, err := ReadServeGen(filepath.Join(traces, "servegen-language-m-large"), ServeGenOptions{Clients: 20, Span: 3 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(sg.Samples) != 3*144 {
		t.Fatalf("3 days of ServeGen gave %d windows, want %d", len(sg.Samples), 3*144)
	}
	rep, err = Run(sg, DefaultCandidates(), []time.Duration{10 * time.Minute}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := rep.Find("last", 10*time.Minute)
	q, _ := rep.Find("q-combined", 10*time.Minute)
	if q.Pinball > 0.75*last.Pinball || math.Abs(q.WarmCoverage-0.95) > 0.05 {
		t.Errorf("servegen 3 days h=10m: q-combined %+v vs last %+v: want pinball 25%% lower and coverage 0.95 ± 0.05", q, last)
	}
	t.Logf("servegen 3d/20 clients: last pinball %.3f, q-combined %.3f (coverage %.3f)", last.Pinball, q.Pinball, q.Coverage)
}

// A candidate that is not from package forecast still runs.
func TestCustomCandidate(t *testing.T) {
	c := Candidate{Name: "double-last", New: func([]time.Duration, float64) (forecast.Estimator, error) {
		return &scaled{forecast.NewLastValue(), 2}, nil
	}}
	rep, err := Run(series(time.Minute, 1, 1, 1, 1), []Candidate{c}, []time.Duration{time.Minute}, 0.5)
	if err != nil || rep.Results[0].Coverage != 1 || !math.IsNaN(rep.Results[0].PinballVsLast) {
		t.Errorf("custom candidate: %+v, %v", rep, err)
	}
}

type scaled struct {
	forecast.Estimator
	k float64
}

func (s *scaled) Predict(at time.Time, h time.Duration) float64 {
	return s.k * s.Estimator.Predict(at, h)
}

func TestWilsonAndWindow(t *testing.T) {
	for _, c := range []struct {
		p, n, lo, hi float64
	}{
		{0.5, 100, 0.4038, 0.5962}, // textbook values
		{1, 10, 0.7225, 1},         // no misses: the interval does not collapse
		{0, 10, 0, 0.2775},
		{0.95, 2000, 0.9394, 0.9590},
	} {
		lo, hi := wilson(c.p, c.n)
		if math.Abs(lo-c.lo) > 1e-3 || math.Abs(hi-c.hi) > 1e-3 {
			t.Errorf("wilson(%v, %v) = [%.4f, %.4f], want [%.4f, %.4f]", c.p, c.n, lo, hi, c.lo, c.hi)
		}
	}
	if lo, hi := wilson(0.5, 0); !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("no trials: [%v, %v], want NaN", lo, hi)
	}
	for _, c := range []struct {
		h, step time.Duration
		want    int
	}{
		{3 * time.Minute, 30 * time.Second, 6},
		{15 * time.Minute, 10 * time.Minute, 2},
		{3 * time.Minute, 10 * time.Minute, 1},
		{10 * time.Minute, 10 * time.Minute, 1},
		{95 * time.Second, 30 * time.Second, 4},
	} {
		if got := windowSamples(c.h, c.step); got != c.want {
			t.Errorf("windowSamples(%v, %v) = %d, want %d", c.h, c.step, got, c.want)
		}
	}
	// The run reports N / k effective tests and an interval around coverage.
	rep, err := Run(series(30*time.Second, 1, 9, 1, 1, 9, 1, 1, 1, 1, 9, 1, 1), DefaultCandidates()[:1], []time.Duration{time.Minute}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0]
	if r.N != 10 || r.EffectiveN != 5 || !(r.CoverageLo <= r.Coverage && r.Coverage <= r.CoverageHi) || r.CoverageHi-r.CoverageLo < 0.3 {
		t.Errorf("N %d, effective %v, coverage %v in [%v, %v]", r.N, r.EffectiveN, r.Coverage, r.CoverageLo, r.CoverageHi)
	}
}

func TestRepeat(t *testing.T) {
	s := series(time.Minute, 1, 2, 3)
	r, err := Repeat(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Samples) != 9 || r.Span() != 3*s.Span() || r.Name != "synthetic x3" {
		t.Fatalf("repeat 3: %d samples, span %v, name %q", len(r.Samples), r.Span(), r.Name)
	}
	for i, x := range r.Samples {
		if x.V != float64(i%3+1) || x.At != epoch.Add(time.Duration(i+1)*time.Minute) {
			t.Errorf("sample %d: %v at %v", i, x.V, x.At.Sub(epoch))
		}
	}
	if one, err := Repeat(s, 1); err != nil || len(one.Samples) != 3 || one.Name != s.Name {
		t.Errorf("repeat 1: %+v, %v", one, err)
	}
	for _, n := range []int{0, -1, MaxRepeat + 1} {
		if _, err := Repeat(s, n); err == nil {
			t.Errorf("repeat %d: no error", n)
		}
	}
}

// The coverage target (0.95 within 3 points) is measurable on the 1-hour Azure
// traces only when the same traffic is replayed for long enough: one pass holds
// 3 to 18 independent tests per horizon. A day of it must be calibrated.
func TestAzureDayCoverage(t *testing.T) {
	traces := tracesDir(t)
	hs := []time.Duration{3 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute}
	for _, p := range []string{"azure-llm-2023-code/AzureLLMInferenceTrace_code.csv", "azure-llm-2023-conv/AzureLLMInferenceTrace_conv.csv"} {
		s, err := ReadAzure(filepath.Join(traces, p), AzureOptions{})
		if err != nil {
			t.Fatal(err)
		}
		one, err := Run(s, DefaultCandidates()[5:], hs, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		day, err := Repeat(s, 24)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(day, DefaultCandidates()[5:], hs, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rep.Results {
			if r.Estimator != "q-combined" {
				t.Fatalf("candidate %q, want q-combined", r.Estimator)
			}
			if math.Abs(r.Coverage-0.95) > 0.03 {
				t.Errorf("%s x24 h=%v: coverage %.3f [%.2f, %.2f], want 0.95 ± 0.03", s.Name, r.Horizon, r.Coverage, r.CoverageLo, r.CoverageHi)
			}
			o := one.Results[i]
			if o.CoverageHi-o.CoverageLo <= r.CoverageHi-r.CoverageLo {
				t.Errorf("%s h=%v: one pass's interval [%.2f, %.2f] is not wider than a day's [%.2f, %.2f]", s.Name, r.Horizon, o.CoverageLo, o.CoverageHi, r.CoverageLo, r.CoverageHi)
			}
		}
	}
}
