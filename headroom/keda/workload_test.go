package keda

import (
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/nodes"
)

func i32(v int32) *int32 { return &v }

func so(mod ...func(*kedav1alpha1.ScaledObject)) *kedav1alpha1.ScaledObject {
	s := &kedav1alpha1.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{Namespace: "llm", Name: "chat"},
		Spec: kedav1alpha1.ScaledObjectSpec{
			ScaleTargetRef:  &kedav1alpha1.ScaleTarget{Name: "chat"},
			MinReplicaCount: i32(1),
			MaxReplicaCount: i32(10),
		},
		Status: kedav1alpha1.ScaledObjectStatus{
			HpaName: "keda-hpa-chat",
			Conditions: kedav1alpha1.Conditions{
				{Type: kedav1alpha1.ConditionReady, Status: metav1.ConditionTrue},
				{Type: kedav1alpha1.ConditionActive, Status: metav1.ConditionTrue},
				{Type: kedav1alpha1.ConditionFallback, Status: metav1.ConditionFalse},
				{Type: kedav1alpha1.ConditionPaused, Status: metav1.ConditionFalse},
			},
		},
	}
	for _, m := range mod {
		m(s)
	}
	return s
}

func setCond(t kedav1alpha1.ConditionType, st metav1.ConditionStatus) func(*kedav1alpha1.ScaledObject) {
	return func(s *kedav1alpha1.ScaledObject) { s.Status.Conditions.SetCondition(t, st, "Test", "") }
}

func annotate(k, v string) func(*kedav1alpha1.ScaledObject) {
	return func(s *kedav1alpha1.ScaledObject) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func podSpec(limits corev1.ResourceList) corev1.PodSpec {
	return corev1.PodSpec{
		NodeSelector: map[string]string{nodes.LabelZone: "z1"},
		Tolerations:  []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}},
		Containers: []corev1.Container{{Name: "vllm", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("64Gi")},
			Limits:   limits,
		}}},
	}
}

func gpuLimits(n string) corev1.ResourceList {
	return corev1.ResourceList{"nvidia.com/gpu": resource.MustParse(n)}
}

func deploy(spec, ready int32, limits corev1.ResourceList) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "llm", Name: "chat"},
		Spec:       appsv1.DeploymentSpec{Replicas: i32(spec), Template: corev1.PodTemplateSpec{Spec: podSpec(limits)}},
		Status:     appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
}

