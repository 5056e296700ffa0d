package localcluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// ProvisionerOptions configures the stand-in for cluster-autoscaler.
type ProvisionerOptions struct {
	// ScanInterval is how often it looks at pending pods (cluster-autoscaler: 10s).
	ScanInterval time.Duration
	// ProvisionDelay is the time from the scale-up decision until the Node object
	// exists (a cloud VM booting and joining).
	ProvisionDelay time.Duration
	// GPUReadyDelay is the further time until the GPU resource is allocatable (the
	// driver and device plugin coming up).
	GPUReadyDelay time.Duration
	// UnneededTime is how long a node must hold no non-expendable pod before it is
	// removed (cluster-autoscaler's --scale-down-unneeded-time, default 10m).
	UnneededTime time.Duration
	// ExpendableCutoff: pods with a priority below it never trigger a scale-up and
	// never keep a node (cluster-autoscaler's --expendable-pods-priority-cutoff, -10).
	ExpendableCutoff *int32
	// DisableScaleDown keeps every node.
	DisableScaleDown bool
}

// DefaultExpendableCutoff is cluster-autoscaler's default.
const DefaultExpendableCutoff int32 = -10

// Event reasons, named after cluster-autoscaler's.
const (
	ReasonTriggeredScaleUp  = "TriggeredScaleUp"
	ReasonNotTriggerScaleUp = "NotTriggerScaleUp"
	ReasonScaleDown         = "ScaleDown"
)

// Provisioner stands in for cluster-autoscaler, which the Go module proxy does
// not serve. It models what gpu-headroom depends on, nothing more: node groups
// per zone with min and max sizes (max reached = stockout), a scan interval, a
// provisioning delay before the Node appears and a further delay before its GPUs
// are allocatable, the expendable-pods cutoff, one node per group of pending pods
// that fit (bin packing, not one node per pod), pods that fit on existing free
// capacity or on nodes still coming up do not trigger more nodes, and scale-down
// of nodes that held no non-expendable pod for UnneededTime. It is not
// cluster-autoscaler: no expanders beyond "first group by name that fits", no
// scheduler framework simulation beyond resources, node selectors, required node
// affinity and taints.
type Provisioner struct {
	kube     kubernetes.Interface
	groups   []NodeGroup
	opts     ProvisionerOptions
	cutoff   int32
	addNode  func(context.Context, NodeGroup, string, bool) (*corev1.Node, error)
	setRes   func(context.Context, string, corev1.ResourceList) error
	logf     func(string, ...any)
	recorder record.EventRecorder
	bcast    record.EventBroadcaster
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister

	mu         sync.Mutex
	seq        map[string]int       // next node index per group
	inflight   []*upcoming          // decided, Node not created yet
	created    map[string]time.Time // node -> when we created it (GPU not yet ready)
	unneeded   map[string]time.Time // node -> since when it held no non-expendable pod
	reported   map[string]time.Time // pod -> last NotTriggerScaleUp event
	stockouts  map[string]string    // group -> last stockout message
	scans      int
	scaleUps   int
	scaleDowns int
}

type upcoming struct {
	group     string
	name      string
	decidedAt time.Time
}

func newProvisioner(kube kubernetes.Interface, groups []NodeGroup, opts ProvisionerOptions,
	addNode func(context.Context, NodeGroup, string, bool) (*corev1.Node, error),
	setRes func(context.Context, string, corev1.ResourceList) error, logf func(string, ...any)) (*Provisioner, error) {
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = time.Second
	}
	if opts.UnneededTime <= 0 {
		opts.UnneededTime = 10 * time.Minute
	}
	cutoff := DefaultExpendableCutoff
	if opts.ExpendableCutoff != nil {
		cutoff = *opts.ExpendableCutoff
	}
	gs := append([]NodeGroup(nil), groups...)
	sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	seq := map[string]int{}
	for _, g := range gs {
		seq[g.Name] = g.MinSize
	}
	return &Provisioner{
		kube: kube, groups: gs, opts: opts, cutoff: cutoff, addNode: addNode, setRes: setRes, logf: logf,
		seq: seq, created: map[string]time.Time{}, unneeded: map[string]time.Time{},
		reported: map[string]time.Time{}, stockouts: map[string]string{},
	}, nil
}

