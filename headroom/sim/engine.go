package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// The simulated workload's ScaledObject, for config overrides (workloads:
// [{namespace: sim, name: llm, ...}]).
const (
	workloadNamespace = "sim"
	workloadName      = "llm"
	workloadKey       = workloadNamespace + "/" + workloadName
	// simGPUProduct labels every simulated node (one node group shape).
	simGPUProduct = "simulated"
)

// never is a tick that does not come.
const never = math.MaxInt

type node struct {
	id    int
	name  string
	zone  int
	slots int // replica-shaped pods the node holds
	// created, ready and gpuAt are ticks: the node exists, is Ready, and has
	// allocatable GPUs (usable).
	created, ready, gpuAt int
	replicas, holders     int  // bound replica and placeholder pods
	imageAt               int  // tick the image is on the node; never when not pulled
	unneededSince         int  // -1 when needed
	seen                  bool // the scheduler has been told the node is usable
	info                  nodes.NodeInfo
	infoState             int // 0 provisioning, 1 ready, 2 usable: when info was built
}

func (n *node) usable(t int) bool { return t >= n.gpuAt }
func (n *node) free() int         { return n.slots - n.replicas - n.holders }

type pod struct {
	placeholder bool
	zone        int // placeholder's pinned zone; replica's zone once bound
	node        *node
	created     int
	bound       int  // -1 while pending
	readyAt     int  // tick the replica serves; never while pending
	counted     bool // readiness added to run.ready
}

type cohort struct {
	at       int
	n        int64
	ctx, gen float64 // per request
}

type hpaRec struct {
	at   int
	want int32
}

// run is one policy's simulation. Nothing in it is shared with another run except
// the read-only traffic and demand curve.
type run struct {
	cfg    *Config
	tr     *Traffic
	dem    *demandCurve
	pol    PolicySpec
	rng    *rand.Rand
	tick   time.Duration
	t      int
	zones  int
	shape  nodes.Shape
	hash   string
	perPod int // slots per node

	nodes  []*node
	nextID int
	// replicas and holders per zone; pending pods are in the same slices with
	// bound == -1.
	replicas []*pod
	holders  [][]*pod
	want     []int32 // placeholders wanted per zone
	caps     []int64 // zone caps in GPUs from the last plan (forecast, oracle); -1 none
	budget   int64
	dirty    bool // something the scheduler cares about changed
	nextLife int  // earliest pending lifecycle tick (pod ready, node ready)
	ready    int  // ready replicas

	// serving
	queue            []cohort
	qhead            int
	queued, inSvc    int64
	svcCtx, svcGen   float64 // per-request means of the in-service pool
	carry            float64
	arrived, done    int64
	spec             int32
	recs             []hpaRec
	lastActive       int
	metric           float64
	backoffUntil     []int
	backoffLen       []time.Duration
	lastScaleUp      int
	lastNodeAddedAt  []int
	fc               *forecast.Forecaster
	lt               *forecast.LeadTime // forecast: measured node and pod start times
	cool             headroom.CooldownState
	scarce           headroom.ScarcityState
	ahead            []int32 // oracle: demand peak of the next lead time
	instant          bool    // zero-wait pass: nodes appear when a pod needs one
	warmup           int     // ticks before scoring starts
	desired          []int32 // zero-wait pass: the HPA's desired replicas per tick
	res              *Result
	delayHist        []int64 // per tick of queueing delay; last bucket is overflow
	delaySumOverflow float64
}

func ticks(d, tick time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + tick - 1) / tick)
}

