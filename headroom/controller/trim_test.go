package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	q := out.(*corev1.Pod)
	if got := nodes.PodGPURequests(q); got["nvidia.com/gpu"] != want["nvidia.com/gpu"] || got["nvidia.com/gpu"] != 2 {
		t.Errorf("GPU requests changed: %v -> %v", want, got)
	}
	if q.Spec.NodeName != "n1" || *q.Spec.Priority != -10 || q.Spec.NodeSelector["topology.kubernetes.io/zone"] != "a" ||
		q.Labels["app"] != "x" || q.Status.Phase != corev1.PodRunning || len(q.Status.Conditions) != 1 {
		t.Errorf("lost a field the controller reads: %+v", q)
	}
	if q.Annotations != nil || q.ManagedFields != nil || q.Spec.Volumes != nil || q.Spec.Containers[0].Env != nil || q.Status.PodIP != "" {
		t.Errorf("kept a field nobody reads: %+v", q)
	}
}
