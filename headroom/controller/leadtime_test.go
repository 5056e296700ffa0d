package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

func TestLeadTimesMeasureNodesAndPods(t *testing.T) {
	l := newLeadTimes()
	if d, src := l.horizon("ns/llm", headroom.Config{}); d != 10*time.Minute || src == "measured" {
		t.Fatalf("before samples: %s %s", d, src)
	}
	for i := 0; i < 3; i++ {
		created := metav1.NewTime(time.Now().Add(-4 * time.Minute))
		old := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", CreationTimestamp: created,
			Labels: map[string]string{"topology.kubernetes.io/zone": "a", "nvidia.com/gpu.product": "H100"}}}
		cur := old.DeepCopy()
		cur.Status.Allocatable = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8")}
		l.nodeUpdate(old, cur)
		l.nodeUpdate(cur, cur) // no transition: not counted again
		pc := metav1.NewTime(time.Now().Add(-2 * time.Minute))
		op := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", CreationTimestamp: pc, Labels: map[string]string{"app": "llm"}}}
		np := op.DeepCopy()
		np.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(pc.Add(90 * time.Second))}}
		if i%2 == 0 {
			l.podUpdate(op, np) // informers without Trim hold whole Pods
		} else {
			so, _ := Trim(op)
			sn, _ := Trim(np)
			l.podUpdate(so, sn)
			l.podUpdate(sn, sn) // no transition: not counted again
		}
	}
	l.drain(func(ns string, lbls map[string]string) string { return ns + "/" + lbls["app"] })
	d, src := l.horizon("ns/llm", headroom.Config{})
	if src != "measured" || d < 5*time.Minute || d > 6*time.Minute {
		t.Fatalf("measured horizon %s (%s), want about 4m + 90s", d, src)
	}
	override, err := headroom.ParseConfig([]byte("workloads: [{namespace: ns, name: llm, leadTime: 7m}]"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := l.horizon("ns/llm", override); d != 7*time.Minute {
		t.Fatalf("override ignored: %s", d)
	}
}
