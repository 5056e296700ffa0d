package forecast

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// QuantileConfig sets the conformal layer of [Quantile].
type QuantileConfig struct {
	// Q is the quantile of the peak to predict, in (0, 1).
	Q float64
	// Horizons are the horizons calibrated online (at most 8). Predict at
	// another horizon uses the smallest calibrated one that is at least as
	// long, or the longest one.
	Horizons []time.Duration
	// Window is how many recent scores each horizon keeps (at most 1024).
	Window int
	// PointsPerHorizon is how many predictions per horizon length are kept
	// open for scoring; it bounds the work per sample.
	PointsPerHorizon int
	// MinScale is the smallest value scores are normalised by, in value
	// units (replicas): it keeps an idle workload's score finite.
	MinScale float64
	// ScaleTau is the time constant of the slow mean that scores are
	// normalised by.
	ScaleTau time.Duration
	// Gamma is the adaptive-conformal step (Gibbs & Candès 2021); 0 turns
	// the adaptation off.
	Gamma float64
	// ColdStart is the smallest score used before a horizon has enough
	// scores of its own: predict at least point × (1+ColdStart), on top of
	// the prior bound described on [Quantile].
	ColdStart float64
	// MaxGap is the longest interval between samples that still counts as
	// continuous; open predictions across a longer gap are dropped.
	MaxGap time.Duration
}

// DefaultQuantileConfig predicts the 0.95 quantile for 3 to 15 minute horizons.
func DefaultQuantileConfig() QuantileConfig {
	return QuantileConfig{
		Q:                0.95,
		Horizons:         []time.Duration{3 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute},
		Window:           128,
		PointsPerHorizon: 16,
		MinScale:         1,
		ScaleTau:         time.Hour,
		Gamma:            0.01,
		ColdStart:        0.5,
		MaxGap:           20 * time.Minute,
	}
}

// Validate rejects a config the layer cannot honour.
func (c QuantileConfig) Validate() error {
	switch {
	case !(c.Q > 0 && c.Q < 1):
		return fmt.Errorf("quantile: q %v must be in (0, 1)", c.Q)
	case len(c.Horizons) == 0 || len(c.Horizons) > 8:
		return fmt.Errorf("quantile: need 1 to 8 horizons, got %d", len(c.Horizons))
	case c.Window < 1 || c.Window > 1024:
		return fmt.Errorf("quantile: window %d must be in [1, 1024]", c.Window)
	case c.PointsPerHorizon < 1 || c.PointsPerHorizon > 64:
		return fmt.Errorf("quantile: points per horizon %d must be in [1, 64]", c.PointsPerHorizon)
	case !(c.MinScale > 0) || math.IsInf(c.MinScale, 0):
		return fmt.Errorf("quantile: min scale %v must be > 0", c.MinScale)
	case c.ScaleTau <= 0:
		return fmt.Errorf("quantile: scale tau %v must be > 0", c.ScaleTau)
	case !(c.Gamma >= 0 && c.Gamma < 1):
		return fmt.Errorf("quantile: gamma %v must be in [0, 1)", c.Gamma)
	case !(c.ColdStart >= 0) || math.IsInf(c.ColdStart, 0):
		return fmt.Errorf("quantile: cold start %v must be >= 0", c.ColdStart)
	case c.MaxGap <= 0:
		return fmt.Errorf("quantile: max gap %v must be > 0", c.MaxGap)
	}
	for i, h := range c.Horizons {
		if h <= 0 || (i > 0 && h <= c.Horizons[i-1]) {
			return fmt.Errorf("quantile: horizons %v must be positive and ascending", c.Horizons)
		}
	}
	return nil
}

