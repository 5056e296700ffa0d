package forecast

import "time"

// LastValue predicts that the future peak equals the last observed value:
// ŷ(t+h) = y(t_last) for every h. It is what a purely reactive stack does and
// the baseline every other estimator is measured against.
type LastValue struct {
	clk clock
	v   float64
}

// NewLastValue returns an empty LastValue estimator.
func NewLastValue() *LastValue { return &LastValue{} }

// Observe records v as the current value.
func (l *LastValue) Observe(at time.Time, v float64) error {
	if err := checkValue(v); err != nil {
		return err
	}
	l.clk.advance(at)
	l.v = v
	return nil
}

// Predict returns the last observed value (0 before any sample).
func (l *LastValue) Predict(at time.Time, horizon time.Duration) float64 { return l.v }

func (l *LastValue) encode(e *encoder) {
	e.clock(l.clk)
	e.f64(l.v)
}

func (l *LastValue) decode(d *decoder) {
	l.clk = d.clock()
	l.v = d.nonNeg()
}
