package controller

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Trim must keep everything the controller reads from a pod.
func TestTrimKeepsWhatThePlanReads(t *testing.T) {
	prio := int32(-10)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "x"},
			Annotations: map[string]string{"big": "value"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: corev1.PodSpec{NodeName: "n1", Priority: &prio, NodeSelector: map[string]string{"topology.kubernetes.io/zone": "a"},
			Volumes: []corev1.Volume{{Name: "v"}},
			Containers: []corev1.Container{{Name: "c", Image: "img", Env: []corev1.EnvVar{{Name: "E"}},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("2")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}},
	}
	want := nodes.PodGPURequests(p)
	out, err := Trim(p)
	if err != nil {
		t.Fatal(err)
	}
	q := out.(*Pod)
	if got := q.Requests.GPUs; got["nvidia.com/gpu"] != want["nvidia.com/gpu"] || got["nvidia.com/gpu"] != 2 {
		t.Errorf("GPU requests changed: %v -> %v", want, got)
	}
	if q.NodeName != "n1" || q.Labels["app"] != "x" || q.Phase != corev1.PodRunning || q.Ready || q.Unschedulable || q.Placeholder {
		t.Errorf("lost a field the controller reads: %+v", q)
	}
	if q.Annotations != nil || q.ManagedFields != nil || q.Spec != nil {
		t.Errorf("kept a field nobody reads of a bound pod: %+v", q)
	}

	// An unschedulable GPU pod keeps its (trimmed) spec: its shape is demand.
	p.Spec.NodeName = ""
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}}
	out, _ = Trim(p)
	q = out.(*Pod)
	if !q.Unschedulable || q.Spec == nil || *q.Spec.Priority != -10 || q.Spec.NodeSelector["topology.kubernetes.io/zone"] != "a" ||
		q.Spec.Volumes != nil || q.Spec.Containers[0].Env != nil || q.Spec.Containers[0].Image != "" {
		t.Fatalf("pending GPU pod: %+v", q)
	}
	back := q.Pod()
	if !headroom.IsUnschedulable(back) || nodes.PodGPURequests(back)["nvidia.com/gpu"] != 2 {
		t.Fatalf("rebuilt pod lost what PendingFrom reads: %+v", back)
	}
	s, err := nodes.ShapeOf(&back.Spec)
	if w, _ := nodes.ShapeOf(&p.Spec); err != nil || s.Hash() != w.Hash() {
		t.Fatalf("shape changed by trimming: %v %v", s, err)
	}

	// A placeholder keeps its spec; a preempted one is marked.
	p.Labels = map[string]string{headroom.LabelManagedBy: headroom.ManagedByValue, headroom.LabelComponent: headroom.ComponentValue}
	p.Spec.NodeName = "n1"
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
		{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler"},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	out, _ = Trim(p)
	q = out.(*Pod)
	if !q.Placeholder || !q.Preempted || !q.Ready || q.Spec == nil {
		t.Fatalf("placeholder: %+v", q)
	}
	if c := q.DeepCopyObject().(*Pod); c.Spec == q.Spec || c.Labels["app"] != q.Labels["app"] {
		t.Fatalf("deep copy shares the spec: %+v", c)
	}
}

// The usage index over the informer's records sums what the pods bound to a
// node request (nodes.UsedOn over whole Pods), leaving out placeholders (their
// GPUs are headroom, not load) and finished pods.
func TestUsageIndexSumsRealPodsPerNode(t *testing.T) {
	kube, _ := scaleObjects(10, 3, 60)
	var pods []*corev1.Pod
	for _, o := range kube {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, p)
		}
	}
	pods[3].Status.Phase = corev1.PodSucceeded
	ph := pods[4].DeepCopy()
	ph.Name, ph.Labels = "placeholder", headroom.PlaceholderLabels("zone-a", "h")
	u := newUsageIndex()
	h := u.handler()
	for _, p := range append(pods, ph) {
		o, _ := Trim(p)
		h.OnAdd(o, false)
	}
	got := u.byNode()
	if len(got) != 10 {
		t.Fatalf("usage on %d nodes, want 10", len(got))
	}
	for name, used := range got {
		want := nodes.UsedOn(name, pods) // whole Pods, no placeholder among them
		if used.CPUMilli != want.CPUMilli || used.MemoryBytes != want.MemoryBytes || used.TotalGPUs() != want.TotalGPUs() {
			t.Fatalf("node %s: used %+v, want %+v", name, used, want)
		}
	}
	if u := got[pods[4].Spec.NodeName].TotalGPUs(); u != 8 {
		t.Errorf("%s uses %d GPUs, want 8 (the placeholder's excluded)", pods[4].Spec.NodeName, u)
	}
}

