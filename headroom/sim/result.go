package sim

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Result is one policy's score.
type Result struct {
	Policy string `json:"policy"`
	Kind   string `json:"kind"`

	// ReplicaStarts counts replica pods created (by the HPA, KEDA activation, or
	// to replace an evicted pod); WaitedStarts those that waited for a node
	// (pending at least one tick, including pods deleted or still pending).
	ReplicaStarts int     `json:"replicaStarts"`
	WaitedStarts  int     `json:"waitedStarts"`
	WaitedShare   float64 `json:"waitedShare"`
	// Replica wait: creation to binding, seconds.
	WaitP50 float64 `json:"waitP50Seconds"`
	WaitP95 float64 `json:"waitP95Seconds"`
	WaitP99 float64 `json:"waitP99Seconds"`
	WaitMax float64 `json:"waitMaxSeconds"`

	Requests  int64 `json:"requests"`
	Completed int64 `json:"completed"`
	// Request queueing delay, arrival to admission into a replica, seconds.
	DelayP50     float64 `json:"delayP50Seconds"`
	DelayP99     float64 `json:"delayP99Seconds"`
	DelayMean    float64 `json:"delayMeanSeconds"`
	OverSLOShare float64 `json:"overSLOShare"`

	GPUHoursUsed         float64 `json:"gpuHoursUsed"`
	GPUHoursPlaceholders float64 `json:"gpuHoursPlaceholders"`
	// GPUHoursIdleNodes counts GPUs on nodes still provisioning and free GPUs on
	// usable nodes.
	GPUHoursIdleNodes float64 `json:"gpuHoursIdleNodes"`
	GPUHoursTotal     float64 `json:"gpuHoursTotal"`
	// CostVsOracle is GPUHoursTotal over the oracle's (0 without an oracle run).
	CostVsOracle float64 `json:"costVsOracle"`

	ScaleUps       int `json:"nodeScaleUps"`
	ScaleDowns     int `json:"nodeScaleDowns"`
	FailedScaleUps int `json:"failedScaleUps"`
	Preemptions    int `json:"preemptions"`
	Evictions      int `json:"evictions"`

	// LeadTimeSeconds and LeadTimeSource are the forecast policy's lead time at
	// its last plan and where it came from (headroom.Horizon: "measured",
	// "configured (not yet measured)" or "config override"); the oracle's is the
	// configured one.
	LeadTimeSeconds float64 `json:"leadTimeSeconds,omitempty"`
	LeadTimeSource  string  `json:"leadTimeSource,omitempty"`

	Series []Point `json:"series,omitempty"`

	waits []float64
}

// IdleGPUHours is what headroom costs beyond the GPUs that serve: placeholders and
// idle nodes.
func (r *Result) IdleGPUHours() float64 { return r.GPUHoursPlaceholders + r.GPUHoursIdleNodes }

// Point is one time-series sample, in replicas (Capacity: replica-sized slots on
// usable nodes).
type Point struct {
	At         time.Duration `json:"at"`
	Demand     float64       `json:"demand"`
	Desired    float64       `json:"desired"`
	Ready      float64       `json:"ready"`
	Headroom   float64       `json:"headroom"`
	Capacity   float64       `json:"capacity"`
	QueueDepth float64       `json:"queue"`
}

func (r *Result) summarise(hist []int64, tick, slo time.Duration) {
	if r.ReplicaStarts > 0 {
		r.WaitedShare = float64(r.WaitedStarts) / float64(r.ReplicaStarts)
	}
	w := slices.Clone(r.waits)
	slices.Sort(w)
	r.WaitP50, r.WaitP95, r.WaitP99 = quantile(w, 0.5), quantile(w, 0.95), quantile(w, 0.99)
	if len(w) > 0 {
		r.WaitMax = w[len(w)-1]
	}
	var total, over int64
	var sum float64
	lim := ticks(slo, tick)
	for d, c := range hist {
		total += c
		sum += float64(d) * float64(c)
		if d > lim || (d == lim && slo%tick != 0) {
			over += c
		}
	}
	if total > 0 {
		r.OverSLOShare = float64(over) / float64(total)
		r.DelayMean = sum * tick.Seconds() / float64(total)
		r.DelayP50 = histQuantile(hist, total, 0.5) * tick.Seconds()
		r.DelayP99 = histQuantile(hist, total, 0.99) * tick.Seconds()
	}
	r.GPUHoursTotal = r.GPUHoursUsed + r.GPUHoursPlaceholders + r.GPUHoursIdleNodes
}

