package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// The node agent's summary changes what the controller counts as warm: a report
// with two unhealthy GPUs on the node that holds an 8-GPU placeholder lowers the
// warm GPUs from 8 to 6 and shows them as unhealthy. The report is injected as
// the agent writes it (a ConfigMap per node in the controller's namespace).
func TestHeadroomdDiscountsAgentReportedUnhealthyGPUs(t *testing.T) {
	c, ctx := controllerCluster(t, localcluster.H100Zones([]string{"zone-a"}, 1, 2), fastProvisioner(), "zones:\n  zone-a: {min: 8, max: 8}\n")
	deployScaled(t, c, "team", "llm", true)
	h := startHeadroomd(t, c, "a")
	eventually(t, 2*time.Minute, "8 warm GPUs", func(ctx context.Context) (bool, string) {
		v, err := h.metric(ctx, "headroom_reserved_gpus", "zone", "zone-a")
		return err == nil && v == 8, fmt.Sprint(v, err)
	})
	node := "h100-zone-a-0"
	s := agentreport.Summary{Version: agentreport.Version, NodeName: node, ObservedAt: time.Now().UTC(), AgentVersion: "e2e"}
	s.NVML.Available = true
	for i := 0; i < 8; i++ {
		g := agentreport.GPU{Index: i, UUID: fmt.Sprintf("GPU-%d", i), Product: "NVIDIA H100 80GB HBM3", Healthy: true}
		if i < 2 {
			g.Healthy, g.Reasons, g.CriticalXIDs = false, []string{"XID 79: GPU has fallen off the bus"}, []uint64{79}
		}
		s.GPUs = append(s.GPUs, g)
	}
	s.Recount()
	cm, err := agentreport.ToConfigMap(controllerNS, s)
	if err != nil {
		t.Fatalf("encoding report: %v", err)
	}
	if _, err := c.Kube.CoreV1().ConfigMaps(controllerNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("writing report: %v", err)
	}
	eventually(t, time.Minute, "warm GPUs discounted to 6, 2 unhealthy", func(ctx context.Context) (bool, string) {
		warm, err1 := h.metric(ctx, "headroom_reserved_gpus", "zone", "zone-a")
		bad, err2 := h.metric(ctx, "headroom_unhealthy_gpus", "zone", "zone-a")
		return err1 == nil && err2 == nil && warm == 6 && bad == 2, fmt.Sprint(warm, bad, err1, err2)
	})
	// A report for another node's name under this node's object name is refused.
	s.NodeName = "someone-else"
	forged, _ := agentreport.ToConfigMap(controllerNS, s)
	forged.Name = agentreport.ConfigMapName("h100-zone-a-1")
	if _, err := c.Kube.CoreV1().ConfigMaps(controllerNS).Create(ctx, forged, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ts0, _ := h.metric(ctx, "headroom_last_successful_reconcile_timestamp_seconds")
	eventually(t, 30*time.Second, "two more reconciles", func(ctx context.Context) (bool, string) {
		ts, err := h.metric(ctx, "headroom_last_successful_reconcile_timestamp_seconds")
		return err == nil && ts >= ts0+3, fmt.Sprint(ts, err)
	})
	if bad, _ := h.metric(ctx, "headroom_unhealthy_gpus"); bad != 2 {
		t.Fatalf("a mismatched report changed the count: %v unhealthy", bad)
	}
}
