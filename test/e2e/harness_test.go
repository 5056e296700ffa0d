package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// fastProvisioner has delays of about a second so tests run in seconds.
func fastProvisioner() *localcluster.ProvisionerOptions {
	return &localcluster.ProvisionerOptions{
		ScanInterval:   300 * time.Millisecond,
		ProvisionDelay: 500 * time.Millisecond,
		GPUReadyDelay:  500 * time.Millisecond,
		UnneededTime:   3 * time.Second,
	}
}

// A GPU pod at priority 0 preempts a placeholder at -10 on a full node; the
// placeholder's ReplicaSet makes a new pending pod, the provisioner adds a node in
// that zone, and the placeholder runs there.
func TestPreemptionRefillsThroughProvisioner(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		NodeGroups:  localcluster.H100Zones([]string{"zone-a"}, 1, 2),
		Provisioner: fastProvisioner(),
	})
	ctx := context.Background()
	priorityClass(t, c.Kube, "placeholder", -10, true)
	rs := replicaSet("default", "placeholder", 1, gpuPodSpec(8, "zone-a", "placeholder"))
	if _, err := c.Kube.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating placeholder ReplicaSet: %v", err)
	}
	var first string
	eventually(t, time.Minute, "placeholder running on the only node", func(ctx context.Context) (bool, string) {
		pods, err := podsOf(ctx, c.Kube, "default", map[string]string{"app": "placeholder"})
		if err != nil || len(pods) != 1 || !running(&pods[0]) {
			return false, fmt.Sprintf("pods=%d err=%v", len(pods), err)
		}
		first = pods[0].Name
		return pods[0].Spec.NodeName == "h100-zone-a-0", pods[0].Spec.NodeName
	})
	createPod(t, c.Kube, "default", "inference", gpuPodSpec(8, "zone-a", ""))
	eventually(t, time.Minute, "inference pod running on the warm node", func(ctx context.Context) (bool, string) {
		p, s := podState(ctx, c.Kube, "default", "inference")
		return running(p) && p.Spec.NodeName == "h100-zone-a-0", s
	})
	eventually(t, time.Minute, "a new placeholder running on a new node in zone-a", func(ctx context.Context) (bool, string) {
		pods, err := podsOf(ctx, c.Kube, "default", map[string]string{"app": "placeholder"})
		if err != nil || len(pods) != 1 {
			return false, fmt.Sprintf("pods=%d err=%v", len(pods), err)
		}
		p := pods[0]
		return p.Name != first && running(&p) && p.Spec.NodeName == "h100-zone-a-1",
			fmt.Sprintf("%s phase=%s node=%q", p.Name, p.Status.Phase, p.Spec.NodeName)
	})
	if ups, _ := c.Provisioner.Stats(); ups != 1 {
		t.Errorf("provisioner scale-ups = %d, want exactly 1", ups)
	}
}

// A pending pod below the expendable cutoff (-11) never triggers a node, while a
// placeholder at -10 does.
func TestExpendablePodNeverTriggersNode(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		NodeGroups:  localcluster.H100Zones([]string{"zone-a"}, 0, 3),
		Provisioner: fastProvisioner(),
	})
	priorityClass(t, c.Kube, "expendable", -11, true)
	createPod(t, c.Kube, "default", "expendable", gpuPodSpec(1, "", "expendable"))
	eventually(t, time.Minute, "expendable pod unschedulable", func(ctx context.Context) (bool, string) {
		p, s := podState(ctx, c.Kube, "default", "expendable")
		return p != nil && hasUnschedulable(p), s
	})
	// Give the provisioner several full scans with the pod pending: it must not act.
	seen := c.Provisioner.Scans()
	eventually(t, time.Minute, "five provisioner scans", func(context.Context) (bool, string) {
		n := c.Provisioner.Scans()
		return n >= seen+5, fmt.Sprint(n)
	})
	if ups, _ := c.Provisioner.Stats(); ups != 0 {
		t.Fatalf("provisioner scaled up %d times for a pod below the cutoff", ups)
	}
	nodes, err := c.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 0 {
		t.Fatalf("nodes = %d (err %v), want 0", len(nodes.Items), err)
	}
	// Control: the same pod at the cutoff itself does trigger a node.
	priorityClass(t, c.Kube, "placeholder", -10, true)
	createPod(t, c.Kube, "default", "at-cutoff", gpuPodSpec(1, "", "placeholder"))
	eventually(t, time.Minute, "pod at -10 running on a new node", func(ctx context.Context) (bool, string) {
		p, s := podState(ctx, c.Kube, "default", "at-cutoff")
		return running(p), s
	})
}

