package nodes

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func rl(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func gpuNode(name, zone string, alloc corev1.ResourceList, mod ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelZone: zone, LabelGPUProduct: "NVIDIA-H100"}},
		Status: corev1.NodeStatus{
			Capacity:    alloc,
			Allocatable: alloc,
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, m := range mod {
		m(n)
	}
	return n
}

func TestFromNode(t *testing.T) {
	eight := rl("cpu", "32", "memory", "256Gi", "nvidia.com/gpu", "8")
	tests := []struct {
		name                      string
		node                      *corev1.Node
		wantZone, wantReason      string
		wantGPUNode, wantGPUReady bool
	}{
		{name: "ready GPU node", node: gpuNode("a", "z1", eight), wantZone: "z1", wantGPUNode: true, wantGPUReady: true},
		{name: "labelled, zero allocatable (CA rule)", node: gpuNode("b", "z1", eight, func(n *corev1.Node) {
			n.Status.Allocatable = rl("cpu", "32", "nvidia.com/gpu", "0")
		}), wantZone: "z1", wantGPUNode: true, wantReason: "GPU label but no allocatable GPUs yet"},
		{name: "labelled, GPU resource absent", node: gpuNode("b2", "z1", rl("cpu", "32")), wantZone: "z1", wantGPUNode: true, wantReason: "GPU label but no allocatable GPUs yet"},
		{name: "capacity only, no label", node: gpuNode("b3", "z1", rl("nvidia.com/gpu", "8"), func(n *corev1.Node) {
			delete(n.Labels, LabelGPUProduct)
			n.Status.Allocatable = rl("cpu", "1")
		}), wantZone: "z1", wantGPUNode: true, wantReason: "GPU label but no allocatable GPUs yet"},
		{name: "CPU node", node: gpuNode("c", "z1", rl("cpu", "8"), func(n *corev1.Node) { delete(n.Labels, LabelGPUProduct) }), wantZone: "z1", wantReason: "no GPUs"},
		{name: "not ready", node: gpuNode("d", "z1", eight, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionUnknown }),
			wantZone: "z1", wantGPUNode: true, wantGPUReady: true, wantReason: "node not Ready"},
		{name: "no Ready condition", node: gpuNode("d2", "z1", eight, func(n *corev1.Node) { n.Status.Conditions = nil }),
			wantZone: "z1", wantGPUNode: true, wantGPUReady: true, wantReason: "node not Ready"},
		{name: "cordoned", node: gpuNode("e", "z1", eight, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
			wantZone: "z1", wantGPUNode: true, wantGPUReady: true, wantReason: "cordoned"},
		{name: "CA deletion taint", node: gpuNode("f", "z1", eight, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: TaintToBeDeleted, Effect: corev1.TaintEffectNoSchedule}}
		}), wantZone: "z1", wantGPUNode: true, wantGPUReady: true, wantReason: "being deleted"},
		{name: "legacy zone label", node: gpuNode("g", "", eight, func(n *corev1.Node) {
			delete(n.Labels, LabelZone)
			n.Labels[LabelZoneLegacy] = "old"
		}), wantZone: "old", wantGPUNode: true, wantGPUReady: true},
		{name: "no zone", node: gpuNode("h", "", eight, func(n *corev1.Node) { delete(n.Labels, LabelZone) }),
			wantGPUNode: true, wantGPUReady: true, wantReason: "no zone label"},
		{name: "MIG only", node: gpuNode("i", "z2", rl("nvidia.com/mig-1g.10gb", "7")), wantZone: "z2", wantGPUNode: true, wantGPUReady: true},
		{name: "AMD", node: gpuNode("j", "z2", rl("amd.com/gpu", "8"), func(n *corev1.Node) { delete(n.Labels, LabelGPUProduct) }),
			wantZone: "z2", wantGPUNode: true, wantGPUReady: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromNode(tt.node)
			if got.Zone != tt.wantZone || got.GPUNode != tt.wantGPUNode || got.GPUReady != tt.wantGPUReady || got.NotUsableReason != tt.wantReason {
				t.Errorf("FromNode = zone %q gpuNode %v gpuReady %v reason %q; want %q %v %v %q",
					got.Zone, got.GPUNode, got.GPUReady, got.NotUsableReason, tt.wantZone, tt.wantGPUNode, tt.wantGPUReady, tt.wantReason)
			}
			if got.Usable() != (tt.wantReason == "") {
				t.Errorf("Usable() = %v", got.Usable())
			}
		})
	}
}

func TestFromNodeCopies(t *testing.T) {
	n := gpuNode("a", "z1", rl("nvidia.com/gpu", "8"))
	info := FromNode(n)
	n.Labels[LabelZone] = "changed"
	if info.Labels[LabelZone] != "z1" {
		t.Fatal("NodeInfo shares the Node's label map")
	}
	if info.GPUProduct != "NVIDIA-H100" || info.Allocatable.GPU(ResourceNvidiaGPU) != 8 {
		t.Fatalf("unexpected %+v", info)
	}
}

func always() *corev1.ContainerRestartPolicy {
	p := corev1.ContainerRestartPolicyAlways
	return &p
}

