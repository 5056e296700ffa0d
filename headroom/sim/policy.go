package sim

import (
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// demandCurve is the open-loop demand in replicas, from the traffic alone: by
// Little's law a replica at its target holds Target requests, so the replicas
// wanted are the arrival-weighted service time over DemandWindow divided by the
// target. It is the "demand" drawn in plots and what the oracle knows in advance.
type demandCurve struct {
	want []int32
	// zeroWait is the HPA's desired replicas per tick in a cluster where a node
	// appears the moment a pod needs one (model load still applies): what the
	// workload asks for when no replica waits for a node. The oracle knows it in
	// advance; plots draw it as demand.
	zeroWait []int32
}

func newDemandCurve(tr *Traffic, cfg *Config) *demandCurve {
	n := tr.Ticks()
	w := max(ticks(cfg.DemandWindow, tr.Tick), 1)
	dec := cfg.Perf.Decode(cfg.Target)
	work := make([]float64, n)
	for k := range n {
		work[k] = float64(tr.Ctx[k])*cfg.Perf.PrefillPerToken + float64(tr.Gen[k])*dec
	}
	dc := &demandCurve{want: make([]int32, n)}
	var sum float64
	for k := range n {
		sum += work[k]
		if k >= w {
			sum -= work[k-w]
		}
		span := float64(min(k+1, w)) * tr.Tick.Seconds()
		v := math.Ceil(math.Max(sum, 0)/span/cfg.Target - 1e-9)
		dc.want[k] = int32(min(max(v, float64(cfg.MinReplicas)), float64(cfg.MaxReplicas)))
	}
	return dc
}

// peakAhead returns, for every tick, the largest value in (t, t+h] (a sliding
// window maximum, computed once per run).
func peakAhead(want []int32, h int) []int32 {
	n := len(want)
	out := make([]int32, n)
	var dq []int // indices with decreasing values
	// Walk backwards: the window of t is (t, t+h].
	for t := n - 1; t >= 0; t-- {
		if t+1 < n {
			i := t + 1
			for len(dq) > 0 && want[dq[len(dq)-1]] <= want[i] {
				dq = dq[:len(dq)-1]
			}
			dq = append(dq, i)
		}
		for len(dq) > 0 && dq[0] > t+h {
			dq = dq[1:]
		}
		if len(dq) > 0 {
			out[t] = want[dq[0]]
		} else {
			out[t] = want[t]
		}
	}
	return out
}

// control is one pass of the policy: it sets the placeholder count per zone.
func (r *run) control() error {
	switch r.pol.Kind {
	case KindReactive:
		r.spread(0)
	case KindStatic:
		for z := range r.zones {
			r.setHolders(z, r.pol.N)
		}
	case KindProportional:
		n := int32(0)
		if r.pol.Fraction > 0 {
			n = max(int32(math.Ceil(r.pol.Fraction*float64(len(r.replicas))-1e-9)), 1)
		}
		r.spread(n)
	case KindSchedule:
		t := r.now()
		n := r.pol.count(t.Hour()*60 + t.Minute())
		for z := range r.zones {
			r.setHolders(z, n)
		}
	case KindForecast, KindOracle:
		return r.plan()
	default:
		return fmt.Errorf("unknown policy kind %q", r.pol.Kind)
	}
	return nil
}

// spread sets n placeholders over the zones, the remainder to the first zones.
func (r *run) spread(n int32) {
	for z := range r.zones {
		k := n / int32(r.zones)
		if int32(z) < n%int32(r.zones) {
			k++
		}
		r.setHolders(z, k)
	}
}

// plan is the controller's pass: snapshot, demand, ResolvePolicy, Plan,
// ApplyCooldown and the scarcity state machine, all from package headroom.
func (r *run) plan() error {
	now := r.now()
	cfg := r.pol.Headroom
	w := r.workload()
	lead, src := cfg.LeadTimeFor(w.Key()), "configured"
	if r.lt != nil {
		// The forecast plans over the measured lead time, as headroomd does; the
		// oracle keeps the configured one.
		lead, src = headroom.Horizon(r.lt, cfg, w.Key())
	}
	r.res.LeadTimeSeconds, r.res.LeadTimeSource = lead.Seconds(), src
	budget := r.pol.BudgetGPUs
	if budget <= 0 {
		budget = headroom.MaxBudgetGPUs
	}
	var pol headroom.Policy
	var dem headroom.Demand
	pending := w.PendingReplicas
	if r.pol.Kind == KindOracle {
		// The oracle holds exactly the future peak: no floors, no cooldown.
		pol = headroom.ResolvePolicy(headroom.Config{}, now, budget)
		pol.Cooldown = 0
		if r.ahead == nil {
			r.ahead = peakAhead(r.dem.zeroWait, ticks(lead, r.tick))
		}
		want := min(r.ahead[r.t], r.cfg.MaxReplicas)
		dem = headroom.Demand{Replicas: max(want-w.ReadyReplicas-w.StartingReplicas, 0), Reason: fmt.Sprintf("oracle peak %d", want)}
	} else {
		// The controller's own mapping: the same signals observed, the same
		// prediction turned into demand (headroom.ForecastSignals, ForecastNeed).
		pol = headroom.ResolvePolicy(cfg, now, budget)
		if err := r.fc.Observe(now, headroom.ForecastSignals(w)); err != nil {
			return fmt.Errorf("observing signals at %v: %w", now, err)
		}
		dem = headroom.ForecastNeed(w, r.fc.Predict(now, lead), lead)
	}
	snap := headroom.Snapshot{Workloads: []headroom.Workload{w}, Scarce: r.scarce.Scarce()}
	for _, n := range r.nodes {
		snap.Nodes = append(snap.Nodes, headroom.Node{NodeInfo: r.nodeInfo(n), Used: nodes.Resources{GPUs: map[corev1.ResourceName]int64{r.shape.GPUResource: int64(n.replicas) * r.shape.GPUs}}})
	}
	if pending > 0 {
		snap.Pending = []headroom.PendingPods{{Shape: r.shape, Count: pending, Workload: w.Key()}}
	}
	d := headroom.Plan(snap, map[string]headroom.Demand{w.Key(): dem}, pol)
	d, r.cool = headroom.ApplyCooldown(r.cool, d, now, pol.Cooldown)
	r.budget = d.BudgetGPUs
	for z, name := range r.cfg.Zones {
		if m, ok := d.ZoneMaxGPUs[name]; ok {
			r.caps[z] = m
		} else {
			r.caps[z] = pol.Limits(name).MaxGPUs
		}
	}
	counts := make([]int32, r.zones)
	for _, p := range d.Placeholders {
		for z, name := range r.cfg.Zones {
			if p.Zone == name && p.ShapeHash == r.hash {
				counts[z] += p.Replicas
			}
		}
	}
	for z := range r.zones {
		r.setHolders(z, counts[z])
	}
	// Scarcity: a zone whose placeholders stay Pending with no node added is out
	// of GPUs; the next plan moves its share elsewhere.
	var obs []headroom.ScarcityObservation
	added := map[string]time.Time{}
	for z, name := range r.cfg.Zones {
		o := headroom.ScarcityObservation{Key: headroom.ZoneShape{Zone: name, ShapeHash: r.hash}}
		for _, p := range r.holders[z] {
			if p.bound < 0 && (o.OldestPending.IsZero() || r.at(p.created).Before(o.OldestPending)) {
				o.OldestPending = r.at(p.created)
			}
		}
		obs = append(obs, o)
		if r.lastNodeAddedAt[z] >= 0 {
			added[name] = r.at(r.lastNodeAddedAt[z])
		}
	}
	r.scarce, _ = headroom.UpdateScarcity(r.scarce, obs, added, now, cfg.ScarcityConfig())
	return nil
}

func (r *run) at(t int) time.Time { return r.tr.Start.Add(time.Duration(t) * r.tick) }
