package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// Config is the simulated cluster and workload. DefaultConfig gives the issue's
// reference setting; every field can be changed from the CLI.
type Config struct {
	// Zones are the zones the workload spreads over, each with a node group.
	Zones []string
	// GPUsPerNode and GPUsPerReplica size nodes and pods (a MIG slice counts as
	// one GPU of its resource).
	GPUsPerNode    int64
	GPUsPerReplica int64
	GPUResource    string
	// Concurrency is the most requests one replica serves at once.
	Concurrency int
	// Perf is the service-time model.
	Perf Perf

	// Metric is what KEDA reads: "queue" (waiting requests) or "system" (waiting
	// plus running, like vLLM's num_requests_waiting+running).
	Metric string
	// Target is the metric per replica the HPA aims for (AverageValue).
	Target float64
	// ActivationThreshold: KEDA activates a workload at zero when the metric is
	// above it, and scales to zero after CooldownPeriod at or below it.
	ActivationThreshold float64
	PollingInterval     time.Duration
	CooldownPeriod      time.Duration
	MinReplicas         int32
	MaxReplicas         int32
	// HPA defaults (kube-controller-manager and autoscaling/v2 behavior).
	HPASyncPeriod          time.Duration
	HPATolerance           float64
	ScaleDownStabilization time.Duration

	// ImagePull is skipped on a node that already has the image; ModelLoad is
	// paid by every replica. Prepull makes placeholders pull the image.
	ImagePull Dist
	ModelLoad Dist
	Prepull   bool

	// Cluster autoscaler stand-in.
	ScanInterval           time.Duration
	Provision              Dist // node created until Ready
	GPUAllocatable         Dist // Ready until nvidia.com/gpu is allocatable
	MaxNodesPerZone        int
	ScaleDownUnneeded      time.Duration
	ScaleDownDelayAfterAdd time.Duration
	ScaleDownUtilization   float64
	ExpendableCutoff       int32
	PlaceholderPriority    int32
	Stockouts              []Stockout
	BackoffInitial         time.Duration
	BackoffMax             time.Duration

	// ControllerInterval is how often the headroom controller (and every other
	// policy) re-plans: the controller's resync, 30 s, the step the forecast
	// package is backtested at. (At a 15 s step the forecaster's point forecast
	// was seen to diverge after about a day on ServeGen; see the README.)
	ControllerInterval time.Duration
	// SLO is the request queueing delay counted as too long.
	SLO time.Duration
	// DemandWindow averages arrivals for the demand curve and the oracle.
	DemandWindow time.Duration
	// Warmup is simulated but not scored (replica starts, request delays, GPU
	// time, scale-ups), at most half the run: the first minutes of a replay have
	// no history for the forecaster and a burst there cannot be prepared for by
	// any policy, the oracle included. Default 10 min, the default lead time.
	Warmup time.Duration
	// WarmStart: the run starts with as many ready replicas as the peak demand
	// of its first WarmStart.
	WarmStart time.Duration
	// Seed drives every random draw of the cluster (delays).
	Seed uint64
	// Samples is the number of time-series points kept per policy for plots.
	Samples int
	// CheckInvariants verifies GPU allocation, placeholder caps and request
	// conservation on every tick (tests; it slows a run down).
	CheckInvariants bool
	// Progress, when set, is called now and then with the share of ticks done of
	// one policy's run. It must be safe for concurrent use.
	Progress func(policy string, done float64)
}

// Stockout makes a zone's node group fail every scale-up in [From, To), offsets
// from the start of the trace.
type Stockout struct {
	Zone     string
	From, To time.Duration
}

