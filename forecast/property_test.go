package forecast

import (
	"math"
	"testing"
	"testing/quick"
	"time"
)

// TestPredictionsFiniteNonNegative drives every estimator with random
// series (zeros, huge values, duplicate and backward timestamps, long gaps)
// and checks that every prediction is finite and >= 0, and that quantile
// layers never predict below the last value (the reactive floor).
func TestPredictionsFiniteNonNegative(t *testing.T) {
	horizons := []time.Duration{0, time.Nanosecond, time.Minute, 15 * time.Minute, 6 * time.Hour, 1000 * time.Hour}
	prop := func(seed uint64) bool {
		r := lcg(seed)
		ests := all(t)
		at := epoch
		for i := range 400 {
			var v float64
			switch x := r.float(); {
			case x < 0.1:
				v = 0
			case x < 0.12:
				v = 1e12 * r.float()
			default:
				v = 50 * r.float()
			}
			switch x := r.float(); {
			case x < 0.05:
				at = at.Add(-time.Duration(r.float() * float64(3*time.Hour))) // clock back
			case x < 0.08:
				at = at.Add(time.Duration(r.float() * float64(48*time.Hour))) // gap
			case x < 0.1:
				// duplicate timestamp
			default:
				at = at.Add(time.Duration(1 + r.float()*float64(time.Minute)))
			}
			for name, e := range ests {
				if err := e.Observe(at, v); err != nil {
					t.Logf("%s: Observe(%v) = %v", name, v, err)
					return false
				}
				for _, h := range horizons {
					p := e.Predict(at, h)
					if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
						t.Logf("seed %d step %d %s: Predict(h=%v) = %v", seed, i, name, h, p)
						return false
					}
					if (name == "q-last" || name == "q-combined" || name == "combined") && p < v {
						t.Logf("seed %d step %d %s: Predict(h=%v) = %v below current %v", seed, i, name, h, p, v)
						return false
					}
				}
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 20}); err != nil {
		t.Error(err)
	}
}

// TestForecasterProperty checks Prediction's invariants on random signals.
func TestForecasterProperty(t *testing.T) {
	prop := func(seed uint64) bool {
		r := lcg(seed)
		f := mustForecaster(t)
		at := epoch
		for range 300 {
			at = at.Add(time.Duration(r.float() * float64(2*time.Minute)))
			s := Signals{Desired: math.Floor(30 * r.float()), MetricImplied: 40 * r.float(), Pending: math.Floor(3 * r.float()), Ready: math.Floor(30 * r.float())}
			if err := f.Observe(at, s); err != nil {
				return false
			}
			p := f.Predict(at, 10*time.Minute)
			if !(p.Peak >= p.Need && p.Need == s.Need() && p.Ready == s.Ready && p.Point >= 0 && !math.IsInf(p.Peak, 0)) {
				t.Logf("seed %d: %+v for %+v", seed, p, s)
				return false
			}
		}
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 20}); err != nil {
		t.Error(err)
	}
}
