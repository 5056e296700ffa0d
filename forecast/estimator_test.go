package forecast

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestConstantSeries(t *testing.T) {
	for name, e := range all(t) {
		t.Run(name, func(t *testing.T) {
			at := feed(t, e, 200, 30*time.Second, func(int) float64 { return 5 })
			for _, h := range []time.Duration{0, time.Minute, 15 * time.Minute, 3 * time.Hour} {
				if got := e.Predict(at, h); !near(got, 5, 0.05) {
					t.Errorf("Predict(h=%v) = %v, want 5", h, got)
				}
			}
		})
	}
}

func TestEmptyPredictsZero(t *testing.T) {
	for name, e := range all(t) {
		if got := e.Predict(epoch, time.Minute); got != 0 {
			t.Errorf("%s: Predict before any sample = %v, want 0", name, got)
		}
	}
}

func TestLinearRamp(t *testing.T) {
	// y = 10 + 1 per minute. Undamped Holt learns the slope exactly;
	// damped Holt lies between the last value and the straight line.
	ramp := func(i int) float64 { return 10 + float64(i)*0.5 } // 30 s steps
	h := 10 * time.Minute
	undamped := DefaultHoltConfig()
	undamped.Phi = 1
	hu := mustHolt(t, undamped)
	at := feed(t, hu, 240, 30*time.Second, ramp)
	last := ramp(239)
	if got, want := hu.Predict(at, h), last+10; !near(got, want, 0.01) {
		t.Errorf("undamped Holt: Predict = %v, want %v", got, want)
	}
	hd := mustHolt(t, DefaultHoltConfig())
	feed(t, hd, 240, 30*time.Second, ramp)
	got := hd.Predict(at, h)
	if !(got > last+1 && got < last+10) {
		t.Errorf("damped Holt: Predict = %v, want in (%v, %v)", got, last+1, last+10)
	}
	// The peak of a falling ramp is now, not at the horizon.
	down := mustHolt(t, undamped)
	at = feed(t, down, 240, 30*time.Second, func(i int) float64 { return 200 - float64(i)*0.5 })
	if got, want := down.Predict(at, h), 200-239*0.5; !near(got, want, 0.01) {
		t.Errorf("falling ramp: Predict = %v, want the current %v", got, want)
	}
}

func TestDailySine(t *testing.T) {
	// 8 days of y = 20 + 10 sin(2πt/day) every 5 min. After a week the
	// seasonal models must foresee the next 3 hours of the cycle; last
	// value and Holt cannot.
	day := 24 * time.Hour
	step := 5 * time.Minute
	sine := func(i int) float64 {
		return 20 + 10*math.Sin(2*math.Pi*float64(time.Duration(i)*step)/float64(day))
	}
	n := int(testDays * day / step)
	h := 3 * time.Hour
	// Score each estimator's point forecast of the peak over the last day.
	score := func(e Estimator) float64 {
		var sum float64
		var cnt int
		for i := range n {
			at := epoch.Add(time.Duration(i) * step)
			if err := e.Observe(at, sine(i)); err != nil {
				t.Fatal(err)
			}
			if i < n-int(day/step) || i+int(h/step) >= n {
				continue
			}
			peak := 0.0
			for j := i + 1; j <= i+int(h/step); j++ {
				peak = math.Max(peak, sine(j))
			}
			sum += math.Abs(e.Predict(at, h) - peak)
			cnt++
		}
		return sum / float64(cnt)
	}
	last := score(NewLastValue())
	holt := score(mustHolt(t, DefaultHoltConfig()))
	seas := score(mustSeasonal(t))
	comb := score(mustCombined(t))
	t.Logf("MAE of 3h peak: last %.2f holt %.2f seasonal %.2f combined %.2f", last, holt, seas, comb)
	if seas > 0.3 {
		t.Errorf("seasonal MAE %.2f, want < 0.3 on a noiseless daily sine", seas)
	}
	if comb > 0.3 || comb > last/4 {
		t.Errorf("combined MAE %.2f, want < 0.3 and < last value's %.2f / 4", comb, last)
	}
}

const testDays = 8

func TestStep(t *testing.T) {
	step := func(i int) float64 {
		if i < 100 {
			return 5
		}
		return 20
	}
	c := mustCombined(t)
	at := feed(t, c, 101, 30*time.Second, step)
	if got := c.Predict(at, 5*time.Minute); got < 20 {
		t.Errorf("combined right after the step = %v, want >= 20 (reactive floor)", got)
	}
	h := mustHolt(t, DefaultHoltConfig())
	at = feed(t, h, 140, 30*time.Second, step)
	if got := h.Predict(at, 5*time.Minute); !near(got, 20, 1) {
		t.Errorf("holt 20 min after the step = %v, want about 20", got)
	}
}

