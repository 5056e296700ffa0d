package controller

import (
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Pod is what the pod informer keeps of a Pod (the Trim transform makes it). A
// cluster of GPU nodes runs tens of thousands of pods and the controller reads
// only a few facts of each: where it is bound, what it requests, whether it is
// Ready, unschedulable or a placeholder. Keeping those instead of the Pod (about
// 4 KiB each even trimmed) cuts the informer's memory several times, and
// computing the effective requests once per pod event instead of once per pod on
// every pass is what keeps a reconcile pass fast at that size.
//
// Spec is kept, trimmed, only where the shape matters: unbound pods that request
// GPUs (pending demand) and placeholders.
type Pod struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	NodeName string
	Phase    corev1.PodPhase
	// Requests are the pod's effective requests (nodes.PodRequests).
	Requests nodes.Resources
	// ReadyAt is when the Ready condition last became True (zero when not Ready).
	ReadyAt time.Time
	// Ready, Unschedulable (headroom.IsUnschedulable), Placeholder
	// (headroom.IsPlaceholder) and Preempted (DisruptionTarget from the
	// scheduler's preemption) are read from the Pod when it is stored.
	Ready, Unschedulable, Placeholder, Preempted bool
	Spec                                         *corev1.PodSpec
}

var _ runtime.Object = (*Pod)(nil)

// DeepCopyObject implements runtime.Object.
func (p *Pod) DeepCopyObject() runtime.Object {
	if p == nil {
		return nil
	}
	out := *p
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Requests = p.Requests.Add(nodes.Resources{})
	if p.Spec != nil {
		out.Spec = p.Spec.DeepCopy()
	}
	return &out
}

// slimPod makes the informer's record of a trimmed Pod (see Trim).
func slimPod(p *corev1.Pod) *Pod {
	out := &Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, CreationTimestamp: p.CreationTimestamp, DeletionTimestamp: p.DeletionTimestamp},
		NodeName:      p.Spec.NodeName,
		Phase:         p.Status.Phase,
		Requests:      nodes.PodRequests(p),
		Unschedulable: headroom.IsUnschedulable(p),
		Placeholder:   headroom.IsPlaceholder(p.Labels),
	}
	for _, c := range p.Status.Conditions {
		switch {
		case c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue:
			out.Ready, out.ReadyAt = true, c.LastTransitionTime.Time
		case c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "PreemptionByScheduler":
			out.Preempted = true
		}
	}
	if out.Placeholder || (p.Spec.NodeName == "" && out.Requests.TotalGPUs() > 0) {
		spec := trimPodSpec(&p.Spec)
		out.Spec = &spec
	}
	return out
}

// asPod returns the informer's record of a pod, making one when the informer
// holds whole Pods (informers built without Trim). Nil for anything else.
func asPod(obj any) *Pod {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	switch p := obj.(type) {
	case *Pod:
		return p
	case *corev1.Pod:
		return slimPod(p)
	}
	return nil
}

// Terminated reports whether the pod no longer holds its node's resources
// (nodes.IsTerminated).
func (p *Pod) Terminated() bool {
	return p.Phase == corev1.PodSucceeded || p.Phase == corev1.PodFailed
}

// Pod rebuilds enough of a corev1.Pod for the pure snapshot helpers
// (headroom.PendingFrom, ScarcityObservationsFrom) and the placeholder metrics:
// metadata, spec where kept, phase and the PodScheduled condition.
func (p *Pod) Pod() *corev1.Pod {
	out := &corev1.Pod{ObjectMeta: p.ObjectMeta, Status: corev1.PodStatus{Phase: p.Phase}}
	if p.Spec != nil {
		out.Spec = *p.Spec
	}
	out.Spec.NodeName = p.NodeName
	if p.Unschedulable {
		out.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}
	}
	return out
}

// podStateIndex indexes the few pods a pass reads in full: placeholders,
// unschedulable GPU pods (pending demand) and pods that are not Ready yet
// (replicas starting or waiting, replicaPods).
const (
	podStateIndex       = "headroom.gpu-headroom.io/state"
	podStatePlaceholder = "placeholder"
	podStatePending     = "pending"
	podStateNotReady    = "not-ready"
)

func podState(obj any) ([]string, error) {
	p := asPod(obj)
	if p == nil {
		return nil, nil
	}
	if p.Placeholder {
		return []string{podStatePlaceholder}, nil
	}
	var out []string
	if p.Unschedulable && p.Spec != nil {
		out = append(out, podStatePending)
	}
	if !p.Ready && !p.Terminated() && p.DeletionTimestamp == nil {
		out = append(out, podStateNotReady)
	}
	return out, nil
}

