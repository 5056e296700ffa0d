package controller

import (
	"errors"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
)

// agentReports reads the headroom-agent node summaries in the controller's
// namespace: node name -> unhealthy GPUs. Stale, future-dated, mismatched or
// malformed reports are ignored (logged once per pass at debug level): a report
// only ever discounts GPUs a Node advertises, never adds any.
func (c *Controller) agentReports(now time.Time) map[string]int {
	sel := labels.SelectorFromSet(labels.Set{agentreport.LabelComponent: agentreport.ComponentValue})
	cms, err := c.configmaps.ConfigMaps(c.opts.Namespace).List(sel)
	if err != nil {
		c.log.Error("listing headroom-agent reports", zap.Error(err))
		return nil
	}
	out := map[string]int{}
	for _, cm := range cms {
		s, err := agentreport.SummaryFromConfigMap(cm, now)
		if err != nil {
			lvl := c.log.Debug
			if !errors.Is(err, agentreport.ErrStale) {
				lvl = c.log.Warn
			}
			lvl("ignoring headroom-agent report", zap.String("configmap", cm.Name), zap.Error(err))
			continue
		}
		if s.UnhealthyGPUs > 0 {
			out[s.NodeName] = s.UnhealthyGPUs
		}
	}
	return out
}

// discountUnhealthy removes GPUs the node agent reports unhealthy from the
// nodes' allocatable GPUs, so they are not counted as free warm capacity. A node
// left with none is not usable.
func discountUnhealthy(ns []headroom.Node, unhealthy map[string]int) {
	for i := range ns {
		bad := int64(unhealthy[ns[i].Name])
		if bad == 0 {
			continue
		}
		n := &ns[i]
		alloc := n.Allocatable.Clone()
		for _, name := range alloc.GPUNames() {
			if !isFullGPU(name) {
				continue
			}
			alloc.GPUs[name] = max(alloc.GPUs[name]-bad, 0)
		}
		n.Allocatable = alloc
		if alloc.TotalGPUs() == 0 && n.NotUsableReason == "" {
			n.NotUsableReason = "all GPUs reported unhealthy by headroom-agent"
		}
	}
}

// isFullGPU reports whether a GPU resource counts whole devices (the agent's
// unhealthy count is in devices; MIG slices are not discounted one for one).
func isFullGPU(name corev1.ResourceName) bool {
	return name == "nvidia.com/gpu" || name == "amd.com/gpu"
}
