package forecast

import (
	"fmt"
	"math"
	"time"
)

// SeasonalConfig sets the profile of [Seasonal].
type SeasonalConfig struct {
	// SlotWidth is the width of a time-of-day slot; it must divide 24h.
	SlotWidth time.Duration
	// Weekly adds a day-of-week correction on top of the daily profile.
	Weekly bool
	// LevelTau is the time constant of the deseasonalised level. Long enough
	// not to chase the daily cycle, short enough to follow a busy week.
	LevelTau time.Duration
	// DayRate and WeekRate are the weights, in (0, 1], that one full visit of
	// a slot gives to the newest day (or week); split over the samples that
	// fall in the slot in proportion to the time they cover.
	DayRate, WeekRate float64
	// Warmup is how much history the profile needs before it is trusted;
	// until then it forecasts a flat level.
	Warmup time.Duration
}

// DefaultSeasonalConfig uses half-hour slots and a week-aware profile that
// is trusted after one day of history.
func DefaultSeasonalConfig() SeasonalConfig {
	return SeasonalConfig{
		SlotWidth: 30 * time.Minute,
		Weekly:    true,
		LevelTau:  6 * time.Hour,
		DayRate:   0.3,
		WeekRate:  0.3,
		Warmup:    24 * time.Hour,
	}
}

const maxSlotsPerDay = 288 // 5-minute slots: 288 + 7·288 float32 is still < 9 KiB

// Validate rejects configs whose profile would not tile a day or would not fit
// the state budget.
func (c SeasonalConfig) Validate() error {
	day := 24 * time.Hour
	switch {
	case c.SlotWidth <= 0 || day%c.SlotWidth != 0:
		return fmt.Errorf("seasonal: slot width %v must divide 24h", c.SlotWidth)
	case day/c.SlotWidth > maxSlotsPerDay:
		return fmt.Errorf("seasonal: slot width %v gives more than %d slots a day", c.SlotWidth, maxSlotsPerDay)
	case c.LevelTau <= 0:
		return fmt.Errorf("seasonal: level tau %v must be > 0", c.LevelTau)
	case !(c.DayRate > 0 && c.DayRate <= 1) || !(c.WeekRate > 0 && c.WeekRate <= 1):
		return fmt.Errorf("seasonal: rates %v, %v must be in (0, 1]", c.DayRate, c.WeekRate)
	case c.Warmup < 0:
		return fmt.Errorf("seasonal: warmup %v must be >= 0", c.Warmup)
	}
	return nil
}

// Seasonal is an additive Holt-Winters model without trend, in log space,
// with the season indexed by clock time instead of by sample count so that it
// survives irregular sampling (a bucketed profile as in VPA's histograms).
//
// With x = ln(1+y) (log because diurnal swings are multiplicative; 1+ so
// that zero demand is allowed), the model is
//
//	x(t) ≈ ℓ + S(t),   S(t) = D(slot of day) + W(slot of week)
//
// where D has 24h/SlotWidth slots and W has 7 times as many. S is linearly
// interpolated between slot centres. On a sample after Δ seconds
// (f = min(Δ, SlotWidth)/SlotWidth is the share of a slot visit it covers):
//
//	ℓ ← ℓ + (1-e^(-Δ/LevelTau))·(x - S(t) - ℓ)
//	e = x - ℓ - S(t)
//	D_j ← D_j + k_D,j·w_j·e/(w_0²+w_1²)   for the two slots j around t,
//	                                       interpolation weights w_0 + w_1 = 1
//	W_j ← W_j + k_W,j·w_j·e/(w_0²+w_1²)   (e recomputed after the D step; only once warm)
//
// a normalised LMS step, so S(t) moves toward x - ℓ by a fraction of e in
// [0, 1] and never overshoots, however often the series is sampled (see
// profile.learn). k_W,j = 1-(1-WeekRate)^(w_j·f) is a plain EWMA weight.
// k_D,j is bias corrected: w_j·f / (decayed sum of the shares slot j has
// received, decaying by (1-DayRate) per visit), a running average over the
// first visits that becomes an EWMA of rate DayRate. Both profiles are read
// with their mean removed, so ℓ is the mean log level and the two cannot
// drift against each other.
//
// The forecast is y(t) = exp(ℓ + S(t)) - 1, and Predict returns its maximum
// over (at, at+h]: S is piecewise linear, so that maximum lies at an end or
// at a slot centre, and only those points are evaluated (at most 10).
type Seasonal struct {
	cfg       SeasonalConfig
	slots     int     // slots per day
	slotSec   float64 // slot width in seconds
	invSlotNs float64 // 1 / slot width in nanoseconds
	// ln(1-rate) for the two profiles, clamped so that a rate of 1 stays finite.
	lnKeepDay, lnKeepWeek float64
	clk                   clock
	firstNs               int64
	level                 float64
	day                   profile
	week                  profile // empty when !Weekly
}

