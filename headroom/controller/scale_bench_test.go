package controller

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	kedafake "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned/fake"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// scaleObjects builds a cluster the size the issue asks headroomd to handle:
// nNodes 8-GPU nodes over 3 zones, nWorkloads KEDA workloads (Deployment,
// ScaledObject, HPA) and nPods pods bound to the nodes, shaped like what kwok
// and the API server return (status conditions, container statuses, owner
// references), so the informer transform has real work to do.
func scaleObjects(nNodes, nWorkloads, nPods int) (kube []k8sruntime.Object, keda []*kedav1alpha1.ScaledObject) {
	zones := []string{"zone-a", "zone-b", "zone-c"}
	now := metav1.NewTime(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	gpu := corev1.ResourceName("nvidia.com/gpu")
	for i := range nNodes {
		name := fmt.Sprintf("gpu-%05d", i)
		rl := corev1.ResourceList{gpu: resource.MustParse("8"), corev1.ResourceCPU: resource.MustParse("96"),
			corev1.ResourceMemory: resource.MustParse("1Ti"), corev1.ResourcePods: resource.MustParse("110")}
		kube = append(kube, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1", Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok",
				"topology.kubernetes.io/zone": zones[i%len(zones)], "topology.kubernetes.io/region": "local",
				"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8",
				"node.kubernetes.io/instance-type": "kwok-gpu-8"}},
			Status: corev1.NodeStatus{Capacity: rl, Allocatable: rl, Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletHasSufficientMemory"},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletHasNoDiskPressure"},
				{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletHasSufficientPID"},
			}},
		})
	}
	maxR := int32(10)
	for i := range nWorkloads {
		name := fmt.Sprintf("w-%03d", i)
		zero := int32(0)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench"}, Spec: appsv1.DeploymentSpec{
			Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}}
		d.Spec.Template.Labels = map[string]string{"app": name}
		d.Spec.Template.Spec = benchPodSpec(1)
		hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-" + name, Namespace: "bench"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 10,
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{DesiredReplicas: int32(i % 3)}}
		kube = append(kube, d, hpa)
		keda = append(keda, &kedav1alpha1.ScaledObject{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench", Annotations: map[string]string{headroom.AnnotationEnabled: "true"}},
			Spec: kedav1alpha1.ScaledObjectSpec{ScaleTargetRef: &kedav1alpha1.ScaleTarget{Name: name}, MaxReplicaCount: &maxR,
				Triggers: []kedav1alpha1.ScaleTriggers{{Type: "redis", Metadata: map[string]string{"listName": "q", "listLength": "5"}}}},
		})
	}
	for i := range nPods {
		gpus := int64(0)
		if i < nNodes {
			gpus = 8
		}
		w := fmt.Sprintf("w-%03d", i%nWorkloads)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%05d", i), Namespace: "bench", UID: types.UID(fmt.Sprintf("uid-%05d", i)),
				ResourceVersion: "1", CreationTimestamp: now, Labels: map[string]string{"app": w, "pod-template-hash": "7d9f8b6c5d"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: w + "-7d9f8b6c5d", UID: "rs"}}},
			Spec: benchPodSpec(gpus),
			Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "10.0.0.1", PodIP: "10.1.0.1", StartTime: &now,
				QOSClass: corev1.PodQOSBurstable, Conditions: []corev1.PodCondition{
					{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "main", Ready: true, Image: "registry.example/inference:1",
					ImageID: "registry.example/inference@sha256:0123", ContainerID: "containerd://abc",
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}},
		}
		p.Spec.NodeName = fmt.Sprintf("gpu-%05d", i%nNodes)
		if i%2 == 0 {
			// Half not Ready (kwok leaves many of these pods unready; in a real
			// cluster, pods starting or stuck): each pass counts them.
			p.Status.Phase, p.Status.Conditions = corev1.PodPending, p.Status.Conditions[4:]
		}
		kube = append(kube, p)
	}
	return kube, keda
}

func benchPodSpec(gpus int64) corev1.PodSpec {
	s := corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), Containers: []corev1.Container{{
		Name: "main", Image: "registry.example/inference:1", Command: []string{"python", "-m", "vllm.entrypoints.openai.api_server"},
		Env:       []corev1.EnvVar{{Name: "MODEL", Value: "llama-70b"}},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("1Gi")}},
	}}, Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}}
	if gpus > 0 {
		s.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(gpus, resource.DecimalSI)}
	}
	return s
}

// startScaleController fills fake clients with scaleObjects, starts the
// controller's informers (with the Trim transform headroomd uses) and returns a
// dry-run controller once they are synced, plus the heap the informers added.
func startScaleController(tb testing.TB, nNodes, nWorkloads, nPods int) (*Controller, uint64) {
	tb.Helper()
	kubeObjs, kedaObjs := scaleObjects(nNodes, nWorkloads, nPods)
	kube := fake.NewClientset()
	for _, o := range kubeObjs {
		if err := kube.Tracker().Add(o); err != nil {
			tb.Fatal(err)
		}
	}
	kc := kedafake.NewSimpleClientset()
	for _, o := range kedaObjs {
		if err := kc.Tracker().Add(o); err != nil {
			tb.Fatal(err)
		}
	}
	kubeObjs, kedaObjs = nil, nil
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	inf := NewInformers(kube, kc, "gpu-headroom")

	c, err := New(Options{Namespace: "gpu-headroom", ConfigMapName: "gpu-headroom", BudgetGPUs: 100000, DryRun: true},
		zap.NewNop(), kube, inf, nil, nil, NewMetrics(prometheus.NewRegistry(), "bench"), nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	inf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		tb.Fatal("informers did not sync")
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var grown uint64
	if after.HeapInuse > before.HeapInuse {
		grown = after.HeapInuse - before.HeapInuse
	}
	return c, grown
}

// BenchmarkReconcile is one full dry-run pass over 1,000 GPU nodes, 300
// workloads and 30,000 pods held by informers: the in-process part of the
// scale benchmark (test/cmd/scalebench measures it against a real API server).
// It also reports the heap the informers and the controller's indexes hold per
// pod.
func BenchmarkReconcile(b *testing.B) {
	const nodes, workloads, pods = 1000, 300, 30000
	c, heap := startScaleController(b, nodes, workloads, pods)
	if n := len(c.pods.List()); n != pods {
		b.Fatalf("informer holds %d pods, want %d", n, pods)
	}
	ctx := context.Background()
	for b.Loop() {
		if err := c.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(heap)/pods, "heapB/pod")
	b.ReportMetric(float64(heap)/(1<<20), "heapMiB")
}