// Quantile turns a point estimator of the peak into the Q-quantile of the
// peak, by online split-conformal prediction on normalised residuals, with
// adaptive conformal inference (ACI) to track drift.
//
// For each calibrated horizon h, every h/PointsPerHorizon a prediction made
// at t is kept open: p = base.Predict(t, h), s = max(p, MinScale). Samples
// arriving after t raise its realised peak Y; the first sample at or after
// t+h closes it (a sample describes the interval that ends at its
// timestamp, so it still covers t+h). Its score is the normalised residual
//
//	r = (Y - p) / s
//
// and the last Window scores are kept sorted. Normalising by s makes scores
// comparable between a quiet night and a busy afternoon (residuals grow with
// the level). The prediction at (at, h) is
//
//	ŷ_q = max( p + r̂·s, y_last ),   r̂ = r_(k),  k = ⌈(n+1)(1-α_t)⌉
//
// the finite-sample conformal quantile of the n stored scores. With
// exchangeable scores this covers the peak with probability at least 1-α_t.
// Traffic is not exchangeable, so ACI adapts the level: after each closed
// prediction, α_{t+1} = α_t + γ·((1-Q) - miss), where miss = 1 when the peak
// exceeded the quantile issued when the prediction was made. Over T scores
// the miss rate differs from 1-Q by at most about (1+γ)/(γ·T), whatever the
// data do. α_t is kept in [-2(1-Q), 1]: below 0 the level asks for more
// than the largest score, and the margin grows past it in proportion to the
// scores' spread (see threshold). The floor bounds that growth after a burst
// of misses (one burst closes up to PointsPerHorizon overlapping predictions
// as misses at once) and the time to recover from it, 3(1-Q)/(γ(1-Q)) = 3/γ
// closed predictions at most; with the former floor of -1 one long burst kept
// the margin, and the placeholders, high for many hours.
//
// Cold start. While k > n (fewer than Q/(1-Q) = 19 scores at Q = 0.95) the
// finite-sample conformal quantile is infinite: the scores alone support no
// finite bound. Then the layer predicts at least (see coldBound)
//
//	B = μ + σ_u·(ln(m/(1-Q)) - 1),   σ_u = σ·√((ν-1)/χ²_{ν-1, 1-Q})
//
// the Q-quantile of the largest of the m samples the horizon spans (m =
// horizon / mean sampling interval) if samples had a shifted-exponential tail
// with the mean μ and standard deviation σ of the samples seen so far
// (weighted with time constant ScaleTau, ν their effective count), with σ
// taken at its Q upper confidence bound because a handful of samples
// estimates it poorly. It is capped at (max seen + MinScale)·ln(m/(1-Q)), the
// same quantile for a pure exponential tail whose mean is the largest sample
// seen, and never below the largest sample seen, the point forecast times
// (1+ColdStart), the largest score of the horizon, and the calibrated level of
// any shorter horizon (the peak over a longer horizon is at least the peak
// over a shorter one). The bound is deliberately conservative: a new
// workload over-provisions for its first minutes rather than under.
//
// Cost per sample: at most PointsPerHorizon+2 open predictions and one sorted
// insert of Window float32 per horizon; state is about
// len(Horizons)·(8·Window + 24·PointsPerHorizon) bytes plus the base's.
type Quantile struct {
	cfg    QuantileConfig
	base   Estimator
	clk    clock
	last   float64
	top    float64 // largest sample seen, the cold-start bound
	mean   float64 // slow mean of the series, the score scale
	meanW  float64 // total decayed weight behind mean (bias correction)
	meanW2 float64 // decayed sum of squared weights (effective sample count)
	m2     float64 // decayed sum of squared deviations from mean
	gap    float64 // mean interval between samples, seconds (EWMA)
	cal    []calib
	minN   int
	alpha  float64 // 1-Q
}

// calib is the conformal state of one horizon.
type calib struct {
	h, every  int64 // horizon and spacing of open predictions, ns
	lastOpen  int64
	hasOpen   bool
	open      []openPred // ring, oldest first from head
	oHead, oN int
	scores    []float32 // ring in arrival order
	sHead, sN int
	sorted    []float32 // the sN stored scores, ascending
	alphaT    float64   // ACI miscoverage target
	covHits   float64   // decayed count of covered peaks
	covN      float64   // decayed count of closed predictions
}

// openPred is a prediction waiting for its horizon to pass.
type openPred struct {
	at     int64
	pred   float32 // base point forecast
	issued float32 // the quantile Predict gave, for ACI's miss count
	peak   float32 // -1 until a sample arrives
}

// covDecay makes the reported coverage a moving figure over roughly the last
// thousand closed predictions.
const covDecay = 0.999

// NewQuantile wraps base; base must not be used elsewhere afterwards.
func NewQuantile(base Estimator, cfg QuantileConfig) (*Quantile, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := &Quantile{cfg: cfg, base: base, alpha: 1 - cfg.Q}
	q.minN = int(math.Ceil(cfg.Q / (1 - cfg.Q)))
	q.cal = make([]calib, len(cfg.Horizons))
	for i, h := range cfg.Horizons {
		q.cal[i] = calib{
			h:      int64(h),
			every:  int64(h) / int64(cfg.PointsPerHorizon),
			open:   make([]openPred, cfg.PointsPerHorizon+2),
			scores: make([]float32, cfg.Window),
			sorted: make([]float32, 0, cfg.Window),
			alphaT: q.alpha,
		}
	}
	return q, nil
}