// externalHPA is the HPA KEDA creates for one trigger with an AverageValue target.
func externalHPA(desired, current int32, avg, target string) *autoscalingv2.HorizontalPodAutoscaler {
	t := resource.MustParse(target)
	a := resource.MustParse(avg)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "llm", Name: "keda-hpa-chat"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			MinReplicas: i32(1), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "s0-redis-requests"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &t},
			}}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			CurrentReplicas: current, DesiredReplicas: desired,
			CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
				Metric:  autoscalingv2.MetricIdentifier{Name: "s0-redis-requests"},
				Current: autoscalingv2.MetricValueStatus{AverageValue: &a},
			}}},
		},
	}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name       string
		in         Inputs
		wantState  State
		wantReason string // substring
		check      func(t *testing.T, w Workload)
	}{
		{
			name: "active: queue of 120 at 5 per pod with 4 replicas implies 24, above max 10",
			in:   Inputs{ScaledObject: so(), HPA: externalHPA(10, 4, "30", "5"), Deployment: deploy(4, 3, gpuLimits("2"))},
			// 30 per pod x 4 pods = 120 items; 120/5 = 24.
			wantState: StateActive, wantReason: "HPA desires 10 of 1..10 replicas; metrics imply 24; 3 ready",
			check: func(t *testing.T, w Workload) {
				if !w.HasDesired || w.DesiredReplicas != 10 || !w.HasMetricReplicas || w.MetricReplicas != 24 || w.ReadyReplicas != 3 {
					t.Errorf("got desired %d/%v metric %d/%v ready %d", w.DesiredReplicas, w.HasDesired, w.MetricReplicas, w.HasMetricReplicas, w.ReadyReplicas)
				}
				if w.ShapeHash != w.Shape.Hash() {
					t.Errorf("ShapeHash %q, want %q", w.ShapeHash, w.Shape.Hash())
				}
				if w.Shape.GPUs != 2 || w.Shape.GPUResource != nodes.ResourceNvidiaGPU || w.Shape.CPUMilli != 8000 {
					t.Errorf("shape %+v", w.Shape)
				}
				if got := w.AllowedZones([]string{"z2", "z1"}); len(got) != 1 || got[0] != "z1" {
					t.Errorf("AllowedZones = %v", got)
				}
				if w.Key() != "llm/chat" || w.HoldLastGood() {
					t.Errorf("key %q hold %v", w.Key(), w.HoldLastGood())
				}
			},
		},
		{
			name: "unsupported kind",
			in: Inputs{ScaledObject: so(func(s *kedav1alpha1.ScaledObject) {
				s.Spec.ScaleTargetRef.Kind = "Rollout"
				s.Spec.ScaleTargetRef.APIVersion = "argoproj.io/v1alpha1"
			})},
			wantState: StateUnsupported, wantReason: `scale target kind "Rollout" is not supported (Deployment or StatefulSet only)`,
		},
		{
			name:      "target missing",
			in:        Inputs{ScaledObject: so(), HPA: externalHPA(1, 1, "1", "5")},
			wantState: StateTargetMissing, wantReason: "scale target Deployment llm/chat not found",
		},
		{
			name:      "statefulset target",
			in:        Inputs{ScaledObject: so(func(s *kedav1alpha1.ScaledObject) { s.Spec.ScaleTargetRef.Kind = "StatefulSet" }), HPA: externalHPA(2, 2, "5", "5"), StatefulSet: &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "chat"}, Spec: appsv1.StatefulSetSpec{Replicas: i32(2), Template: corev1.PodTemplateSpec{Spec: podSpec(gpuLimits("1"))}}, Status: appsv1.StatefulSetStatus{ReadyReplicas: 2}}},
			wantState: StateActive, wantReason: "HPA desires 2 of 1..10 replicas; metrics imply 2; 2 ready",
		},
		{
			name:      "no GPU",
			in:        Inputs{ScaledObject: so(), Deployment: deploy(1, 1, nil)},
			wantState: StateNoGPU, wantReason: "Deployment chat pods request no GPU",
		},
		{
			name:      "two GPU resources",
			in:        Inputs{ScaledObject: so(), Deployment: deploy(1, 1, corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1"), "amd.com/gpu": resource.MustParse("1")})},
			wantState: StateUnsupported, wantReason: "several GPU resources",
		},
		{
			name:      "paused annotation, HPA deleted",
			in:        Inputs{ScaledObject: so(annotate(kedav1alpha1.PausedAnnotation, "true")), Deployment: deploy(3, 3, gpuLimits("1"))},
			wantState: StatePaused, wantReason: "paused by autoscaling.keda.sh/paused; holding the target's 3 replicas",
		},
		{
			name:      "paused annotation with a non-boolean value counts as true (KEDA rule)",
			in:        Inputs{ScaledObject: so(annotate(kedav1alpha1.PausedAnnotation, "yes please")), Deployment: deploy(3, 3, gpuLimits("1"))},
			wantState: StatePaused,
		},
		{
			name:      "paused false is not paused",
			in:        Inputs{ScaledObject: so(annotate(kedav1alpha1.PausedAnnotation, "false")), HPA: externalHPA(3, 3, "5", "5"), Deployment: deploy(3, 3, gpuLimits("1"))},
			wantState: StateActive,
		},
		{
			name:      "paused-replicas",
			in:        Inputs{ScaledObject: so(annotate(kedav1alpha1.PausedReplicasAnnotation, "5")), Deployment: deploy(5, 2, gpuLimits("1"))},
			wantState: StatePaused, wantReason: "paused at 5 replicas by autoscaling.keda.sh/paused-replicas",
			check: func(t *testing.T, w Workload) {
				if w.PausedReplicas == nil || *w.PausedReplicas != 5 || !w.Paused {
					t.Errorf("PausedReplicas = %v", w.PausedReplicas)
				}
			},
		},
		{
			name:      "paused-replicas invalid",
			in:        Inputs{ScaledObject: so(annotate(kedav1alpha1.PausedReplicasAnnotation, "five")), Deployment: deploy(2, 2, gpuLimits("1"))},
			wantState: StatePaused, wantReason: `paused by autoscaling.keda.sh/paused-replicas with an invalid value "five"; holding the target's 2 replicas`,
		},
		{
			name:      "paused condition only",
			in:        Inputs{ScaledObject: so(setCond(kedav1alpha1.ConditionPaused, metav1.ConditionTrue)), Deployment: deploy(2, 2, gpuLimits("1"))},
			wantState: StatePaused, wantReason: "KEDA Paused condition is True",
		},
		{
			name: "fallback",
			in: Inputs{ScaledObject: so(func(s *kedav1alpha1.ScaledObject) {
				s.Status.Conditions.SetFallbackCondition(metav1.ConditionTrue, "FallbackExists", "At least one trigger is falling back")
			}), HPA: externalHPA(4, 4, "5", "5"), Deployment: deploy(4, 4, gpuLimits("1"))},
			wantState: StateFallback, wantReason: "KEDA Fallback condition is True (FallbackExists): replicas are KEDA's fallback, not genuine demand",
			check: func(t *testing.T, w Workload) {
				if !w.Fallback || !w.HoldLastGood() {
					t.Errorf("Fallback %v HoldLastGood %v", w.Fallback, w.HoldLastGood())
				}
			},
		},
		{
			name:      "scaled to zero",
			in:        Inputs{ScaledObject: so(setCond(kedav1alpha1.ConditionActive, metav1.ConditionFalse), func(s *kedav1alpha1.ScaledObject) { s.Spec.MinReplicaCount = i32(0) }), HPA: externalHPA(1, 0, "0", "5"), Deployment: deploy(0, 0, gpuLimits("1"))},
			wantState: StateScaledToZero, wantReason: "scaled to zero: KEDA Active condition is False",
			check: func(t *testing.T, w Workload) {
				if w.HasMetricReplicas {
					t.Errorf("metric replicas at zero current replicas should be unknown, got %d", w.MetricReplicas)
				}
			},
		},
		{
			name:      "inactive but above zero is still active (KEDA cooling down)",
			in:        Inputs{ScaledObject: so(setCond(kedav1alpha1.ConditionActive, metav1.ConditionFalse)), HPA: externalHPA(1, 1, "0", "5"), Deployment: deploy(1, 1, gpuLimits("1"))},
			wantState: StateActive,
		},
		{
			name:      "HPA missing",
			in:        Inputs{ScaledObject: so(), Deployment: deploy(2, 1, gpuLimits("1"))},
			wantState: StateHPAMissing, wantReason: "HPA llm/keda-hpa-chat not found (KEDA has not created it yet); using the target's 2 replicas",
			check: func(t *testing.T, w Workload) {
				if !w.HoldLastGood() || w.HasDesired {
					t.Errorf("HoldLastGood %v HasDesired %v", w.HoldLastGood(), w.HasDesired)
				}
			},
		},
		{
			name: "HPA with another name is not ours",
			in: Inputs{ScaledObject: so(), Deployment: deploy(2, 1, gpuLimits("1")), HPA: func() *autoscalingv2.HorizontalPodAutoscaler {
				h := externalHPA(3, 3, "5", "5")
				h.Name = "other"
				return h
			}()},
			wantState: StateHPAMissing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Translate(tt.in)
			if w.State != tt.wantState {
				t.Fatalf("State = %s (%s), want %s", w.State, w.Reason, tt.wantState)
			}
			if !strings.Contains(w.Reason, tt.wantReason) {
				t.Errorf("Reason = %q, want it to contain %q", w.Reason, tt.wantReason)
			}
			if tt.check != nil {
				tt.check(t, w)
			}
		})
	}
}

