// Package keda translates what KEDA wants into plain values: a KEDA ScaledObject, the
// HorizontalPodAutoscaler KEDA owns for it and its scale target (Deployment or
// StatefulSet) become one Workload with the pod shape, the demand signals and the
// KEDA state that qualifies them.
//
// The translation is pure (no client, clock or logger), so the controller, the CLI's
// plan preview and the simulator all read KEDA the same way. The ScaledObject status
// carries no desired replica count (keda#417), which is why the HPA is an input.
package keda

import (
	"fmt"
	"strconv"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// State is the KEDA state that qualifies a workload's demand signals.
type State string

// States, from the most to the least usable demand signal.
const (
	// StateActive: the HPA exists and its numbers are genuine demand.
	StateActive State = "Active"
	// StateScaledToZero: KEDA's Active condition is False and the target has zero
	// replicas; the HPA is disabled at zero, so there is no reactive demand.
	StateScaledToZero State = "ScaledToZero"
	// StatePaused: the paused or paused-replicas annotation (or KEDA's Paused
	// condition) holds the target at a fixed size; pausing deletes the HPA.
	StatePaused State = "Paused"
	// StateFallback: KEDA's Fallback condition is True: a scaler is failing and KEDA
	// feeds the HPA its fallback replica count. The numbers are not genuine demand;
	// the caller should keep the last good value (see Workload.HoldLastGood).
	StateFallback State = "Fallback"
	// StateHPAMissing: the HPA does not exist (yet). Demand falls back to the
	// target's replica count.
	StateHPAMissing State = "HPAMissing"
	// StateTargetMissing: the scale target does not exist.
	StateTargetMissing State = "TargetMissing"
	// StateUnsupported: the scale target is neither a Deployment nor a StatefulSet,
	// or its pods ask for more than one GPU resource.
	StateUnsupported State = "Unsupported"
	// StateNoGPU: the target's pods request no GPU; there is nothing to keep warm.
	StateNoGPU State = "NoGPU"
)

// Workload is one ScaledObject and what it tells us, as plain values.
type Workload struct {
	Namespace string
	Name      string // the ScaledObject's name
	// TargetKind and TargetName name the scale target (Kind defaults to Deployment,
	// as in KEDA).
	TargetKind string
	TargetName string
	// HPAName is the HPA KEDA owns for this ScaledObject.
	HPAName string

	// Shape is the GPU shape of the target's pods; valid when HasShape.
	Shape    nodes.Shape
	HasShape bool
	// ShapeHash caches Shape.Hash() (set by Translate; "" when no shape). The
	// planner computes it when empty, e.g. for hand-built workloads.
	ShapeHash string

	State State
	// Reason explains State in one line, for logs, Events and plan reasons.
	Reason string

	// DesiredReplicas is the HPA's status.desiredReplicas, already clamped to
	// [minReplicas, maxReplicas]; valid when HasDesired.
	DesiredReplicas int32
	HasDesired      bool
	// MetricReplicas is the largest metric-implied replica count over the HPA's
	// metrics, not clamped by maxReplicas; valid when HasMetricReplicas. Metrics
	// lists each metric's value.
	MetricReplicas    int32
	HasMetricReplicas bool
	Metrics           []MetricReplicas

	// SpecReplicas and ReadyReplicas come from the scale target.
	SpecReplicas  int32
	ReadyReplicas int32
	// StartingReplicas counts the target's pods that are bound to a node but not
	// Ready yet (pulling the image, loading the model): they already hold their
	// GPUs, so they need no headroom. PendingReplicas counts its pods that no node
	// has taken yet. Neither comes from the target's status: the controller counts
	// them from its pod cache (headroom.ReplicaPods per workload), the simulator from its
	// pods; Translate leaves them at zero.
	StartingReplicas int32
	PendingReplicas  int32
	// MinReplicas and MaxReplicas are the ScaledObject's counts with KEDA's
	// defaults applied (0 and 100).
	MinReplicas int32
	MaxReplicas int32

	// Paused is true in StatePaused; PausedReplicas is the paused-replicas
	// annotation when set and valid.
	Paused         bool
	PausedReplicas *int32
	// Fallback is true when KEDA's Fallback condition is True (see StateFallback).
	Fallback bool
}

// Key returns "namespace/name" of the ScaledObject, the key used in Demand maps and
// in config overrides.
func (w Workload) Key() string { return w.Namespace + "/" + w.Name }

// HoldLastGood reports whether this workload's demand signals are not genuine right
// now, so the caller should keep using the last good demand it computed: KEDA is in
// fallback (a scaler fails), or the HPA briefly does not exist while the workload is
// not paused (KEDA is creating or recreating it).
func (w Workload) HoldLastGood() bool {
	return w.State == StateFallback || w.State == StateHPAMissing
}

// AllowedZones returns the zones among known that the workload's pods may run in,
// from their nodeSelector and required node affinity on the zone label. Sorted.
func (w Workload) AllowedZones(known []string) []string {
	if !w.HasShape {
		return nil
	}
	return w.Shape.AllowedZones(known)
}

// Inputs are the objects Translate reads. Only ScaledObject is required; nil HPA and
// nil targets mean "not found in the informer cache".
type Inputs struct {
	ScaledObject *kedav1alpha1.ScaledObject
	HPA          *autoscalingv2.HorizontalPodAutoscaler
	Deployment   *appsv1.Deployment
	StatefulSet  *appsv1.StatefulSet
}

// KEDA's defaults for the replica range (apis/keda/v1alpha1 scaledobject_types.go).
const (
	defaultMinReplicas int32 = 0
	defaultMaxReplicas int32 = 100
)

// HPAName returns the name of the HPA KEDA owns for so: status.hpaName when KEDA has
// recorded it, else spec.advanced.horizontalPodAutoscalerConfig.name, else
// "keda-hpa-<name>".
func HPAName(so *kedav1alpha1.ScaledObject) string {
	if so.Status.HpaName != "" {
		return so.Status.HpaName
	}
	if a := so.Spec.Advanced; a != nil && a.HorizontalPodAutoscalerConfig != nil && a.HorizontalPodAutoscalerConfig.Name != "" {
		return a.HorizontalPodAutoscalerConfig.Name
	}
	return "keda-hpa-" + so.Name
}

// TargetRef returns the kind and name of the scale target, and whether the kind is
// one we read (apps Deployment or StatefulSet). An empty kind means Deployment, as
// in KEDA.
func TargetRef(so *kedav1alpha1.ScaledObject) (kind, name string, supported bool) {
	ref := so.Spec.ScaleTargetRef
	if ref == nil {
		return "", "", false
	}
	kind = ref.Kind
	if kind == "" {
		kind = "Deployment"
	}
	group := ""
	if ref.APIVersion != "" {
		if i := strings.Index(ref.APIVersion, "/"); i >= 0 {
			group = ref.APIVersion[:i]
		}
	} else {
		group = "apps"
	}
	supported = group == "apps" && (kind == "Deployment" || kind == "StatefulSet")
	return kind, ref.Name, supported
}

// Translate builds the Workload for one ScaledObject. It never fails: every problem
// becomes a State and a Reason, so one broken ScaledObject does not stop the others
// from being planned.
//
// States are decided in this order, first match wins: unsupported target kind,
// target missing, no GPU / several GPU resources, paused, HPA missing (unless scaled
// to zero), fallback, scaled to zero, active.
func Translate(in Inputs) Workload {
	so := in.ScaledObject
	w := Workload{
		Namespace:   so.Namespace,
		Name:        so.Name,
		HPAName:     HPAName(so),
		MinReplicas: defaultMinReplicas,
		MaxReplicas: defaultMaxReplicas,
	}
	if so.Spec.MinReplicaCount != nil {
		w.MinReplicas = *so.Spec.MinReplicaCount
	}
	if so.Spec.MaxReplicaCount != nil {
		w.MaxReplicas = *so.Spec.MaxReplicaCount
	}
	kind, name, supported := TargetRef(so)
	w.TargetKind, w.TargetName = kind, name
	if !supported {
		return w.with(StateUnsupported, fmt.Sprintf("scale target kind %q is not supported (Deployment or StatefulSet only)", kind))
	}

	var template *corev1.PodTemplateSpec
	switch {
	case kind == "Deployment" && in.Deployment != nil && in.Deployment.Name == name:
		template = &in.Deployment.Spec.Template
		w.SpecReplicas = replicas(in.Deployment.Spec.Replicas)
		w.ReadyReplicas = in.Deployment.Status.ReadyReplicas
	case kind == "StatefulSet" && in.StatefulSet != nil && in.StatefulSet.Name == name:
		template = &in.StatefulSet.Spec.Template
		w.SpecReplicas = replicas(in.StatefulSet.Spec.Replicas)
		w.ReadyReplicas = in.StatefulSet.Status.ReadyReplicas
	default:
		return w.with(StateTargetMissing, fmt.Sprintf("scale target %s %s/%s not found", kind, so.Namespace, name))
	}

	shape, err := nodes.ShapeOf(&template.Spec)
	if err != nil {
		if len(nodes.PodSpecRequests(&template.Spec).GPUNames()) == 0 {
			return w.with(StateNoGPU, fmt.Sprintf("%s %s pods request no GPU", kind, name))
		}
		return w.with(StateUnsupported, fmt.Sprintf("%s %s: %v", kind, name, err))
	}
	w.Shape, w.HasShape, w.ShapeHash = shape, true, shape.Hash()

	hpa := in.HPA
	if hpa != nil && hpa.Name != w.HPAName {
		hpa = nil // not the HPA KEDA owns for this ScaledObject
	}
	if hpa != nil {
		w.DesiredReplicas, w.HasDesired = hpa.Status.DesiredReplicas, true
		w.Metrics = metricReplicas(hpa)
		for _, m := range w.Metrics {
			if !w.HasMetricReplicas || m.Replicas > w.MetricReplicas {
				w.MetricReplicas, w.HasMetricReplicas = m.Replicas, true
			}
		}
	}

	conds := so.Status.Conditions
	if paused, reason := pausedState(so, &w); paused {
		w.Paused = true
		return w.with(StatePaused, reason)
	}
	if c := conds.GetActiveCondition(); c.Status == metav1.ConditionFalse && w.SpecReplicas == 0 && !isTrue(conds.GetFallbackCondition()) {
		return w.with(StateScaledToZero, "scaled to zero: KEDA Active condition is False")
	}
	if hpa == nil {
		return w.with(StateHPAMissing, fmt.Sprintf("HPA %s/%s not found (KEDA has not created it yet); using the target's %d replicas", so.Namespace, w.HPAName, w.SpecReplicas))
	}
	if c := conds.GetFallbackCondition(); isTrue(c) {
		w.Fallback = true
		return w.with(StateFallback, "KEDA Fallback condition is True"+detail(c)+": replicas are KEDA's fallback, not genuine demand")
	}
	reason := fmt.Sprintf("HPA desires %d of %d..%d replicas", w.DesiredReplicas, w.MinReplicas, w.MaxReplicas)
	if w.HasMetricReplicas {
		reason += fmt.Sprintf("; metrics imply %d", w.MetricReplicas)
	}
	return w.with(StateActive, reason+fmt.Sprintf("; %d ready", w.ReadyReplicas))
}

// pausedState applies KEDA's pause rules (ScaledObject.NeedToBePausedByAnnotation):
// paused-replicas alone pauses, and any paused value that is not a boolean counts as
// true. KEDA's Paused condition also counts, since the annotation may have been
// removed while KEDA has not yet resumed.
func pausedState(so *kedav1alpha1.ScaledObject, w *Workload) (bool, string) {
	ann := so.GetAnnotations()
	if v, ok := ann[kedav1alpha1.PausedReplicasAnnotation]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return true, fmt.Sprintf("paused by %s with an invalid value %q; holding the target's %d replicas", kedav1alpha1.PausedReplicasAnnotation, v, w.SpecReplicas)
		}
		r := int32(n)
		w.PausedReplicas = &r
		return true, fmt.Sprintf("paused at %d replicas by %s", r, kedav1alpha1.PausedReplicasAnnotation)
	}
	if v, ok := ann[kedav1alpha1.PausedAnnotation]; ok {
		if b, err := strconv.ParseBool(v); err != nil || b {
			return true, fmt.Sprintf("paused by %s; holding the target's %d replicas", kedav1alpha1.PausedAnnotation, w.SpecReplicas)
		}
	}
	if isTrue(so.Status.Conditions.GetPausedCondition()) {
		return true, fmt.Sprintf("KEDA Paused condition is True; holding the target's %d replicas", w.SpecReplicas)
	}
	return false, ""
}

func (w Workload) with(s State, reason string) Workload {
	w.State, w.Reason = s, reason
	return w
}

func isTrue(c kedav1alpha1.Condition) bool { return c.Status == metav1.ConditionTrue }

func detail(c kedav1alpha1.Condition) string {
	if c.Reason == "" {
		return ""
	}
	return " (" + c.Reason + ")"
}

// replicas reads an optional replica count; the API defaults a nil count to 1.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}
