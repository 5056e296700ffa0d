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
					if !(p.Point <= 3*top) || !(p.Peak <= 5*top) || p.Peak < p.Need {
						t.Fatalf("forecaster after %v at %v: %+v, largest need %v", at.Sub(epoch), h, p, top)
					}
				}
			}
		})
	}
}