func newRun(cfg *Config, tr *Traffic, dem *demandCurve, pol PolicySpec) (*run, error) {
	r := &run{
		cfg:    cfg,
		tr:     tr,
		dem:    dem,
		pol:    pol,
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0xc1a5)),
		tick:   tr.Tick,
		zones:  len(cfg.Zones),
		perPod: int(cfg.GPUsPerNode / cfg.GPUsPerReplica),
		res:    &Result{Policy: pol.Name(), Kind: pol.Kind},
	}
	r.shape = nodes.Shape{GPUResource: corev1.ResourceName(cfg.GPUResource), GPUs: cfg.GPUsPerReplica}
	r.hash = r.shape.Hash()
	r.holders = make([][]*pod, r.zones)
	r.want = make([]int32, r.zones)
	r.caps = make([]int64, r.zones)
	r.backoffUntil = make([]int, r.zones)
	r.backoffLen = make([]time.Duration, r.zones)
	r.lastNodeAddedAt = make([]int, r.zones)
	for z := range r.zones {
		r.caps[z] = -1
		r.lastNodeAddedAt[z] = -1
	}
	r.budget = -1
	r.warmup = min(ticks(cfg.Warmup, r.tick), tr.Ticks()/2)
	r.lastScaleUp = -ticks(cfg.ScaleDownDelayAfterAdd, r.tick)
	r.delayHist = make([]int64, ticks(time.Hour, r.tick)+1)
	r.cool = headroom.CooldownState{Entries: map[headroom.ZoneShape]headroom.CooldownEntry{}}
	r.scarce = headroom.ScarcityState{Entries: map[headroom.ZoneShape]headroom.ScarcityEntry{}}
	if pol.Kind == KindForecast {
		// The config's quantile (or the workload's override) is the level the
		// forecaster predicts, as the controller would set it.
		fcfg := forecast.DefaultConfig()
		fcfg.Quantile.Q = pol.Headroom.QuantileFor(workloadKey)
		fc, err := forecast.NewForecaster(fcfg)
		if err != nil {
			return nil, fmt.Errorf("creating forecaster: %w", err)
		}
		r.fc = fc
		if r.lt, err = forecast.NewLeadTime(headroom.LeadTimeConfig()); err != nil {
			return nil, fmt.Errorf("creating lead-time estimator: %w", err)
		}
	}
	// Warm start: the peak demand of the first WarmStart of traffic, ready on
	// nodes that exist, so no policy pays for a cold cluster (an artefact of
	// starting a replay, not of the policy).
	init := max(cfg.MinReplicas, 1)
	for _, v := range r.dem.want[:min(len(r.dem.want), ticks(cfg.WarmStart, r.tick)+1)] {
		init = max(init, v)
	}
	r.spec = init
	r.recs = []hpaRec{{at: 0, want: init}} // as if the HPA had been steady there
	for i := range int(init) {
		z := i % r.zones
		var n *node
		for _, m := range r.nodes {
			if m.zone == z && m.free() > 0 {
				n = m
				break
			}
		}
		if n == nil {
			n = r.addNode(z, 0, 0, 0)
			n.seen = true
		}
		p := &pod{zone: z, node: n, created: 0, bound: 0, readyAt: 0, counted: true}
		n.replicas++
		n.imageAt = 0
		r.replicas = append(r.replicas, p)
	}
	r.ready = int(init)
	r.nextLife = never
	r.dirty = true
	return r, nil
}

func (r *run) now() time.Time { return r.tr.Start.Add(time.Duration(r.t) * r.tick) }

func (r *run) addNode(zone, created, ready, gpuAt int) *node {
	r.nextID++
	n := &node{id: r.nextID, name: fmt.Sprintf("%s-gpu-%05d", r.cfg.Zones[zone], r.nextID), zone: zone, slots: r.perPod,
		created: created, ready: ready, gpuAt: gpuAt, imageAt: never, unneededSince: -1, infoState: -1}
	r.nodes = append(r.nodes, n)
	r.lastNodeAddedAt[zone] = created
	return n
}

