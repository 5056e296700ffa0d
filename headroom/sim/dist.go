package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Dist is a distribution of durations: node provisioning, GPU-allocatable and
// image-pull delays vary from node to node, and a policy tuned on a constant delay
// would look better than it is. The zero value is the constant 0.
type Dist struct {
	Kind string // "const", "uniform" or "lognormal"
	// A is the constant, the uniform lower bound or the lognormal median; B is the
	// uniform upper bound; Sigma is the lognormal's sigma of the log.
	A, B  time.Duration
	Sigma float64
}

// Const returns a constant distribution.
func Const(d time.Duration) Dist { return Dist{Kind: "const", A: d} }

// ParseDist parses "5m" (constant), "4m..6m" (uniform) or "lognormal:5m,0.2"
// (median and sigma of the log).
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "lognormal:"); ok {
		med, sig, ok := strings.Cut(rest, ",")
		if !ok {
			return Dist{}, fmt.Errorf("parsing distribution %q: want lognormal:MEDIAN,SIGMA", s)
		}
		m, err := time.ParseDuration(strings.TrimSpace(med))
		if err != nil {
			return Dist{}, fmt.Errorf("parsing distribution %q: %w", s, err)
		}
		sg, err := strconv.ParseFloat(strings.TrimSpace(sig), 64)
		if err != nil || sg < 0 || sg > 3 || m < 0 {
			return Dist{}, fmt.Errorf("parsing distribution %q: want a median >= 0 and a sigma in [0,3]", s)
		}
		return Dist{Kind: "lognormal", A: m, Sigma: sg}, nil
	}
	if lo, hi, ok := strings.Cut(s, ".."); ok {
		a, err := time.ParseDuration(strings.TrimSpace(lo))
		if err != nil {
			return Dist{}, fmt.Errorf("parsing distribution %q: %w", s, err)
		}
		b, err := time.ParseDuration(strings.TrimSpace(hi))
		if err != nil {
			return Dist{}, fmt.Errorf("parsing distribution %q: %w", s, err)
		}
		if a < 0 || b < a {
			return Dist{}, fmt.Errorf("parsing distribution %q: want 0 <= low <= high", s)
		}
		return Dist{Kind: "uniform", A: a, B: b}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Dist{}, fmt.Errorf("parsing distribution %q: %w", s, err)
	}
	if d < 0 {
		return Dist{}, fmt.Errorf("parsing distribution %q: negative", s)
	}
	return Const(d), nil
}

// String is the form ParseDist reads.
func (d Dist) String() string {
	switch d.Kind {
	case "uniform":
		return d.A.String() + ".." + d.B.String()
	case "lognormal":
		return fmt.Sprintf("lognormal:%s,%g", d.A, d.Sigma)
	}
	return d.A.String()
}

// Mean returns the distribution's mean.
func (d Dist) Mean() time.Duration {
	switch d.Kind {
	case "uniform":
		return (d.A + d.B) / 2
	case "lognormal":
		return time.Duration(float64(d.A) * math.Exp(d.Sigma*d.Sigma/2))
	}
	return d.A
}

// Sample draws one value. Lognormal draws are capped at 5 sigma so one unlucky draw
// cannot stall a run.
func (d Dist) Sample(r *rand.Rand) time.Duration {
	switch d.Kind {
	case "uniform":
		if d.B == d.A {
			return d.A
		}
		return d.A + time.Duration(r.Int64N(int64(d.B-d.A)+1))
	case "lognormal":
		z := max(min(r.NormFloat64(), 5), -5)
		return time.Duration(float64(d.A) * math.Exp(d.Sigma*z))
	}
	return d.A
}

// poisson draws a Poisson count: Knuth's method for small means, a rounded normal
// for large ones (where the two are indistinguishable at tick resolution).
func poisson(r *rand.Rand, mean float64) int64 {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(int64(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())), 0)
	}
	l := math.Exp(-mean)
	k := int64(0)
	p := r.Float64()
	for p > l {
		k++
		p *= r.Float64()
	}
	return k
}

// gamma draws Gamma(shape, 1) by Marsaglia and Tsang.
func gamma(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		return gamma(r, shape+1) * math.Pow(r.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
