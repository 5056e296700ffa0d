package headroom

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

var gpuTol = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}}

func shape(gpus int64) Shape {
	return Shape{GPUResource: nodes.ResourceNvidiaGPU, GPUs: gpus, CPUMilli: 1000, Tolerations: gpuTol}
}

func inZone(s Shape, zone string) Shape {
	s.NodeSelector = map[string]string{nodes.LabelZone: zone}
	return s
}

// node is a usable GPU node with gpus allocatable and used of them taken by real pods.
func node(name, zone string, gpus, used int64) Node {
	return Node{
		NodeInfo: nodes.NodeInfo{
			Name: name, Zone: zone, Labels: map[string]string{nodes.LabelZone: zone},
			Taints:      []corev1.Taint{{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule}},
			Allocatable: nodes.Resources{CPUMilli: 64000, GPUs: map[corev1.ResourceName]int64{nodes.ResourceNvidiaGPU: gpus}},
			Ready:       true, GPUNode: true, GPUReady: true,
		},
		Used: nodes.Resources{CPUMilli: used * 1000, GPUs: map[corev1.ResourceName]int64{nodes.ResourceNvidiaGPU: used}},
	}
}

func workload(name string, s Shape) Workload {
	return Workload{Namespace: "llm", Name: name, Shape: s, HasShape: true, State: keda.StateActive}
}

func policy(budget int64) Policy {
	return Policy{Default: ZoneLimits{MaxGPUs: MaxGPUs}, BudgetGPUs: budget, KeepUtilization: 0.5}
}

func withZones(p Policy, zones map[string]ZoneLimits) Policy {
	p.Zones = zones
	return p
}

// got renders placeholders as "zone/gpus:replicas" for compact comparison.
func got(d Desired) []string {
	var out []string
	for _, p := range d.Placeholders {
		out = append(out, fmt.Sprintf("%s/%d:%d", p.Zone, p.Shape.GPUs, p.Replicas))
	}
	sort.Strings(out) // Plan sorts by shape hash; sort by size for readable wants
	return out
}

func threeZones() []Node {
	return []Node{node("a1", "a", 8, 8), node("b1", "b", 8, 8), node("c1", "c", 8, 8)}
}