// The usage index follows a pod through its life: bound, moved (a new pod of
// the same name), finished, deleted, deleted while the watch was down.
func TestUsageIndexFollowsPodEvents(t *testing.T) {
	u := newUsageIndex()
	h := u.handler()
	pod := func(node string, cpu string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	trimmed := func(p *corev1.Pod) any { o, _ := Trim(p); return o }
	cpuOn := func(node string) int64 { return u.byNode()[node].CPUMilli }

	h.OnAdd(trimmed(pod("", "1", corev1.PodPending)), false)
	if len(u.byNode()) != 0 {
		t.Fatalf("unbound pod loads a node: %v", u.byNode())
	}
	h.OnUpdate(nil, trimmed(pod("n1", "1", corev1.PodRunning)))
	h.OnAdd(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"}, Spec: pod("n1", "500m", "").Spec}, false) // untrimmed
	if got := cpuOn("n1"); got != 1500 {
		t.Fatalf("n1 cpu %d, want 1500", got)
	}
	h.OnUpdate(nil, trimmed(pod("n2", "2", corev1.PodRunning)))
	if cpuOn("n1") != 500 || cpuOn("n2") != 2000 {
		t.Fatalf("after moving: %v", u.byNode())
	}
	h.OnUpdate(nil, trimmed(pod("n2", "2", corev1.PodSucceeded)))
	if _, ok := u.byNode()["n2"]; ok {
		t.Fatalf("finished pod still loads n2: %v", u.byNode())
	}
	h.OnUpdate(nil, trimmed(pod("n2", "2", corev1.PodRunning)))
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: trimmed(pod("n2", "2", corev1.PodRunning))})
	h.OnDelete(trimmed(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"}}))
	if got := u.byNode(); len(got) != 0 {
		t.Fatalf("deleted pods still load nodes: %v", got)
	}
}

// Node infos are recomputed when a node changes and forgotten when it goes.
func TestNodeInfoCache(t *testing.T) {
	c := nodeInfoCache{}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: "1", Labels: map[string]string{"nvidia.com/gpu.product": "H100"}}}
	if got := c.infos([]*corev1.Node{n}); len(got) != 1 || !got[0].GPUNode || got[0].GPUReady {
		t.Fatalf("first look: %+v", got)
	}
	m := n.DeepCopy()
	m.ResourceVersion = "2"
	m.Status.Allocatable = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8")}
	if got := c.infos([]*corev1.Node{m}); !got[0].GPUReady {
		t.Fatalf("changed node not recomputed: %+v", got[0])
	}
	if c.infos(nil); len(c) != 0 {
		t.Fatalf("gone node kept: %v", c)
	}
}

// The owner index finds the same workload as trying every selector in order:
// equality selectors through the index, expression-only ones by scanning.
func TestOwnerIndexMatchesLinearScan(t *testing.T) {
	mk := func(key string, ls *metav1.LabelSelector) ownerSel { return ownerSel{key: key, sel: selectorOf(ls)} }
	sels := map[string][]ownerSel{"ns": {
		mk("ns/tier", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}}),
		mk("ns/chat", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat"}}),
		mk("ns/chat-big", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat", "size": "big"}}),
		mk("ns/code", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"code"}}}}),
	}}
	owner := ownerOf(sels)
	linear := func(ns string, lbls map[string]string) string {
		for _, o := range sels[ns] {
			if o.sel.Matches(labels.Set(lbls)) {
				return o.key
			}
		}
		return ""
	}
	for _, c := range []struct {
		ns   string
		lbls map[string]string
		want string
	}{
		{"ns", map[string]string{"app": "chat"}, "ns/chat"},
		{"ns", map[string]string{"app": "chat", "size": "big"}, "ns/chat"}, // first in order wins
		{"ns", map[string]string{"app": "code"}, "ns/code"},
		{"ns", map[string]string{"app": "code", "tier": "x"}, "ns/tier"},
		{"ns", map[string]string{"app": "other"}, ""},
		{"other", map[string]string{"app": "chat"}, ""},
		{"ns", nil, ""},
	} {
		if got, lin := owner(c.ns, c.lbls), linear(c.ns, c.lbls); got != c.want || lin != c.want {
			t.Errorf("%s %v: index %q, linear %q, want %q", c.ns, c.lbls, got, lin, c.want)
		}
	}
}

