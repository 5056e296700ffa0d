package backtest

import (
	"fmt"
	"time"
)

// Sample is one point of a replica series: the mean demand, in replicas,
// over the step that ends at At.
type Sample struct {
	At time.Time
	V  float64
}

// Series is a demand series at a fixed step.
type Series struct {
	Name    string
	Step    time.Duration
	Samples []Sample
}

// Span is the time covered by the series.
func (s Series) Span() time.Duration {
	if len(s.Samples) == 0 {
		return 0
	}
	return s.Samples[len(s.Samples)-1].At.Sub(s.Samples[0].At) + s.Step
}

// Mean is the mean demand in replicas.
func (s Series) Mean() float64 {
	if len(s.Samples) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range s.Samples {
		sum += x.V
	}
	return sum / float64(len(s.Samples))
}

// validate checks the invariants Run relies on.
func (s Series) validate() error {
	if s.Step <= 0 {
		return fmt.Errorf("series %s: step %v must be > 0", s.Name, s.Step)
	}
	for i := 1; i < len(s.Samples); i++ {
		if !s.Samples[i].At.After(s.Samples[i-1].At) {
			return fmt.Errorf("series %s: sample %d at %v is not after the previous one", s.Name, i, s.Samples[i].At)
		}
	}
	return nil
}

// MaxRepeat bounds Repeat: 1,000 copies of a 1-hour trace at a 30 s step are
// 120,000 samples, seconds of work; more says nothing new.
const MaxRepeat = 1000

// Repeat returns n copies of s back to back, each shifted by the span of the
// one before, so the step between the last sample of a copy and the first of
// the next is the series step. It exists for the short traces: one hour
// holds 3 to 18 independent tests of a 3-15 minute forecast's coverage, too
// few to tell 0.95 from 0.90 or 1.00; replaying the same real traffic for a
// day tests the same estimator on a stationary series long enough to
// measure. The estimators see every copy online, scored only on the past, as
// on a single pass.
func Repeat(s Series, n int) (Series, error) {
	if n < 1 || n > MaxRepeat {
		return Series{}, fmt.Errorf("series %s: repeat %d must be in 1..%d", s.Name, n, MaxRepeat)
	}
	if n == 1 || len(s.Samples) == 0 {
		return s, nil
	}
	span := s.Span()
	out := Series{Name: fmt.Sprintf("%s x%d", s.Name, n), Step: s.Step, Samples: make([]Sample, 0, n*len(s.Samples))}
	for r := range n {
		shift := time.Duration(r) * span
		for _, x := range s.Samples {
			out.Samples = append(out.Samples, Sample{At: x.At.Add(shift), V: x.V})
		}
	}
	return out, nil
}