// profile is a ring of slot values whose mean is removed when read, so
// that the level ℓ alone carries the series' mean and the two cannot drift
// against each other (the usual Holt-Winters renormalisation, in O(1) by
// keeping the sum).
type profile struct {
	v   []float32
	w   []float32 // decayed visit weight per slot, nil for plain EWMA
	sum float64   // Σ v
	inv float64   // 1/len(v)
}

func newProfile(n int, biasCorrected bool) profile {
	p := profile{v: make([]float32, n), inv: 1 / float64(n)}
	if biasCorrected {
		p.w = make([]float32, n)
	}
	return p
}

// at is the interpolated value between slots i0 and i1 (both in range),
// mean removed.
func (p *profile) at(i0, i1 int, f float64) float64 {
	return (1-f)*float64(p.v[i0]) + f*float64(p.v[i1]) - p.sum*p.inv
}

// gain is the weight a sample covering share a of one visit of slot i gets,
// and records the visit. lnKeep = ln(1-rate), where rate is the weight a full
// visit gets (precomputed: Exp is much cheaper than Pow). With bias
// correction the weight is a/(decayed sum of shares): a running average for
// the first visits, then an EWMA with the given rate, so the first day is
// learned at once instead of 30% a day.
func (p *profile) gain(i int, a, lnKeep float64) float64 {
	if a <= 0 {
		return 0
	}
	if p.w == nil {
		return -math.Expm1(a * lnKeep)
	}
	w := float64(p.w[i])*math.Exp(a*lnKeep) + a
	p.w[i] = float32(w)
	return a / w
}

// learn moves the two slots a sample is interpolated between (weights 1-w
// and w) so that the interpolated value moves toward residual e, by a
// normalised least-mean-squares step:
//
//	v_j += k_j · w_j · e / (w_0² + w_1²)
//
// The interpolated value then moves by e·(k_0·w_0² + k_1·w_1²)/(w_0² + w_1²),
// a fraction in [0, 1] of the error: it never overshoots, and no slot moves
// by more than 1.21·|e|. (Moving each slot by k_j·e instead, as a plain
// per-slot average would, lets a slot that the sample barely touches, w_j
// near 0 with k_j = 1 on its first visit, take the whole error without
// reducing it; sampled every 15 s, the slots then ratchet apart until the
// forecast overflows.) Values are clamped at ±maxLogSwing.
func (p *profile) learn(i0, i1 int, w, f, lnKeep, e float64) {
	if i0 == i1 { // one slot a day: nothing to interpolate
		p.add(i0, p.gain(i0, f, lnKeep)*e)
		return
	}
	w0, w1 := 1-w, w
	norm := w0*w0 + w1*w1 // >= 1/2
	k0 := p.gain(i0, w0*f, lnKeep)
	k1 := p.gain(i1, w1*f, lnKeep)
	p.add(i0, k0*w0/norm*e)
	p.add(i1, k1*w1/norm*e)
}

// maxLogSwing bounds a profile value in log space: e^12 is a 160,000-fold
// swing, beyond any real daily cycle, and keeps exp() far from overflow.
const maxLogSwing = 12

// add moves slot i by d, clamped, keeping the sum exact.
func (p *profile) add(i int, d float64) {
	if d == 0 {
		return
	}
	old := p.v[i]
	p.v[i] = float32(math.Max(-maxLogSwing, math.Min(maxLogSwing, float64(old)+d)))
	p.sum += float64(p.v[i]) - float64(old)
}

// NewSeasonal returns an empty profile; the config must be valid.
func NewSeasonal(cfg SeasonalConfig) (*Seasonal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Seasonal{
		cfg:        cfg,
		slots:      int(24 * time.Hour / cfg.SlotWidth),
		slotSec:    cfg.SlotWidth.Seconds(),
		invSlotNs:  1 / float64(cfg.SlotWidth),
		lnKeepDay:  math.Log(math.Max(1-cfg.DayRate, 1e-12)),
		lnKeepWeek: math.Log(math.Max(1-cfg.WeekRate, 1e-12)),
	}
	s.day = newProfile(s.slots, true)
	if cfg.Weekly {
		s.week = newProfile(7*s.slots, false)
	}
	return s, nil
}

// pos returns the two week-slots around t and the interpolation weight of
// the second. Week slots count from the Unix epoch; the labels do not matter
// because the profile is learned.
func (s *Seasonal) pos(ns int64) (i0, i1 int, frac float64) {
	const weekNs = int64(7 * 24 * time.Hour)
	n := 7 * s.slots
	r := ns % weekNs // integer modulo: math.Mod is ten times slower
	if r < 0 {
		r += weekNs
	}
	u := float64(r)*s.invSlotNs - 0.5
	fl := math.Floor(u)
	frac = u - fl
	i0 = int(fl)
	if i0 < 0 {
		i0 += n
	}
	i1 = i0 + 1
	if i1 == n {
		i1 = 0
	}
	return i0, i1, frac
}