// replicaPods counts a workload's replicas in flight from the not-Ready index:
// bound ones as starting, unbound ones as pending; Ready, terminating, finished,
// placeholder and other workloads' pods do not count.
func TestReplicaPodsCountsNotReadyReplicas(t *testing.T) {
	sels := map[string][]ownerSel{"llm": {{key: "llm/chat", sel: selectorOf(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "chat"}})}}}
	pod := func(name, node string, mod ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "llm", Labels: map[string]string{"app": "chat"}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		if node == "" {
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable}}}
		}
		for _, m := range mod {
			m(p)
		}
		return p
	}
	pods := []*corev1.Pod{
		pod("ready", "n1", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}),
		pod("loading", "n1"),
		pod("pulling", "n2", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
		pod("pending", ""),
		pod("not-yet-tried", "", func(p *corev1.Pod) { p.Status.Conditions = nil }),
		pod("terminating", "n1", func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }),
		pod("failed", "n1", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
		pod("other", "n1", func(p *corev1.Pod) { p.Labels = nil }),
		pod("ph", "n1", func(p *corev1.Pod) { p.Namespace, p.Labels = "gpu-headroom", headroom.PlaceholderLabels("a", "h") }),
	}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{podStateIndex: podState})
	for _, p := range pods {
		o, _ := Trim(p)
		if err := idx.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := podsInState(idx, podStateNotReady, false)
	if err != nil {
		t.Fatal(err)
	}
	got := replicaPods(recs, ownerOf(sels))
	if len(got) != 1 || got["llm/chat"] != (headroom.ReplicaPods{Starting: 2, Pending: 2}) {
		t.Errorf("replicaPods = %+v, want llm/chat starting 2, pending 2", got)
	}
	if got := replicaPods(recs, ownerOf(nil)); len(got) != 0 {
		t.Errorf("without covered workloads = %+v", got)
	}
}

// NewTrim shares one label map between pods with equal labels, and only then.
func TestNewTrimSharesEqualLabels(t *testing.T) {
	trim := NewTrim()
	pod := func(name string, lbls map[string]string) *Pod {
		o, err := trim(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: lbls}})
		if err != nil {
			t.Fatal(err)
		}
		return o.(*Pod)
	}
	a := pod("a", map[string]string{"app": "llm", "pod-template-hash": "1"})
	b := pod("b", map[string]string{"pod-template-hash": "1", "app": "llm"})
	c := pod("c", map[string]string{"app": "llm", "pod-template-hash": "2"})
	d := pod("d", map[string]string{"app": "llm\x00pod-template-hash", "": "1"})
	same := func(x, y map[string]string) bool {
		return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer()
	}
	if !same(a.Labels, b.Labels) {
		t.Error("equal labels not shared")
	}
	if same(a.Labels, c.Labels) || same(a.Labels, d.Labels) || c.Labels["pod-template-hash"] != "2" || d.Labels[""] != "1" {
		t.Errorf("different labels shared: %v %v %v", a.Labels, c.Labels, d.Labels)
	}
	for i := range maxSets + 1 {
		pod(fmt.Sprint("x", i), map[string]string{"i": fmt.Sprint(i)})
	}
	if e := pod("e", map[string]string{"app": "llm", "pod-template-hash": "1"}); e.Labels["app"] != "llm" || !same(e.Labels, pod("f", e.Labels).Labels) {
		t.Errorf("after the interner was emptied: %v", e.Labels)
	}
}