func TestHPAName(t *testing.T) {
	s := so()
	if got := HPAName(s); got != "keda-hpa-chat" {
		t.Errorf("from status: %q", got)
	}
	s.Status.HpaName = ""
	if got := HPAName(s); got != "keda-hpa-chat" {
		t.Errorf("default: %q", got)
	}
	s.Spec.Advanced = &kedav1alpha1.AdvancedConfig{HorizontalPodAutoscalerConfig: &kedav1alpha1.HorizontalPodAutoscalerConfig{Name: "custom"}}
	if got := HPAName(s); got != "custom" {
		t.Errorf("custom: %q", got)
	}
}

func TestMetricReplicas(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{Metrics: []autoscalingv2.MetricSpec{
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "avg"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("10")}}},
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "val"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: q("100")}}},
			{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: i32(50)}}},
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "no-status"}, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q("1")}}},
		}},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, CurrentMetrics: []autoscalingv2.MetricStatus{
			{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: i32(90)}}},
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{Metric: autoscalingv2.MetricIdentifier{Name: "val"}, Current: autoscalingv2.MetricValueStatus{Value: q("250")}}},
			// The HPA reports the external average in milli units: 70/3 = 23334m.
			{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{Metric: autoscalingv2.MetricIdentifier{Name: "avg"}, Current: autoscalingv2.MetricValueStatus{AverageValue: q("23334m")}}},
		}},
	}
	got := metricReplicas(hpa)
	want := []MetricReplicas{
		{Name: "avg", Type: autoscalingv2.ExternalMetricSourceType, Replicas: 7}, // total 70 (not 70.002) / 10
		{Name: "val", Type: autoscalingv2.ExternalMetricSourceType, Replicas: 8}, // ceil(3*250/100) = ceil(7.5)
		{Name: "cpu", Type: autoscalingv2.ResourceMetricSourceType, Replicas: 6}, // ceil(3*90/50) = ceil(5.4)
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("metric %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if ceilReplicas(5.0000000001) != 5 || ceilReplicas(5.01) != 6 || ceilReplicas(-1) != 0 || ceilReplicas(1e12) != 2147483647 {
		t.Error("ceilReplicas rounding")
	}
}
