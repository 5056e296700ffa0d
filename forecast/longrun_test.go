package forecast

import (
	"math"
	"testing"
	"time"
)

// serveGenLike is a ServeGen-shaped demand series in replicas: a diurnal
// cycle (x3 between night and afternoon), a quieter weekend, noise, held
// constant over 10-minute windows as the trace's windows are, at mean ~10.
func serveGenLike(seed uint64) func(at time.Time) float64 {
	r := lcg(seed)
	const window = int64(10 * time.Minute)
	var cur float64
	last := int64(math.MinInt64)
	return func(at time.Time) float64 {
		ns := at.UnixNano()
		if w := ns / window; w != last {
			last = w
			day := float64(ns%int64(24*time.Hour)) / float64(24*time.Hour)
			v := 10 * (1 + 0.5*math.Sin(2*math.Pi*day))
			if wd := at.Weekday(); wd == time.Saturday || wd == time.Sunday {
				v *= 0.7
			}
			cur = math.Max(0, v*(1+0.15*r.normal()))
		}
		return cur
	}
}

// TestLongRunStaysBounded observes a ServeGen-like series every 15 s (and
// 30 s) for five days, through the seasonal warm-up, and checks that every
// estimator's point forecast, and the Forecaster's quantile, stay finite and
// within a sane multiple of the largest need observed. The seasonal profile
// used to ratchet its slots apart when sampled often (a slot barely touched
// by the interpolation took the whole error) and the forecast reached 1e150
// at the end of the first day.
func TestLongRunStaysBounded(t *testing.T) {
	for _, step := range []time.Duration{15 * time.Second, 30 * time.Second} {
		t.Run(step.String(), func(t *testing.T) {
			series := serveGenLike(7)
			ests := map[string]Estimator{
				"holt":     mustHolt(t, DefaultHoltConfig()),
				"seasonal": mustSeasonal(t),
				"combined": mustCombined(t),
			}
			f, err := NewForecaster(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			top := 0.0
			n := int(5 * 24 * time.Hour / step)
			for i := range n {
				at := epoch.Add(time.Duration(i) * step)
				v := series(at)
				top = math.Max(top, v)
				for name, e := range ests {
					if err := e.Observe(at, v); err != nil {
						t.Fatal(err)
					}
					if p := e.Predict(at, 15*time.Minute); !(p <= 3*top) {
						t.Fatalf("%s after %v: point forecast %v, largest need %v", name, at.Sub(epoch), p, top)
					}
				}
				if err := f.Observe(at, Signals{Desired: math.Ceil(v), MetricImplied: v, Ready: math.Ceil(v)}); err != nil {
					t.Fatal(err)
				}
				for _, h := range []time.Duration{3 * time.Minute, 15 * time.Minute} {
					p := f.Predict(at, h)
					// Calibrated, the margin is a few times the noise; cold,
					// the prior bound is at most (top+1)·ln(m/(1-Q)), m the
					// samples in the horizon (ln(60/0.05) = 7.1 at 15 s).
					limit := 5 * top
					if !p.Calibrated {
						limit = 1.001 * (top + 1) * math.Log(float64(h/step)/0.05)
					}
					if !(p.Point <= 3*top) || !(p.Peak <= limit) || p.Peak < p.Need {
						t.Fatalf("forecaster after %v at %v: %+v, largest need %v", at.Sub(epoch), h, p, top)
					}
				}
			}
		})
	}
}

// TestMarginRecoversAfterBurst: a steady workload, a 20-minute burst to
// eight times its level that the layer cannot foresee (a run of misses),
// then steady again. ACI's level must stay within its floor, and once the
// burst's scores have left the window the margin must come back to about
// what it was before, instead of staying high for hours.
func TestMarginRecoversAfterBurst(t *testing.T) {
	r := lcg(3)
	q := mustQuantile(t, mustCombined(t))
	const step = 30 * time.Second
	at := epoch
	observe := func(n int, level float64) {
		for range n {
			at = at.Add(step)
			if err := q.Observe(at, level*(1+0.1*r.normal())); err != nil {
				t.Fatal(err)
			}
			for i := range q.cal {
				if a := q.cal[i].alphaT; a < -2*q.alpha-1e-12 || a > 1 {
					t.Fatalf("horizon %v: α_t = %v outside [-2(1-Q), 1]", time.Duration(q.cal[i].h), a)
				}
			}
		}
	}
	observe(6*120, 10) // 6 h steady
	before := q.Predict(at, 3*time.Minute)
	observe(40, 80) // 20 min burst
	lowest := 1.0
	for i := range q.cal {
		lowest = min(lowest, q.cal[i].alphaT)
	}
	if lowest >= 0 {
		t.Fatalf("the burst should have pushed some α_t below 0 (a run of misses), lowest %v", lowest)
	}
	observe(5*120, 10) // 5 h steady: the window (128 scores) and α_t recover
	if after := q.Predict(at, 3*time.Minute); after > 1.2*before {
		t.Errorf("3m quantile %v five hours after the burst, %v before it", after, before)
	}
}
