package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels the harness puts on GPU nodes, as NVIDIA's GPU feature discovery and
// cloud providers do on real clusters.
const (
	ZoneLabel         = "topology.kubernetes.io/zone"
	GPUProductLabel   = "nvidia.com/gpu.product"
	GPUCountLabel     = "nvidia.com/gpu.count"
	InstanceTypeLabel = "node.kubernetes.io/instance-type"
	// NodeGroupLabel names the node group a node belongs to (cluster-autoscaler's
	// cloud providers keep the same mapping).
	NodeGroupLabel = "localcluster.gpu-headroom.io/node-group"
	// GPUResource is the default extended resource of a GPU node.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"
)

// NodeGroup is a pool of identical GPU nodes in one zone.
type NodeGroup struct {
	Name string
	Zone string
	// GPUProduct goes in the nvidia.com/gpu.product label (e.g. NVIDIA-H100-80GB-HBM3).
	GPUProduct string
	// GPUResource is the resource the node advertises (default nvidia.com/gpu; a MIG
	// profile such as nvidia.com/mig-1g.10gb is possible) and GPUsPerNode its count.
	GPUResource corev1.ResourceName
	GPUsPerNode int64
	// CPU and Memory allocatable (defaults: 200 cores, 1800Gi, as an 8x H100 host).
	CPU, Memory resource.Quantity
	// MinSize nodes exist from the start; MaxSize caps the group (reached = stockout).
	MinSize, MaxSize int
	// Labels and Taints are added to every node of the group.
	Labels map[string]string
	Taints []corev1.Taint
}

// H100Zones returns one node group of 8x H100 nodes per zone.
func H100Zones(zones []string, minSize, maxSize int) []NodeGroup {
	var gs []NodeGroup
	for _, z := range zones {
		gs = append(gs, NodeGroup{Name: "h100-" + z, Zone: z, GPUProduct: "NVIDIA-H100-80GB-HBM3", GPUsPerNode: 8, MinSize: minSize, MaxSize: maxSize})
	}
	return gs
}

func (g *NodeGroup) defaults() {
	if g.GPUResource == "" {
		g.GPUResource = GPUResource
	}
	if g.GPUsPerNode == 0 {
		g.GPUsPerNode = 8
	}
	if g.CPU.IsZero() {
		g.CPU = resource.MustParse("200")
	}
	if g.Memory.IsZero() {
		g.Memory = resource.MustParse("1800Gi")
	}
	if g.GPUProduct == "" {
		g.GPUProduct = "NVIDIA-H100-80GB-HBM3"
	}
}

// GPUResourceOrDefault is the group's GPU resource name; nil-safe.
func (g *NodeGroup) GPUResourceOrDefault() corev1.ResourceName {
	if g == nil || g.GPUResource == "" {
		return GPUResource
	}
	return g.GPUResource
}

func (g *NodeGroup) validate() error {
	switch {
	case g.Name == "" || g.Zone == "":
		return fmt.Errorf("node group needs a name and a zone: %+v", *g)
	case g.MinSize < 0 || g.MaxSize < g.MinSize:
		return fmt.Errorf("node group %s: need 0 <= min (%d) <= max (%d)", g.Name, g.MinSize, g.MaxSize)
	case g.GPUsPerNode < 0:
		return fmt.Errorf("node group %s: negative GPUs per node", g.Name)
	}
	return nil
}

// resources is what a node of the group advertises; withGPU false leaves the GPU
// resource out, as on a real node before the device plugin registers.
func (g *NodeGroup) resources(withGPU bool) corev1.ResourceList {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    g.CPU,
		corev1.ResourceMemory: g.Memory,
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	if withGPU {
		rl[g.GPUResource] = *resource.NewQuantity(g.GPUsPerNode, resource.DecimalSI)
	}
	return rl
}

