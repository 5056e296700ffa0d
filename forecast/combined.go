package forecast

import (
	"math"
	"time"
)

// CombinedConfig configures the trend and seasonal parts of [Combined].
type CombinedConfig struct {
	Holt     HoltConfig
	Seasonal SeasonalConfig
}

// DefaultCombinedConfig returns the defaults of both parts.
func DefaultCombinedConfig() CombinedConfig {
	return CombinedConfig{Holt: DefaultHoltConfig(), Seasonal: DefaultSeasonalConfig()}
}

// Combined forecasts with a damped trend on the deseasonalised series and
// puts the season back, with a reactive floor:
//
//	x(t) = ln(1+y(t)),  S(t) = seasonal index (0 until the profile is warm)
//	d(t) = exp(x(t) - S(t)) - 1              fed to a Holt estimator H
//	ŷ(τ) = exp(ln(1+H(τ)) + S(τ)) - 1        for τ in [at, at+h]
//	Predict(at, h) = max( max_τ ŷ(τ), y_last )
//
// The trend sees only what the season does not explain, so a morning ramp is
// not counted twice, and the season only shapes the path: its level comes
// from the recent samples, so a quiet Sunday or a busy launch day does not
// pull the forecast toward last week's average. The floor y_last is the
// current need: a forecast below it would plan to release capacity that is in
// use right now, which is the scale-down controller's decision, not ours.
type Combined struct {
	season *Seasonal
	trend  *Holt
	last   float64
}

// NewCombined returns an empty combiner; both configs must be valid.
func NewCombined(cfg CombinedConfig) (*Combined, error) {
	s, err := NewSeasonal(cfg.Seasonal)
	if err != nil {
		return nil, err
	}
	h, err := NewHolt(cfg.Holt)
	if err != nil {
		return nil, err
	}
	return &Combined{season: s, trend: h}, nil
}

// Observe feeds the sample to the profile and its deseasonalised value to the trend.
func (c *Combined) Observe(at time.Time, v float64) error {
	if err := checkValue(v); err != nil {
		return err
	}
	_ = c.season.Observe(at, v) // v already validated: cannot fail
	d := math.Expm1(math.Log1p(v) - c.season.adjust(at.UnixNano()))
	_ = c.trend.Observe(at, math.Max(0, d))
	c.last = v
	return nil
}

// Predict returns the re-seasonalised trend's peak over the horizon, floored
// at the last observed value.
func (c *Combined) Predict(at time.Time, horizon time.Duration) float64 {
	if !c.trend.clk.has {
		return 0
	}
	peak := c.last
	pts := c.season.points(at.UnixNano(), int64(horizon))
	warm := c.season.warm()
	for _, t := range pts.t[:pts.n] {
		y := math.Max(0, c.trend.atNs(t))
		if warm {
			y = (1+y)*math.Exp(c.season.index(t)) - 1 // = exp(ln(1+y) + S(t)) - 1
		}
		peak = math.Max(peak, y)
	}
	return clean(peak)
}

func (c *Combined) encode(e *encoder) {
	c.season.encode(e)
	c.trend.encode(e)
	e.f64(c.last)
}

func (c *Combined) decode(d *decoder) {
	c.season.decode(d)
	c.trend.decode(d)
	c.last = d.nonNeg()
}