// simulate runs every tick of the traffic.
func (r *run) simulate() (*Result, error) {
	n := r.tr.Ticks()
	poll := ticks(r.cfg.PollingInterval, r.tick)
	sync := ticks(r.cfg.HPASyncPeriod, r.tick)
	scan := ticks(r.cfg.ScanInterval, r.tick)
	ctrl := ticks(r.cfg.ControllerInterval, r.tick)
	every := max(n/max(r.cfg.Samples, 1), 1)
	report := max(n/100, 1)
	for r.t = 0; r.t < n; r.t++ {
		if r.t >= r.nextLife {
			r.lifecycle()
		}
		r.serve()
		if r.t%poll == 0 {
			r.kedaPoll()
		}
		if r.t%sync == 0 {
			r.hpaSync()
		}
		if r.t%ctrl == 0 {
			if err := r.control(); err != nil {
				return nil, err
			}
		}
		if r.dirty {
			r.schedule()
		}
		if r.t%scan == 0 {
			r.autoscale()
			if r.dirty {
				r.schedule()
			}
		}
		if r.instant {
			r.desired[r.t] = r.spec
			continue
		}
		r.account()
		if r.t%every == 0 {
			r.sample()
		}
		if r.cfg.CheckInvariants {
			if err := r.check(); err != nil {
				return nil, fmt.Errorf("policy %s at %v: %w", r.pol.Name(), time.Duration(r.t)*r.tick, err)
			}
		}
		if r.cfg.Progress != nil && r.t%report == 0 {
			r.cfg.Progress(r.pol.Name(), float64(r.t)/float64(n))
		}
	}
	r.finish()
	return r.res, nil
}

// lifecycle applies node and pod transitions that are due and finds the next one.
func (r *run) lifecycle() {
	next := never
	for _, n := range r.nodes {
		if !n.seen && n.gpuAt <= r.t {
			n.seen = true
			r.dirty = true
			if r.lt != nil && n.gpuAt > n.created {
				// As headroomd's node informer: creation until GPUs allocatable.
				_ = r.lt.ObserveNode(forecast.NodeKey{Zone: r.cfg.Zones[n.zone], GPUProduct: simGPUProduct}, time.Duration(n.gpuAt-n.created)*r.tick)
			}
		}
		if n.gpuAt > r.t {
			next = min(next, n.gpuAt)
		}
	}
	for _, p := range r.replicas {
		if p.bound < 0 || p.counted {
			continue
		}
		if p.readyAt <= r.t {
			p.counted = true
			r.ready++
			if r.lt != nil && p.readyAt > p.created {
				// As headroomd's pod informer: creation until Ready.
				_ = r.lt.ObservePod(workloadKey, time.Duration(p.readyAt-p.created)*r.tick)
			}
		} else {
			next = min(next, p.readyAt)
		}
	}
	r.nextLife = next
}

// wake makes lifecycle run at tick at, or on the next tick when at has passed.
func (r *run) wake(at int) {
	r.nextLife = min(r.nextLife, max(at, r.t+1))
}

// serve completes, admits and queues requests for one tick (see the package doc).
func (r *run) serve() {
	sec := r.tick.Seconds()
	if r.inSvc > 0 && r.ready > 0 {
		b := float64(r.inSvc) / float64(r.ready)
		s := r.cfg.Perf.ServiceTime(r.svcCtx, r.svcGen, b)
		x := float64(r.inSvc)*sec/math.Max(s, 1e-9) + r.carry
		c := int64(x)
		r.carry = x - float64(c)
		if c >= r.inSvc {
			c, r.carry = r.inSvc, 0
		}
		r.inSvc -= c
		r.done += c
	}
	if c := r.tr.Count[r.t]; c > 0 {
		n := int64(c)
		r.queue = append(r.queue, cohort{at: r.t, n: n, ctx: float64(r.tr.Ctx[r.t]) / float64(n), gen: float64(r.tr.Gen[r.t]) / float64(n)})
		r.queued += n
		r.arrived += n
	}
	free := int64(r.ready)*int64(r.cfg.Concurrency) - r.inSvc
	for free > 0 && r.qhead < len(r.queue) {
		h := &r.queue[r.qhead]
		k := min(free, h.n)
		tot := float64(r.inSvc + k)
		r.svcCtx = (r.svcCtx*float64(r.inSvc) + h.ctx*float64(k)) / tot
		r.svcGen = (r.svcGen*float64(r.inSvc) + h.gen*float64(k)) / tot
		r.inSvc += k
		r.queued -= k
		free -= k
		r.recordDelay(r.t-h.at, k)
		h.n -= k
		if h.n == 0 {
			r.qhead++
		}
	}
	if r.qhead > 1024 && r.qhead*2 > len(r.queue) {
		r.queue = append(r.queue[:0], r.queue[r.qhead:]...)
		r.qhead = 0
	}
	switch r.cfg.Metric {
	case "queue":
		r.metric = float64(r.queued)
	default:
		r.metric = float64(r.queued + r.inSvc)
	}
}

