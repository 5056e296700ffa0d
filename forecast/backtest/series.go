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
