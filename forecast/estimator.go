package forecast

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Estimator is an online forecaster of one non-negative series.
//
// Observe feeds one sample taken at `at`. Values must be finite and >= 0;
// anything else returns an error wrapping [ErrInvalidValue] and leaves the
// state unchanged. Samples should arrive in time order; a sample older than
// the previous one (the clock went backwards, or a restart on another node
// with skew) is accepted as if it were simultaneous with the previous one and
// re-anchors the estimator's notion of "now" at `at`. It never panics.
//
// Predict returns the point forecast of the largest value in (at, at+horizon].
// It is always finite and >= 0, and 0 before the first sample. Predict does
// not change the state.
type Estimator interface {
	Observe(at time.Time, v float64) error
	Predict(at time.Time, horizon time.Duration) float64
}

// ErrInvalidValue is wrapped by Observe when a sample is NaN, infinite or negative.
var ErrInvalidValue = errors.New("invalid sample value")

// checkValue rejects values that would poison the state: one NaN in an EWMA
// stays forever.
func checkValue(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%w: %v (must be finite and >= 0)", ErrInvalidValue, v)
	}
	return nil
}

// clock is the time bookkeeping every estimator shares: the time of the last
// sample, in Unix nanoseconds so that it checkpoints as one int64.
type clock struct {
	lastNs int64
	has    bool
}

// advance records a sample at `at` and returns the seconds elapsed since the
// previous one. A backwards step returns 0 and re-anchors at `at`, so later
// samples measure their interval from the new clock instead of being ignored
// until the old time is reached again.
func (c *clock) advance(at time.Time) (dt float64, first bool) {
	ns := at.UnixNano()
	if !c.has {
		c.lastNs, c.has = ns, true
		return 0, true
	}
	d := ns - c.lastNs
	c.lastNs = ns
	if d <= 0 {
		return 0, false
	}
	return float64(d) / 1e9, false
}

// clean maps anything that is not a finite non-negative number to 0, the last
// line of defence that keeps Predict's contract.
func clean(v float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	if math.IsInf(v, 1) {
		return math.MaxFloat64
	}
	return v
}