// Observe scores the open predictions the sample closes, feeds the base
// estimator and opens new predictions where due.
func (q *Quantile) Observe(at time.Time, v float64) error {
	if err := checkValue(v); err != nil {
		return err
	}
	ns := at.UnixNano()
	if q.clk.has && (ns < q.clk.lastNs || ns-q.clk.lastNs > int64(q.cfg.MaxGap)) {
		// Backwards clock or a gap: the open predictions' windows no longer
		// line up with the samples, so scoring them would be noise.
		for i := range q.cal {
			q.cal[i].oN, q.cal[i].hasOpen = 0, false
		}
	}
	// mean is a time-weighted average with exponential forgetting, bias
	// corrected: early on it is the plain average of what was seen, not a
	// blend with an arbitrary start value.
	dt, _ := q.clk.advance(at)
	decay := math.Exp(-dt / q.cfg.ScaleTau.Seconds())
	q.meanW = q.meanW*decay + 1
	q.meanW2 = q.meanW2*decay*decay + 1
	old := q.mean
	q.mean += (v - q.mean) / q.meanW
	q.m2 = q.m2*decay + (v-old)*(v-q.mean)
	if dt > 0 {
		if q.gap == 0 {
			q.gap = dt
		} else {
			q.gap += 0.1 * (dt - q.gap)
		}
	}
	q.top = math.Max(q.top, v)
	for i := range q.cal {
		q.close(&q.cal[i], ns, float32(v))
	}
	if err := q.base.Observe(at, v); err != nil {
		return fmt.Errorf("observing base estimator: %w", err)
	}
	q.last = v
	for i := range q.cal {
		c := &q.cal[i]
		if c.hasOpen && ns-c.lastOpen < c.every {
			continue
		}
		p := q.base.Predict(at, time.Duration(c.h))
		c.push(openPred{at: ns, pred: float32(p), issued: float32(q.quantileFor(c, p)), peak: -1})
		c.lastOpen, c.hasOpen = ns, true
	}
	return nil
}

// close raises the peaks of open predictions with the sample at ns and
// scores those whose horizon it reaches.
func (q *Quantile) close(c *calib, ns int64, v float32) {
	n := len(c.open)
	for i := 0; i < c.oN; i++ {
		o := &c.open[(c.oHead+i)%n]
		if ns > o.at && v > o.peak {
			o.peak = v
		}
	}
	for c.oN > 0 {
		o := c.open[c.oHead]
		if ns < o.at+c.h {
			break
		}
		c.oHead, c.oN = (c.oHead+1)%n, c.oN-1
		if o.peak < 0 {
			continue // no sample inside the horizon
		}
		r := (o.peak - o.pred) / float32(q.scale(float64(o.pred)))
		miss := 0.0
		if o.peak > o.issued {
			miss = 1
		}
		c.alphaT = math.Min(1, math.Max(-2*q.alpha, c.alphaT+q.cfg.Gamma*(q.alpha-miss)))
		c.covHits = c.covHits*covDecay + (1 - miss)
		c.covN = c.covN*covDecay + 1
		c.addScore(r)
	}
}

// push appends an open prediction, dropping the oldest if the ring is full.
func (c *calib) push(o openPred) {
	n := len(c.open)
	if c.oN == n {
		c.oHead, c.oN = (c.oHead+1)%n, c.oN-1
	}
	c.open[(c.oHead+c.oN)%n] = o
	c.oN++
}

// addScore stores r, evicting the oldest score once the window is full, and
// keeps the sorted view with one binary search and one shift each way.
func (c *calib) addScore(r float32) {
	w := len(c.scores)
	if c.sN == w {
		old := c.scores[c.sHead]
		i := search(c.sorted, old)
		c.sorted = slices.Delete(c.sorted, i, i+1)
		c.scores[c.sHead] = r
		c.sHead = (c.sHead + 1) % w
	} else {
		c.scores[(c.sHead+c.sN)%w] = r
		c.sN++
	}
	i := search(c.sorted, r)
	c.sorted = slices.Insert(c.sorted, i, r)
}

// search is the first index in sorted with sorted[i] >= x. Scores are
// never NaN, so plain comparisons do (slices.BinarySearch pays for NaN
// ordering).
func search(sorted []float32, x float32) int {
	// Branch-free lower bound (Khuong & Morin): the comparison result
	// feeds a conditional move, not a mispredicted jump, which halves the
	// cost of an insert on a loaded machine.
	n := len(sorted)
	if n == 0 {
		return 0
	}
	base := 0
	for n > 1 {
		half := n / 2
		if sorted[base+half] < x {
			base += half
		}
		n -= half
	}
	if sorted[base] < x {
		base++
	}
	return base
}

