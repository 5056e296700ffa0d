package forecast

import (
	"fmt"
	"math"
	"time"
)

// HoltConfig sets the smoothing of [Holt]. Rates are per Tau, so the
// behaviour does not depend on how often the controller samples.
type HoltConfig struct {
	// Tau is the reference interval the rates below are expressed in.
	Tau time.Duration
	// Alpha is the level smoothing weight per Tau, in (0, 1].
	Alpha float64
	// Beta is the trend smoothing weight per Tau, in [0, 1].
	Beta float64
	// Phi is the trend damping factor per Tau, in (0, 1]. With Phi < 1 the
	// extrapolated trend adds at most Tau/(-ln Phi) times the slope, so a
	// burst's ramp never projects to infinity.
	Phi float64
}

// DefaultHoltConfig reacts within a couple of minutes and extrapolates a
// ramp for about ten minutes at most (Tau/(-ln 0.9) = 9.5 min).
func DefaultHoltConfig() HoltConfig {
	return HoltConfig{Tau: time.Minute, Alpha: 0.5, Beta: 0.1, Phi: 0.9}
}

// Validate reports a config that would make the recursion diverge.
func (c HoltConfig) Validate() error {
	switch {
	case c.Tau <= 0:
		return fmt.Errorf("holt: tau %v must be > 0", c.Tau)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return fmt.Errorf("holt: alpha %v must be in (0, 1]", c.Alpha)
	case !(c.Beta >= 0 && c.Beta <= 1):
		return fmt.Errorf("holt: beta %v must be in [0, 1]", c.Beta)
	case !(c.Phi > 0 && c.Phi <= 1):
		return fmt.Errorf("holt: phi %v must be in (0, 1]", c.Phi)
	}
	return nil
}

// Holt is Holt's linear method with a damped trend, in continuous time so
// that irregular sampling and gaps are handled by the maths, not by special
// cases (Wright 1986, "Forecasting data published at irregular time
// intervals").
//
// State: level L (value units) and trend b (value units per second), as of
// the last sample time t0. With k = Δ/Tau for an interval Δ:
//
//	damped trend mass  D(Δ) = ∫₀^Δ φ^(s/Tau) ds = Tau·(1-φ^k)/(-ln φ)   (= Δ if φ = 1)
//	forecast           F(t0+Δ) = L + b·D(Δ)
//	per-interval rates a = 1-(1-α)^k,  c = 1-(1-β)^k
//
// On a sample y after Δ > 0 seconds:
//
//	L' = F + a·(y - F)
//	b' = φ^k·b + c·((L'-L)/Δ - φ^k·b)
//
// A long gap makes a → 1 (the level restarts from the new sample) and φ^k → 0
// (the stale trend is forgotten), which is the right reaction after a
// controller outage. A sample with Δ = 0 (duplicate time, or the clock went
// backwards) blends into the level with weight α and leaves the trend alone.
// The level is clamped at 0 because demand cannot be negative.
//
// Predict returns max(F(at), F(at+h)): F is monotone in Δ, so the peak of
// the forecast path over the horizon is at one of its ends.
type Holt struct {
	cfg                 HoltConfig
	lnPhi               float64 // ln φ, cached
	lnPhiPerSec, tauSec float64
	ln1mAlpha           float64 // ln(1-α), cached; -Inf when α = 1
	ln1mBeta            float64
	clk                 clock
	level               float64
	trend               float64
}

// NewHolt returns a Holt estimator; the config must be valid.
func NewHolt(cfg HoltConfig) (*Holt, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Holt{
		cfg:         cfg,
		lnPhi:       math.Log(cfg.Phi),
		lnPhiPerSec: math.Log(cfg.Phi) / cfg.Tau.Seconds(),
		tauSec:      cfg.Tau.Seconds(),
		ln1mAlpha:   math.Log1p(-cfg.Alpha),
		ln1mBeta:    math.Log1p(-cfg.Beta),
	}, nil
}

// Observe updates level and trend with the sample.
func (h *Holt) Observe(at time.Time, v float64) error {
	if err := checkValue(v); err != nil {
		return err
	}
	dt, first := h.clk.advance(at)
	if first {
		h.level, h.trend = v, 0
		return nil
	}
	if dt == 0 {
		h.level = math.Max(0, h.level+h.cfg.Alpha*(v-h.level))
		return nil
	}
	k := dt / h.cfg.Tau.Seconds()
	fc := h.level + h.trend*h.mass(dt)
	a := -math.Expm1(k * h.ln1mAlpha) // 1-(1-α)^k
	c := -math.Expm1(k * h.ln1mBeta)
	newLevel := math.Max(0, fc+a*(v-fc))
	damped := h.trend * math.Exp(k*h.lnPhi)
	h.trend = damped + c*((newLevel-h.level)/dt-damped)
	h.level = newLevel
	return nil
}

// mass is D(Δ) for Δ seconds.
func (h *Holt) mass(dt float64) float64 {
	if h.cfg.Phi == 1 {
		return dt
	}
	return h.tauSec * -math.Expm1(dt*h.lnPhiPerSec) / -h.lnPhi
}

// atNs returns F at Unix time ns, not clamped.
func (h *Holt) atNs(ns int64) float64 {
	d := ns - h.clk.lastNs
	if d <= 0 {
		return h.level
	}
	return h.level + h.trend*h.mass(float64(d)/1e9)
}

// Predict returns the larger of the forecast path's two ends.
func (h *Holt) Predict(at time.Time, horizon time.Duration) float64 {
	if !h.clk.has {
		return 0
	}
	ns := at.UnixNano()
	return clean(math.Max(h.atNs(ns), h.atNs(ns+int64(horizon))))
}

func (h *Holt) encode(e *encoder) {
	e.clock(h.clk)
	e.f64(h.level)
	e.f64(h.trend)
}

func (h *Holt) decode(d *decoder) {
	h.clk = d.clock()
	h.level = d.nonNeg()
	h.trend = d.f64()
}