func (r *run) recordDelay(d int, n int64) {
	if r.t-d < r.warmup {
		return
	}
	if d >= len(r.delayHist)-1 {
		r.delayHist[len(r.delayHist)-1] += n
		r.delaySumOverflow += float64(d) * float64(n)
		return
	}
	r.delayHist[d] += n
}

// kedaPoll is KEDA's operator loop: activation from zero and scale to zero.
func (r *run) kedaPoll() {
	if r.metric > r.cfg.ActivationThreshold {
		r.lastActive = r.t
		if r.spec == 0 {
			r.setReplicas(max(1, r.cfg.MinReplicas))
		}
		return
	}
	if r.spec > 0 && r.cfg.MinReplicas == 0 && r.t-r.lastActive >= ticks(r.cfg.CooldownPeriod, r.tick) {
		r.setReplicas(0)
		r.recs = r.recs[:0]
	}
}

// hpaSync is one HPA reconcile with the default behavior: tolerance, scale-up
// limited to max(100%, 4 pods) per period, scale-down to the highest
// recommendation of the stabilisation window.
func (r *run) hpaSync() {
	if r.spec == 0 {
		return // KEDA disables the HPA at zero
	}
	cur := r.spec
	raw := int32(math.Min(math.Ceil(r.metric/r.cfg.Target), float64(math.MaxInt32/2)))
	if math.Abs(r.metric/(r.cfg.Target*float64(cur))-1) <= r.cfg.HPATolerance {
		raw = cur
	}
	lo := max(r.cfg.MinReplicas, 1)
	raw = min(max(raw, lo), r.cfg.MaxReplicas)
	win := ticks(r.cfg.ScaleDownStabilization, r.tick)
	r.recs = append(r.recs, hpaRec{at: r.t, want: raw})
	i := 0
	for i < len(r.recs) && r.recs[i].at <= r.t-win {
		i++
	}
	r.recs = r.recs[i:]
	want := raw
	if raw < cur {
		hi := raw
		for _, rc := range r.recs {
			hi = max(hi, rc.want)
		}
		want = min(hi, cur)
	} else if raw > cur {
		want = min(raw, max(2*cur, cur+4))
	}
	if want != cur {
		r.setReplicas(want)
	}
}

// setReplicas is the Deployment controller: create pending pods, or delete the
// pending, then not-ready, then newest pods first.
func (r *run) setReplicas(n int32) {
	r.spec = n
	for int32(len(r.replicas)) < n {
		r.replicas = append(r.replicas, &pod{zone: -1, created: r.t, bound: -1, readyAt: never})
		r.dirty = true
	}
	for int32(len(r.replicas)) > n {
		best := -1
		for i, p := range r.replicas {
			if best < 0 || victimBefore(p, r.replicas[best], r.t) {
				best = i
			}
		}
		r.deleteReplica(best)
		r.dirty = true
	}
}

func victimBefore(a, b *pod, t int) bool {
	ra, rb := rank(a, t), rank(b, t)
	if ra != rb {
		return ra < rb
	}
	return a.created > b.created
}

func rank(p *pod, t int) int {
	switch {
	case p.bound < 0:
		return 0
	case p.readyAt > t:
		return 1
	}
	return 2
}

// recordWait scores a replica start when it binds, or when it is deleted or the
// run ends while it is still pending. Starts during the warm-up are not scored.
func (r *run) recordWait(p *pod) {
	if p.created < r.warmup {
		return
	}
	r.res.ReplicaStarts++
	r.res.waits = append(r.res.waits, float64(r.t-p.created)*r.tick.Seconds())
	if r.t > p.created {
		r.res.WaitedStarts++
	}
}

func (r *run) deleteReplica(i int) {
	p := r.replicas[i]
	if p.bound < 0 {
		r.recordWait(p)
	} else {
		p.node.replicas--
		if p.counted {
			r.ready--
		}
	}
	r.replicas = slices.Delete(r.replicas, i, i+1)
}