// threshold is r̂ for a horizon: the conformal quantile at level 1-α_t.
func (q *Quantile) threshold(c *calib) float64 {
	n := len(c.sorted)
	if n >= q.minN {
		if c.alphaT >= 0 {
			return c.level(1 - c.alphaT)
		}
		// ACI asks for a level above 1: in theory an infinite set, and
		// ACI's guarantee relies on it never missing. Grow the margin
		// past the largest score in proportion, so that a run of misses
		// that the stored scores cannot cover (their scale drifted) is
		// still corrected rather than capped.
		top, mid := float64(c.sorted[n-1]), float64(c.sorted[n/2])
		return top + -c.alphaT*math.Max(top-mid, 0.1)
	}
	// Cold start: nothing better than the configured margin, the worst
	// score seen so far, and what a shorter horizon already knows (the peak
	// over a longer horizon is at least the peak over a shorter one).
	r := q.cfg.ColdStart
	if n > 0 {
		r = math.Max(r, float64(c.sorted[n-1]))
	}
	for i := range q.cal {
		if o := &q.cal[i]; o.h < c.h && len(o.sorted) >= q.minN {
			r = math.Max(r, o.level(1-o.alphaT))
		}
	}
	return r
}

// level returns the empirical quantile of the stored scores at level l: the
// ⌈n·l⌉-th smallest, the largest for l >= 1, the smallest for l <= 0.
func (c *calib) level(l float64) float64 {
	n := len(c.sorted)
	k := int(math.Ceil(float64(n) * l))
	k = max(1, min(k, n))
	return float64(c.sorted[k-1])
}

// scale is what a score is normalised by. It is the slow mean, not the point
// forecast p: on bursty traffic p jumps from 0 to the burst and back, and a
// score normalised by a near-zero p would later be multiplied by a burst-size
// p, inflating the margin tenfold. It is computed when a prediction closes,
// so the first scores use an hour's mean, not the first sample's.
func (q *Quantile) scale(p float64) float64 {
	return math.Max(q.mean, q.cfg.MinScale)
}

// pick returns the calibration used for horizon h.
func (q *Quantile) pick(h time.Duration) *calib {
	for i := range q.cal {
		if q.cal[i].h >= int64(h) {
			return &q.cal[i]
		}
	}
	return &q.cal[len(q.cal)-1]
}

// Predict returns the Q-quantile of the peak in (at, at+horizon].
func (q *Quantile) Predict(at time.Time, horizon time.Duration) float64 {
	if !q.clk.has {
		return 0
	}
	return q.quantileFor(q.pick(horizon), q.base.Predict(at, horizon))
}

// quantileFor turns point forecast p into ŷ_q with c's scores. While c is
// not calibrated it is also at least the largest sample seen: with no
// measured error yet, assume the next peak may be as high as any so far.
func (q *Quantile) quantileFor(c *calib, p float64) float64 {
	y := math.Max(p+q.threshold(c)*q.scale(p), q.last)
	if len(c.sorted) < q.minN {
		y = math.Max(y, math.Max(q.top, q.coldBound(c)))
	}
	return clean(y)
}

// coldBound is B of the type comment, the bound on the peak over c's
// horizon used while the horizon has too few scores for a finite conformal
// quantile.
func (q *Quantile) coldBound(c *calib) float64 {
	m := 1.0
	if q.gap > 0 {
		m = math.Max(1, float64(c.h)/1e9/q.gap)
	}
	tail := math.Log(m / q.alpha) // -ln(1-F) at F = 1-α/m, the per-sample level
	capB := (q.top + q.cfg.MinScale) * tail
	n := q.meanW * q.meanW / math.Max(q.meanW2, 1)
	if n < 1.5 {
		// One sample: no spread measured yet. The test is on 1.5, not 2:
		// two samples 30 s apart weigh 1.99999 effective samples after the
		// decay, and with "< 2" the second sample of every new workload
		// still got the cap, ln(m/(1-Q)) times its level: 5-6x for one
		// pass, enough for the autoscaler to add nodes that then stay for
		// its scale-down delay (in the simulator, Azure conv paid 24
		// idle GPU-hours for that one pass).
		return capB
	}
	// Reliability-weighted variance, unbiased for the effective count n.
	v := math.Max(0, q.m2/(q.meanW-q.meanW2/q.meanW))
	sd := math.Sqrt(v * (n - 1) / chi2Lower(n-1, q.alpha))
	return math.Min(capB, q.mean+sd*(tail-1))
}

