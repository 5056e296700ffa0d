package backtest

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
)

// Candidate names an estimator and builds a fresh one for a run; New gets
// the run's horizons and quantile so that conformal layers calibrate
// exactly the horizons being scored.
type Candidate struct {
	Name string
	New  func(horizons []time.Duration, q float64) (forecast.Estimator, error)
}

// DefaultCandidates are the point estimators, the conformal layer over the
// reactive baseline (to show what calibration alone buys) and over the
// combiner (what headroomd runs, see forecast.Forecaster).
func DefaultCandidates() []Candidate {
	quantile := func(base func() (forecast.Estimator, error)) func([]time.Duration, float64) (forecast.Estimator, error) {
		return func(h []time.Duration, q float64) (forecast.Estimator, error) {
			b, err := base()
			if err != nil {
				return nil, err
			}
			cfg := forecast.DefaultQuantileConfig()
			cfg.Horizons, cfg.Q = h, q
			return forecast.NewQuantile(b, cfg)
		}
	}
	last := func() (forecast.Estimator, error) { return forecast.NewLastValue(), nil }
	holt := func() (forecast.Estimator, error) { return forecast.NewHolt(forecast.DefaultHoltConfig()) }
	seasonal := func() (forecast.Estimator, error) { return forecast.NewSeasonal(forecast.DefaultSeasonalConfig()) }
	combined := func() (forecast.Estimator, error) { return forecast.NewCombined(forecast.DefaultCombinedConfig()) }
	point := func(f func() (forecast.Estimator, error)) func([]time.Duration, float64) (forecast.Estimator, error) {
		return func([]time.Duration, float64) (forecast.Estimator, error) { return f() }
	}
	return []Candidate{
		{Name: "last", New: point(last)},
		{Name: "holt", New: point(holt)},
		{Name: "seasonal", New: point(seasonal)},
		{Name: "combined", New: point(combined)},
		{Name: "q-last", New: quantile(last)},
		{Name: "q-combined", New: quantile(combined)},
	}
}

// Result scores one estimator at one horizon. Values are in replicas.
type Result struct {
	Estimator string        `json:"estimator"`
	Horizon   time.Duration `json:"-"`
	HorizonS  float64       `json:"horizon_seconds"`
	// N is the number of scored predictions (those whose horizon ends
	// inside the trace).
	N int `json:"n"`
	// MAE is the mean |prediction - realised peak|.
	MAE float64 `json:"mae"`
	// Pinball is the mean pinball (quantile) loss at Q against the peak.
	Pinball float64 `json:"pinball"`
	// PinballVsLast is Pinball divided by the "last" estimator's at the
	// same horizon (NaN when there is no "last" candidate).
	PinballVsLast float64 `json:"pinball_vs_last"`
	// Coverage is the share of predictions at or above the realised peak.
	Coverage float64 `json:"coverage"`
	// EffectiveN is how many independent tests of coverage the N scored
	// predictions amount to: N / k, where k is the number of samples in a
	// prediction's scoring window. Predictions one step apart share k-1 of
	// those samples, so one burst is missed (or covered) by up to k
	// predictions at once; counting each of them as a separate test would
	// make a 1-hour trace look k times as informative as it is.
	EffectiveN float64 `json:"effective_n"`
	// CoverageLo and CoverageHi are the 95 % Wilson score interval of
	// Coverage for EffectiveN tests: how far the measured coverage may be
	// from the coverage the estimator really has, from sampling alone. A
	// target "within 3 points of nominal" can only be checked where this
	// interval is narrower than 6 points.
	CoverageLo float64 `json:"coverage_lo"`
	CoverageHi float64 `json:"coverage_hi"`
	// Below is the share of predictions below the realised peak (the
	// moments a pod would wait for a node): 1 - Coverage.
	Below float64 `json:"below"`
	// MeanExcess is the mean of max(0, prediction - peak): the idle
	// headroom paid for.
	MeanExcess float64 `json:"mean_excess"`
	// WarmN, WarmPinball and WarmCoverage score only the predictions made
	// after the run's warm-up: what a controller restored from a
	// checkpoint would see, without the first minutes of a short trace in
	// which no error has been measured yet.
	WarmN        int     `json:"warm_n"`
	WarmPinball  float64 `json:"warm_pinball"`
	WarmCoverage float64 `json:"warm_coverage"`
}

// Report is the outcome of a Run.
type Report struct {
	Trace   string        `json:"trace"`
	Samples int           `json:"samples"`
	Step    time.Duration `json:"-"`
	StepS   float64       `json:"step_seconds"`
	SpanS   float64       `json:"span_seconds"`
	Mean    float64       `json:"mean_replicas"`
	Q       float64       `json:"q"`
	WarmupS float64       `json:"warmup_seconds"`
	Results []Result      `json:"results"`
}

// Options tune a run beyond its horizons and quantile.
type Options struct {
	// Warmup is how long after the first sample predictions start to count
	// in the Warm* figures; 0 means the longest horizon.
	Warmup time.Duration
}

// Run is RunWith with default options.
func Run(s Series, cands []Candidate, horizons []time.Duration, q float64) (*Report, error) {
	return RunWith(s, cands, horizons, q, Options{})
}

