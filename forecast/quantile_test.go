package forecast

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestSearch(t *testing.T) {
	r := lcg(5)
	for n := range 40 {
		a := make([]float32, n)
		for i := range a {
			a[i] = float32(int(r.float() * 10))
		}
		slices.Sort(a)
		for x := float32(-1); x <= 11; x += 0.5 {
			want, _ := slices.BinarySearch(a, x)
			if got := search(a, x); got != want {
				t.Fatalf("search(%v, %v) = %d, want %d", a, x, got, want)
			}
		}
	}
}

// TestColdBoundCovers checks the cold-start bound against its own claim: for
// samples with an exponential tail (bursty) or a normal one (smooth), seen
// for 10 to 40 samples, the Q = 0.95 prediction before any score exists
// covers the peak of the next 15 minutes about 95% of the time or more over
// many independent workloads, and stays within a few times the level. With
// 1 to 3 samples the cap (largest seen + MinScale)·ln(m/(1-Q)) binds, and
// coverage is below nominal on bursty traffic (about 0.3 after one
// exponential sample, 0.9 after three): no finite rule covers a burst from
// one quiet sample; the test pins the cap.
func TestColdBoundCovers(t *testing.T) {
	const step = 30 * time.Second
	h := 15 * time.Minute
	m := int(h / step)
	for _, tc := range []struct {
		name     string
		level    float64
		draw     func(r *lcg) float64
		maxRatio float64 // largest mean prediction / level
	}{
		{"exponential mean 10", 10, func(r *lcg) float64 { return -10 * math.Log(1-r.float()) }, 10},
		{"normal 20±5", 20, func(r *lcg) float64 { return math.Max(0, 20+5*r.normal()) }, 3.5},
	} {
		for _, seen := range []int{1, 3, 10, 20, 40} {
			r := lcg(11)
			covered, runs, sum := 0, 2000, 0.0
			for range runs {
				q := mustQuantile(t, NewLastValue())
				at := epoch
				top := 0.0
				for range seen {
					at = at.Add(step)
					v := tc.draw(&r)
					top = math.Max(top, v)
					if err := q.Observe(at, v); err != nil {
						t.Fatal(err)
					}
				}
				p, _, cal := q.PredictDetail(at, h)
				if cal {
					t.Fatalf("calibrated after %d samples", seen)
				}
				if limit := (top + 1) * math.Log(float64(m)/0.05); p > limit*(1+1e-9) {
					t.Fatalf("%s, %d samples: cold prediction %v above the cap %v", tc.name, seen, p, limit)
				}
				peak := 0.0
				for range m {
					peak = math.Max(peak, tc.draw(&r))
				}
				if peak <= p {
					covered++
				}
				sum += p
			}
			cov, mean := float64(covered)/float64(runs), sum/float64(runs)
			t.Logf("%s, %d samples seen: coverage %.3f, mean prediction %.1f", tc.name, seen, cov, mean)
			if seen < 10 {
				continue
			}
			// 2000 runs: the standard error of a 0.95 coverage is 0.005.
			if cov < 0.94 {
				t.Errorf("%s, %d samples seen: cold coverage %.3f < 0.94", tc.name, seen, cov)
			}
			if mean > tc.maxRatio*tc.level {
				t.Errorf("%s, %d samples seen: mean prediction %.1f, more than %v× the level %v", tc.name, seen, mean, tc.maxRatio, tc.level)
			}
		}
	}
}

// TestColdBoundSamples pins when the cold-start bound stops using its cap:
// after one sample it is the cap (no spread measured), from the second
// sample on the measured spread sets it, however close together the samples
// are. The bound once treated two samples 30 s apart as one (their decayed
// effective count is 1.99999) and predicted about 6x a flat level.
func TestColdBoundSamples(t *testing.T) {
	h := 15 * time.Minute
	for _, tc := range []struct {
		name    string
		step    time.Duration
		samples []float64
		min     float64 // the prediction is at least this
		max     float64 // and at most this
	}{
		// m = 1 (no interval measured yet): cap = (16+1)·ln(1/0.05).
		{"one sample", 30 * time.Second, []float64{16}, 50, 51},
		// Flat: the spread is 0, so the bound is the level; the floor
		// point·(1+ColdStart) = 24 is what is left.
		{"two flat samples 30s apart", 30 * time.Second, []float64{16, 16}, 24, 24},
		{"two flat samples 1s apart", time.Second, []float64{16, 16}, 24, 24},
		{"three flat samples", 30 * time.Second, []float64{16, 16, 16}, 24, 24},
		// Spread measured from two samples, at its upper confidence bound:
		// large, but below the cap (7.8·ln(30/0.05) = 49.9).
		{"two different samples", 30 * time.Second, []float64{1.6, 6.8}, 10.2, 49.9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := mustQuantile(t, NewLastValue())
			at := epoch
			for i, v := range tc.samples {
				if i > 0 {
					at = at.Add(tc.step)
				}
				if err := q.Observe(at, v); err != nil {
					t.Fatal(err)
				}
			}
			p, _, cal := q.PredictDetail(at, h)
			if cal {
				t.Fatal("calibrated")
			}
			if p < tc.min-1e-6 || p > tc.max+1e-6 {
				t.Errorf("prediction %v, want in [%v, %v]", p, tc.min, tc.max)
			}
		})
	}
}