func TestPlan(t *testing.T) {
	if !(shape(2).Hash() < shape(1).Hash()) {
		t.Fatal("test premise: shape(2) must hash before shape(1)")
	}
	tests := []struct {
		name   string
		snap   Snapshot
		demand map[string]Demand
		policy Policy
		want   []string
		note   string // substring of some note, when set
	}{
		{
			name:   "no demand, no floor: nothing",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{}, policy: policy(100),
		},
		{
			name:   "need spread over sorted zones, remainder first",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 4}}, policy: policy(100),
			want: []string{"a/1:2", "b/1:1", "c/1:1"},
		},
		{
			name:   "workload pinned to one zone",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", inZone(shape(2), "b"))}},
			demand: map[string]Demand{"llm/w": {Replicas: 3}}, policy: policy(100),
			want: []string{"b/2:3"},
		},
		{
			name:   "free capacity that covers the need: no placeholders",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 5), node("b1", "b", 8, 8)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 3}}, policy: policy(100),
			note: "3 pods covered by free capacity",
		},
		{
			name:   "free capacity that covers part: the whole need (placeholders fill free space first)",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 5), node("b1", "b", 8, 8)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 4}}, policy: policy(100),
			want: []string{"a/1:2", "b/1:2"},
		},
		{
			name:   "free GPUs on a node the autoscaler would remove do not count",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 1)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 2}}, policy: policy(100),
			want: []string{"a/1:2"},
		},
		{
			// a2 is under KeepUtilization: the autoscaler drains it and its 2 GPUs
			// of pods land in a1's 3 free GPUs, leaving 1: the need of 2 is not covered.
			name:   "pods of a node the autoscaler would drain take the kept free capacity",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 5), node("a2", "a", 8, 2)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 2}}, policy: policy(100),
			want: []string{"a/1:2"},
		},
		{
			name:   "free capacity left after the drained pods still covers the need",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 4), node("a2", "a", 8, 1)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 3}}, policy: policy(100),
			note: "3 pods covered by free capacity",
		},
		{
			name: "drained pods are reserved over several kept nodes, in name order",
			snap: Snapshot{Nodes: []Node{node("a1", "a", 8, 6), node("a2", "a", 8, 6), node("a3", "a", 8, 3)},
				Workloads: []Workload{workload("w", shape(1))}},
			// 4 free on a1+a2, 3 reserved for a3's pods: 1 left for a need of 2.
			demand: map[string]Demand{"llm/w": {Replicas: 2}}, policy: policy(100),
			want: []string{"a/1:2"},
		},
		{
			// b has no kept node: the scheduler puts b1's pods into zone a.
			name:   "a drained node's pods are reserved in other zones when its own has no room",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 5), node("b1", "b", 8, 2)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 3}}, policy: policy(100),
			want: []string{"a/1:2", "b/1:1"},
		},
		{
			name: "a drained node's pods are reserved in its own zone first",
			snap: Snapshot{Nodes: []Node{node("a1", "a", 8, 5), node("b1", "b", 8, 6), node("b2", "b", 8, 2)},
				Workloads: []Workload{workload("w", inZone(shape(1), "a"))}},
			demand: map[string]Demand{"llm/w": {Replicas: 3}}, policy: policy(100),
			note: "3 pods covered by free capacity in [a]",
		},
		{
			name:   "an empty node below KeepUtilization reserves nothing",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 5), node("a2", "a", 8, 0)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 3}}, policy: policy(100),
			note: "3 pods covered by free capacity",
		},
		{
			name:   "floor not covered once a drained node's pods are reserved",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 4), node("a2", "a", 8, 1)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 4, MaxGPUs: 100}}),
			want:   []string{"a/1:4"},
		},
		{
			name: "free GPUs on unready, cordoned or untolerated nodes do not count",
			snap: Snapshot{Nodes: func() []Node {
				unready := node("a1", "a", 8, 4)
				unready.GPUReady, unready.NotUsableReason = false, "GPU label but no allocatable GPUs yet"
				cordoned := node("a2", "a", 8, 4)
				cordoned.Unschedulable, cordoned.NotUsableReason = true, "cordoned"
				tainted := node("a3", "a", 8, 4)
				tainted.Taints = append(tainted.Taints, corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule})
				return []Node{unready, cordoned, tainted}
			}(), Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 2}}, policy: policy(100),
			want: []string{"a/1:2"},
		},
		{
			name:   "scarce zone skipped, its share moves to the others",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", shape(1))}, Scarce: map[ZoneShape]bool{{Zone: "a", ShapeHash: shape(1).Hash()}: true}},
			demand: map[string]Demand{"llm/w": {Replicas: 4}}, policy: policy(100),
			want: []string{"b/1:2", "c/1:2"},
		},
		{
			name:   "all allowed zones scarce: nothing placed, noted",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", inZone(shape(1), "a"))}, Scarce: map[ZoneShape]bool{{Zone: "a", ShapeHash: inZone(shape(1), "a").Hash()}: true}},
			demand: map[string]Demand{"llm/w": {Replicas: 4}}, policy: policy(100),
			note: "no usable zone",
		},
		{
			name:   "zones from config count even without nodes (scale from zero)",
			snap:   Snapshot{Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 2}},
			policy: withZones(policy(100), map[string]ZoneLimits{"x": {MaxGPUs: 10}, "y": {MaxGPUs: 10}}),
			want:   []string{"x/1:1", "y/1:1"},
		},
		{
			name:   "workloads of one shape share placeholders",
			snap:   Snapshot{Nodes: threeZones()[:1], Workloads: []Workload{workload("w1", shape(1)), workload("w2", shape(1))}},
			demand: map[string]Demand{"llm/w1": {Replicas: 1}, "llm/w2": {Replicas: 2}}, policy: policy(100),
			want: []string{"a/1:3"},
		},
		{
			name:   "per-workload max caps its placeholders",
			snap:   Snapshot{Nodes: threeZones()[:1], Workloads: []Workload{workload("w", shape(2))}},
			demand: map[string]Demand{"llm/w": {Replicas: 10}},
			policy: func() Policy { p := policy(100); p.WorkloadMaxGPUs = map[string]int64{"llm/w": 7}; return p }(),
			want:   []string{"a/2:3"},
		},
		{
			name: "unattributed pending pods add, attributed ones do not",
			snap: Snapshot{Nodes: threeZones()[:2], Workloads: []Workload{workload("w", shape(1))}, Pending: []PendingPods{
				{Shape: shape(4), Count: 2},
				{Shape: shape(1), Count: 5, Workload: "llm/w"},
				{Shape: shape(1), Zone: "b", Count: 1},
			}},
			demand: map[string]Demand{"llm/w": {Replicas: 2}}, policy: policy(100),
			want: []string{"a/1:1", "a/4:1", "b/1:2", "b/4:1"},
		},
		{
			name:   "zone floor in GPUs, rounded up to whole pods",
			snap:   Snapshot{Nodes: threeZones()[:2], Workloads: []Workload{workload("w", shape(2))}},
			demand: map[string]Demand{},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 3, MaxGPUs: 100}}),
			want:   []string{"a/2:2"},
		},
		{
			name:   "floor adds to need",
			snap:   Snapshot{Nodes: threeZones()[:1], Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 2}},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 3, MaxGPUs: 100}}),
			want:   []string{"a/1:5"},
		},
		{
			name:   "floor shared round-robin over shapes",
			snap:   Snapshot{Nodes: threeZones()[:1], Workloads: []Workload{workload("w1", shape(1)), workload("w2", shape(2))}},
			demand: map[string]Demand{},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 5, MaxGPUs: 100}}),
			// Hash order 2-GPU, 1-GPU, 2-GPU: 2+1+2 = 5.
			want: []string{"a/1:1", "a/2:2"},
		},
		{
			name:   "floor covered by kept free capacity",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 4)}, Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 4, MaxGPUs: 100}}),
			note:   "zone a: floor of 4 GPUs covered by free capacity",
		},
		{
			name:   "floor not covered when shapes compete for the same free GPUs",
			snap:   Snapshot{Nodes: []Node{node("a1", "a", 8, 4)}, Workloads: []Workload{workload("w1", shape(1)), workload("w2", shape(2))}},
			demand: map[string]Demand{},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 5, MaxGPUs: 100}}),
			want:   []string{"a/1:1", "a/2:2"},
		},
		{
			name:   "floor without any shape for the zone is noted",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", inZone(shape(1), "a"))}},
			demand: map[string]Demand{},
			policy: withZones(policy(100), map[string]ZoneLimits{"b": {FloorGPUs: 2, MaxGPUs: 100}}),
			note:   "zone b: floor of 2 GPUs not applied",
		},
		{
			name:   "zone max clamps",
			snap:   Snapshot{Nodes: threeZones()[:2], Workloads: []Workload{workload("w", shape(2))}},
			demand: map[string]Demand{"llm/w": {Replicas: 10}},
			policy: withZones(policy(100), map[string]ZoneLimits{"a": {MaxGPUs: 5}, "b": {MaxGPUs: 100}}),
			want:   []string{"a/2:2", "b/2:5"},
		},
		{
			name:   "budget short: floors first, then need round-robin",
			snap:   Snapshot{Nodes: threeZones()[:2], Workloads: []Workload{workload("w1", shape(1)), workload("w2", shape(2))}},
			demand: map[string]Demand{"llm/w1": {Replicas: 10}, "llm/w2": {Replicas: 10}},
			policy: withZones(policy(9), map[string]ZoneLimits{"b": {FloorGPUs: 2, MaxGPUs: 100}}),
			// Shapes go in hash order, and shape(2) hashes before shape(1) (checked
			// below). Floor in b: one 2-GPU pod reaches 2 GPUs. Need, round-robin over
			// a/2, a/1, b/2, b/1 with 7 GPUs left: one each (6 GPUs), then a/1 (the
			// 2-GPU sets no longer fit in the 1 GPU left): 2+2+1+4 = 9.
			want: []string{"a/1:2", "a/2:1", "b/1:1", "b/2:2"},
		},
		{
			name:   "zero budget: nothing",
			snap:   Snapshot{Nodes: threeZones(), Workloads: []Workload{workload("w", shape(1))}},
			demand: map[string]Demand{"llm/w": {Replicas: 4}}, policy: policy(0),
			note: "nothing granted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Plan(tt.snap, tt.demand, tt.policy)
			if g := got(d); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("Plan = %v, want %v\nnotes: %q", g, tt.want, d.Notes)
			}
			if d.TotalGPUs() > tt.policy.BudgetGPUs {
				t.Errorf("plan uses %d GPUs over the budget of %d", d.TotalGPUs(), tt.policy.BudgetGPUs)
			}
			if tt.note != "" && !strings.Contains(strings.Join(d.Notes, "\n"), tt.note) {
				t.Errorf("notes %q lack %q", d.Notes, tt.note)
			}
			for _, p := range d.Placeholders {
				if p.Reason == "" || p.ShapeHash != p.Shape.Hash() {
					t.Errorf("placeholder %+v lacks a reason or has a wrong hash", p)
				}
			}
		})
	}
}

