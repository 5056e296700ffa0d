package forecast

import (
	"math"
	"testing"
	"time"
)

// epoch is a fixed start time, as in VPA's histogram tests.
var epoch = time.Unix(1234567890, 0).UTC()

// feed observes f(i) at epoch + i·step for i in [0, n) and fails on error.
func feed(t testing.TB, e Estimator, n int, step time.Duration, f func(i int) float64) time.Time {
	t.Helper()
	at := epoch
	for i := range n {
		at = epoch.Add(time.Duration(i) * step)
		if err := e.Observe(at, f(i)); err != nil {
			t.Fatalf("observe %d: %v", i, err)
		}
	}
	return at
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func mustHolt(t testing.TB, cfg HoltConfig) *Holt {
	t.Helper()
	h, err := NewHolt(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustSeasonal(t testing.TB) *Seasonal {
	t.Helper()
	s, err := NewSeasonal(DefaultSeasonalConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCombined(t testing.TB) *Combined {
	t.Helper()
	c, err := NewCombined(DefaultCombinedConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustQuantile(t testing.TB, base Estimator) *Quantile {
	t.Helper()
	q, err := NewQuantile(base, DefaultQuantileConfig())
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// all returns one fresh instance of every estimator, by name.
func all(t testing.TB) map[string]Estimator {
	return map[string]Estimator{
		"last":       NewLastValue(),
		"holt":       mustHolt(t, DefaultHoltConfig()),
		"seasonal":   mustSeasonal(t),
		"combined":   mustCombined(t),
		"q-last":     mustQuantile(t, NewLastValue()),
		"q-combined": mustQuantile(t, mustCombined(t)),
	}
}

// lcg is a tiny deterministic generator so tests do not depend on math/rand's
// stream across Go versions.
type lcg uint64

func (r *lcg) float() float64 {
	*r = *r*6364136223846793005 + 1442695040888963407
	return float64(uint64(*r)>>11) / (1 << 53)
}

// normal returns a standard normal variate (Box-Muller).
func (r *lcg) normal() float64 {
	u1, u2 := r.float(), r.float()
	if u1 < 1e-300 {
		u1 = 1e-300
	}
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