// schedule binds pending pods: replicas first (priority 0), spreading over zones,
// preempting placeholders when no node has room; then placeholders in their zone.
func (r *run) schedule() {
	r.dirty = false
	perZone := make([]int, r.zones)
	for _, p := range r.replicas {
		if p.bound >= 0 {
			perZone[p.zone]++
		}
	}
	for _, p := range r.replicas {
		if p.bound >= 0 {
			continue
		}
		n := r.pickNode(perZone, false)
		if n == nil && r.instant {
			z := 0
			for i := range r.zones {
				if perZone[i] < perZone[z] {
					z = i
				}
			}
			n = r.addNode(z, r.t, r.t, r.t)
			n.seen = true
		}
		if n == nil {
			n = r.pickNode(perZone, true)
			if n == nil {
				break // all replicas have one shape: if this one does not fit, none does
			}
			r.preemptOn(n)
		}
		r.bindReplica(p, n)
		perZone[n.zone]++
	}
	for z := range r.zones {
		for _, p := range r.holders[z] {
			if p.bound >= 0 {
				continue
			}
			var best *node
			for _, n := range r.nodes {
				if n.zone == z && n.usable(r.t) && n.free() > 0 && (best == nil || n.free() < best.free()) {
					best = n
				}
			}
			if best == nil {
				break
			}
			p.node, p.bound = best, r.t
			best.holders++
			if r.cfg.Prepull && best.imageAt == never {
				best.imageAt = r.t + ticks(r.cfg.ImagePull.Sample(r.rng), r.tick)
			}
		}
	}
}

// pickNode chooses a usable node for a replica: with free room, or (preempt) with
// room once its placeholders go. Zones with fewer replicas first, then the fullest
// node (bin packing), then the oldest.
func (r *run) pickNode(perZone []int, preempt bool) *node {
	var best *node
	for _, n := range r.nodes {
		if !n.usable(r.t) {
			continue
		}
		room := n.free()
		if preempt {
			room += n.holders
		}
		if room <= 0 {
			continue
		}
		if best == nil || perZone[n.zone] < perZone[best.zone] ||
			(perZone[n.zone] == perZone[best.zone] && (n.free() < best.free() || (n.free() == best.free() && n.id < best.id))) {
			best = n
		}
	}
	return best
}

// preemptOn evicts one placeholder on n; its ReplicaSet recreates it pending.
func (r *run) preemptOn(n *node) {
	hs := r.holders[n.zone]
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].node == n {
			n.holders--
			hs[i] = &pod{placeholder: true, zone: n.zone, created: r.t, bound: -1, readyAt: never}
			if r.t >= r.warmup {
				r.res.Preemptions++
			}
			return
		}
	}
}

func (r *run) bindReplica(p *pod, n *node) {
	p.node, p.bound, p.zone = n, r.t, n.zone
	n.replicas++
	start := r.t
	switch {
	case n.imageAt == never:
		n.imageAt = r.t + ticks(r.cfg.ImagePull.Sample(r.rng), r.tick)
		start = n.imageAt
	case n.imageAt > r.t:
		start = n.imageAt
	}
	p.readyAt = start + ticks(r.cfg.ModelLoad.Sample(r.rng), r.tick)
	r.recordWait(p)
	r.wake(p.readyAt)
}

// setHolders is a placeholder ReplicaSet: create pending pods, or delete pending
// ones first, then the newest bound ones.
func (r *run) setHolders(z int, n int32) {
	r.want[z] = n
	hs := r.holders[z]
	for int32(len(hs)) < n {
		hs = append(hs, &pod{placeholder: true, zone: z, created: r.t, bound: -1, readyAt: never})
		r.dirty = true
	}
	for int32(len(hs)) > n {
		best := -1
		for i, p := range hs {
			if best < 0 || (p.bound < 0 && hs[best].bound >= 0) || ((p.bound < 0) == (hs[best].bound < 0) && p.created >= hs[best].created) {
				best = i
			}
		}
		if p := hs[best]; p.bound >= 0 {
			p.node.holders--
		}
		hs = slices.Delete(hs, best, best+1)
		r.dirty = true
	}
	r.holders[z] = hs
}

// autoscale is one cluster-autoscaler scan.
func (r *run) autoscale() {
	r.scaleUp()
	r.scaleDown()
}

