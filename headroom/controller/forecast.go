package controller

import (
	"fmt"
	"sync"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

// ForecastDemand is the headroom.Forecaster backed by the forecast package: per
// workload it observes headroom.ForecastSignals each pass and asks for the
// q-quantile of the peak need within the workload's lead time; headroom.ForecastNeed
// turns that into demand (the predicted peak minus the replicas ready or starting,
// never below the reactive need, never beyond maxReplicas). The simulator calls
// the same two functions. Paused, fallback and missing-HPA states bypass the
// forecast: their signals are not genuine demand.
type ForecastDemand struct {
	// Config returns the config in force (lead time and quantile per workload).
	Config func() headroom.Config
	// Horizon, if set, returns the workload's lead time (measured or configured);
	// nil means the config's lead time.
	Horizon func(key string, cfg headroom.Config) time.Duration

	mu  sync.Mutex
	per map[string]*entry
}

type entry struct {
	f *forecast.Forecaster
	q float64
}

// NewForecastDemand returns an empty forecaster set.
func NewForecastDemand(cfg func() headroom.Config) *ForecastDemand {
	return &ForecastDemand{Config: cfg, per: map[string]*entry{}}
}

// Demand implements headroom.Forecaster.
func (fd *ForecastDemand) Demand(w headroom.Workload, now time.Time) headroom.Demand {
	base := headroom.ReactiveDemand(w)
	switch w.State {
	case keda.StateActive, keda.StateScaledToZero:
	default:
		return base
	}
	cfg := fd.Config()
	q := cfg.QuantileFor(w.Key())
	lead := cfg.LeadTimeFor(w.Key())
	if fd.Horizon != nil {
		lead = fd.Horizon(w.Key(), cfg)
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	e := fd.per[w.Key()]
	if e == nil || e.q != q {
		fc := forecast.DefaultConfig()
		fc.Quantile.Q = q
		f, err := forecast.NewForecaster(fc)
		if err != nil {
			base.Reason += fmt.Sprintf(" (forecast off: %v)", err)
			return base
		}
		e = &entry{f: f, q: q}
		fd.per[w.Key()] = e
	}
	if err := e.f.Observe(now, headroom.ForecastSignals(w)); err != nil {
		base.Reason += fmt.Sprintf(" (forecast sample rejected: %v)", err)
		return base
	}
	return headroom.ForecastNeed(w, e.f.Predict(now, lead), lead)
}

// Forget drops workloads that no longer exist, keeping memory bounded.
func (fd *ForecastDemand) Forget(keep map[string]bool) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	for k := range fd.per {
		if !keep[k] {
			delete(fd.per, k)
		}
	}
}