// A zone whose node group is at max size leaves its pods pending and the
// provisioner says why, while another zone still scales.
func TestStockoutZoneReportsWhyOtherZoneScales(t *testing.T) {
	groups := localcluster.H100Zones([]string{"zone-a", "zone-b"}, 1, 1)
	groups[1].MaxSize = 2
	c := localcluster.StartT(t, localcluster.Options{NodeGroups: groups, Provisioner: fastProvisioner()})
	ctx := context.Background()
	createPod(t, c.Kube, "default", "fill-a", gpuPodSpec(8, "zone-a", ""))
	createPod(t, c.Kube, "default", "fill-b", gpuPodSpec(8, "zone-b", ""))
	createPod(t, c.Kube, "default", "more-a", gpuPodSpec(8, "zone-a", ""))
	createPod(t, c.Kube, "default", "more-b", gpuPodSpec(8, "zone-b", ""))
	eventually(t, time.Minute, "more-b running on a new zone-b node", func(ctx context.Context) (bool, string) {
		p, s := podState(ctx, c.Kube, "default", "more-b")
		return running(p) && p.Spec.NodeName == "h100-zone-b-1", s
	})
	eventually(t, time.Minute, "NotTriggerScaleUp event on more-a naming the max size", func(ctx context.Context) (bool, string) {
		evs, err := c.Kube.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": "more-a", "reason": localcluster.ReasonNotTriggerScaleUp}.String(),
		})
		if err != nil || len(evs.Items) == 0 {
			return false, fmt.Sprintf("events=%v err=%v", evs, err)
		}
		return strings.Contains(evs.Items[0].Message, "max node group size reached") &&
			strings.Contains(evs.Items[0].Message, "h100-zone-a"), evs.Items[0].Message
	})
	p, s := podState(ctx, c.Kube, "default", "more-a")
	if p == nil || p.Spec.NodeName != "" {
		t.Fatalf("more-a should still be pending: %s", s)
	}
	if nodes, _ := nodesInZone(ctx, c.Kube, "zone-a"); len(nodes) != 1 {
		t.Fatalf("zone-a nodes = %v, want only the one at max size", nodes)
	}
	if so := c.Provisioner.Stockouts(); len(so) != 1 {
		t.Fatalf("stockouts = %v, want zone-a's group only", so)
	}
}

// After the unneeded time, a node with only expendable pods goes (and so does a
// node with none), while a node holding a -10 placeholder stays.
func TestScaleDownOfUnneededNodes(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		NodeGroups:  localcluster.H100Zones([]string{"zone-a"}, 0, 3),
		Provisioner: fastProvisioner(),
	})
	ctx := context.Background()
	priorityClass(t, c.Kube, "placeholder", -10, true)
	priorityClass(t, c.Kube, "expendable", -11, true)
	createPod(t, c.Kube, "default", "work", gpuPodSpec(8, "", ""))
	createPod(t, c.Kube, "default", "keeper", gpuPodSpec(8, "", "placeholder"))
	var workNode, keeperNode string
	eventually(t, time.Minute, "both pods running on two new nodes", func(ctx context.Context) (bool, string) {
		w, s1 := podState(ctx, c.Kube, "default", "work")
		k, s2 := podState(ctx, c.Kube, "default", "keeper")
		if !running(w) || !running(k) {
			return false, s1 + "; " + s2
		}
		workNode, keeperNode = w.Spec.NodeName, k.Spec.NodeName
		return true, ""
	})
	if workNode == keeperNode {
		t.Fatalf("two 8-GPU pods on one 8-GPU node %s", workNode)
	}
	// An expendable pod that fits on the work node's CPU (it asks for no GPU).
	exp := gpuPodSpec(0, "", "expendable")
	exp.NodeName = workNode
	createPod(t, c.Kube, "default", "expendable", exp)
	if err := c.Kube.CoreV1().Pods("default").Delete(ctx, "work", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatalf("deleting work pod: %v", err)
	}
	eventually(t, time.Minute, "node with only an expendable pod removed", func(ctx context.Context) (bool, string) {
		_, err := c.Kube.CoreV1().Nodes().Get(ctx, workNode, metav1.GetOptions{})
		return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprint(err)
	})
	// The placeholder's node outlived the unneeded time by now; it must stay.
	_, downs := c.Provisioner.Stats()
	if downs != 1 {
		t.Fatalf("scale-downs = %d, want 1", downs)
	}
	k, s := podState(ctx, c.Kube, "default", "keeper")
	if !running(k) || k.Spec.NodeName != keeperNode {
		t.Fatalf("placeholder node should stay: %s", s)
	}
	if _, err := c.Kube.CoreV1().Nodes().Get(ctx, keeperNode, metav1.GetOptions{}); err != nil {
		t.Fatalf("node %s with a -10 placeholder was removed: %v", keeperNode, err)
	}
}

// A pending pod that fits on an empty node keeps it, as in cluster-autoscaler's
// scale-down simulation: the scheduler may take seconds to bind a pod to the node
// that was just added for it. Two nodes empty out at once; a pod that no scheduler
// will bind (schedulerName "none") fits on the first, so only the second goes.
func TestPendingPodKeepsItsNode(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		NodeGroups:  localcluster.H100Zones([]string{"zone-a"}, 0, 2),
		Provisioner: fastProvisioner(),
	})
	ctx := context.Background()
	createPod(t, c.Kube, "default", "work-0", gpuPodSpec(8, "", ""))
	createPod(t, c.Kube, "default", "work-1", gpuPodSpec(8, "", ""))
	eventually(t, time.Minute, "both pods running", func(ctx context.Context) (bool, string) {
		a, s1 := podState(ctx, c.Kube, "default", "work-0")
		b, s2 := podState(ctx, c.Kube, "default", "work-1")
		return running(a) && running(b), s1 + "; " + s2
	})
	waiting := gpuPodSpec(8, "", "")
	waiting.SchedulerName = "none"
	createPod(t, c.Kube, "default", "waiting", waiting)
	for _, name := range []string{"work-0", "work-1"} {
		if err := c.Kube.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatalf("deleting %s: %v", name, err)
		}
	}
	eventually(t, time.Minute, "a node removed", func(ctx context.Context) (bool, string) {
		l, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) <= 1, fmt.Sprint(len(l.Items), err)
	})
	if _, err := c.Kube.CoreV1().Nodes().Get(ctx, "h100-zone-a-0", metav1.GetOptions{}); err != nil {
		t.Fatalf("the node the pending pod fits on (first in name order) was removed: %v", err)
	}
	if _, downs := c.Provisioner.Stats(); downs != 1 {
		t.Fatalf("scale-downs = %d, want 1", downs)
	}
}

func hasUnschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}