// nodeObject is the Node kwok will play the kubelet for.
func (g *NodeGroup) nodeObject(name string) *corev1.Node {
	labels := map[string]string{
		"kubernetes.io/hostname":        name,
		"kubernetes.io/os":              "linux",
		"kubernetes.io/arch":            "amd64",
		"type":                          "kwok",
		ZoneLabel:                       g.Zone,
		"topology.kubernetes.io/region": "local",
		GPUProductLabel:                 g.GPUProduct,
		GPUCountLabel:                   fmt.Sprint(g.GPUsPerNode),
		InstanceTypeLabel:               "kwok-gpu-" + fmt.Sprint(g.GPUsPerNode),
		NodeGroupLabel:                  g.Name,
	}
	for k, v := range g.Labels {
		labels[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Spec: corev1.NodeSpec{Taints: append([]corev1.Taint(nil), g.Taints...)},
	}
}

// AddNode creates a node of group g. With gpuReady false the node has no GPU
// allocatable yet: cluster-autoscaler and gpu-headroom count it as not ready.
func (c *Cluster) AddNode(ctx context.Context, g NodeGroup, name string, gpuReady bool) (*corev1.Node, error) {
	g.defaults()
	n, err := c.Kube.CoreV1().Nodes().Create(ctx, g.nodeObject(name), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating node %s: %w", name, err)
	}
	// Set capacity through the status subresource: a Node's status given at
	// create time is not something to rely on, and kwok keeps what is there.
	if err := c.SetNodeResources(ctx, name, g.resources(gpuReady)); err != nil {
		return nil, err
	}
	return n, nil
}

// SetNodeResources sets a node's capacity and allocatable, e.g. to make its GPUs
// allocatable as the device plugin would.
func (c *Cluster) SetNodeResources(ctx context.Context, name string, rl corev1.ResourceList) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"capacity": rl, "allocatable": rl}})
	if err != nil {
		return fmt.Errorf("encoding node status patch: %w", err)
	}
	if _, err := c.Kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("setting resources of node %s: %w", name, err)
	}
	return nil
}

// WaitNodeReady waits until the node is Ready and has lost the not-ready taint.
func (c *Cluster) WaitNodeReady(ctx context.Context, name string, timeout time.Duration) error {
	return waitFor(ctx, "node "+name+" ready", timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		n, err := c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return NodeSchedulable(n), nil
	})
}

// NodeSchedulable reports whether n is Ready and carries no not-ready or
// unreachable taint.
func NodeSchedulable(n *corev1.Node) bool {
	ready := false
	for _, cnd := range n.Status.Conditions {
		if cnd.Type == corev1.NodeReady && cnd.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, t := range n.Spec.Taints {
		if t.Key == "node.kubernetes.io/not-ready" || t.Key == "node.kubernetes.io/unreachable" {
			return false
		}
	}
	return ready && !n.Spec.Unschedulable
}

// startNodeGroups creates each group's MinSize nodes, GPU-ready, and starts the
// provisioner if asked for.
func (c *Cluster) startNodeGroups(ctx context.Context) error {
	for i := range c.opts.NodeGroups {
		g := &c.opts.NodeGroups[i]
		g.defaults()
		if err := g.validate(); err != nil {
			return err
		}
	}
	var names []string
	for _, g := range c.opts.NodeGroups {
		for i := 0; i < g.MinSize; i++ {
			name := fmt.Sprintf("%s-%d", g.Name, i)
			if _, err := c.AddNode(ctx, g, name, true); err != nil {
				return err
			}
			names = append(names, name)
		}
	}
	for _, n := range names {
		if err := c.WaitNodeReady(ctx, n, 90*time.Second); err != nil {
			return err
		}
	}
	if c.opts.Provisioner != nil {
		p, err := newProvisioner(c.Kube, c.opts.NodeGroups, *c.opts.Provisioner, c.AddNode, c.SetNodeResources, c.opts.Logf)
		if err != nil {
			return err
		}
		c.Provisioner = p
		pctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		c.provDone = make(chan struct{})
		if err := p.start(pctx, c.provDone); err != nil {
			return err
		}
	}
	return nil
}
