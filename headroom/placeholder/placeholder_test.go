package placeholder

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

func TestReplicaSetTemplate(t *testing.T) {
	shape := nodes.Shape{GPUResource: "nvidia.com/mig-1g.10gb", GPUs: 2, CPUMilli: 4000, MemoryBytes: 8 << 30,
		NodeSelector: map[string]string{"pool": "gpu"},
		Tolerations:  []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}}
	rs := ReplicaSet("headroom-zone-a-abc", "zone-a", "abc", shape, 3, TemplateOptions{Namespace: "ns", PriorityClassName: "pc"}, Prepull{})
	spec := rs.Spec.Template.Spec
	c := spec.Containers[0]
	checks := []struct {
		name string
		ok   bool
	}{
		{"owner label", headroom.IsManaged(rs.Labels) && headroom.IsPlaceholder(rs.Spec.Template.Labels)},
		{"replicas", *rs.Spec.Replicas == 3},
		{"priority class", spec.PriorityClassName == "pc"},
		{"zone pinned", spec.NodeSelector[nodes.LabelZone] == "zone-a" && spec.NodeSelector["pool"] == "gpu"},
		{"tolerations copied", len(spec.Tolerations) == 1},
		{"GPU as limit", c.Resources.Limits.Name("nvidia.com/mig-1g.10gb", "").Value() == 2},
		{"cpu request", c.Resources.Requests.Cpu().MilliValue() == 4000},
		{"memory request", c.Resources.Requests.Memory().Value() == 8<<30},
		{"grace 0", *spec.TerminationGracePeriodSeconds == 0},
		{"no token", !*spec.AutomountServiceAccountToken},
		{"non-root", *spec.SecurityContext.RunAsNonRoot && *c.SecurityContext.RunAsNonRoot},
		{"seccomp", spec.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"read-only root", *c.SecurityContext.ReadOnlyRootFilesystem},
		{"caps dropped", len(c.SecurityContext.Capabilities.Drop) == 1 && c.SecurityContext.Capabilities.Drop[0] == "ALL"},
		{"no escalation", !*c.SecurityContext.AllowPrivilegeEscalation},
		{"pause image", c.Image == DefaultPauseImage && c.Command == nil},
		{"selector matches template", rs.Spec.Selector.MatchLabels[headroom.LabelZone] == rs.Spec.Template.Labels[headroom.LabelZone]},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: wrong in %+v", ch.name, rs)
		}
	}
	pre := ReplicaSet("n", "zone-a", "abc", shape, 1, TemplateOptions{}, Prepull{Image: "vllm:1"})
	if c := pre.Spec.Template.Spec.Containers[0]; c.Image != "vllm:1" || strings.Join(c.Command, " ") != "sleep infinity" {
		t.Errorf("prepull: image %q command %v", c.Image, c.Command)
	}
}

func TestValidatePriority(t *testing.T) {
	for _, tc := range []struct {
		v     int32
		allow bool
		want  string
	}{
		{-10, false, ""}, {-1, false, ""}, {-5, false, ""},
		{0, false, ">= 0"}, {5, false, ">= 0"}, {-11, false, "below cluster-autoscaler"},
		{-11, true, ""}, {0, true, ""},
	} {
		err := ValidatePriority(tc.v, tc.allow)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidatePriority(%d, %v) = %v, want %q", tc.v, tc.allow, err, tc.want)
		}
	}
}

func TestEnsurePriorityClass(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	v, err := EnsurePriorityClass(ctx, kube, "ph", -10, true, false)
	if err != nil || v != -10 {
		t.Fatalf("create: %d %v", v, err)
	}
	pc, _ := kube.SchedulingV1().PriorityClasses().Get(ctx, "ph", metav1.GetOptions{})
	if *pc.PreemptionPolicy != corev1.PreemptNever || pc.GlobalDefault {
		t.Fatalf("created class: %+v", pc)
	}
	if _, err := EnsurePriorityClass(ctx, kube, "missing", -10, false, false); err == nil {
		t.Fatal("missing class with create off should fail")
	}
	_, _ = kube.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "low"}, Value: -20}, metav1.CreateOptions{})
	if _, err := EnsurePriorityClass(ctx, kube, "low", -10, true, false); err == nil || !strings.Contains(err.Error(), "below") {
		t.Fatalf("existing -20 class accepted: %v", err)
	}
}
