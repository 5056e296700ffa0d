package nodes

import (
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Well-known node labels and taints.
const (
	// LabelZone is the GA zone label.
	LabelZone = "topology.kubernetes.io/zone"
	// LabelZoneLegacy is the zone label before GA; some older node images and
	// providers still set only this one, and kube-scheduler still reads it.
	LabelZoneLegacy = "failure-domain.beta.kubernetes.io/zone"
	// LabelGPUProduct is set by NVIDIA GPU feature discovery (e.g. "NVIDIA-H100-80GB-HBM3").
	LabelGPUProduct = "nvidia.com/gpu.product"

	// TaintToBeDeleted is put by cluster-autoscaler on a node it is removing.
	TaintToBeDeleted = "ToBeDeletedByClusterAutoscaler"
	// TaintKarpenterDisruption is put by Karpenter on a node it is disrupting.
	TaintKarpenterDisruption = "karpenter.sh/disruption"
)

// GPULabels are node labels that say "this node has GPUs" before the device plugin
// has advertised them. cluster-autoscaler asks its cloud provider for one such label
// and treats a labelled node without allocatable GPUs as unready (kubernetes/
// autoscaler PR #476; #10301 shows what happens otherwise). We accept the labels of
// NVIDIA GPU feature discovery and of the GKE and EKS node images.
var GPULabels = []string{
	LabelGPUProduct,
	"nvidia.com/gpu.present",
	"nvidia.com/gpu.count",
	"cloud.google.com/gke-accelerator",
	"k8s.amazonaws.com/accelerator",
}

// NodeInfo is the plain-value view of a Node that the planner needs. It holds no
// pointer into the informer cache, so it is safe to keep and compare.
type NodeInfo struct {
	Name string
	// Created is the node's creation time.
	Created time.Time
	// Zone is the node's zone label; "" when the node has none. Such nodes are kept
	// out of per-zone arithmetic.
	Zone string
	// GPUProduct is the NVIDIA product label, "" if absent.
	GPUProduct string
	// Labels is a copy of the node's labels, used to match placeholder shapes
	// (nodeSelector, node affinity).
	Labels map[string]string
	// Taints is a copy of the node's taints, used to match tolerations.
	Taints []corev1.Taint
	// Capacity and Allocatable hold CPU, memory and GPU quantities.
	Capacity    Resources
	Allocatable Resources
	// Ready is the node's Ready condition.
	Ready bool
	// Unschedulable is spec.unschedulable (cordoned).
	Unschedulable bool
	// Deleting is true when the node carries an autoscaler deletion taint or has a
	// deletion timestamp: its capacity is about to disappear.
	Deleting bool
	// HasGPULabel reports whether one of GPULabels is set.
	HasGPULabel bool
	// GPUNode is true for a node that has, or is labelled to have, GPUs.
	GPUNode bool
	// GPUReady follows cluster-autoscaler's rule: a GPU node counts as ready for
	// GPUs only once some GPU resource is allocatable. A node that is labelled (or
	// has GPU capacity) but zero allocatable GPUs is still installing drivers or the
	// device plugin, which can take many minutes. False for non-GPU nodes.
	GPUReady bool
	// NotUsableReason says why Usable() is false; "" when it is true.
	NotUsableReason string
}

// FromNode builds a NodeInfo from a Node. It copies what it keeps; the Node is not
// modified.
func FromNode(n *corev1.Node) NodeInfo {
	info := NodeInfo{
		Name:          n.Name,
		Created:       n.CreationTimestamp.Time,
		Zone:          ZoneOf(n.Labels),
		GPUProduct:    n.Labels[LabelGPUProduct],
		Labels:        maps.Clone(n.Labels),
		Taints:        slices.Clone(n.Spec.Taints),
		Capacity:      fromResourceList(n.Status.Capacity),
		Allocatable:   fromResourceList(n.Status.Allocatable),
		Unschedulable: n.Spec.Unschedulable,
		Deleting:      n.DeletionTimestamp != nil,
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			info.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == TaintToBeDeleted || t.Key == TaintKarpenterDisruption {
			info.Deleting = true
		}
	}
	for _, l := range GPULabels {
		if _, ok := n.Labels[l]; ok {
			info.HasGPULabel = true
			break
		}
	}
	info.GPUNode = info.HasGPULabel || info.Capacity.TotalGPUs() > 0 || info.Allocatable.TotalGPUs() > 0
	info.GPUReady = info.GPUNode && info.Allocatable.TotalGPUs() > 0
	info.NotUsableReason = notUsableReason(info)
	return info
}

// notUsableReason returns why a node cannot take a new GPU pod, or "".
func notUsableReason(n NodeInfo) string {
	switch {
	case !n.GPUNode:
		return "no GPUs"
	case n.Deleting:
		return "being deleted"
	case !n.Ready:
		return "node not Ready"
	case n.Unschedulable:
		return "cordoned"
	case !n.GPUReady:
		return "GPU label but no allocatable GPUs yet"
	case n.Zone == "":
		return "no zone label"
	}
	return ""
}

// Usable reports whether the node can take a new GPU pod now: a Ready, uncordoned,
// GPU-ready node with a zone that no autoscaler is removing. Taints are not checked
// here because they depend on the pod's tolerations (see Shape.FitsNode).
func (n NodeInfo) Usable() bool { return n.NotUsableReason == "" }

// ZoneOf returns the zone from node labels, preferring the GA label and falling back
// to the legacy beta label, as kube-scheduler does. "" when neither is set.
func ZoneOf(labels map[string]string) string {
	if z := labels[LabelZone]; z != "" {
		return z
	}
	return labels[LabelZoneLegacy]
}