// DefaultConfig is the reference setting: 3 zones of 8-GPU nodes, 2-GPU
// replicas of llama2-70b serving 32 requests each, KEDA on requests in the system
// with 24 per replica, 5 min node provisioning plus up to a minute for the GPU to
// become allocatable, 1 min image pull and 2 min model load.
func DefaultConfig() Config {
	return Config{
		Zones:                  []string{"zone-a", "zone-b", "zone-c"},
		GPUsPerNode:            8,
		GPUsPerReplica:         2,
		GPUResource:            "nvidia.com/gpu",
		Concurrency:            32,
		Perf:                   DefaultPerf(),
		Metric:                 "system",
		Target:                 24,
		PollingInterval:        30 * time.Second,
		CooldownPeriod:         300 * time.Second,
		MinReplicas:            1,
		MaxReplicas:            100,
		HPASyncPeriod:          15 * time.Second,
		HPATolerance:           0.1,
		ScaleDownStabilization: 300 * time.Second,
		ImagePull:              Const(time.Minute),
		ModelLoad:              Const(2 * time.Minute),
		Prepull:                true,
		ScanInterval:           10 * time.Second,
		Provision:              Dist{Kind: "uniform", A: 4*time.Minute + 30*time.Second, B: 5*time.Minute + 30*time.Second},
		GPUAllocatable:         Dist{Kind: "uniform", A: 30 * time.Second, B: 90 * time.Second},
		MaxNodesPerZone:        100,
		ScaleDownUnneeded:      10 * time.Minute,
		ScaleDownDelayAfterAdd: 10 * time.Minute,
		ScaleDownUtilization:   0.5,
		ExpendableCutoff:       -10,
		PlaceholderPriority:    -10,
		BackoffInitial:         5 * time.Minute,
		BackoffMax:             30 * time.Minute,
		ControllerInterval:     30 * time.Second,
		SLO:                    5 * time.Second,
		DemandWindow:           time.Minute,
		WarmStart:              5 * time.Minute,
		Warmup:                 10 * time.Minute,
		Samples:                600,
	}
}