// RunWith replays the series through a fresh instance of each candidate and
// scores Predict(t, h) after every Observe(t) against the realised peak in
// (t, t+h] (see the package doc for the exact window). Horizons are sorted
// and deduplicated; at most 8.
func RunWith(s Series, cands []Candidate, horizons []time.Duration, q float64, opt Options) (*Report, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if !(q > 0 && q < 1) {
		return nil, fmt.Errorf("backtest: q %v must be in (0, 1)", q)
	}
	hs := slices.Clone(horizons)
	slices.Sort(hs)
	hs = slices.Compact(hs)
	if len(hs) == 0 || len(hs) > 8 || hs[0] <= 0 {
		return nil, fmt.Errorf("backtest: need 1 to 8 positive horizons, got %v", horizons)
	}
	peaks := realisedPeaks(s, hs)
	warmup := opt.Warmup
	if warmup <= 0 {
		warmup = hs[len(hs)-1]
	}
	var warmFrom time.Time
	if len(s.Samples) > 0 {
		warmFrom = s.Samples[0].At.Add(warmup)
	}
	rep := &Report{
		Trace: s.Name, Samples: len(s.Samples), Step: s.Step, StepS: s.Step.Seconds(),
		SpanS: s.Span().Seconds(), Mean: s.Mean(), Q: q, WarmupS: warmup.Seconds(),
	}
	for _, c := range cands {
		est, err := c.New(hs, q)
		if err != nil {
			return nil, fmt.Errorf("backtest: building %s: %w", c.Name, err)
		}
		acc := make([]accum, len(hs))
		warm := make([]accum, len(hs))
		for i, x := range s.Samples {
			if err := est.Observe(x.At, x.V); err != nil {
				return nil, fmt.Errorf("backtest: %s observing sample %d: %w", c.Name, i, err)
			}
			for j, h := range hs {
				if y := peaks[j][i]; !math.IsNaN(y) {
					p := est.Predict(x.At, h)
					acc[j].add(p, y, q)
					if !x.At.Before(warmFrom) {
						warm[j].add(p, y, q)
					}
				}
			}
		}
		for j, h := range hs {
			r := acc[j].result(c.Name, h)
			r.EffectiveN = float64(r.N) / float64(windowSamples(h, s.Step))
			r.CoverageLo, r.CoverageHi = wilson(r.Coverage, r.EffectiveN)
			w := warm[j].result(c.Name, h)
			r.WarmN, r.WarmPinball, r.WarmCoverage = w.N, w.Pinball, w.Coverage
			rep.Results = append(rep.Results, r)
		}
	}
	rep.relativeToLast()
	return rep, nil
}

// realisedPeaks returns, per horizon, the realised peak for a prediction at
// each sample, NaN where the horizon runs past the end of the series.
func realisedPeaks(s Series, hs []time.Duration) [][]float64 {
	out := make([][]float64, len(hs))
	for j, h := range hs {
		out[j] = make([]float64, len(s.Samples))
		for i, x := range s.Samples {
			end := x.At.Add(h)
			peak, done := math.Inf(-1), false
			for k := i + 1; k < len(s.Samples); k++ {
				peak = math.Max(peak, s.Samples[k].V)
				if !s.Samples[k].At.Before(end) {
					done = true
					break
				}
			}
			if !done {
				peak = math.NaN()
			}
			out[j][i] = peak
		}
	}
	return out
}

// windowSamples is the number of samples in the scoring window of a
// prediction at horizon h (those in (t, t+h] and the first at or after t+h)
// on a series with the given step.
func windowSamples(h, step time.Duration) int {
	if step <= 0 {
		return 1
	}
	return max(1, int((h+step-1)/step))
}

// wilson is the 95 % Wilson score interval of a proportion p measured on n
// independent trials (NaN, NaN when there are none). Unlike p ± 1.96·se it
// stays inside [0, 1] and does not collapse to a point when p is 0 or 1,
// which is exactly when a short trace's coverage says least.
func wilson(p, n float64) (lo, hi float64) {
	if !(n > 0) || math.IsNaN(p) {
		return math.NaN(), math.NaN()
	}
	const z = 1.959963984540054
	d := 1 + z*z/n
	c := (p + z*z/(2*n)) / d
	half := z / d * math.Sqrt(p*(1-p)/n+z*z/(4*n*n))
	return math.Max(0, c-half), math.Min(1, c+half)
}

type accum struct {
	n                                    int
	abs, pinball, covered, below, excess float64
}

func (a *accum) add(pred, y, q float64) {
	a.n++
	a.abs += math.Abs(pred - y)
	if y >= pred {
		a.pinball += q * (y - pred)
	} else {
		a.pinball += (1 - q) * (pred - y)
	}
	if pred >= y {
		a.covered++
	} else {
		a.below++
	}
	a.excess += math.Max(0, pred-y)
}

func (a *accum) result(name string, h time.Duration) Result {
	r := Result{Estimator: name, Horizon: h, HorizonS: h.Seconds(), N: a.n, PinballVsLast: math.NaN(),
		CoverageLo: math.NaN(), CoverageHi: math.NaN()}
	if a.n == 0 {
		r.MAE, r.Pinball, r.Coverage, r.Below, r.MeanExcess = math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return r
	}
	n := float64(a.n)
	r.MAE, r.Pinball, r.Coverage, r.Below, r.MeanExcess = a.abs/n, a.pinball/n, a.covered/n, a.below/n, a.excess/n
	return r
}

// relativeToLast fills PinballVsLast from the "last" candidate's results.
func (r *Report) relativeToLast() {
	base := map[time.Duration]float64{}
	for _, x := range r.Results {
		if x.Estimator == "last" {
			base[x.Horizon] = x.Pinball
		}
	}
	for i := range r.Results {
		if b, ok := base[r.Results[i].Horizon]; ok && b > 0 {
			r.Results[i].PinballVsLast = r.Results[i].Pinball / b
		}
	}
}

// Find returns the result of an estimator at a horizon.
func (r *Report) Find(estimator string, h time.Duration) (Result, bool) {
	for _, x := range r.Results {
		if x.Estimator == estimator && x.Horizon == h {
			return x, true
		}
	}
	return Result{}, false
}