func (r *run) stocked(z int) bool {
	at := time.Duration(r.t) * r.tick
	for _, s := range r.cfg.Stockouts {
		if s.Zone == r.cfg.Zones[z] && at >= s.From && at < s.To {
			return true
		}
	}
	return false
}

func (r *run) scaleUp() {
	pinned := make([]int, r.zones)
	if r.cfg.PlaceholderPriority >= r.cfg.ExpendableCutoff {
		for z, hs := range r.holders {
			for _, p := range hs {
				if p.bound < 0 {
					pinned[z]++
				}
			}
		}
	}
	unpinned := 0
	for _, p := range r.replicas {
		if p.bound < 0 {
			unpinned++
		}
	}
	if unpinned == 0 && slices.Max(pinned) == 0 {
		return
	}
	upcoming := make([]int, r.zones)
	count := make([]int, r.zones)
	for _, n := range r.nodes {
		count[n.zone]++
		if !n.usable(r.t) {
			upcoming[n.zone] += n.slots
		}
	}
	leftover := 0
	for z := range r.zones {
		c := min(pinned[z], upcoming[z])
		pinned[z] -= c
		leftover += upcoming[z] - c
	}
	unpinned = max(unpinned-leftover, 0)
	can := func(z int) bool {
		if r.t < r.backoffUntil[z] || count[z] >= r.cfg.MaxNodesPerZone {
			return false
		}
		if r.stocked(z) {
			r.fail(z)
			return false
		}
		return true
	}
	for z := range r.zones {
		for pinned[z] > 0 && can(z) {
			r.provision(z)
			count[z]++
			pinned[z] -= r.perPod
			unpinned = max(unpinned-max(-pinned[z], 0), 0)
		}
	}
	for unpinned > 0 {
		best := -1
		for z := range r.zones {
			if can(z) && (best < 0 || count[z] < count[best]) {
				best = z
			}
		}
		if best < 0 {
			break
		}
		r.provision(best)
		count[best]++
		unpinned -= r.perPod
	}
}

// fail backs a zone's group off after a failed scale-up (stockout), doubling up
// to BackoffMax as cluster-autoscaler does.
func (r *run) fail(z int) {
	d := r.backoffLen[z]
	if d == 0 {
		d = r.cfg.BackoffInitial
	} else {
		d = min(2*d, r.cfg.BackoffMax)
	}
	r.backoffLen[z] = d
	r.backoffUntil[z] = r.t + max(ticks(d, r.tick), 1)
	if r.t >= r.warmup {
		r.res.FailedScaleUps++
	}
}

func (r *run) provision(z int) {
	ready := r.t + ticks(r.cfg.Provision.Sample(r.rng), r.tick)
	gpu := ready + ticks(r.cfg.GPUAllocatable.Sample(r.rng), r.tick)
	r.addNode(z, r.t, ready, gpu)
	r.backoffLen[z] = 0
	r.lastScaleUp = r.t
	if r.t >= r.warmup {
		r.res.ScaleUps++
	}
	r.wake(gpu)
}

// scaleDown removes nodes unneeded for ScaleDownUnneeded: empty ones all at once,
// under-utilised ones whose pods fit elsewhere one per scan. Placeholders below
// the expendable cutoff do not count as pods.
func (r *run) scaleDown() {
	counts := r.cfg.PlaceholderPriority >= r.cfg.ExpendableCutoff
	freeElsewhere := 0
	for _, n := range r.nodes {
		if n.usable(r.t) {
			freeElsewhere += n.free()
			if !counts {
				freeElsewhere += n.holders
			}
		}
	}
	cool := r.t-r.lastScaleUp < ticks(r.cfg.ScaleDownDelayAfterAdd, r.tick)
	need := ticks(r.cfg.ScaleDownUnneeded, r.tick)
	drained := false
	for i := 0; i < len(r.nodes); i++ {
		n := r.nodes[i]
		if !n.usable(r.t) {
			continue
		}
		pods := n.replicas
		if counts {
			pods += n.holders
		}
		own := n.free()
		if !counts {
			own += n.holders
		}
		unneeded := pods == 0 || (float64(pods)/float64(n.slots) < r.cfg.ScaleDownUtilization && freeElsewhere-own >= pods)
		if !unneeded {
			n.unneededSince = -1
			continue
		}
		if n.unneededSince < 0 {
			n.unneededSince = r.t
		}
		if cool || r.t-n.unneededSince < need || (pods > 0 && drained) {
			continue
		}
		if pods > 0 {
			drained = true
		}
		r.removeNode(i)
		i--
	}
}