// index returns S at Unix time ns.
func (s *Seasonal) index(ns int64) float64 {
	i0, i1, f := s.pos(ns)
	d0 := i0 % s.slots
	d1 := d0 + 1
	if d1 == s.slots {
		d1 = 0
	}
	v := s.day.at(d0, d1, f)
	if s.week.v != nil {
		v += s.week.at(i0, i1, f)
	}
	return v
}

// warm reports whether the profile has seen Warmup of history.
func (s *Seasonal) warm() bool {
	return s.clk.has && time.Duration(s.clk.lastNs-s.firstNs) >= s.cfg.Warmup
}

// adjust is the seasonal index to remove from (or add to) a value at t in
// log space: S(t) once warm, 0 before.
func (s *Seasonal) adjust(ns int64) float64 {
	if !s.warm() {
		return 0
	}
	return s.index(ns)
}

// Observe learns level and profile from the sample.
func (s *Seasonal) Observe(at time.Time, v float64) error {
	if err := checkValue(v); err != nil {
		return err
	}
	x := math.Log1p(v)
	dt, first := s.clk.advance(at)
	if first {
		s.firstNs, s.level = at.UnixNano(), x
		return nil
	}
	if s.clk.lastNs < s.firstNs { // clock went back past the first sample
		s.firstNs = s.clk.lastNs
	}
	if dt == 0 {
		return nil
	}
	ns := at.UnixNano()
	s.level += -math.Expm1(-dt/s.cfg.LevelTau.Seconds()) * (x - s.index(ns) - s.level)
	f := math.Min(dt, s.slotSec) / s.slotSec
	i0, i1, w := s.pos(ns)
	e := x - s.level - s.index(ns)
	s.day.learn(i0%s.slots, i1%s.slots, w, f, s.lnKeepDay, e)
	// The weekly correction starts once the daily profile is trusted, so it
	// does not absorb the first day's errors (it is visited once a week and
	// would keep them for weeks), and it is a plain EWMA from zero: one odd
	// Tuesday moves it by WeekRate, not all the way.
	if s.week.v != nil && s.warm() {
		e = x - s.level - s.index(ns)
		s.week.learn(i0, i1, w, f, s.lnKeepWeek, e)
	}
	return nil
}

// Predict returns the peak of exp(ℓ + S) - 1 over the horizon.
func (s *Seasonal) Predict(at time.Time, horizon time.Duration) float64 {
	if !s.clk.has {
		return 0
	}
	pts := s.points(at.UnixNano(), int64(horizon))
	peak := 0.0
	for _, t := range pts.t[:pts.n] {
		peak = math.Max(peak, math.Expm1(s.level+s.adjust(t)))
	}
	return clean(peak)
}

// evalPoints is a fixed-size list of Unix nanosecond times, so that
// Predict does not allocate.
type evalPoints struct {
	t [10]int64
	n int
}

// points returns the times at which a forecast built on S must be evaluated
// to find its maximum over [at, at+h]: both ends and the slot centres in
// between (thinned to at most 8 for horizons longer than 8 slots). Slot
// centres are at (k+½)·SlotWidth from the Unix epoch, as in pos.
func (s *Seasonal) points(at, h int64) evalPoints {
	var p evalPoints
	p.t[0], p.n = at, 1
	if h <= 0 {
		return p
	}
	end := at + h
	if s.warm() {
		w := int64(s.cfg.SlotWidth)
		first := floorDiv(at-w/2, w)*w + w/2 // latest centre <= at
		first += w
		n := (end-first)/w + 1
		stride := int64(1)
		if n > 8 {
			stride = (n + 7) / 8
		}
		for c := first; c < end && p.n < 9; c += stride * w {
			p.t[p.n] = c
			p.n++
		}
	}
	p.t[p.n] = end
	p.n++
	return p
}

// floorDiv is a/b rounded toward minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func (s *Seasonal) encode(e *encoder) {
	e.clock(s.clk)
	e.i64(s.firstNs)
	e.f64(s.level)
	e.u16(uint16(s.slots))
	for i := range s.day.v {
		e.f32(s.day.v[i])
		e.f32(s.day.w[i])
	}
	e.f64(s.day.sum)
	e.boolean(s.week.v != nil)
	for _, v := range s.week.v {
		e.f32(v)
	}
	e.f64(s.week.sum)
}

func (s *Seasonal) decode(d *decoder) {
	s.clk = d.clock()
	s.firstNs = d.i64()
	s.level = d.nonNeg()
	d.expect("seasonal slots", int(d.u16()), s.slots)
	for i := range s.day.v {
		s.day.v[i] = d.f32()
		s.day.w[i] = d.f32()
	}
	// The running sums are stored, not recomputed: summing in another
	// order would change the restored forecasts in the last bits.
	s.day.sum = d.f64()
	weekly := d.boolean()
	if d.err == nil && weekly != (s.week.v != nil) {
		d.fail(fmt.Errorf("%w: weekly profile is %v, configured %v", errMismatch, weekly, s.week.v != nil))
	}
	for i := range s.week.v {
		s.week.v[i] = d.f32()
	}
	s.week.sum = d.f64()
}
