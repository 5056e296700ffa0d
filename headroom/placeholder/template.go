// Package placeholder builds and writes the placeholder pods that hold warm GPU
// capacity: one ReplicaSet per zone and shape, owned by the controller's label.
package placeholder

import (
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// DefaultPauseImage is the image placeholders run when prepull is off: it does
// nothing and uses no CPU.
const DefaultPauseImage = "registry.k8s.io/pause:3.10"

// TemplateOptions are the settings every placeholder pod shares.
type TemplateOptions struct {
	Namespace         string
	PriorityClassName string
	PauseImage        string
	// Owner, when set, becomes the ReplicaSet's controller-less owner so that
	// deleting it (e.g. the controller's Deployment on helm uninstall) removes
	// every placeholder through garbage collection.
	Owner *metav1.OwnerReference
}

// Prepull, when Image is set, makes the placeholder run the workload's own image
// with its command replaced by a sleep, so a warm node already holds the
// (multi-GB) inference image when an inference pod lands on it.
type Prepull struct {
	Image   string
	Command []string
}

// ReplicaSet returns the placeholder ReplicaSet for one zone and shape. Pods carry
// the shape's GPU limits and CPU/memory requests, are pinned to the zone, copy
// the workload's node selector, required node affinity and tolerations, stop at
// once (grace 0), get no service-account token and run with the restricted Pod
// Security profile.
func ReplicaSet(name, zone, shapeHash string, shape nodes.Shape, replicas int32, o TemplateOptions, pre Prepull) *appsv1.ReplicaSet {
	labels := headroom.PlaceholderLabels(zone, shapeHash)
	sel := map[string]string{headroom.LabelManagedBy: headroom.ManagedByValue, headroom.LabelZone: zone, headroom.LabelShape: shapeHash}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: o.Namespace, Labels: labels,
			Annotations: map[string]string{headroom.AnnotationShape: shape.String()},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels)},
				Spec:       podSpec(zone, shape, o, pre),
			},
		},
	}
	if o.Owner != nil {
		rs.OwnerReferences = []metav1.OwnerReference{*o.Owner}
	}
	return rs
}

func podSpec(zone string, shape nodes.Shape, o TemplateOptions, pre Prepull) corev1.PodSpec {
	no, yes := false, true
	var zero int64
	uid := int64(65535)
	image, command := o.PauseImage, []string(nil)
	if image == "" {
		image = DefaultPauseImage
	}
	if pre.Image != "" {
		image = pre.Image
		command = pre.Command
		if len(command) == 0 {
			command = []string{"sleep", "infinity"}
		}
	}
	req := corev1.ResourceList{}
	if shape.CPUMilli > 0 {
		req[corev1.ResourceCPU] = *resource.NewMilliQuantity(shape.CPUMilli, resource.DecimalSI)
	}
	if shape.MemoryBytes > 0 {
		req[corev1.ResourceMemory] = *resource.NewQuantity(shape.MemoryBytes, resource.BinarySI)
	}
	nodeSelector := maps.Clone(shape.NodeSelector)
	if nodeSelector == nil {
		nodeSelector = map[string]string{}
	}
	nodeSelector[nodes.LabelZone] = zone
	spec := corev1.PodSpec{
		PriorityClassName:             o.PriorityClassName,
		TerminationGracePeriodSeconds: &zero,
		AutomountServiceAccountToken:  &no,
		EnableServiceLinks:            &no,
		NodeSelector:                  nodeSelector,
		Tolerations:                   append([]corev1.Toleration(nil), shape.Tolerations...),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			RunAsUser:      &uid,
			RunAsGroup:     &uid,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:    "placeholder",
			Image:   image,
			Command: command,
			Resources: corev1.ResourceRequirements{
				Requests: req,
				Limits:   corev1.ResourceList{shape.GPUResource: *resource.NewQuantity(shape.GPUs, resource.DecimalSI)},
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: &no,
				ReadOnlyRootFilesystem:   &yes,
				RunAsNonRoot:             &yes,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
	if shape.NodeAffinity != nil {
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: shape.NodeAffinity.DeepCopy(),
		}}
	}
	return spec
}