func (p *Provisioner) start(ctx context.Context, done chan struct{}) error {
	factory := informers.NewSharedInformerFactory(p.kube, 0)
	p.pods = factory.Core().V1().Pods().Lister()
	p.nodes = factory.Core().V1().Nodes().Lister()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("provisioner: %v informer did not sync", typ)
		}
	}
	p.bcast = record.NewBroadcaster()
	p.bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.kube.CoreV1().Events("")})
	p.recorder = p.bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "localcluster-provisioner"})
	go func() {
		defer close(done)
		defer p.bcast.Shutdown()
		defer factory.Shutdown()
		t := time.NewTicker(p.opts.ScanInterval)
		defer t.Stop()
		for {
			if err := p.Scan(ctx, time.Now()); err != nil && ctx.Err() == nil {
				p.logf("provisioner: scan: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stats returns how many nodes it added and removed so far.
func (p *Provisioner) Stats() (scaleUps, scaleDowns int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scaleUps, p.scaleDowns
}

// Provisioning returns, per group, the nodes it decided to add that are not usable
// yet: not created (provisioning delay) or created without allocatable GPUs.
func (p *Provisioner) Provisioning() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for _, u := range p.inflight {
		m[u.group]++
	}
	for name := range p.created {
		if g := groupOf(name, p.groups); g != "" {
			m[g]++
		}
	}
	return m
}

// Stockouts returns, per group at max size with pods it could not place, why.
func (p *Provisioner) Stockouts() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]string, len(p.stockouts))
	for k, v := range p.stockouts {
		m[k] = v
	}
	return m
}

// Scan is one pass of the loop at time now.
func (p *Provisioner) Scan(ctx context.Context, now time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.materialize(ctx, now); err != nil {
		return err
	}
	nodes, err := p.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	pods, err := p.pods.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	if err := p.scaleUp(ctx, now, nodes, pods); err != nil {
		return err
	}
	if !p.opts.DisableScaleDown {
		if err := p.scaleDown(ctx, now, nodes, pods); err != nil {
			return err
		}
	}
	p.scans++
	return nil
}

// Scans returns how many complete scans it has made; tests wait on it to know
// that the provisioner has seen a state, instead of sleeping.
func (p *Provisioner) Scans() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scans
}

// materialize creates the Nodes whose provisioning delay has passed and makes
// GPUs allocatable on nodes whose GPU delay has passed.
func (p *Provisioner) materialize(ctx context.Context, now time.Time) error {
	var still []*upcoming
	for _, u := range p.inflight {
		if now.Sub(u.decidedAt) < p.opts.ProvisionDelay {
			still = append(still, u)
			continue
		}
		g := p.group(u.group)
		gpuNow := p.opts.GPUReadyDelay <= 0
		if _, err := p.addNode(ctx, *g, u.name, gpuNow); err != nil {
			return fmt.Errorf("provisioning node %s: %w", u.name, err)
		}
		p.logf("provisioner: node %s of group %s (zone %s) created", u.name, g.Name, g.Zone)
		if !gpuNow {
			p.created[u.name] = now
		}
	}
	p.inflight = still
	for name, at := range p.created {
		if now.Sub(at) < p.opts.GPUReadyDelay {
			continue
		}
		n, err := p.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			delete(p.created, name)
			continue
		}
		if err != nil {
			return fmt.Errorf("getting node %s: %w", name, err)
		}
		g := p.group(n.Labels[NodeGroupLabel])
		if g == nil {
			delete(p.created, name)
			continue
		}
		if err := p.setRes(ctx, name, g.resources(true)); err != nil {
			return err
		}
		p.logf("provisioner: node %s GPUs allocatable (%d %s)", name, g.GPUsPerNode, g.GPUResource)
		delete(p.created, name)
	}
	return nil
}

func (p *Provisioner) group(name string) *NodeGroup {
	for i := range p.groups {
		if p.groups[i].Name == name {
			return &p.groups[i]
		}
	}
	return nil
}

// capacity is a node, real or upcoming, with what is still free on it.
type capacity struct {
	group  *NodeGroup
	labels map[string]string
	taints []corev1.Taint
	free   corev1.ResourceList
}

func (c *capacity) fits(pod *corev1.Pod, req corev1.ResourceList) bool {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: c.labels}, Spec: corev1.NodeSpec{Taints: c.taints}}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		return false
	}
	if _, bad := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), c.taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, false); bad {
		return false
	}
	for name, q := range req {
		f, ok := c.free[name]
		if !ok || f.Cmp(q) < 0 {
			return false
		}
	}
	return true
}

func (c *capacity) take(req corev1.ResourceList) {
	for name, q := range req {
		f := c.free[name]
		f.Sub(q)
		c.free[name] = f
	}
}