// quantile is the nearest-rank quantile of sorted values (0 when empty).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// histQuantile is the nearest-rank quantile of a histogram of whole ticks.
func histQuantile(h []int64, total int64, q float64) float64 {
	rank := int64(math.Ceil(q * float64(total)))
	var c int64
	for d, n := range h {
		c += n
		if c >= max(rank, 1) {
			return float64(d)
		}
	}
	return float64(len(h) - 1)
}

// Report is a whole simulation: every policy on the same traffic.
type Report struct {
	Trace    string        `json:"trace"`
	Span     time.Duration `json:"span"`
	Tick     time.Duration `json:"tick"`
	Requests int64         `json:"requests"`
	Zones    []string      `json:"zones"`
	Seed     uint64        `json:"seed"`
	// Settings echoes what the numbers depend on, so a saved report can be
	// reproduced.
	Settings Settings  `json:"settings"`
	Results  []*Result `json:"results"`
}

// Settings is the part of Config a reader of a report needs.
type Settings struct {
	GPUsPerNode    int64   `json:"gpusPerNode"`
	GPUsPerReplica int64   `json:"gpusPerReplica"`
	Concurrency    int     `json:"concurrency"`
	Metric         string  `json:"metric"`
	Target         float64 `json:"target"`
	MinReplicas    int32   `json:"minReplicas"`
	MaxReplicas    int32   `json:"maxReplicas"`
	Provision      string  `json:"provision"`
	GPUAllocatable string  `json:"gpuAllocatable"`
	ImagePull      string  `json:"imagePull"`
	ModelLoad      string  `json:"modelLoad"`
	Prepull        bool    `json:"prepull"`
	SLO            string  `json:"slo"`
	Warmup         string  `json:"warmup"`
}

// Simulate runs every policy over the same traffic, up to parallel at a time (1
// when parallel < 1), and returns the results in the order of policies. Runs are
// independent, so the report does not depend on parallel.
func Simulate(tr *Traffic, cfg Config, policies []PolicySpec, parallel int) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tr == nil || tr.Ticks() < 2 {
		return nil, fmt.Errorf("simulating: traffic has fewer than 2 ticks")
	}
	if len(policies) == 0 {
		return nil, fmt.Errorf("simulating: no policies")
	}
	dem := newDemandCurve(tr, &cfg)
	zw, err := newRun(&cfg, tr, dem, PolicySpec{Kind: KindReactive})
	if err != nil {
		return nil, err
	}
	zw.instant, zw.desired = true, make([]int32, tr.Ticks())
	if _, err := zw.simulate(); err != nil {
		return nil, fmt.Errorf("simulating the zero-wait demand: %w", err)
	}
	dem.zeroWait = zw.desired
	rep := &Report{Trace: tr.Name, Span: time.Duration(tr.Ticks()) * tr.Tick, Tick: tr.Tick, Requests: tr.Total(), Zones: cfg.Zones, Seed: cfg.Seed, Results: make([]*Result, len(policies)),
		Settings: Settings{GPUsPerNode: cfg.GPUsPerNode, GPUsPerReplica: cfg.GPUsPerReplica, Concurrency: cfg.Concurrency, Metric: cfg.Metric,
			Target: cfg.Target, MinReplicas: cfg.MinReplicas, MaxReplicas: cfg.MaxReplicas, Provision: cfg.Provision.String(),
			GPUAllocatable: cfg.GPUAllocatable.String(), ImagePull: cfg.ImagePull.String(), ModelLoad: cfg.ModelLoad.String(),
			Prepull: cfg.Prepull, SLO: cfg.SLO.String(), Warmup: cfg.Warmup.String()}}
	errs := make([]error, len(policies))
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, p := range policies {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := newRun(&cfg, tr, dem, p)
			if err == nil {
				rep.Results[i], err = r.simulate()
			}
			if err != nil {
				errs[i] = fmt.Errorf("simulating policy %s: %w", p.Name(), err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	var oracle *Result
	for _, r := range rep.Results {
		if r.Kind == KindOracle {
			oracle = r
		}
	}
	if oracle != nil && oracle.GPUHoursTotal > 0 {
		for _, r := range rep.Results {
			r.CostVsOracle = r.GPUHoursTotal / oracle.GPUHoursTotal
		}
	}
	return rep, nil
}