// podsInState lists the informer's pods in one podStateIndex state; sorted by
// namespace and name when the caller's result depends on order (it costs
// O(n log n) over what can be tens of thousands of not-Ready pods).
func podsInState(idx cache.Indexer, state string, sorted bool) ([]*Pod, error) {
	objs, err := idx.ByIndex(podStateIndex, state)
	if err != nil {
		return nil, fmt.Errorf("listing %s pods: %w", state, err)
	}
	out := make([]*Pod, 0, len(objs))
	for _, o := range objs {
		if p := asPod(o); p != nil {
			out = append(out, p)
		}
	}
	if !sorted {
		return out, nil
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// countsOnNode reports whether a pod's requests load its node: bound, still
// holding resources, and real (placeholder GPUs are headroom, not load).
func (p *Pod) countsOnNode() bool {
	return p.NodeName != "" && !p.Terminated() && !p.Placeholder
}

// usageIndex keeps node usage (the requests of the real pods bound to each
// node, headroom.NodesFrom's input) up to date from pod events, so a pass does
// not walk every pod in the cluster. Each event sets a pod's whole
// contribution (never a delta), so the index converges to the informer's
// store whatever the order of a pod's events with respect to a pass.
type usageIndex struct {
	mu       sync.Mutex
	podNode  map[string]string                     // pod key -> node it loads
	nodePods map[string]map[string]nodes.Resources // node -> pod key -> requests
	sums     map[string]nodes.Resources            // node -> sum, valid unless dirty
	dirty    map[string]bool
}

func newUsageIndex() *usageIndex {
	return &usageIndex{podNode: map[string]string{}, nodePods: map[string]map[string]nodes.Resources{},
		sums: map[string]nodes.Resources{}, dirty: map[string]bool{}}
}

// set records pod key's current state; p nil means the pod is gone.
func (u *usageIndex) set(key string, p *Pod) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if old, ok := u.podNode[key]; ok {
		delete(u.nodePods[old], key)
		if len(u.nodePods[old]) == 0 {
			delete(u.nodePods, old)
		}
		delete(u.podNode, key)
		u.dirty[old] = true
	}
	if p == nil || !p.countsOnNode() {
		return
	}
	u.podNode[key] = p.NodeName
	pods := u.nodePods[p.NodeName]
	if pods == nil {
		pods = map[string]nodes.Resources{}
		u.nodePods[p.NodeName] = pods
	}
	pods[key] = p.Requests
	u.dirty[p.NodeName] = true
}

// byNode returns a copy of the usage per node, summing again only the nodes
// whose pods changed since the last call.
func (u *usageIndex) byNode() map[string]nodes.Resources {
	u.mu.Lock()
	defer u.mu.Unlock()
	for n := range u.dirty {
		var sum nodes.Resources
		for _, r := range u.nodePods[n] {
			sum = sum.Add(r)
		}
		if len(u.nodePods[n]) == 0 {
			delete(u.sums, n)
		} else {
			u.sums[n] = sum
		}
	}
	clear(u.dirty)
	return maps.Clone(u.sums)
}

// handler keeps the index in step with a pod informer.
func (u *usageIndex) handler() cache.ResourceEventHandlerFuncs {
	key := func(obj any) (string, bool) {
		k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		return k, err == nil
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if k, ok := key(obj); ok {
				u.set(k, asPod(obj))
			}
		},
		UpdateFunc: func(_, obj any) {
			if k, ok := key(obj); ok {
				u.set(k, asPod(obj))
			}
		},
		DeleteFunc: func(obj any) {
			if k, ok := key(obj); ok {
				u.set(k, nil)
			}
		},
	}
}

// nodeInfoCache keeps nodes.FromNode per node version: nodes change rarely
// (heartbeats go to Leases) and a pass reads every one of them.
type nodeInfoCache map[string]cachedNodeInfo

type cachedNodeInfo struct {
	version string
	info    nodes.NodeInfo
}

// infos returns the NodeInfo of each node, computing only new or changed ones,
// and forgets nodes that are gone.
func (c nodeInfoCache) infos(ns []*corev1.Node) []nodes.NodeInfo {
	out := make([]nodes.NodeInfo, 0, len(ns))
	seen := make(map[string]bool, len(ns))
	for _, n := range ns {
		seen[n.Name] = true
		e, ok := c[n.Name]
		if !ok || e.version != n.ResourceVersion || n.ResourceVersion == "" {
			e = cachedNodeInfo{version: n.ResourceVersion, info: nodes.FromNode(n)}
			c[n.Name] = e
		}
		out = append(out, e.info)
	}
	for name := range c {
		if !seen[name] {
			delete(c, name)
		}
	}
	return out
}

// replicaPods counts headroom.ReplicaPods per covered workload from the
// informer's records of pods that are not Ready (the podStateNotReady index).
func replicaPods(notReady []*Pod, owner func(namespace string, lbls map[string]string) string) map[string]headroom.ReplicaPods {
	out := map[string]headroom.ReplicaPods{}
	for _, p := range notReady {
		if p.Ready || p.Placeholder || p.Terminated() || p.DeletionTimestamp != nil {
			continue
		}
		k := owner(p.Namespace, p.Labels)
		if k == "" {
			continue
		}
		c := out[k]
		if p.NodeName != "" {
			c.Starting++
		} else {
			c.Pending++
		}
		out[k] = c
	}
	return out
}
