package forecast

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// LeadTimeConfig configures [LeadTime].
type LeadTimeConfig struct {
	// Percentile of the total lead time to return, in (0, 1]; default 0.9.
	Percentile float64
	// MinSamples a part (node or pod) needs before its measurements replace
	// its fallback.
	MinSamples int
	// Capacity is how many recent samples each key keeps (a ring buffer).
	Capacity int
	// NodeFallback is used for node provisioning (creation until
	// nvidia.com/gpu is allocatable) until MinSamples exist for the zone and
	// GPU product.
	NodeFallback time.Duration
	// PodFallback is used for pod creation-to-Ready (scheduling, image pull,
	// model load) until MinSamples exist for the workload.
	PodFallback time.Duration
	// Overrides fixes the horizon of a workload, whatever was measured.
	Overrides map[string]time.Duration
}

// DefaultLeadTimeConfig: p90 of the sum, 10 + 3 minutes until five samples
// of each part exist, 64 samples kept per key.
func DefaultLeadTimeConfig() LeadTimeConfig {
	return LeadTimeConfig{
		Percentile:   0.9,
		MinSamples:   5,
		Capacity:     64,
		NodeFallback: 10 * time.Minute,
		PodFallback:  3 * time.Minute,
	}
}

// Validate reports the first invalid setting.
func (c LeadTimeConfig) Validate() error {
	switch {
	case !(c.Percentile > 0 && c.Percentile <= 1):
		return fmt.Errorf("lead time: percentile %v must be in (0, 1]", c.Percentile)
	case c.Capacity < 1 || c.Capacity > 1024:
		return fmt.Errorf("lead time: capacity %d must be in [1, 1024]", c.Capacity)
	case c.MinSamples < 1 || c.MinSamples > c.Capacity:
		return fmt.Errorf("lead time: min samples %d must be in [1, capacity %d]", c.MinSamples, c.Capacity)
	case c.NodeFallback < 0 || c.PodFallback < 0:
		return fmt.Errorf("lead time: fallbacks %v, %v must be >= 0", c.NodeFallback, c.PodFallback)
	}
	for w, d := range c.Overrides {
		if d <= 0 {
			return fmt.Errorf("lead time: override for %q is %v, must be > 0", w, d)
		}
	}
	return nil
}

// NodeKey identifies a pool of interchangeable GPU nodes.
type NodeKey struct{ Zone, GPUProduct string }

// LeadSource says where a horizon came from, for logs and metrics.
type LeadSource string

const (
	LeadOverride LeadSource = "override" // the workload's configured override
	LeadMeasured LeadSource = "measured" // both parts measured
	LeadPartial  LeadSource = "partial"  // one part measured, the other its fallback
	LeadFallback LeadSource = "fallback" // both parts from their fallbacks
)

// LeadTime estimates how far ahead capacity must be asked for: the time a
// new GPU node takes to become allocatable plus the time the workload's pod
// takes from creation to Ready.
//
// The two parts are measured separately (nodes per zone and GPU product,
// pods per workload) because they vary on different keys, then combined as
// the P-th percentile of the SUM under independence: with node samples
// n₁..n_a and pod samples p₁..p_b, the empirical distribution of n_i + p_j
// over all a·b pairs. That is tighter than adding the two percentiles (which
// would assume the slowest node always meets the slowest pod) and still a
// high percentile of what a scale-up actually waits. Each key keeps its
// last Capacity samples in a ring, so memory is bounded and old behaviour
// (a fixed image cache, a new AMI) ages out. A part with fewer than
// MinSamples samples uses its fallback instead.
type LeadTime struct {
	cfg   LeadTimeConfig
	nodes map[NodeKey]*ring
	pods  map[string]*ring
}

// ring is a fixed-capacity buffer of durations in seconds.
type ring struct {
	v    []float64
	head int
	n    int
}

func (r *ring) add(x float64) {
	if r.n < len(r.v) {
		r.v[(r.head+r.n)%len(r.v)] = x
		r.n++
		return
	}
	r.v[r.head] = x
	r.head = (r.head + 1) % len(r.v)
}

func (r *ring) values() []float64 {
	if r == nil {
		return nil
	}
	out := make([]float64, 0, r.n)
	for i := range r.n {
		out = append(out, r.v[(r.head+i)%len(r.v)])
	}
	return out
}