func TestSpikesCalibrate(t *testing.T) {
	// 5 replicas with a 40-replica spike at random, 1% of samples: a spike
	// falls inside a 15-minute horizon (30 samples) in about a quarter of
	// the windows, so the 0.95 quantile must reach 40 once calibrated, its
	// measured coverage must be near 0.95, and last value must miss.
	r := lcg(7)
	vals := make([]float64, 4000)
	for i := range vals {
		vals[i] = 5
		if r.float() < 0.01 {
			vals[i] = 40
		}
	}
	q := mustQuantile(t, mustCombined(t))
	at := feed(t, q, len(vals), 30*time.Second, func(i int) float64 { return vals[i] })
	if got := q.Predict(at, 15*time.Minute); got < 39 {
		t.Errorf("quantile after spikes = %v, want about 40", got)
	}
	if cov, n := q.Coverage(15 * time.Minute); n < 500 || cov < 0.92 || cov > 0.99 {
		t.Errorf("measured coverage %.3f over %.0f predictions, want 0.95 ± 0.03", cov, n)
	}
	c := mustCombined(t)
	at = feed(t, c, len(vals), 30*time.Second, func(i int) float64 { return vals[i] })
	if got := c.Predict(at, 15*time.Minute); got > 20 {
		t.Errorf("combined point forecast after a quiet stretch = %v, want near 5 (spikes are not the level)", got)
	}
}

func TestQuantileCoverageNoise(t *testing.T) {
	// Heteroscedastic noise around a slow daily cycle: the conformal layer
	// must cover the peak at q with error under 2 points, whatever the base.
	r := lcg(42)
	step := 30 * time.Second
	n := 20000 // about a week
	vals := make([]float64, n)
	for i := range vals {
		level := 20 + 10*math.Sin(2*math.Pi*float64(i)*step.Seconds()/86400)
		vals[i] = math.Max(0, level+0.2*level*r.normal())
	}
	for _, name := range []string{"q-last", "q-combined"} {
		var q *Quantile
		if name == "q-last" {
			q = mustQuantile(t, NewLastValue())
		} else {
			q = mustQuantile(t, mustCombined(t))
		}
		h := 10 * time.Minute
		k := int(h / step)
		hits, cnt := 0, 0
		for i := range n {
			at := epoch.Add(time.Duration(i) * step)
			if err := q.Observe(at, vals[i]); err != nil {
				t.Fatal(err)
			}
			if i < 2000 || i+k >= n {
				continue
			}
			peak := 0.0
			for j := i + 1; j <= i+k; j++ {
				peak = math.Max(peak, vals[j])
			}
			cnt++
			if q.Predict(at, h) >= peak {
				hits++
			}
		}
		cov := float64(hits) / float64(cnt)
		if math.Abs(cov-0.95) > 0.02 {
			t.Errorf("%s: offline coverage %.3f, want 0.95 ± 0.02", name, cov)
		}
		if online, _ := q.Coverage(h); math.Abs(online-cov) > 0.02 {
			t.Errorf("%s: online coverage %.3f differs from offline %.3f", name, online, cov)
		}
	}
}

func TestGap(t *testing.T) {
	h := mustHolt(t, DefaultHoltConfig())
	at := feed(t, h, 60, 30*time.Second, func(i int) float64 { return float64(i) }) // steep ramp
	at = at.Add(3 * time.Hour)                                                      // controller down for 3 hours
	if err := h.Observe(at, 10); err != nil {
		t.Fatal(err)
	}
	if got := h.Predict(at, 15*time.Minute); !near(got, 10, 0.5) {
		t.Errorf("after a 3h gap Predict = %v, want about the new sample 10 (stale trend forgotten)", got)
	}
	q := mustQuantile(t, mustCombined(t))
	at = feed(t, q, 100, 30*time.Second, func(int) float64 { return 5 })
	if err := q.Observe(at.Add(2*time.Hour), 50); err != nil {
		t.Fatal(err)
	}
	for _, c := range q.cal {
		if c.oN != 1 {
			t.Errorf("horizon %v: %d open predictions after a gap, want only the new one", time.Duration(c.h), c.oN)
		}
	}
}

