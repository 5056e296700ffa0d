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
		p.Spec.Volumes = nil
		for i := range p.Spec.Containers {
			trimContainer(&p.Spec.Containers[i])
		}
		for i := range p.Spec.InitContainers {
			trimContainer(&p.Spec.InitContainers[i])
		}
		p.Status.ContainerStatuses = nil
		p.Status.InitContainerStatuses = nil
		p.Status.EphemeralContainerStatuses = nil
		delete(p.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	}
	return obj, nil
}

func trimContainer(c *corev1.Container) {
	c.Env, c.EnvFrom, c.VolumeMounts, c.VolumeDevices = nil, nil, nil, nil
	c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
	c.Args, c.Command = nil, nil
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
