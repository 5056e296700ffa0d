package controller

import (
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Report is the last pass's plan and why: the dry-run output and what
// `headroom plan` prints.
type Report struct {
	At        time.Time                  `json:"at"`
	DryRun    bool                       `json:"dryRun"`
	Policy    headroom.Policy            `json:"policy"`
	Workloads []headroom.Workload        `json:"workloads"`
	Demand    map[string]headroom.Demand `json:"demand"`
	Desired   headroom.Desired           `json:"desired"`
	Actions   []headroom.Action          `json:"actions"`
	Conflicts []string                   `json:"conflicts,omitempty"`
	Scarce    headroom.ScarcityState     `json:"scarce"`
}

func (c *Controller) setReport(r *Report) {
	c.reportMu.Lock()
	c.report = r
	c.reportMu.Unlock()
}

// LastReport returns the last pass's report (nil before the first pass).
func (c *Controller) LastReport() *Report {
	c.reportMu.RLock()
	defer c.reportMu.RUnlock()
	return c.report
}

type ownerSel struct {
	key string
	sel labels.Selector
}

func selectorOf(ls *metav1.LabelSelector) labels.Selector {
	if ls == nil {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil || s.Empty() {
		return nil
	}
	return s
}

// ownerOf maps a pod's namespace and labels to the workload whose target
// selects it ("" when none; the first workload in sels order when several do).
// Selectors are indexed by one of their key=value requirements, so a lookup
// tries only the selectors that can match instead of every workload's: a pass
// looks up every replica that is not Ready yet, and there can be thousands.
func ownerOf(sels map[string][]ownerSel) func(namespace string, lbls map[string]string) string {
	type nsOwners struct {
		sels     []ownerSel
		anchored map[string]map[string][]int // key -> value -> indices into sels
		scan     []int                       // selectors without an equality to anchor on
	}
	byNS := make(map[string]*nsOwners, len(sels))
	for ns, list := range sels {
		n := &nsOwners{sels: list, anchored: map[string]map[string][]int{}}
		for i, o := range list {
			anchored := false
			reqs, _ := o.sel.Requirements()
			for _, r := range reqs {
				vals, op := r.ValuesUnsorted(), r.Operator()
				if len(vals) != 1 || (op != selection.Equals && op != selection.DoubleEquals && op != selection.In) {
					continue
				}
				byValue := n.anchored[r.Key()]
				if byValue == nil {
					byValue = map[string][]int{}
					n.anchored[r.Key()] = byValue
				}
				byValue[vals[0]] = append(byValue[vals[0]], i)
				anchored = true
				break
			}
			if !anchored {
				n.scan = append(n.scan, i)
			}
		}
		byNS[ns] = n
	}
	return func(namespace string, lbls map[string]string) string {
		n := byNS[namespace]
		if n == nil {
			return ""
		}
		best := -1
		try := func(i int) {
			if (best < 0 || i < best) && n.sels[i].sel.Matches(labels.Set(lbls)) {
				best = i
			}
		}
		for k, byValue := range n.anchored {
			if v, ok := lbls[k]; ok {
				for _, i := range byValue[v] {
					try(i)
				}
			}
		}
		for _, i := range n.scan {
			try(i)
		}
		if best < 0 {
			return ""
		}
		return n.sels[best].key
	}
}

// scarcityEvents logs and records each change of a zone's scarcity, as an Event
// on the placeholder ReplicaSet of that zone and shape.
func (c *Controller) scarcityEvents(events []headroom.ScarcityEvent, rss []*appsv1.ReplicaSet) {
	for _, e := range events {
		c.log.Warn("zone scarcity", zap.String("zone", e.Key.Zone), zap.String("shape", e.Key.ShapeHash),
			zap.String("kind", string(e.Kind)), zap.String("message", e.Message))
		if c.recorder == nil {
			continue
		}
		for _, rs := range rss {
			if rs.Labels[headroom.LabelZone] == e.Key.Zone && rs.Labels[headroom.LabelShape] == e.Key.ShapeHash {
				typ := corev1.EventTypeWarning
				if e.Kind != headroom.ScarcityMarked {
					typ = corev1.EventTypeNormal
				}
				c.recorder.Event(rs, typ, scarcityReason[e.Kind], e.Message)
			}
		}
	}
}

// scarcityReason is the Event reason per scarcity change.
var scarcityReason = map[headroom.ScarcityEventKind]string{
	headroom.ScarcityMarked:  "ZoneScarce",
	headroom.ScarcityRetry:   "ZoneScarceRetry",
	headroom.ScarcityCleared: "ZoneScarceCleared",
}

// warnUnknownZones logs, once per change, config zones that no GPU node has.
func (c *Controller) warnUnknownZones(cfg headroom.Config, ns []headroom.Node) {
	seen := map[string]bool{}
	var known []string
	for _, n := range ns {
		if n.Zone != "" && !seen[n.Zone] {
			seen[n.Zone] = true
			known = append(known, n.Zone)
		}
	}
	unknown := headroom.UnknownZones(cfg, known)
	key := strings.Join(unknown, ",")
	if key != c.warnedZones && len(unknown) > 0 {
		c.log.Warn("config names zones that have no GPU node (yet)", zap.Strings("zones", unknown))
	}
	c.warnedZones = key
}

// observe sets the gauges from this pass.
func (c *Controller) observe(s headroom.Snapshot, d headroom.Desired, phPods []*corev1.Pod, ws []headroom.Workload,
	demand map[string]headroom.Demand, unhealthy map[string]int) {
	m := c.metrics
	m.BudgetGPUs.Set(float64(d.BudgetGPUs))
	m.PlaceholderPodsDesired.Reset()
	m.DesiredGPUs.Reset()
	for _, ph := range d.Placeholders {
		m.PlaceholderPodsDesired.WithLabelValues(ph.Zone, ph.ShapeHash, string(ph.Shape.GPUResource)).Set(float64(ph.Replicas))
		m.DesiredGPUs.WithLabelValues(ph.Zone, string(ph.Shape.GPUResource)).Add(float64(ph.GPUs()))
	}
	m.PlaceholderPods.Reset()
	m.ReservedGPUs.Reset()
	// Warm GPUs per node: what running placeholders hold, but never more than the
	// node's healthy GPUs left after real pods (the agent's unhealthy count).
	healthyLeft := map[string]map[corev1.ResourceName]int64{}
	for _, n := range s.Nodes {
		left := map[corev1.ResourceName]int64{}
		for _, name := range n.Allocatable.GPUNames() {
			left[name] = max(n.Allocatable.GPU(name)-n.Used.GPU(name), 0)
		}
		healthyLeft[n.Name] = left
	}
	for _, pod := range phPods {
		if nodes.IsTerminated(pod) || pod.DeletionTimestamp != nil {
			continue
		}
		zone, shape := pod.Labels[headroom.LabelZone], pod.Labels[headroom.LabelShape]
		phase := "pending"
		if pod.Spec.NodeName != "" {
			phase = "running"
			for name, n := range nodes.PodGPURequests(pod) {
				left := healthyLeft[pod.Spec.NodeName]
				warm := min(n, left[name])
				if left != nil {
					left[name] -= warm
				}
				m.ReservedGPUs.WithLabelValues(zone, string(name)).Add(float64(warm))
			}
		}
		m.PlaceholderPods.WithLabelValues(zone, shape, phase).Inc()
	}
	m.UnhealthyGPUs.Reset()
	for _, n := range s.Nodes {
		if bad := unhealthy[n.Name]; bad > 0 {
			m.UnhealthyGPUs.WithLabelValues(n.Zone).Add(float64(bad))
		}
	}
	m.WorkloadReplicas.Reset()
	m.WorkloadDemand.Reset()
	for _, w := range ws {
		m.WorkloadReplicas.WithLabelValues(w.Namespace, w.Name, "desired").Set(float64(w.DesiredReplicas))
		m.WorkloadReplicas.WithLabelValues(w.Namespace, w.Name, "metric").Set(float64(w.MetricReplicas))
		m.WorkloadReplicas.WithLabelValues(w.Namespace, w.Name, "ready").Set(float64(w.ReadyReplicas))
		m.WorkloadReplicas.WithLabelValues(w.Namespace, w.Name, "max").Set(float64(w.MaxReplicas))
		m.WorkloadDemand.WithLabelValues(w.Namespace, w.Name).Set(float64(demand[w.Key()].Replicas))
	}
	var wkeys []string
	for _, w := range ws {
		wkeys = append(wkeys, w.Key())
	}
	nodeP, podP := c.lead.percentiles(wkeys)
	m.NodeProvisioning.Reset()
	for k, d := range nodeP {
		m.NodeProvisioning.WithLabelValues(k.Zone, k.GPUProduct).Set(d.Seconds())
	}
	m.PodStartup.Reset()
	m.LeadTime.Reset()
	cfg := c.currentConfig()
	for _, w := range ws {
		if d, ok := podP[w.Key()]; ok {
			m.PodStartup.WithLabelValues(w.Namespace, w.Name).Set(d.Seconds())
		}
		m.LeadTime.WithLabelValues(w.Namespace, w.Name).Set(c.horizon(w.Key(), cfg).Seconds())
	}
	m.PendingGPUPods.Reset()
	for _, pp := range s.Pending {
		z := pp.Zone
		if z == "" {
			z = "any"
		}
		m.PendingGPUPods.WithLabelValues(z).Add(float64(pp.Count))
	}
	m.GPUNodes.Reset()
	m.FreeGPUs.Reset()
	// Usage by all pods = usage by real pods (already in the snapshot) plus
	// placeholders (few), which avoids a second pass over every pod.
	usedAll := map[string]nodes.Resources{}
	for _, n := range s.Nodes {
		usedAll[n.Name] = n.Used
	}
	for _, pod := range phPods {
		if pod.Spec.NodeName != "" && !nodes.IsTerminated(pod) {
			usedAll[pod.Spec.NodeName] = usedAll[pod.Spec.NodeName].Add(nodes.PodRequests(pod))
		}
	}
	for _, n := range s.Nodes {
		state := "ready"
		if !n.Usable() {
			state = "not_ready"
		}
		m.GPUNodes.WithLabelValues(n.Zone, state).Inc()
		if !n.Usable() {
			continue
		}
		free := n.Allocatable.Sub(usedAll[n.Name])
		for _, name := range free.GPUNames() {
			if v := free.GPU(name); v > 0 {
				m.FreeGPUs.WithLabelValues(n.Zone, string(name)).Add(float64(v))
			}
		}
	}
	m.ScarceZones.Reset()
	keys := make([]headroom.ZoneShape, 0)
	for k, v := range s.Scarce {
		if v {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	for _, k := range keys {
		m.ScarceZones.WithLabelValues(k.Zone, k.ShapeHash).Set(1)
	}
}