// chi2Lower is the p-quantile of the chi-square distribution with k degrees
// of freedom (Wilson-Hilferty), for p < 0.5.
func chi2Lower(k, p float64) float64 {
	z := -normInvUpper(p)
	a := 2 / (9 * k)
	x := 1 - a + z*math.Sqrt(a)
	if x <= 0 {
		return 1e-12
	}
	return math.Max(1e-12, k*x*x*x)
}

// normInvUpper is z with P(Z > z) = p for a standard normal Z, p in (0, 0.5]
// (Abramowitz & Stegun 26.2.23, error < 4.5e-4).
func normInvUpper(p float64) float64 {
	t := math.Sqrt(-2 * math.Log(p))
	return t - (2.515517+0.802853*t+0.010328*t*t)/(1+1.432788*t+0.189269*t*t+0.001308*t*t*t)
}

// PredictDetail is Predict plus the point forecast it starts from and
// whether the horizon's calibration has enough scores of its own.
func (q *Quantile) PredictDetail(at time.Time, horizon time.Duration) (quantile, point float64, calibrated bool) {
	if !q.clk.has {
		return 0, 0, false
	}
	c := q.pick(horizon)
	p := q.base.Predict(at, horizon)
	return q.quantileFor(c, p), clean(p), len(c.sorted) >= q.minN
}

// Coverage returns the measured share of closed predictions whose realised
// peak was at or below the quantile, over roughly the last thousand, and
// that (decayed) count, for the calibration used at horizon h.
func (q *Quantile) Coverage(h time.Duration) (share, n float64) {
	c := q.pick(h)
	if c.covN == 0 {
		return math.NaN(), 0
	}
	return c.covHits / c.covN, c.covN
}

func (q *Quantile) encode(e *encoder) {
	e.clock(q.clk)
	e.f64(q.last)
	e.f64(q.top)
	e.f64(q.mean)
	e.f64(q.meanW)
	e.f64(q.meanW2)
	e.f64(q.m2)
	e.f64(q.gap)
	e.u8(uint8(len(q.cal)))
	for i := range q.cal {
		c := &q.cal[i]
		e.i64(c.h)
		e.i64(c.lastOpen)
		e.boolean(c.hasOpen)
		e.f64(c.alphaT)
		e.f64(c.covHits)
		e.f64(c.covN)
		e.u16(uint16(c.oN))
		for j := 0; j < c.oN; j++ {
			o := c.open[(c.oHead+j)%len(c.open)]
			e.i64(o.at)
			e.f32(o.pred)
			e.f32(o.issued)
			e.f32(o.peak)
		}
		e.u16(uint16(c.sN))
		for j := 0; j < c.sN; j++ {
			e.f32(c.scores[(c.sHead+j)%len(c.scores)])
		}
	}
	if s, ok := q.base.(stateful); ok {
		s.encode(e)
	}
}

func (q *Quantile) decode(d *decoder) {
	q.clk = d.clock()
	q.last = d.nonNeg()
	q.top = d.nonNeg()
	q.mean = d.nonNeg()
	q.meanW = d.nonNeg()
	q.meanW2 = d.nonNeg()
	q.m2 = d.nonNeg()
	q.gap = d.nonNeg()
	d.expect("calibrated horizons", int(d.u8()), len(q.cal))
	for i := range q.cal {
		c := &q.cal[i]
		if h := d.i64(); d.err == nil && h != c.h {
			d.fail(fmt.Errorf("%w: horizon %v, configured %v", errMismatch, time.Duration(h), time.Duration(c.h)))
		}
		c.lastOpen = d.i64()
		c.hasOpen = d.boolean()
		c.alphaT = d.f64()
		c.covHits = d.nonNeg()
		c.covN = d.nonNeg()
		c.oHead, c.oN = 0, int(d.u16())
		if c.oN > len(c.open) {
			d.fail(fmt.Errorf("%w: %d open predictions, room for %d", errBadField, c.oN, len(c.open)))
			return
		}
		for j := 0; j < c.oN; j++ {
			c.open[j] = openPred{at: d.i64(), pred: d.f32(), issued: d.f32(), peak: d.f32()}
		}
		n := int(d.u16())
		if n > len(c.scores) {
			d.fail(fmt.Errorf("%w: %d scores, window %d", errBadField, n, len(c.scores)))
			return
		}
		c.sHead, c.sN, c.sorted = 0, 0, c.sorted[:0]
		for j := 0; j < n && d.err == nil; j++ {
			c.addScore(d.f32())
		}
	}
	if s, ok := q.base.(stateful); ok {
		s.decode(d)
	}
}
