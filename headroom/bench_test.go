package headroom

import (
	"fmt"
	"testing"
)

// BenchmarkPlanDiff sizes the performance case: 1,000 GPU nodes in 3 zones,
// 300 workloads over 12 shapes, pending pods, then Diff against the placeholders of
// the previous pass. Target: under 5 ms per Plan + Diff.
func BenchmarkPlanDiff(b *testing.B) {
	zones := []string{"a", "b", "c"}
	var ns []Node
	for i := 0; i < 1000; i++ {
		ns = append(ns, node(fmt.Sprintf("n%04d", i), zones[i%3], 8, int64(4+i%5)))
	}
	var ws []Workload
	demand := map[string]Demand{}
	for i := 0; i < 300; i++ {
		s := shape(int64(1 + i%4))
		s.CPUMilli = int64(1000 * (1 + i%3))
		w := workload(fmt.Sprintf("w%03d", i), s)
		ws = append(ws, w)
		demand[w.Key()] = Demand{Replicas: int32(i % 7)}
	}
	pend := []PendingPods{{Shape: shape(1), Count: 30}, {Shape: shape(2), Zone: "b", Count: 10}}
	p := withZones(policy(2000), map[string]ZoneLimits{"a": {FloorGPUs: 8, MaxGPUs: 800}, "b": {MaxGPUs: 800}, "c": {MaxGPUs: 800}})
	snap := Snapshot{Nodes: ns, Workloads: ws, Pending: pend}
	var observed []ObservedReplicaSet
	for _, ph := range Plan(snap, demand, p).Placeholders {
		observed = append(observed, ObservedReplicaSet{Name: ReplicaSetName(ph.Zone, ph.ShapeHash), Labels: PlaceholderLabels(ph.Zone, ph.ShapeHash), Replicas: ph.Replicas + 1})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := Plan(snap, demand, p)
		Diff(d.Placeholders, observed)
	}
}
