package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

func TestDiscountUnhealthy(t *testing.T) {
	mk := func(name string, gpus int64, res string) headroom.Node {
		n := headroom.Node{}
		n.Name = name
		n.Allocatable = nodes.Resources{GPUs: map[corev1.ResourceName]int64{corev1.ResourceName(res): gpus}}
		return n
	}
	ns := []headroom.Node{mk("a", 8, "nvidia.com/gpu"), mk("b", 2, "nvidia.com/gpu"), mk("c", 7, "nvidia.com/mig-1g.10gb"), mk("d", 8, "nvidia.com/gpu")}
	discountUnhealthy(ns, map[string]int{"a": 2, "b": 3, "c": 1})
	want := []int64{6, 0, 7, 8}
	for i, n := range ns {
		if got := n.Allocatable.TotalGPUs(); got != want[i] {
			t.Errorf("node %s: %d GPUs after discount, want %d", n.Name, got, want[i])
		}
	}
	if ns[1].NotUsableReason == "" || ns[0].NotUsableReason != "" {
		t.Errorf("usability: a=%q b=%q", ns[0].NotUsableReason, ns[1].NotUsableReason)
	}
}
