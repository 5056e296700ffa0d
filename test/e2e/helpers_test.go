package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// eventually polls cond until it is true or the deadline passes; the failure
// message says what was awaited and the last state seen.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := ""
	for {
		ok, state := cond(ctx)
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func priorityClass(t *testing.T, kube kubernetes.Interface, name string, value int32, never bool) {
	t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
	if never {
		p := corev1.PreemptNever
		pc.PreemptionPolicy = &p
	}
	if _, err := kube.SchedulingV1().PriorityClasses().Create(context.Background(), pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating PriorityClass %s: %v", name, err)
	}
}

// gpuPodSpec asks for gpus GPUs (as a limit, the way device plugins are used),
// pinned to zone when zone is not empty.
func gpuPodSpec(gpus int64, zone, priorityClassName string) corev1.PodSpec {
	spec := corev1.PodSpec{
		PriorityClassName:             priorityClassName,
		TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{
			Name:  "main",
			Image: "registry.example/inference:1",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
				Limits:   corev1.ResourceList{localcluster.GPUResource: *resource.NewQuantity(gpus, resource.DecimalSI)},
			},
		}},
	}
	if zone != "" {
		spec.NodeSelector = map[string]string{localcluster.ZoneLabel: zone}
	}
	return spec
}

func createPod(t *testing.T, kube kubernetes.Interface, ns, name string, spec corev1.PodSpec) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}}, Spec: spec}
	if _, err := kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
}

func replicaSet(ns, name string, replicas int32, spec corev1.PodSpec) *appsv1.ReplicaSet {
	sel := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: spec},
		},
	}
}

// podState summarises a pod for failure messages.
func podState(ctx context.Context, kube kubernetes.Interface, ns, name string) (*corev1.Pod, string) {
	p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err.Error()
	}
	return p, fmt.Sprintf("phase=%s node=%q nominated=%q", p.Status.Phase, p.Spec.NodeName, p.Status.NominatedNodeName)
}

func running(p *corev1.Pod) bool {
	return p != nil && p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil
}

// podsOf lists the live pods matching selector.
func podsOf(ctx context.Context, kube kubernetes.Interface, ns string, sel map[string]string) ([]corev1.Pod, error) {
	l, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(sel).String()})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// nodesInZone returns the names of the nodes in zone.
func nodesInZone(ctx context.Context, kube kubernetes.Interface, zone string) ([]string, error) {
	l, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: localcluster.ZoneLabel + "=" + zone})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	return names, nil
}
