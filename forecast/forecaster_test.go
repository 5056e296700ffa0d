package forecast

import (
	"errors"
	"math"
	"runtime"
	"testing"
	"time"
)

func TestSignalsNeed(t *testing.T) {
	tests := []struct {
		name string
		s    Signals
		want float64
	}{
		{"desired only", Signals{Desired: 4}, 4},
		{"metric leads desired", Signals{Desired: 4, MetricImplied: 9.5, Ready: 4}, 9.5},
		{"stabilised scale-down keeps desired", Signals{Desired: 6, MetricImplied: 2, Ready: 6}, 6},
		{"surge: ready+pending above desired", Signals{Desired: 4, Ready: 4, Pending: 2}, 6},
		{"pending already inside desired", Signals{Desired: 6, Ready: 4, Pending: 2}, 6},
		{"idle", Signals{}, 0},
	}
	for _, tt := range tests {
		if got := tt.s.Need(); got != tt.want {
			t.Errorf("%s: Need() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestForecasterObservePredict(t *testing.T) {
	f, err := NewForecaster(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Predict(epoch, 5*time.Minute); p.Peak != 0 || p.Calibrated {
		t.Errorf("empty forecaster predicts %+v, want zero and uncalibrated", p)
	}
	at := epoch
	for i := range 200 {
		at = epoch.Add(time.Duration(i) * 30 * time.Second)
		s := Signals{Desired: 4, MetricImplied: 4 + float64(i%3), Ready: 4}
		if err := f.Observe(at, s); err != nil {
			t.Fatal(err)
		}
	}
	p := f.Predict(at, 5*time.Minute)
	if p.Need != 6 && p.Need != 4 && p.Need != 5 {
		t.Errorf("Need = %v, want the last max(desired, metric-implied)", p.Need)
	}
	if p.Peak < p.Need || p.Peak < p.Point || p.Ready != 4 || p.Q != 0.95 || !p.Calibrated {
		t.Errorf("prediction %+v: want Peak >= Need and Point, Ready 4, Q 0.95, calibrated", p)
	}
	if p.Peak < 6 || p.Peak > 7 {
		t.Errorf("Peak = %v, want about 6 (the max of a 4,5,6 cycle)", p.Peak)
	}
	if cov, n := f.Coverage(5 * time.Minute); n < 50 || cov < 0.9 {
		t.Errorf("coverage %v over %v, want >= 0.9", cov, n)
	}
}

func TestForecasterRejectsBadSignals(t *testing.T) {
	f, err := NewForecaster(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Observe(epoch, Signals{Desired: 3, Ready: 3}); err != nil {
		t.Fatal(err)
	}
	before := f.Predict(epoch, time.Minute)
	for _, s := range []Signals{
		{Desired: math.NaN()},
		{Desired: 1, MetricImplied: -2},
		{Desired: 1, Pending: math.Inf(1)},
		{Desired: 1, Ready: -1},
	} {
		if err := f.Observe(epoch.Add(time.Minute), s); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("Observe(%+v) = %v, want ErrInvalidValue", s, err)
		}
	}
	if after := f.Predict(epoch, time.Minute); after != before {
		t.Errorf("rejected signals changed the prediction: %+v -> %+v", before, after)
	}
	if _, err := NewForecaster(Config{}); err == nil {
		t.Error("NewForecaster accepted a zero config")
	}
}

func TestForecasterMemory(t *testing.T) {
	// In-memory state is allocated up front (fixed-size rings and
	// profiles), so the heap growth of building forecasters is their size.
	const n = 200
	keep := make([]*Forecaster, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = mustForecaster(t)
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("in-memory state per workload: %d bytes", per)
	if per > 16*1024 {
		t.Errorf("state per workload is %d bytes, budget 16 KiB", per)
	}
	// Training does not grow it.
	f := keep[0]
	runtime.ReadMemStats(&before)
	for i := range 2000 {
		_ = f.Observe(epoch.Add(time.Duration(i)*30*time.Second), Signals{Desired: float64(i % 13)})
		_ = f.Predict(epoch.Add(time.Duration(i)*30*time.Second), 10*time.Minute)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1024 {
		t.Errorf("2000 passes allocated %d bytes, want none", grew)
	}
}
