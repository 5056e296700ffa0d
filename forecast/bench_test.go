package forecast

import (
	"testing"
	"time"
)

// BenchmarkObservePredict measures one controller pass per workload: one
// Observe and one Predict. Budget: 2 µs (issue 4).
func BenchmarkObservePredict(b *testing.B) {
	for _, name := range []string{"last", "holt", "seasonal", "combined", "q-last", "q-combined"} {
		b.Run(name, func(b *testing.B) {
			e := all(b)[name]
			r := lcg(1)
			vals := make([]float64, 4096)
			for i := range vals {
				vals[i] = 10 + 10*r.float()
			}
			// Warm up so the conformal windows are full (sorted inserts at
			// their largest).
			at := feed(b, e, 5000, 30*time.Second, func(i int) float64 { return vals[i%len(vals)] })
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				at = at.Add(30 * time.Second)
				if err := e.Observe(at, vals[i%len(vals)]); err != nil {
					b.Fatal(err)
				}
				_ = e.Predict(at, 10*time.Minute)
			}
		})
	}
	b.Run("forecaster", func(b *testing.B) {
		f := mustForecaster(b)
		at := epoch
		for i := range 5000 {
			at = epoch.Add(time.Duration(i) * 30 * time.Second)
			_ = f.Observe(at, Signals{Desired: float64(10 + i%7), Ready: 10})
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			at = at.Add(30 * time.Second)
			if err := f.Observe(at, Signals{Desired: float64(10 + i%7), MetricImplied: 12, Ready: 10}); err != nil {
				b.Fatal(err)
			}
			_ = f.Predict(at, 10*time.Minute)
		}
	})
}
