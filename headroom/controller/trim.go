package controller

import (
	"encoding/json"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// Trim is an informer transform that drops what the controller never reads, to
// keep memory low with tens of thousands of pods: managed fields everywhere, and
// for pods the volumes, env, probes and container statuses.
func Trim(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	if p, ok := obj.(*corev1.Pod); ok {
		// Pods are most of what the informers hold: keep what scheduling,
		// demand and placeholder accounting read, drop the rest.
		p.Annotations = nil
		p.Spec = corev1.PodSpec{
			NodeName: p.Spec.NodeName, NodeSelector: p.Spec.NodeSelector, Affinity: trimAffinity(p.Spec.Affinity),
			Tolerations: p.Spec.Tolerations, Priority: p.Spec.Priority, PriorityClassName: p.Spec.PriorityClassName,
			Overhead: p.Spec.Overhead, Containers: trimContainers(p.Spec.Containers), InitContainers: trimContainers(p.Spec.InitContainers),
		}
		p.Status = corev1.PodStatus{Phase: p.Status.Phase, Conditions: p.Status.Conditions, NominatedNodeName: p.Status.NominatedNodeName}
	}
	return obj, nil
}

// trimContainers keeps each container's name, resources and restart policy
// (sidecars count like app containers).
func trimContainers(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
	}
	return out
}

// trimAffinity keeps required node affinity only (what decides where a pod fits).
func trimAffinity(a *corev1.Affinity) *corev1.Affinity {
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution}}
}

// ServeReport writes the last plan as JSON (the /debug/plan endpoint).
func ServeReport(w http.ResponseWriter, r *Report) {
	if r == nil {
		http.Error(w, "no reconcile pass yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}