func TestClockBackwards(t *testing.T) {
	for name, e := range all(t) {
		t.Run(name, func(t *testing.T) {
			at := feed(t, e, 100, 30*time.Second, func(i int) float64 { return 5 + float64(i%7) })
			back := at.Add(-2 * time.Hour)
			for i := range 50 {
				if err := e.Observe(back.Add(time.Duration(i)*30*time.Second), 8); err != nil {
					t.Fatalf("observe after clock went back: %v", err)
				}
			}
			for _, h := range []time.Duration{0, time.Minute, time.Hour} {
				got := e.Predict(back, h)
				if math.IsNaN(got) || math.IsInf(got, 0) || got < 0 {
					t.Fatalf("Predict(h=%v) = %v after clock went back", h, got)
				}
			}
			// Point estimators follow the new value; quantile layers add the
			// margin learned from the earlier 5..11 swings.
			lo := 7.5
			if name == "seasonal" {
				lo = 5 // its level has a 6h time constant
			}
			if got := e.Predict(back.Add(25*time.Minute), time.Minute); got < lo || got > 20 {
				t.Errorf("Predict after re-anchoring = %v, want in [%v, 20]", got, lo)
			}
		})
	}
}

func TestInvalidValuesRejected(t *testing.T) {
	for name, e := range all(t) {
		at := feed(t, e, 50, 30*time.Second, func(int) float64 { return 5 })
		before := e.Predict(at, 5*time.Minute)
		for _, v := range []float64{math.NaN(), -1, math.Inf(1), math.Inf(-1), -1e-9} {
			err := e.Observe(at.Add(30*time.Second), v)
			if !errors.Is(err, ErrInvalidValue) {
				t.Errorf("%s: Observe(%v) error = %v, want ErrInvalidValue", name, v, err)
			}
		}
		if after := e.Predict(at, 5*time.Minute); after != before {
			t.Errorf("%s: rejected samples changed Predict from %v to %v", name, before, after)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []struct {
		name string
		err  error
	}{
		{"holt alpha 0", func() error { c := DefaultHoltConfig(); c.Alpha = 0; _, err := NewHolt(c); return err }()},
		{"holt phi 1.5", func() error { c := DefaultHoltConfig(); c.Phi = 1.5; _, err := NewHolt(c); return err }()},
		{"holt tau 0", func() error { c := DefaultHoltConfig(); c.Tau = 0; _, err := NewHolt(c); return err }()},
		{"slot 7m", func() error {
			c := DefaultSeasonalConfig()
			c.SlotWidth = 7 * time.Minute
			_, err := NewSeasonal(c)
			return err
		}()},
		{"slot 1m", func() error {
			c := DefaultSeasonalConfig()
			c.SlotWidth = time.Minute
			_, err := NewSeasonal(c)
			return err
		}()},
		{"q 1", func() error {
			c := DefaultQuantileConfig()
			c.Q = 1
			_, err := NewQuantile(NewLastValue(), c)
			return err
		}()},
		{"horizons unsorted", func() error {
			c := DefaultQuantileConfig()
			c.Horizons = []time.Duration{5 * time.Minute, 3 * time.Minute}
			_, err := NewQuantile(NewLastValue(), c)
			return err
		}()},
		{"no horizons", func() error {
			c := DefaultQuantileConfig()
			c.Horizons = nil
			_, err := NewQuantile(NewLastValue(), c)
			return err
		}()},
		{"min scale 0", func() error {
			c := DefaultQuantileConfig()
			c.MinScale = 0
			_, err := NewQuantile(NewLastValue(), c)
			return err
		}()},
	}
	for _, b := range bad {
		if b.err == nil {
			t.Errorf("%s: accepted", b.name)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestSeasonalLearnsDayOfWeek(t *testing.T) {
	// Weekdays at 20, weekends at 10, for four weeks ending Sunday 23:00.
	// The level has followed the weekend down by then; only the weekly
	// correction knows that Monday starts at midnight, so the 3-hour peak
	// forecast must rise toward 20 (last value says 10).
	s := mustSeasonal(t)
	step := 10 * time.Minute
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // a Monday
	end := time.Date(2024, 1, 28, 23, 0, 0, 0, time.UTC) // the fourth Sunday
	for at := start; !at.After(end); at = at.Add(step) {
		v := 20.0
		if wd := at.Weekday(); wd == time.Saturday || wd == time.Sunday {
			v = 10
		}
		if err := s.Observe(at, v); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Predict(end, 3*time.Hour); got < 14 {
		t.Errorf("Sunday 23:00, 3h peak forecast %.1f, want >= 14 (Monday is 20)", got)
	}
	if got := s.Predict(end, 30*time.Minute); got > 13 {
		t.Errorf("Sunday 23:00, 30m peak forecast %.1f, want about 10 (still Sunday)", got)
	}
}