func TestPodSpecRequests(t *testing.T) {
	c := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want Resources
	}{
		{name: "empty", spec: corev1.PodSpec{}, want: Resources{}},
		{name: "GPU in limits only", spec: corev1.PodSpec{Containers: []corev1.Container{c(rl("cpu", "2"), rl("nvidia.com/gpu", "2"))}},
			want: Resources{CPUMilli: 2000, GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 2}}},
		{name: "limit wins over request for GPUs", spec: corev1.PodSpec{Containers: []corev1.Container{c(rl("nvidia.com/gpu", "1"), rl("nvidia.com/gpu", "2"))}},
			want: Resources{GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 2}}},
		{name: "cpu and memory from limits when requests absent", spec: corev1.PodSpec{Containers: []corev1.Container{c(nil, rl("cpu", "500m", "memory", "1Gi"))}},
			want: Resources{CPUMilli: 500, MemoryBytes: 1 << 30}},
		{name: "containers add up", spec: corev1.PodSpec{Containers: []corev1.Container{
			c(rl("cpu", "1"), rl("nvidia.com/gpu", "1")), c(rl("cpu", "1"), rl("nvidia.com/gpu", "2"))}},
			want: Resources{CPUMilli: 2000, GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 3}}},
		{name: "init container below main does not add", spec: corev1.PodSpec{
			InitContainers: []corev1.Container{c(nil, rl("nvidia.com/gpu", "1"))},
			Containers:     []corev1.Container{c(nil, rl("nvidia.com/gpu", "2"))}},
			want: Resources{GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 2}}},
		{name: "init container above main wins", spec: corev1.PodSpec{
			InitContainers: []corev1.Container{c(rl("cpu", "4"), rl("nvidia.com/gpu", "4"))},
			Containers:     []corev1.Container{c(rl("cpu", "1"), rl("nvidia.com/gpu", "2"))}},
			want: Resources{CPUMilli: 4000, GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 4}}},
		{name: "sidecar adds to main", spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{RestartPolicy: always(), Resources: corev1.ResourceRequirements{Requests: rl("cpu", "1")}}},
			Containers:     []corev1.Container{c(rl("cpu", "1"), rl("nvidia.com/gpu", "1"))}},
			want: Resources{CPUMilli: 2000, GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 1}}},
		{name: "init after sidecar runs beside it", spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				{RestartPolicy: always(), Resources: corev1.ResourceRequirements{Requests: rl("cpu", "1")}},
				c(rl("cpu", "3"), nil)},
			Containers: []corev1.Container{c(rl("cpu", "1"), nil)}},
			want: Resources{CPUMilli: 4000}},
		{name: "overhead added", spec: corev1.PodSpec{Overhead: rl("cpu", "100m"), Containers: []corev1.Container{c(rl("cpu", "1"), nil)}},
			want: Resources{CPUMilli: 1100}},
		{name: "MIG and AMD names", spec: corev1.PodSpec{Containers: []corev1.Container{c(nil, rl("nvidia.com/mig-1g.10gb", "1", "amd.com/gpu", "1", "example.com/foo", "3"))}},
			want: Resources{GPUs: map[corev1.ResourceName]int64{"nvidia.com/mig-1g.10gb": 1, "amd.com/gpu": 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PodSpecRequests(&tt.spec); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PodSpecRequests = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIsGPUResource(t *testing.T) {
	for name, want := range map[corev1.ResourceName]bool{
		"nvidia.com/gpu": true, "nvidia.com/gpu.shared": true, "nvidia.com/mig-1g.10gb": true, "amd.com/gpu": true,
		"nvidia.com/mig-": false, "cpu": false, "example.com/gpu": false,
	} {
		if got := IsGPUResource(name); got != want {
			t.Errorf("IsGPUResource(%q) = %v", name, got)
		}
	}
}

func TestFree(t *testing.T) {
	node := FromNode(gpuNode("n1", "z1", rl("cpu", "32", "memory", "64Gi", "nvidia.com/gpu", "8")))
	pod := func(nodeName string, phase corev1.PodPhase, gpus string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{
			Resources: corev1.ResourceRequirements{Requests: rl("cpu", "4"), Limits: rl("nvidia.com/gpu", gpus)}}}},
			Status: corev1.PodStatus{Phase: phase}}
	}
	pods := []*corev1.Pod{
		pod("n1", corev1.PodRunning, "2"),
		pod("n1", corev1.PodPending, "1"), // bound, not started: still holds its GPUs
		pod("n1", corev1.PodSucceeded, "4"),
		pod("n1", corev1.PodFailed, "4"),
		pod("n2", corev1.PodRunning, "8"),
		pod("", corev1.PodPending, "8"),
		nil,
	}
	got := Free(node, pods)
	want := Resources{CPUMilli: 24000, MemoryBytes: 64 << 30, GPUs: map[corev1.ResourceName]int64{"nvidia.com/gpu": 5}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Free = %+v, want %+v", got, want)
	}
	over := append(pods, pod("n1", corev1.PodRunning, "9"))
	if g := FreeGPUs(node, over); len(g) != 0 {
		t.Fatalf("over-committed node should have no free GPUs, got %v", g)
	}
	unready := FromNode(gpuNode("n1", "z1", rl("nvidia.com/gpu", "0")))
	if g := FreeGPUs(unready, nil); len(g) != 0 {
		t.Fatalf("GPU-unready node should have no free GPUs, got %v", g)
	}
}