func (r *run) removeNode(i int) {
	n := r.nodes[i]
	for j := 0; j < len(r.replicas); j++ {
		if p := r.replicas[j]; p.node == n {
			// Evicted: the Deployment makes a new pending pod in its place.
			if p.counted {
				r.ready--
			}
			r.replicas[j] = &pod{zone: -1, created: r.t, bound: -1, readyAt: never}
			if r.t >= r.warmup {
				r.res.Evictions++
			}
		}
	}
	for z := range r.holders {
		for j, p := range r.holders[z] {
			if p.node == n {
				r.holders[z][j] = &pod{placeholder: true, zone: z, created: r.t, bound: -1, readyAt: never}
			}
		}
	}
	r.nodes = slices.Delete(r.nodes, i, i+1)
	if r.t >= r.warmup {
		r.res.ScaleDowns++
	}
	r.dirty = true
}

// account adds one tick of GPU time.
func (r *run) account() {
	if r.t < r.warmup {
		return
	}
	sec := r.tick.Seconds() / 3600 * float64(r.cfg.GPUsPerReplica)
	var used, held, idle int
	for _, n := range r.nodes {
		if !n.usable(r.t) {
			idle += n.slots
			continue
		}
		used += n.replicas
		held += n.holders
		idle += n.free()
	}
	r.res.GPUHoursUsed += float64(used) * sec
	r.res.GPUHoursPlaceholders += float64(held) * sec
	r.res.GPUHoursIdleNodes += float64(idle) * sec
	// GPUs a node has beyond its last whole replica are idle whatever happens.
	rest := r.cfg.GPUsPerNode - int64(r.perPod)*r.cfg.GPUsPerReplica
	r.res.GPUHoursIdleNodes += float64(rest*int64(len(r.nodes))) * r.tick.Seconds() / 3600
}

func (r *run) sample() {
	held := 0
	capacity := 0
	for _, n := range r.nodes {
		if n.usable(r.t) {
			held += n.holders
			capacity += n.slots
		}
	}
	r.res.Series = append(r.res.Series, Point{
		At:         time.Duration(r.t) * r.tick,
		Demand:     float64(r.dem.zeroWait[r.t]),
		Desired:    float64(r.spec),
		Ready:      float64(r.ready),
		Headroom:   float64(held),
		Capacity:   float64(capacity),
		QueueDepth: float64(r.queued),
	})
}