// scaleUp packs the pending, non-expendable pods that fit nowhere onto new nodes.
func (p *Provisioner) scaleUp(ctx context.Context, now time.Time, nodes []*corev1.Node, pods []*corev1.Pod) error {
	byNode := map[string][]*corev1.Pod{}
	var pending []*corev1.Pod
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if pod.Spec.NodeName != "" {
			byNode[pod.Spec.NodeName] = append(byNode[pod.Spec.NodeName], pod)
			continue
		}
		if unschedulable(pod) && pod.Status.NominatedNodeName == "" && priority(pod) >= p.cutoff {
			pending = append(pending, pod)
		}
	}
	if len(pending) == 0 {
		for k := range p.stockouts {
			delete(p.stockouts, k)
		}
		return nil
	}
	// Existing nodes with free room, and nodes still coming up, absorb pods first.
	var room []*capacity
	size := map[string]int{}
	// Nodes created but not GPU-ready yet are counted from their group's template
	// (the lister may not even have them yet, and their not-ready taint is
	// temporary), as cluster-autoscaler counts upcoming nodes.
	for name := range p.created {
		g := p.group(groupOf(name, p.groups))
		if g == nil {
			continue
		}
		size[g.Name]++
		free := g.resources(true)
		for _, pod := range byNode[name] {
			for rn, q := range podRequests(pod) {
				f := free[rn]
				f.Sub(q)
				free[rn] = f
			}
		}
		room = append(room, &capacity{group: g, labels: g.nodeObject(name).Labels, taints: g.Taints, free: free})
	}
	for _, n := range nodes {
		if _, coming := p.created[n.Name]; coming {
			continue
		}
		g := p.group(n.Labels[NodeGroupLabel])
		if g != nil {
			size[g.Name]++
		}
		if n.DeletionTimestamp != nil {
			continue
		}
		free := n.Status.Allocatable.DeepCopy()
		taints := n.Spec.Taints
		if q, ok := free[g.GPUResourceOrDefault()]; g != nil && (!ok || q.IsZero()) {
			// A node of ours without its GPUs yet (or the lister has not seen
			// them): upcoming, counted from the template as cluster-autoscaler
			// does for GPU nodes whose device plugin is not up.
			free, taints = g.resources(true), g.Taints
		} else if !NodeSchedulable(n) {
			continue
		}
		c := &capacity{group: g, labels: n.Labels, taints: taints, free: free}
		for _, pod := range byNode[n.Name] {
			c.take(podRequests(pod))
		}
		room = append(room, c)
	}
	for _, u := range p.inflight {
		g := p.group(u.group)
		size[g.Name]++
		room = append(room, &capacity{group: g, labels: g.nodeObject(u.name).Labels, taints: g.Taints, free: g.resources(true)})
	}
	sort.Slice(pending, func(i, j int) bool {
		if a, b := priority(pending[i]), priority(pending[j]); a != b {
			return a > b
		}
		return pending[i].CreationTimestamp.Before(&pending[j].CreationTimestamp)
	})
	stockouts := map[string]string{}
	added := map[string][]string{}
	for _, pod := range pending {
		req := podRequests(pod)
		placed := false
		for _, c := range room {
			if c.fits(pod, req) {
				c.take(req)
				placed = true
				break
			}
		}
		if placed {
			continue
		}
		var atMax []string
		for i := range p.groups {
			g := &p.groups[i]
			tmpl := &capacity{group: g, labels: g.nodeObject("template").Labels, taints: g.Taints, free: g.resources(true)}
			if !tmpl.fits(pod, req) {
				continue
			}
			if size[g.Name] >= g.MaxSize {
				atMax = append(atMax, fmt.Sprintf("%s (zone %s) at max size %d", g.Name, g.Zone, g.MaxSize))
				continue
			}
			name := fmt.Sprintf("%s-%d", g.Name, p.seq[g.Name])
			p.seq[g.Name]++
			size[g.Name]++
			p.inflight = append(p.inflight, &upcoming{group: g.Name, name: name, decidedAt: now})
			tmpl.take(req)
			room = append(room, tmpl)
			added[g.Name] = append(added[g.Name], name)
			p.scaleUps++
			p.recorder.Eventf(pod, corev1.EventTypeNormal, ReasonTriggeredScaleUp, "pod triggered scale-up: group %s (zone %s) +1 node %s", g.Name, g.Zone, name)
			placed = true
			break
		}
		if placed {
			continue
		}
		msg := "pod didn't trigger scale-up: no node group fits it"
		if len(atMax) > 0 {
			msg = fmt.Sprintf("pod didn't trigger scale-up: %d max node group size reached: %v", len(atMax), atMax)
			for _, a := range atMax {
				stockouts[a] = msg
			}
		}
		// Once a minute per pod, as cluster-autoscaler does, so events do not flood.
		if last, ok := p.reported[string(pod.UID)]; !ok || now.Sub(last) >= time.Minute {
			p.reported[string(pod.UID)] = now
			p.recorder.Event(pod, corev1.EventTypeNormal, ReasonNotTriggerScaleUp, msg)
			p.logf("provisioner: %s/%s: %s", pod.Namespace, pod.Name, msg)
		}
	}
	p.stockouts = stockouts
	for g, names := range added {
		p.logf("provisioner: scale-up of group %s: +%d nodes %v (ready in %s + %s)", g, len(names), names, p.opts.ProvisionDelay, p.opts.GPUReadyDelay)
	}
	return ctx.Err()
}

