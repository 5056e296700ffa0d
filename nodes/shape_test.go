package nodes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func zoneAffinity(op corev1.NodeSelectorOperator, zones ...string) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: LabelZone, Operator: op, Values: zones}}}},
	}}}
}

func gpuSpec(gpus string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
		Requests: rl("cpu", "8", "memory", "64Gi"), Limits: rl("nvidia.com/gpu", gpus)}}}}
}

func TestShapeOf(t *testing.T) {
	spec := gpuSpec("2")
	s, err := ShapeOf(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if s.GPUResource != ResourceNvidiaGPU || s.GPUs != 2 || s.CPUMilli != 8000 || s.MemoryBytes != 64<<30 {
		t.Fatalf("ShapeOf = %+v", s)
	}
	if got, want := s.String(), "2x nvidia.com/gpu, 8 CPU, 64Gi"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	noGPU := corev1.PodSpec{Containers: []corev1.Container{{}}}
	if _, err := ShapeOf(&noGPU); err == nil || err.Error() != "deriving shape: pod requests no GPU resource" {
		t.Errorf("no GPU: err = %v", err)
	}
	two := corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Limits: rl("nvidia.com/gpu", "1", "amd.com/gpu", "1")}}}}
	if _, err := ShapeOf(&two); err == nil || err.Error() != "deriving shape: pod requests several GPU resources [amd.com/gpu nvidia.com/gpu]; one is supported" {
		t.Errorf("two GPU names: err = %v", err)
	}
}

func TestShapeHashStable(t *testing.T) {
	a := gpuSpec("1")
	a.Tolerations = []corev1.Toleration{{Key: "b", Operator: corev1.TolerationOpExists}, {Key: "a", Operator: corev1.TolerationOpExists}}
	a.NodeSelector = map[string]string{"x": "1", "y": "2"}
	a.Affinity = zoneAffinity(corev1.NodeSelectorOpIn, "z2", "z1")
	b := gpuSpec("1")
	b.Tolerations = []corev1.Toleration{a.Tolerations[1], a.Tolerations[0]}
	b.NodeSelector = map[string]string{"y": "2", "x": "1"}
	b.Affinity = zoneAffinity(corev1.NodeSelectorOpIn, "z1", "z2")
	sa, _ := ShapeOf(&a)
	sb, _ := ShapeOf(&b)
	if sa.Hash() != sb.Hash() {
		t.Fatalf("reordered shapes hash differently: %s vs %s", sa.Hash(), sb.Hash())
	}
	if len(sa.Hash()) != 10 {
		t.Fatalf("hash %q is not 10 characters", sa.Hash())
	}
	// Canonicalising must not reorder the caller's slices.
	if a.Tolerations[0].Key != "b" || sa.Tolerations[0].Key != "b" {
		t.Fatal("Hash mutated its input")
	}
	c := gpuSpec("2")
	sc, _ := ShapeOf(&c)
	if sc.Hash() == sa.Hash() {
		t.Fatal("different shapes hash the same")
	}
	// Golden value: the hash names ReplicaSets, so changing it renames every
	// placeholder on upgrade. Change it only on purpose.
	plain := Shape{GPUResource: ResourceNvidiaGPU, GPUs: 1}
	if got, want := plain.Hash(), "527dcf9e7e"; got != want {
		t.Fatalf("Hash() = %q, want %q", got, want)
	}
}