// NewLeadTime returns an estimator with no samples.
func NewLeadTime(cfg LeadTimeConfig) (*LeadTime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Overrides = maps.Clone(cfg.Overrides) // the caller's map may change under a reload
	return &LeadTime{cfg: cfg, nodes: map[NodeKey]*ring{}, pods: map[string]*ring{}}, nil
}

func checkDuration(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: duration %v is negative", ErrInvalidValue, d)
	}
	return nil
}

// ObserveNode records how long a node of the pool took from creation until
// its GPUs were allocatable.
func (l *LeadTime) ObserveNode(k NodeKey, d time.Duration) error {
	if err := checkDuration(d); err != nil {
		return fmt.Errorf("node lead time for %s/%s: %w", k.Zone, k.GPUProduct, err)
	}
	r := l.nodes[k]
	if r == nil {
		r = &ring{v: make([]float64, l.cfg.Capacity)}
		l.nodes[k] = r
	}
	r.add(d.Seconds())
	return nil
}

// ObservePod records how long one of the workload's pods took from creation
// to Ready.
func (l *LeadTime) ObservePod(workload string, d time.Duration) error {
	if err := checkDuration(d); err != nil {
		return fmt.Errorf("pod lead time for %s: %w", workload, err)
	}
	r := l.pods[workload]
	if r == nil {
		r = &ring{v: make([]float64, l.cfg.Capacity)}
		l.pods[workload] = r
	}
	r.add(d.Seconds())
	return nil
}

// ForgetWorkload drops a deleted workload's samples.
func (l *LeadTime) ForgetWorkload(workload string) { delete(l.pods, workload) }

// NodePercentile is the configured percentile of the pool's node lead time
// and whether it is measured (false: the fallback). For metrics.
func (l *LeadTime) NodePercentile(k NodeKey) (time.Duration, bool) {
	v := l.part(l.nodes[k])
	if v == nil {
		return l.cfg.NodeFallback, false
	}
	return seconds(percentile(v, l.cfg.Percentile)), true
}

// PodPercentile is the configured percentile of the workload's pod lead time
// and whether it is measured. For metrics.
func (l *LeadTime) PodPercentile(workload string) (time.Duration, bool) {
	v := l.part(l.pods[workload])
	if v == nil {
		return l.cfg.PodFallback, false
	}
	return seconds(percentile(v, l.cfg.Percentile)), true
}

// part returns a key's samples, or nil while there are too few of them.
func (l *LeadTime) part(r *ring) []float64 {
	if r == nil || r.n < l.cfg.MinSamples {
		return nil
	}
	return r.values()
}

// Horizon returns the forecast horizon for a workload whose new pods would
// land on nodes of pool k. Cost: O(a·b·log(a·b)) for a, b samples, at most
// Capacity² (4096 pairs by default): call it once per workload per pass.
func (l *LeadTime) Horizon(workload string, k NodeKey) (time.Duration, LeadSource) {
	if d, ok := l.cfg.Overrides[workload]; ok {
		return d, LeadOverride
	}
	nodes := l.part(l.nodes[k])
	pods := l.part(l.pods[workload])
	switch {
	case nodes == nil && pods == nil:
		return l.cfg.NodeFallback + l.cfg.PodFallback, LeadFallback
	case nodes == nil:
		return l.cfg.NodeFallback + seconds(percentile(pods, l.cfg.Percentile)), LeadPartial
	case pods == nil:
		return seconds(percentile(nodes, l.cfg.Percentile)) + l.cfg.PodFallback, LeadPartial
	}
	sums := make([]float64, 0, len(nodes)*len(pods))
	for _, n := range nodes {
		for _, p := range pods {
			sums = append(sums, n+p)
		}
	}
	return seconds(percentile(sums, l.cfg.Percentile)), LeadMeasured
}

// percentile returns the p-quantile of v by the nearest-rank method (the
// smallest sample with at least p of the samples at or below it); it sorts v.
func percentile(v []float64, p float64) float64 {
	slices.Sort(v)
	k := int(math.Ceil(p*float64(len(v)))) - 1
	k = max(0, min(k, len(v)-1))
	return v[k]
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }

// NodeKeys returns the node pools with samples, sorted by zone then product.
func (l *LeadTime) NodeKeys() []NodeKey {
	keys := make([]NodeKey, 0, len(l.nodes))
	for k := range l.nodes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b NodeKey) int {
		if a.Zone != b.Zone {
			return strings.Compare(a.Zone, b.Zone)
		}
		return strings.Compare(a.GPUProduct, b.GPUProduct)
	})
	return keys
}