func TestPlanReason(t *testing.T) {
	snap := Snapshot{Nodes: threeZones()[:1], Workloads: []Workload{workload("w", shape(1))}}
	d := Plan(snap, map[string]Demand{"llm/w": {Replicas: 2, Reason: "HPA desired 5, ready 3: need 2"}},
		withZones(policy(100), map[string]ZoneLimits{"a": {FloorGPUs: 1, MaxGPUs: 2}}))
	want := "need 2 of 2 over 1 zones: llm/w needs 2 (HPA desired 5, ready 3: need 2); floor 1 (zone min 1 GPUs); clamped from 3 to 2 by zone max 2 GPUs / budget 100 GPUs"
	if len(d.Placeholders) != 1 || d.Placeholders[0].Reason != want {
		t.Fatalf("reason:\n got %q\nwant %q", d.Placeholders[0].Reason, want)
	}
}

// TestPlanDeterministic shuffles every input slice and checks the plan is identical.
func TestPlanDeterministic(t *testing.T) {
	ws := []Workload{workload("w1", shape(1)), workload("w2", shape(2)), workload("w3", inZone(shape(1), "b")), workload("w4", shape(4))}
	ns := append(threeZones(), node("a2", "a", 8, 5), node("b2", "b", 8, 6))
	pend := []PendingPods{{Shape: shape(2), Count: 3}, {Shape: shape(1), Zone: "c", Count: 2}}
	demand := map[string]Demand{"llm/w1": {Replicas: 7}, "llm/w2": {Replicas: 5}, "llm/w3": {Replicas: 2}, "llm/w4": {Replicas: 3}}
	p := withZones(policy(40), map[string]ZoneLimits{"a": {FloorGPUs: 4, MaxGPUs: 20}, "c": {FloorGPUs: 2, MaxGPUs: 6}})
	first := Plan(Snapshot{Nodes: ns, Workloads: ws, Pending: pend}, demand, p)
	for i := 0; i < 20; i++ {
		rev := func(n int, swap func(i, j int)) {
			for k := 0; k < n/2; k++ {
				swap(k, n-1-k)
			}
			if i%2 == 0 && n > 1 {
				swap(0, n-1)
			}
		}
		rev(len(ws), func(a, b int) { ws[a], ws[b] = ws[b], ws[a] })
		rev(len(ns), func(a, b int) { ns[a], ns[b] = ns[b], ns[a] })
		rev(len(pend), func(a, b int) { pend[a], pend[b] = pend[b], pend[a] })
		again := Plan(Snapshot{Nodes: ns, Workloads: ws, Pending: pend}, demand, p)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("plan changed with input order:\n%v\n%v", got(first), got(again))
		}
	}
	if first.TotalGPUs() > 40 {
		t.Fatalf("over budget: %d", first.TotalGPUs())
	}
}

// TestPlanNeverExceedsLimits drives adversarial demand and checks both caps.
func TestPlanNeverExceedsLimits(t *testing.T) {
	for budget := int64(0); budget < 30; budget += 7 {
		for zmax := int64(0); zmax < 12; zmax += 5 {
			var ws []Workload
			demand := map[string]Demand{}
			for i := 0; i < 12; i++ {
				w := workload(fmt.Sprintf("w%02d", i), shape(int64(1+i%3)))
				ws = append(ws, w)
				demand[w.Key()] = Demand{Replicas: 1000}
			}
			p := policy(budget)
			p.Default = ZoneLimits{FloorGPUs: 3, MaxGPUs: zmax}
			d := Plan(Snapshot{Nodes: threeZones(), Workloads: ws}, demand, p)
			if d.TotalGPUs() > budget {
				t.Fatalf("budget %d: plan uses %d", budget, d.TotalGPUs())
			}
			perZone := map[string]int64{}
			for _, pl := range d.Placeholders {
				perZone[pl.Zone] += pl.GPUs()
			}
			for z, n := range perZone {
				if n > zmax {
					t.Fatalf("zone %s max %d: plan uses %d", z, zmax, n)
				}
			}
		}
	}
}