func TestShapeFitsNode(t *testing.T) {
	node := FromNode(gpuNode("n1", "z1", rl("nvidia.com/gpu", "8"), func(n *corev1.Node) {
		n.Labels["pool"] = "h100"
		n.Labels["gen"] = "5"
		n.Spec.Taints = []corev1.Taint{
			{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule},
			{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule},
		}
	}))
	tolGPU := []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists}}
	req := func(key string, op corev1.NodeSelectorOperator, vals ...string) *corev1.NodeSelector {
		return &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}}}}}
	}
	tests := []struct {
		name  string
		shape Shape
		want  bool
	}{
		{"untolerated taint", Shape{}, false},
		{"tolerated by Exists", Shape{Tolerations: tolGPU}, true},
		{"tolerated by Equal", Shape{Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}}}, true},
		{"wrong value", Shape{Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Value: "no"}}}, false},
		{"wrong effect", Shape{Tolerations: []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}}, false},
		{"tolerate everything", Shape{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}, true},
		{"nodeSelector match", Shape{Tolerations: tolGPU, NodeSelector: map[string]string{"pool": "h100"}}, true},
		{"nodeSelector mismatch", Shape{Tolerations: tolGPU, NodeSelector: map[string]string{"pool": "a100"}}, false},
		{"affinity In", Shape{Tolerations: tolGPU, NodeAffinity: req(LabelZone, corev1.NodeSelectorOpIn, "z1", "z2")}, true},
		{"affinity NotIn", Shape{Tolerations: tolGPU, NodeAffinity: req(LabelZone, corev1.NodeSelectorOpNotIn, "z1")}, false},
		{"affinity Exists", Shape{Tolerations: tolGPU, NodeAffinity: req("pool", corev1.NodeSelectorOpExists)}, true},
		{"affinity DoesNotExist", Shape{Tolerations: tolGPU, NodeAffinity: req("pool", corev1.NodeSelectorOpDoesNotExist)}, false},
		{"affinity Gt", Shape{Tolerations: tolGPU, NodeAffinity: req("gen", corev1.NodeSelectorOpGt, "4")}, true},
		{"affinity Lt", Shape{Tolerations: tolGPU, NodeAffinity: req("gen", corev1.NodeSelectorOpLt, "4")}, false},
		{"affinity matchFields name", Shape{Tolerations: tolGPU, NodeAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}}}}, true},
		{"empty term matches nothing", Shape{Tolerations: tolGPU, NodeAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.shape.FitsNode(node); got != tt.want {
				t.Errorf("FitsNode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestShapeZones(t *testing.T) {
	known := []string{"z3", "z1", "z2"}
	mk := func(mod func(*corev1.PodSpec)) Shape {
		s := gpuSpec("1")
		mod(&s)
		sh, err := ShapeOf(&s)
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}
	tests := []struct {
		name  string
		shape Shape
		want  []string
	}{
		{"unconstrained", mk(func(*corev1.PodSpec) {}), []string{"z1", "z2", "z3"}},
		{"nodeSelector", mk(func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{LabelZone: "z2"} }), []string{"z2"}},
		{"legacy nodeSelector", mk(func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{LabelZoneLegacy: "z3"} }), []string{"z3"}},
		{"affinity In", mk(func(s *corev1.PodSpec) { s.Affinity = zoneAffinity(corev1.NodeSelectorOpIn, "z1", "z3", "z9") }), []string{"z1", "z3"}},
		{"affinity NotIn", mk(func(s *corev1.PodSpec) { s.Affinity = zoneAffinity(corev1.NodeSelectorOpNotIn, "z1") }), []string{"z2", "z3"}},
		{"affinity DoesNotExist", mk(func(s *corev1.PodSpec) { s.Affinity = zoneAffinity(corev1.NodeSelectorOpDoesNotExist) }), []string{}},
		{"nodeSelector and affinity intersect", mk(func(s *corev1.PodSpec) {
			s.NodeSelector = map[string]string{LabelZone: "z1"}
			s.Affinity = zoneAffinity(corev1.NodeSelectorOpIn, "z2")
		}), []string{}},
		{"terms are ORed; a term without zone allows all", mk(func(s *corev1.PodSpec) {
			s.Affinity = zoneAffinity(corev1.NodeSelectorOpIn, "z1")
			terms := &s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			*terms = append(*terms, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpExists}}})
		}), []string{"z1", "z2", "z3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.shape.AllowedZones(known)
			if len(got) != len(tt.want) {
				t.Fatalf("AllowedZones = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("AllowedZones = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestFitCount(t *testing.T) {
	s := Shape{GPUResource: ResourceNvidiaGPU, GPUs: 2, CPUMilli: 4000, MemoryBytes: 10}
	free := Resources{CPUMilli: 32000, MemoryBytes: 100, GPUs: map[corev1.ResourceName]int64{ResourceNvidiaGPU: 7}}
	if got := s.FitCount(free); got != 3 {
		t.Errorf("FitCount = %d, want 3 (GPU bound)", got)
	}
	free.CPUMilli = 5000
	if got := s.FitCount(free); got != 1 {
		t.Errorf("FitCount = %d, want 1 (CPU bound)", got)
	}
	if got := (Shape{GPUResource: "nvidia.com/mig-1g.10gb", GPUs: 1}).FitCount(free); got != 0 {
		t.Errorf("FitCount other resource = %d, want 0", got)
	}
}
