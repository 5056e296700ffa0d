package headroom

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/nodes"
)

func gpuPod(name, node string, gpus string, mod ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{nodes.ResourceNvidiaGPU: resource.MustParse(gpus)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if node == "" {
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}}
	}
	for _, m := range mod {
		m(p)
	}
	return p
}

func placeholder(zone, hash string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Labels = PlaceholderLabels(zone, hash) }
}

func TestNodesFrom(t *testing.T) {
	alloc := corev1.ResourceList{nodes.ResourceNvidiaGPU: resource.MustParse("8")}
	mk := func(name, zone string, a corev1.ResourceList) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{nodes.LabelZone: zone}},
			Status: corev1.NodeStatus{Allocatable: a, Capacity: a, Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	}
	ns := []*corev1.Node{mk("n2", "a", alloc), mk("n1", "a", alloc), mk("cpu", "a", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")})}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ns[0].CreationTimestamp = metav1.NewTime(t0.Add(time.Hour))
	ns[1].CreationTimestamp = metav1.NewTime(t0)
	ns[2].CreationTimestamp = metav1.NewTime(t0.Add(2 * time.Hour)) // not a GPU node
	var infos []nodes.NodeInfo
	for _, n := range ns {
		infos = append(infos, nodes.FromNode(n))
	}
	used := map[string]nodes.Resources{"n1": {GPUs: map[corev1.ResourceName]int64{nodes.ResourceNvidiaGPU: 3}}}
	got := NodesFrom(infos, used)
	if len(got) != 2 || got[0].Name != "n1" || got[1].Name != "n2" {
		t.Fatalf("NodesFrom = %+v", got)
	}
	if u := got[0].Used.GPU(nodes.ResourceNvidiaGPU); u != 3 || got[1].Used.TotalGPUs() != 0 {
		t.Errorf("used GPUs n1 %d, n2 %d; want 3 and 0", u, got[1].Used.TotalGPUs())
	}
	if got := LastNodeAdded(infos)["a"]; !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("LastNodeAdded = %s", got)
	}
}

func TestPendingFrom(t *testing.T) {
	pinned := func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{nodes.LabelZone: "b"} }
	pods := []*corev1.Pod{
		gpuPod("p1", "", "1"),
		gpuPod("p2", "", "1"),
		gpuPod("p3", "", "1", pinned),
		gpuPod("owned", "", "1", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "chat"} }),
		gpuPod("ph", "", "1", placeholder("a", "h")),
		gpuPod("running", "n1", "1"),
		gpuPod("not-yet-tried", "", "1", func(p *corev1.Pod) { p.Status.Conditions = nil }),
	}
	owner := func(p *corev1.Pod) string {
		if p.Labels["app"] == "chat" {
			return "llm/chat"
		}
		return ""
	}
	got := PendingFrom(pods, owner)
	if len(got) != 3 {
		t.Fatalf("PendingFrom = %+v", got)
	}
	counts := map[string]int32{}
	for _, g := range got {
		counts[g.Zone+"|"+g.Workload] = g.Count
	}
	if counts["|"] != 2 || counts["b|"] != 1 || counts["|llm/chat"] != 1 {
		t.Errorf("counts %v", counts)
	}
}

func TestScarcityObservationsFrom(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	created := func(m int) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(m) * time.Minute)) }
	}
	pods := []*corev1.Pod{
		gpuPod("a1", "", "1", placeholder("a", "h"), created(5)),
		gpuPod("a2", "", "1", placeholder("a", "h"), created(2)),
		gpuPod("a3", "n1", "1", placeholder("a", "h"), created(0)),
		gpuPod("b1", "n2", "1", placeholder("b", "h"), created(0)),
		gpuPod("real", "", "1", created(0)),
	}
	got := ScarcityObservationsFrom(pods)
	if len(got) != 2 || got[0].Key.Zone != "a" || !got[0].OldestPending.Equal(t0.Add(2*time.Minute)) || !got[1].OldestPending.IsZero() {
		t.Fatalf("observations %+v", got)
	}
}
