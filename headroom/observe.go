package headroom

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Pure helpers that turn informer objects into Snapshot parts. They read the objects
// and never modify them, so they may be given objects straight from a cache.

// NodesFrom builds Snapshot.Nodes from the NodeInfos of the cluster's nodes
// (nodes.FromNode; headroomd caches them per node version) and the requests of
// the real pods bound to each node, by name. Placeholder usage is left out on
// purpose: a placeholder's GPUs are headroom we hold, not load (see Plan).
// Non-GPU nodes are left out; the result is sorted by name and shares the
// infos' maps, which Plan only reads.
func NodesFrom(infos []nodes.NodeInfo, used map[string]nodes.Resources) []Node {
	var out []Node
	for _, info := range infos {
		if !info.GPUNode {
			continue
		}
		out = append(out, Node{NodeInfo: info, Used: used[info.Name]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsUnschedulable reports whether the scheduler has given up on a pod for now: it is
// Pending, unbound, and its PodScheduled condition is False with reason
// Unschedulable. That is the signal cluster-autoscaler reacts to.
func IsUnschedulable(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable
		}
	}
	return false
}

// PendingFrom groups unschedulable GPU pods that are not placeholders by shape,
// pinned zone (from a zone nodeSelector, "" otherwise) and owning workload. owner
// maps a pod to the key of the covered workload it belongs to ("" when none or
// unknown); it may be nil. The result is sorted by shape hash, zone and workload.
func PendingFrom(pods []*corev1.Pod, owner func(*corev1.Pod) string) []PendingPods {
	type key struct{ hash, zone, workload string }
	groups := map[key]*PendingPods{}
	for _, p := range pods {
		if p == nil || IsPlaceholder(p.Labels) || !IsUnschedulable(p) {
			continue
		}
		s, err := nodes.ShapeOf(&p.Spec)
		if err != nil {
			continue // no GPU (or several GPU resources): not ours to cover
		}
		k := key{hash: s.Hash(), zone: nodes.ZoneOf(p.Spec.NodeSelector)}
		if owner != nil {
			k.workload = owner(p)
		}
		g, ok := groups[k]
		if !ok {
			g = &PendingPods{Shape: s, Zone: k.zone, Workload: k.workload}
			groups[k] = g
		}
		g.Count++
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.hash != b.hash {
			return a.hash < b.hash
		}
		if a.zone != b.zone {
			return a.zone < b.zone
		}
		return a.workload < b.workload
	})
	out := make([]PendingPods, 0, len(keys))
	for _, k := range keys {
		out = append(out, *groups[k])
	}
	return out
}

// ScarcityObservationsFrom reports, per placeholder set, when its oldest
// unschedulable placeholder pod was created (the input of UpdateScarcity). Sets
// whose pods all run are reported with a zero OldestPending. Sorted by key.
func ScarcityObservationsFrom(placeholderPods []*corev1.Pod) []ScarcityObservation {
	oldest := map[ZoneShape]time.Time{}
	for _, p := range placeholderPods {
		if p == nil || !IsPlaceholder(p.Labels) {
			continue
		}
		k := ZoneShape{Zone: p.Labels[LabelZone], ShapeHash: p.Labels[LabelShape]}
		t, seen := oldest[k]
		if !IsUnschedulable(p) {
			if !seen {
				oldest[k] = time.Time{}
			}
			continue
		}
		if c := p.CreationTimestamp.Time; t.IsZero() || c.Before(t) {
			oldest[k] = c
		}
	}
	out := make([]ScarcityObservation, 0, len(oldest))
	for k, t := range oldest {
		out = append(out, ScarcityObservation{Key: k, OldestPending: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.Less(out[j].Key) })
	return out
}

// LastNodeAdded maps each zone to the creation time of its newest GPU node, for
// UpdateScarcity.
func LastNodeAdded(infos []nodes.NodeInfo) map[string]time.Time {
	out := map[string]time.Time{}
	for _, info := range infos {
		if !info.GPUNode || info.Zone == "" {
			continue
		}
		if info.Created.After(out[info.Zone]) {
			out[info.Zone] = info.Created
		}
	}
	return out
}

// ReplicaPods counts one workload's pods that are not Ready yet: bound ones
// (starting) and unbound ones (pending); terminating, finished and placeholder
// pods do not count. Together with the target's readyReplicas they are the
// replicas in flight: a starting pod already holds its GPUs, so the planner does
// not count it as need.
type ReplicaPods struct {
	// Starting pods are bound to a node but not Ready (image pull, model load).
	Starting int32
	// Pending pods are not bound to a node yet.
	Pending int32
}
