package headroom

import (
	"fmt"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones; embed the database so distroless images work

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Limits on config values. Anything beyond them is a typo or a unit mistake (cores
// for GPUs, seconds for minutes), not a real cluster.
const (
	// MaxGPUs bounds every per-zone and per-workload GPU count.
	MaxGPUs = 10000
	// MaxBudgetGPUs bounds the config's budget.
	MaxBudgetGPUs = 100000
	// MaxDuration bounds every duration.
	MaxDuration = 24 * time.Hour
	// MaxConfigBytes bounds the YAML (a ConfigMap holds at most 1 MiB anyway).
	MaxConfigBytes = 1 << 20
	maxZones       = 1000
	maxSchedules   = 100
	maxWorkloads   = 10000
)

// Config is the controller's ConfigMap (data key ConfigDataKey), parsed and
// validated by ParseConfig. Every GPU count is in GPUs: devices of the shape's GPU
// resource (a MIG slice counts as one), the unit the autoscaler and budgets speak.
//
// Example:
//
//	budgetGPUs: 64            # can only lower the --budget-gpus flag
//	cooldown: 10m             # scale-down of placeholders waits this long
//	keepUtilization: 0.5      # cluster-autoscaler's scale-down GPU utilisation threshold
//	leadTime: 10m             # forecast horizon (default for all workloads)
//	quantile: 0.9             # forecast quantile (default for all workloads)
//	defaults: {min: 0, max: 16}          # zones not listed below
//	zones:
//	  us-east-1a: {min: 8, max: 32}
//	  us-east-1b: {max: 16}
//	schedules:                # later active schedules win
//	  - name: nights
//	    timeZone: Europe/Paris
//	    days: [Mon, Tue, Wed, Thu, Fri]    # days the window starts; default every day
//	    start: "20:00"
//	    end: "08:00"                       # before start: ends the next day
//	    min: 0                             # floor of every zone while active
//	    zones: {us-east-1a: {min: 2}}      # per-zone floor while active
//	scarcity: {pendingThreshold: 10m, initialBackoff: 5m, maxBackoff: 30m}
//	coverage:                 # besides the opt-in annotation headroom.gpu-headroom.io/enabled
//	  selector: {matchLabels: {team: inference}}
//	workloads:                # per-ScaledObject overrides
//	  - {namespace: llm, name: chat, leadTime: 5m, quantile: 0.95, maxGPUs: 16}
type Config struct {
	BudgetGPUs      *int64                `json:"budgetGPUs,omitempty"`
	Cooldown        *metav1.Duration      `json:"cooldown,omitempty"`
	KeepUtilization *float64              `json:"keepUtilization,omitempty"`
	LeadTime        *metav1.Duration      `json:"leadTime,omitempty"`
	Quantile        *float64              `json:"quantile,omitempty"`
	Defaults        ZoneConfig            `json:"defaults,omitempty"`
	Zones           map[string]ZoneConfig `json:"zones,omitempty"`
	Schedules       []Schedule            `json:"schedules,omitempty"`
	Scarcity        ScarcitySpec          `json:"scarcity,omitempty"`
	Coverage        Coverage              `json:"coverage,omitempty"`
	Workloads       []WorkloadConfig      `json:"workloads,omitempty"`

	selector labels.Selector
}

// ZoneConfig bounds the headroom of one zone, in GPUs.
type ZoneConfig struct {
	// Min is the floor: GPUs of headroom kept whatever the demand.
	Min *int64 `json:"min,omitempty"`
	// Max caps the placeholder GPUs in the zone.
	Max *int64 `json:"max,omitempty"`
}

// Schedule changes floors during a weekly window in an IANA time zone.
type Schedule struct {
	Name     string   `json:"name,omitempty"`
	TimeZone string   `json:"timeZone"`
	Days     []string `json:"days,omitempty"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	// Min, when set, is the floor of every zone while the window is active.
	Min *int64 `json:"min,omitempty"`
	// Zones sets per-zone floors while active (after Min).
	Zones map[string]ScheduleZone `json:"zones,omitempty"`

	loc        *time.Location
	days       [7]bool
	start, end int // minutes after midnight
}

// ScheduleZone is a zone's floor while a schedule is active.
type ScheduleZone struct {
	Min *int64 `json:"min"`
}

// ScarcitySpec overrides DefaultScarcityConfig.
type ScarcitySpec struct {
	PendingThreshold *metav1.Duration `json:"pendingThreshold,omitempty"`
	InitialBackoff   *metav1.Duration `json:"initialBackoff,omitempty"`
	MaxBackoff       *metav1.Duration `json:"maxBackoff,omitempty"`
}

// Coverage chooses which ScaledObjects get headroom.
type Coverage struct {
	// Selector, when set, covers ScaledObjects whose labels match.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// WorkloadConfig overrides settings for one ScaledObject.
type WorkloadConfig struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	LeadTime  *metav1.Duration `json:"leadTime,omitempty"`
	Quantile  *float64         `json:"quantile,omitempty"`
	MaxGPUs   *int64           `json:"maxGPUs,omitempty"`
}

// Key returns "namespace/name".
func (w WorkloadConfig) Key() string { return w.Namespace + "/" + w.Name }

// Defaults used when the config leaves a value out.
const (
	DefaultCooldown        = 10 * time.Minute
	DefaultKeepUtilization = 0.5
	DefaultLeadTime        = 10 * time.Minute
	DefaultQuantile        = 0.9
)

// ParseConfig parses and validates the YAML of the ConfigMap. Unknown keys are
// rejected (a misspelt "mni" must not silently mean "no floor"); so are negative
// numbers, min > max, sizes beyond MaxGPUs, bad durations, time zones and windows.
// All problems are reported at once, sorted, in one error. Zones are not checked
// against the cluster here; see UnknownZones. Empty input is a valid, empty config.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if len(data) > MaxConfigBytes {
		return Config{}, fmt.Errorf("parsing config: %d bytes is over the %d byte limit", len(data), MaxConfigBytes)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("parsing config: %w", err)
	}
	if errs := c.validate(); len(errs) > 0 {
		sort.Strings(errs)
		return Config{}, fmt.Errorf("validating config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// validate checks every field and prepares the parsed forms (locations, windows,
// selector). It returns one message per problem.
func (c *Config) validate() []string {
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	count := func(field string, v *int64, limit int64) {
		if v == nil {
			return
		}
		if *v < 0 {
			add("%s: must not be negative (got %d)", field, *v)
		} else if *v > limit {
			add("%s: %d is over the limit of %d", field, *v, limit)
		}
	}
	duration := func(field string, d *metav1.Duration) {
		if d == nil {
			return
		}
		if d.Duration < 0 {
			add("%s: must not be negative (got %s)", field, d.Duration)
		} else if d.Duration > MaxDuration {
			add("%s: %s is over the limit of %s", field, d.Duration, MaxDuration)
		}
	}
	quantile := func(field string, q *float64) {
		if q != nil && (*q <= 0 || *q >= 1) {
			add("%s: must be between 0 and 1, exclusive (got %g)", field, *q)
		}
	}
	zone := func(field string, z ZoneConfig) {
		count(field+".min", z.Min, MaxGPUs)
		count(field+".max", z.Max, MaxGPUs)
		if z.Min != nil && z.Max != nil && *z.Min > *z.Max {
			add("%s: min %d is greater than max %d", field, *z.Min, *z.Max)
		}
	}

	count("budgetGPUs", c.BudgetGPUs, MaxBudgetGPUs)
	duration("cooldown", c.Cooldown)
	duration("leadTime", c.LeadTime)
	quantile("quantile", c.Quantile)
	if k := c.KeepUtilization; k != nil && (*k < 0 || *k > 1) {
		add("keepUtilization: must be between 0 and 1 (got %g)", *k)
	}
	zone("defaults", c.Defaults)
	if len(c.Zones) > maxZones {
		add("zones: %d zones is over the limit of %d", len(c.Zones), maxZones)
	}
	for name, z := range c.Zones {
		if name == "" {
			add("zones: empty zone name")
		}
		zone(fmt.Sprintf("zones[%s]", name), z)
		if z.Min != nil && z.Max == nil && c.Defaults.Max != nil && *z.Min > *c.Defaults.Max {
			add("zones[%s]: min %d is greater than defaults.max %d", name, *z.Min, *c.Defaults.Max)
		}
	}

	if len(c.Schedules) > maxSchedules {
		add("schedules: %d schedules is over the limit of %d", len(c.Schedules), maxSchedules)
	}
	names := map[string]bool{}
	for i := range c.Schedules {
		s := &c.Schedules[i]
		field := fmt.Sprintf("schedules[%d]", i)
		if s.Name != "" {
			if names[s.Name] {
				add("%s: duplicate name %q", field, s.Name)
			}
			names[s.Name] = true
		}
		for _, e := range s.parse() {
			add("%s.%s", field, e)
		}
		count(field+".min", s.Min, MaxGPUs)
		for z, sz := range s.Zones {
			if sz.Min == nil {
				add("%s.zones[%s].min: required", field, z)
				continue
			}
			count(fmt.Sprintf("%s.zones[%s].min", field, z), sz.Min, MaxGPUs)
			if m := c.zoneMax(z); m != nil && *sz.Min > *m {
				add("%s.zones[%s].min: %d is greater than the zone's max %d", field, z, *sz.Min, *m)
			}
		}
	}

	duration("scarcity.pendingThreshold", c.Scarcity.PendingThreshold)
	duration("scarcity.initialBackoff", c.Scarcity.InitialBackoff)
	duration("scarcity.maxBackoff", c.Scarcity.MaxBackoff)
	if sc := c.ScarcityConfig(); sc.InitialBackoff > sc.MaxBackoff {
		add("scarcity: initialBackoff %s is greater than maxBackoff %s", sc.InitialBackoff, sc.MaxBackoff)
	}

	if c.Coverage.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(c.Coverage.Selector)
		if err != nil {
			add("coverage.selector: %v", err)
		}
		c.selector = sel
	}

	if len(c.Workloads) > maxWorkloads {
		add("workloads: %d entries is over the limit of %d", len(c.Workloads), maxWorkloads)
	}
	keys := map[string]bool{}
	for i, w := range c.Workloads {
		field := fmt.Sprintf("workloads[%d]", i)
		if w.Namespace == "" || w.Name == "" {
			add("%s: namespace and name are required", field)
		} else if keys[w.Key()] {
			add("%s: duplicate entry for %s", field, w.Key())
		}
		keys[w.Key()] = true
		duration(field+".leadTime", w.LeadTime)
		quantile(field+".quantile", w.Quantile)
		count(field+".maxGPUs", w.MaxGPUs, MaxGPUs)
	}
	return errs
}

// zoneMax returns the configured max of a zone (its own, else the default), nil if
// neither is set.
func (c *Config) zoneMax(zone string) *int64 {
	if z, ok := c.Zones[zone]; ok && z.Max != nil {
		return z.Max
	}
	return c.Defaults.Max
}

var weekdays = map[string]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

// parse checks a schedule and fills its parsed fields.
func (s *Schedule) parse() []string {
	var errs []string
	if s.TimeZone == "" {
		errs = append(errs, "timeZone: required (an IANA name such as Europe/Paris, or UTC)")
	} else if loc, err := time.LoadLocation(s.TimeZone); err != nil {
		errs = append(errs, fmt.Sprintf("timeZone: unknown time zone %q", s.TimeZone))
	} else {
		s.loc = loc
	}
	if len(s.Days) == 0 {
		for i := range s.days {
			s.days[i] = true
		}
	}
	for _, d := range s.Days {
		wd, ok := weekdays[d]
		if !ok {
			errs = append(errs, fmt.Sprintf("days: unknown day %q (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)", d))
			continue
		}
		s.days[wd] = true
	}
	var err error
	if s.start, err = clock(s.Start, false); err != nil {
		errs = append(errs, "start: "+err.Error())
	}
	if s.end, err = clock(s.End, true); err != nil {
		errs = append(errs, "end: "+err.Error())
	}
	if len(errs) == 0 && s.start == s.end {
		errs = append(errs, fmt.Sprintf("end: equals start %q; use 00:00 to 24:00 for a whole day", s.Start))
	}
	return errs
}

// clock parses "HH:MM" into minutes after midnight; "24:00" only for an end.
func clock(v string, end bool) (int, error) {
	var h, m int
	if len(v) != 5 || v[2] != ':' {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	if _, err := fmt.Sscanf(v, "%02d:%02d", &h, &m); err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	if end && h == 24 && m == 0 {
		return 24 * 60, nil
	}
	if h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day", v)
	}
	return h*60 + m, nil
}

// Active reports whether the schedule's window contains t. Windows are wall-clock
// times in the schedule's time zone, so they follow daylight saving. A window whose
// end is not after its start runs past midnight; Days lists the days it starts on.
func (s Schedule) Active(t time.Time) bool {
	if s.loc == nil {
		return false
	}
	lt := t.In(s.loc)
	m := lt.Hour()*60 + lt.Minute()
	day := lt.Weekday()
	if s.start < s.end {
		return s.days[day] && m >= s.start && m < s.end
	}
	yesterday := (day + 6) % 7
	return (s.days[day] && m >= s.start) || (s.days[yesterday] && m < s.end)
}

// ScarcityConfig returns the scarcity settings with defaults applied.
func (c Config) ScarcityConfig() ScarcityConfig {
	sc := DefaultScarcityConfig()
	if d := c.Scarcity.PendingThreshold; d != nil {
		sc.PendingThreshold = d.Duration
	}
	if d := c.Scarcity.InitialBackoff; d != nil {
		sc.InitialBackoff = d.Duration
	}
	if d := c.Scarcity.MaxBackoff; d != nil {
		sc.MaxBackoff = d.Duration
	}
	return sc
}

// Workload returns the override for a ScaledObject key, if any.
func (c Config) Workload(key string) (WorkloadConfig, bool) {
	for _, w := range c.Workloads {
		if w.Key() == key {
			return w, true
		}
	}
	return WorkloadConfig{}, false
}

// LeadTimeFor returns the forecast lead time of a workload: its override, else the
// config's, else DefaultLeadTime.
func (c Config) LeadTimeFor(key string) time.Duration {
	if w, ok := c.Workload(key); ok && w.LeadTime != nil {
		return w.LeadTime.Duration
	}
	if c.LeadTime != nil {
		return c.LeadTime.Duration
	}
	return DefaultLeadTime
}

// QuantileFor returns the forecast quantile of a workload: its override, else the
// config's, else DefaultQuantile.
func (c Config) QuantileFor(key string) float64 {
	if w, ok := c.Workload(key); ok && w.Quantile != nil {
		return *w.Quantile
	}
	if c.Quantile != nil {
		return *c.Quantile
	}
	return DefaultQuantile
}

// Covers reports whether a ScaledObject with these labels and annotations gets
// headroom. The annotation AnnotationEnabled decides when present ("true" opts in,
// anything else opts out); otherwise the coverage selector decides; with neither,
// the ScaledObject is not covered. Opt-in by default, because placeholders cost GPUs.
func (c Config) Covers(objLabels, annotations map[string]string) bool {
	if v, ok := annotations[AnnotationEnabled]; ok {
		return v == "true"
	}
	if c.selector == nil && c.Coverage.Selector != nil {
		// Config built by hand rather than by ParseConfig.
		sel, err := metav1.LabelSelectorAsSelector(c.Coverage.Selector)
		if err != nil {
			return false
		}
		c.selector = sel
	}
	return c.selector != nil && c.selector.Matches(labels.Set(objLabels))
}

// UnknownZones returns a warning per configured zone (in zones or in a schedule)
// that is not among known (the zones of the cluster's nodes). An unknown zone is not
// an error: the autoscaler may create the first node of a zone from zero.
func UnknownZones(c Config, known []string) []string {
	k := map[string]bool{}
	for _, z := range known {
		k[z] = true
	}
	seen := map[string]bool{}
	var warns []string
	warn := func(z, where string) {
		if !k[z] && !seen[z+where] {
			seen[z+where] = true
			warns = append(warns, fmt.Sprintf("%s: zone %q has no nodes in the cluster", where, z))
		}
	}
	for z := range c.Zones {
		warn(z, "zones")
	}
	for i, s := range c.Schedules {
		for z := range s.Zones {
			warn(z, fmt.Sprintf("schedules[%d].zones", i))
		}
	}
	sort.Strings(warns)
	return warns
}

// ResolvePolicy applies the config at time now: zone floors and maxima (defaults for
// unlisted zones; no max means MaxGPUs), then every active schedule in list order
// (later ones win), each floor capped at its zone's max. The budget is the flag's
// value, lowered (never raised) by the config's budgetGPUs. Policy.Notes says what
// was applied.
func ResolvePolicy(c Config, now time.Time, budgetGPUs int64) Policy {
	limits := func(z ZoneConfig, base ZoneLimits) ZoneLimits {
		l := base
		if z.Min != nil {
			l.FloorGPUs = *z.Min
		}
		if z.Max != nil {
			l.MaxGPUs = *z.Max
		}
		return l
	}
	p := Policy{
		Default:         limits(c.Defaults, ZoneLimits{MaxGPUs: MaxGPUs}),
		Zones:           map[string]ZoneLimits{},
		BudgetGPUs:      max(budgetGPUs, 0),
		Cooldown:        DefaultCooldown,
		KeepUtilization: DefaultKeepUtilization,
		WorkloadMaxGPUs: map[string]int64{},
	}
	for name, z := range c.Zones {
		p.Zones[name] = limits(z, p.Default)
	}
	if c.BudgetGPUs != nil {
		if *c.BudgetGPUs < p.BudgetGPUs {
			p.BudgetGPUs = *c.BudgetGPUs
			p.Notes = append(p.Notes, fmt.Sprintf("budget lowered by config to %d GPUs", *c.BudgetGPUs))
		} else if *c.BudgetGPUs > p.BudgetGPUs {
			p.Notes = append(p.Notes, fmt.Sprintf("config budgetGPUs %d ignored: the config cannot raise the flag's budget of %d GPUs", *c.BudgetGPUs, p.BudgetGPUs))
		}
	}
	if c.Cooldown != nil {
		p.Cooldown = c.Cooldown.Duration
	}
	if c.KeepUtilization != nil {
		p.KeepUtilization = *c.KeepUtilization
	}
	for _, w := range c.Workloads {
		if w.MaxGPUs != nil {
			p.WorkloadMaxGPUs[w.Key()] = *w.MaxGPUs
		}
	}
	for i, s := range c.Schedules {
		if !s.Active(now) {
			continue
		}
		name := s.Name
		if name == "" {
			name = fmt.Sprintf("schedules[%d]", i)
		}
		if s.Min != nil {
			p.Default.FloorGPUs = *s.Min
			for z, l := range p.Zones {
				l.FloorGPUs = *s.Min
				p.Zones[z] = l
			}
		}
		zs := make([]string, 0, len(s.Zones))
		for z := range s.Zones {
			zs = append(zs, z)
		}
		sort.Strings(zs)
		for _, z := range zs {
			l, ok := p.Zones[z]
			if !ok {
				l = p.Default
			}
			l.FloorGPUs = *s.Zones[z].Min
			p.Zones[z] = l
		}
		p.Notes = append(p.Notes, "schedule "+name+" active")
	}
	p.Default.FloorGPUs = min(p.Default.FloorGPUs, p.Default.MaxGPUs)
	for z, l := range p.Zones {
		l.FloorGPUs = min(l.FloorGPUs, l.MaxGPUs)
		p.Zones[z] = l
	}
	return p
}