// Validate reports every bad setting at once.
func (c Config) Validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if len(c.Zones) == 0 {
		bad("zones: at least one")
	}
	seen := map[string]bool{}
	for _, z := range c.Zones {
		if z == "" || seen[z] {
			bad("zones: empty or repeated zone %q", z)
		}
		seen[z] = true
	}
	if c.GPUsPerReplica <= 0 || c.GPUsPerNode < c.GPUsPerReplica {
		bad("gpus: need 0 < per replica (%d) <= per node (%d)", c.GPUsPerReplica, c.GPUsPerNode)
	}
	if c.Concurrency <= 0 {
		bad("concurrency: must be positive")
	}
	if c.Metric != "queue" && c.Metric != "system" {
		bad("metric: %q, want queue or system", c.Metric)
	}
	if c.Target <= 0 {
		bad("target: must be positive")
	}
	if c.MinReplicas < 0 || c.MaxReplicas < max(c.MinReplicas, 1) {
		bad("replicas: need 0 <= min (%d) <= max (%d), max >= 1", c.MinReplicas, c.MaxReplicas)
	}
	for name, d := range map[string]time.Duration{"polling interval": c.PollingInterval, "HPA sync period": c.HPASyncPeriod, "scan interval": c.ScanInterval, "controller interval": c.ControllerInterval, "demand window": c.DemandWindow} {
		if d <= 0 {
			bad("%s: must be positive", name)
		}
	}
	for name, d := range map[string]time.Duration{"cooldown period": c.CooldownPeriod, "scale-down stabilization": c.ScaleDownStabilization, "scale-down unneeded time": c.ScaleDownUnneeded, "warm-up": c.Warmup, "warm start": c.WarmStart} {
		if d < 0 {
			bad("%s: must not be negative", name)
		}
	}
	if c.SLO <= 0 {
		bad("slo: must be positive")
	}
	if c.ActivationThreshold < 0 || math.IsNaN(c.ActivationThreshold) || math.IsInf(c.ActivationThreshold, 0) {
		bad("activation: must be a finite number >= 0")
	}
	if math.IsNaN(c.Target) || math.IsInf(c.Target, 0) {
		bad("target: must be finite")
	}
	if c.HPATolerance < 0 || math.IsNaN(c.HPATolerance) {
		bad("HPA tolerance: must not be negative")
	}
	if c.MaxNodesPerZone <= 0 {
		bad("max nodes per zone: must be positive")
	}
	if len(c.Perf.Batches) == 0 || len(c.Perf.Batches) != len(c.Perf.DecodePerToken) {
		bad("perf: empty model")
	}
	for _, s := range c.Stockouts {
		if !seen[s.Zone] || s.To <= s.From {
			bad("stockout %s %v-%v: unknown zone or empty window", s.Zone, s.From, s.To)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("simulation config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ParseStockout parses "ZONE@FROM-TO" with offsets as durations, e.g. "zone-b@2h-5h".
func ParseStockout(s string) (Stockout, error) {
	zone, win, ok := strings.Cut(s, "@")
	from, to, ok2 := strings.Cut(win, "-")
	if !ok || !ok2 {
		return Stockout{}, fmt.Errorf("parsing stockout %q: want ZONE@FROM-TO", s)
	}
	f, err := time.ParseDuration(from)
	if err != nil {
		return Stockout{}, fmt.Errorf("parsing stockout %q: %w", s, err)
	}
	t, err := time.ParseDuration(to)
	if err != nil {
		return Stockout{}, fmt.Errorf("parsing stockout %q: %w", s, err)
	}
	return Stockout{Zone: zone, From: f, To: t}, nil
}

// Policy kinds.
const (
	KindReactive     = "reactive"
	KindStatic       = "static"
	KindProportional = "proportional"
	KindSchedule     = "schedule"
	KindForecast     = "forecast"
	KindOracle       = "oracle"
)

// PolicySpec is one headroom policy to score.
type PolicySpec struct {
	Kind string
	// N is static's placeholders per zone.
	N int32
	// Fraction is proportional's placeholders as a share of the current replicas
	// (rounded up, at least one when positive), like CapacityBuffer's percentage.
	Fraction float64
	// Windows are schedule's time windows (first match wins; else 0).
	Windows []Window
	// Headroom is the controller's ConfigMap for forecast (and the lead time of
	// the oracle), parsed by headroom.ParseConfig.
	Headroom headroom.Config
	// BudgetGPUs is the controller's --budget-gpus flag for forecast and oracle.
	BudgetGPUs int64
}

// Name is a short label for tables and plots.
func (p PolicySpec) Name() string {
	switch p.Kind {
	case KindStatic:
		return fmt.Sprintf("static-%d", p.N)
	case KindProportional:
		return "proportional-" + strconv.FormatFloat(p.Fraction, 'g', -1, 64)
	}
	return p.Kind
}

// Window is a daily window [Start, End) in minutes after midnight of the trace's
// clock (End before Start wraps past midnight) with N placeholders per zone.
type Window struct {
	Start, End int
	N          int32
}

// ParseWindows parses "08:00-20:00=2,20:00-23:00=1".
func ParseWindows(s string) ([]Window, error) {
	var ws []Window
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		span, n, ok := strings.Cut(part, "=")
		a, b, ok2 := strings.Cut(span, "-")
		if !ok || !ok2 {
			return nil, fmt.Errorf("parsing schedule window %q: want HH:MM-HH:MM=N", part)
		}
		var w Window
		var err error
		if w.Start, err = minutes(a); err != nil {
			return nil, fmt.Errorf("parsing schedule window %q: %w", part, err)
		}
		if w.End, err = minutes(b); err != nil {
			return nil, fmt.Errorf("parsing schedule window %q: %w", part, err)
		}
		v, err := strconv.ParseInt(n, 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("parsing schedule window %q: bad count %q", part, n)
		}
		w.N = int32(v)
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("parsing schedule %q: no windows", s)
	}
	return ws, nil
}

func minutes(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("parsing time of day %q: %w", s, err)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// count returns the scheduled placeholders at a minute of the day.
func (p PolicySpec) count(minute int) int32 {
	for _, w := range p.Windows {
		in := minute >= w.Start && minute < w.End
		if w.End <= w.Start {
			in = minute >= w.Start || minute < w.End
		}
		if in {
			return w.N
		}
	}
	return 0
}
