package forecast

import (
	"fmt"
	"math"
	"time"
)

// Signals are what the controller reads for one workload on one pass, all in
// replicas. See the package documentation for how each is used.
type Signals struct {
	// Desired is the HPA's status.desiredReplicas.
	Desired float64
	// MetricImplied is the HPA metric value divided by its per-replica
	// target (not clamped to maxReplicas); 0 when unknown.
	MetricImplied float64
	// Pending is the number of the workload's pods that are not scheduled.
	Pending float64
	// Ready is the number of the workload's pods that are Ready.
	Ready float64
}

// Need is the demand the estimators learn: max(Desired, MetricImplied,
// Ready+Pending).
func (s Signals) Need() float64 {
	return math.Max(math.Max(s.Desired, s.MetricImplied), s.Ready+s.Pending)
}

func (s Signals) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"desired", s.Desired}, {"metric-implied", s.MetricImplied}, {"pending", s.Pending}, {"ready", s.Ready}} {
		if err := checkValue(f.v); err != nil {
			return fmt.Errorf("signal %s: %w", f.name, err)
		}
	}
	return nil
}

// Config configures every [Forecaster]; all workloads share one.
type Config struct {
	Combined CombinedConfig
	Quantile QuantileConfig
}

// DefaultConfig is the production default: the 0.95 quantile of the peak,
// calibrated at 3, 5, 10 and 15 minutes, on the seasonal + trend combiner.
func DefaultConfig() Config {
	return Config{Combined: DefaultCombinedConfig(), Quantile: DefaultQuantileConfig()}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if err := c.Combined.Holt.Validate(); err != nil {
		return err
	}
	if err := c.Combined.Seasonal.Validate(); err != nil {
		return err
	}
	return c.Quantile.Validate()
}

// Prediction is a Forecaster's answer for one horizon, in replicas.
type Prediction struct {
	// Peak is the Q-quantile of the largest need in (at, at+horizon]; the
	// number the planner provisions for.
	Peak float64
	// Point is the central forecast of that peak, before the conformal margin.
	Point float64
	// Need is the current need (the reactive floor; Peak >= Need).
	Need float64
	// Ready is the last observed Ready, so that headroom = Peak - Ready.
	Ready float64
	// Q is the quantile level Peak estimates.
	Q float64
	// Calibrated is false while the horizon has too few scores of its own
	// and Peak uses the conservative cold-start bound (see [Quantile]).
	Calibrated bool
}

// Forecaster is the per-workload forecaster the controller and the
// simulator keep: the conformal [Quantile] layer over [Combined], fed with
// [Signals.Need]. It is not safe for concurrent use; the controller's single
// loop owns it.
type Forecaster struct {
	cfg   Config
	q     *Quantile
	ready float64
}

// NewForecaster returns an empty forecaster.
func NewForecaster(cfg Config) (*Forecaster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("forecaster config: %w", err)
	}
	c, err := NewCombined(cfg.Combined)
	if err != nil {
		return nil, err
	}
	q, err := NewQuantile(c, cfg.Quantile)
	if err != nil {
		return nil, err
	}
	return &Forecaster{cfg: cfg, q: q}, nil
}

// Observe feeds one pass's signals. Invalid signals (NaN, infinite,
// negative) return an error and change nothing.
func (f *Forecaster) Observe(at time.Time, s Signals) error {
	if err := s.validate(); err != nil {
		return err
	}
	if err := f.q.Observe(at, s.Need()); err != nil {
		return err
	}
	f.ready = s.Ready
	return nil
}

// Predict forecasts the peak need within horizon of at.
func (f *Forecaster) Predict(at time.Time, horizon time.Duration) Prediction {
	peak, point, cal := f.q.PredictDetail(at, horizon)
	return Prediction{Peak: peak, Point: point, Need: f.q.last, Ready: f.ready, Q: f.cfg.Quantile.Q, Calibrated: cal}
}

// Coverage is the measured share of recent peaks at or below the predicted
// quantile for horizon h, and the decayed number of predictions behind it;
// export it as a metric next to the configured Q.
func (f *Forecaster) Coverage(h time.Duration) (share, n float64) { return f.q.Coverage(h) }

func (f *Forecaster) encode(e *encoder) {
	e.f64(f.ready)
	f.q.encode(e)
}

func (f *Forecaster) decode(d *decoder) {
	f.ready = d.nonNeg()
	f.q.decode(d)
}