// check verifies the invariants: no GPU is allocated twice, placeholders stay
// within what the policy asked for and the plan's caps, requests are conserved.
func (r *run) check() error {
	bound := map[*node][2]int{}
	for _, p := range r.replicas {
		if p.bound >= 0 {
			c := bound[p.node]
			c[0]++
			bound[p.node] = c
		}
	}
	for _, hs := range r.holders {
		for _, p := range hs {
			if p.bound >= 0 {
				c := bound[p.node]
				c[1]++
				bound[p.node] = c
			}
		}
	}
	live := map[*node]bool{}
	for _, n := range r.nodes {
		live[n] = true
		c := bound[n]
		if c[0] != n.replicas || c[1] != n.holders {
			return fmt.Errorf("node %s counts %d replicas and %d placeholders, pods say %d and %d", n.name, n.replicas, n.holders, c[0], c[1])
		}
		if (n.replicas+n.holders)*int(r.cfg.GPUsPerReplica) > n.slots*int(r.cfg.GPUsPerReplica) || n.free() < 0 {
			return fmt.Errorf("node %s: %d GPUs allocated of %d", n.name, (n.replicas+n.holders)*int(r.cfg.GPUsPerReplica), int64(n.slots)*r.cfg.GPUsPerReplica)
		}
		if (n.replicas+n.holders) > 0 && !n.usable(r.t) {
			return fmt.Errorf("node %s has pods before its GPUs are allocatable", n.name)
		}
	}
	for n := range bound {
		if !live[n] {
			return fmt.Errorf("pods bound to removed node %s", n.name)
		}
	}
	var total int64
	for z, hs := range r.holders {
		if int32(len(hs)) != r.want[z] {
			return fmt.Errorf("zone %s has %d placeholders, policy wants %d", r.cfg.Zones[z], len(hs), r.want[z])
		}
		g := int64(len(hs)) * r.cfg.GPUsPerReplica
		if r.caps[z] >= 0 && g > r.caps[z] {
			return fmt.Errorf("zone %s has %d placeholder GPUs over its cap %d", r.cfg.Zones[z], g, r.caps[z])
		}
		total += g
	}
	if r.budget >= 0 && total > r.budget {
		return fmt.Errorf("%d placeholder GPUs over the budget %d", total, r.budget)
	}
	if r.arrived != r.done+r.inSvc+r.queued {
		return fmt.Errorf("requests not conserved: %d arrived, %d done + %d in service + %d queued", r.arrived, r.done, r.inSvc, r.queued)
	}
	var q int64
	for _, c := range r.queue[r.qhead:] {
		q += c.n
	}
	if q != r.queued {
		return fmt.Errorf("queue holds %d requests, counter says %d", q, r.queued)
	}
	ready := 0
	for _, p := range r.replicas {
		if p.counted {
			ready++
			if p.readyAt > r.t || p.bound < 0 {
				return fmt.Errorf("replica counted ready before it is")
			}
		}
	}
	if ready != r.ready {
		return fmt.Errorf("%d replicas ready, counter says %d", ready, r.ready)
	}
	return nil
}

// nodeInfo returns the planner's view of a node, rebuilt through nodes.FromNode
// (the controller's own translation) when the node changes state.
func (r *run) nodeInfo(n *node) nodes.NodeInfo {
	st := 0
	if r.t >= n.ready {
		st = 1
	}
	if n.usable(r.t) {
		st = 2
	}
	if st == n.infoState {
		return n.info
	}
	gpus := *resource.NewQuantity(int64(n.slots)*r.cfg.GPUsPerReplica, resource.DecimalSI)
	zero := *resource.NewQuantity(0, resource.DecimalSI)
	k := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{nodes.LabelZone: r.cfg.Zones[n.zone], nodes.LabelGPUProduct: simGPUProduct}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourceName(r.cfg.GPUResource): gpus},
			Allocatable: corev1.ResourceList{corev1.ResourceName(r.cfg.GPUResource): zero},
		},
	}
	if st >= 1 {
		k.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	}
	if st == 2 {
		k.Status.Allocatable[corev1.ResourceName(r.cfg.GPUResource)] = gpus
	}
	n.info = nodes.FromNode(k)
	n.infoState = st
	return n.info
}

func (r *run) workload() keda.Workload {
	w := keda.Workload{
		Namespace: workloadNamespace, Name: workloadName, TargetKind: "Deployment", TargetName: "llm", HPAName: "keda-hpa-llm",
		Shape: r.shape, HasShape: true, ShapeHash: r.hash, State: keda.StateActive,
		DesiredReplicas: r.spec, HasDesired: r.spec > 0,
		MetricReplicas: int32(math.Min(math.Ceil(r.metric/r.cfg.Target), math.MaxInt32/2)), HasMetricReplicas: true,
		SpecReplicas: r.spec, ReadyReplicas: int32(r.ready), MinReplicas: r.cfg.MinReplicas, MaxReplicas: r.cfg.MaxReplicas,
	}
	for _, p := range r.replicas {
		switch {
		case p.bound < 0:
			w.PendingReplicas++
		case !p.counted:
			w.StartingReplicas++
		}
	}
	if r.spec == 0 {
		w.State = keda.StateScaledToZero
	}
	return w
}

func (r *run) finish() {
	for _, p := range r.replicas {
		if p.bound < 0 {
			r.recordWait(p)
		}
	}
	r.res.Requests = r.arrived
	r.res.Completed = r.done
	for d := r.qhead; d < len(r.queue); d++ {
		r.recordDelay(r.t-r.queue[d].at, r.queue[d].n)
	}
	r.res.summarise(r.delayHist, r.tick, r.cfg.SLO)
}