// scaleDown removes nodes that held no non-expendable pod for UnneededTime. A
// node that a pending non-expendable pod fits on counts as holding it, as
// cluster-autoscaler's scale-down simulation places pending pods on existing
// nodes first: the scheduler may take seconds (its backoff for unschedulable
// pods) to bind a pod to the node that was just added for it.
func (p *Provisioner) scaleDown(ctx context.Context, now time.Time, nodes []*corev1.Node, pods []*corev1.Pod) error {
	keeps := map[string]bool{}
	onNode := map[string][]*corev1.Pod{}
	var pending []*corev1.Pod
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if pod.Spec.NodeName == "" {
			if priority(pod) >= p.cutoff {
				pending = append(pending, pod)
			}
			continue
		}
		onNode[pod.Spec.NodeName] = append(onNode[pod.Spec.NodeName], pod)
		if priority(pod) >= p.cutoff && !isDaemonSetPod(pod) {
			keeps[pod.Spec.NodeName] = true
		}
	}
	size := map[string]int{}
	for _, n := range nodes {
		size[n.Labels[NodeGroupLabel]]++
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	if len(pending) > 0 {
		room := map[string]*capacity{}
		for _, n := range nodes {
			if n.DeletionTimestamp != nil || !NodeSchedulable(n) {
				continue
			}
			c := &capacity{labels: n.Labels, taints: n.Spec.Taints, free: n.Status.Allocatable.DeepCopy()}
			for _, pod := range onNode[n.Name] {
				c.take(podRequests(pod))
			}
			room[n.Name] = c
		}
		for _, pod := range pending {
			req := podRequests(pod)
			for _, n := range nodes {
				if c := room[n.Name]; c != nil && c.fits(pod, req) {
					c.take(req)
					keeps[n.Name] = true
					break
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		seen[n.Name] = true
		g := p.group(n.Labels[NodeGroupLabel])
		_, coming := p.created[n.Name]
		if g == nil || coming || n.DeletionTimestamp != nil || keeps[n.Name] {
			delete(p.unneeded, n.Name)
			continue
		}
		since, ok := p.unneeded[n.Name]
		if !ok {
			p.unneeded[n.Name] = now
			continue
		}
		if now.Sub(since) < p.opts.UnneededTime || size[g.Name] <= g.MinSize {
			continue
		}
		// Drain: expendable pods go with the node, as cluster-autoscaler does.
		for _, pod := range onNode[n.Name] {
			err := p.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("draining pod %s/%s from node %s: %w", pod.Namespace, pod.Name, n.Name, err)
			}
		}
		if err := p.kube.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting unneeded node %s: %w", n.Name, err)
		}
		p.recorder.Eventf(n, corev1.EventTypeNormal, ReasonScaleDown, "node removed by the stand-in autoscaler: unneeded for %s", now.Sub(since).Round(time.Second))
		p.logf("provisioner: scale-down of group %s: node %s unneeded for %s, removed", g.Name, n.Name, now.Sub(since).Round(time.Second))
		delete(p.unneeded, n.Name)
		size[g.Name]--
		p.scaleDowns++
	}
	for name := range p.unneeded {
		if !seen[name] {
			delete(p.unneeded, name)
		}
	}
	return nil
}

// groupOf finds the group a node name was made for ("<group>-<n>").
func groupOf(node string, groups []NodeGroup) string {
	best := ""
	for _, g := range groups {
		if strings.HasPrefix(node, g.Name+"-") && len(g.Name) > len(best) {
			best = g.Name
		}
	}
	return best
}

func unschedulable(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

func priority(pod *corev1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

func isDaemonSetPod(pod *corev1.Pod) bool {
	for _, o := range pod.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}

// podRequests is what the scheduler reserves for a pod: the sum of its containers'
// requests, at least each init container's, plus overhead.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	sum := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
	add := func(rl corev1.ResourceList) {
		for n, q := range rl {
			v := sum[n]
			v.Add(q)
			sum[n] = v
		}
	}
	for _, c := range pod.Spec.Containers {
		add(c.Resources.Requests)
	}
	for _, c := range pod.Spec.InitContainers {
		for n, q := range c.Resources.Requests {
			if v, ok := sum[n]; !ok || v.Cmp(q) < 0 {
				sum[n] = q.DeepCopy()
			}
		}
	}
	add(pod.Spec.Overhead)
	return sum
}
