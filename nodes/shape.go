package nodes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Shape is what one GPU pod needs from a node: one GPU resource and a count, CPU and
// memory, and where it may run (nodeSelector, required node affinity, tolerations).
// Placeholders are sized and pinned by shape, so a placeholder always fits where the
// pod it stands in for would fit, and a preempting pod lands where the placeholder
// was.
//
// Only the required part of node affinity is kept: preferred terms do not decide
// whether a pod fits, and dropping them lets workloads that place identically share
// one set of placeholders.
type Shape struct {
	GPUResource  corev1.ResourceName `json:"gpuResource"`
	GPUs         int64               `json:"gpus"`
	CPUMilli     int64               `json:"cpuMilli,omitempty"`
	MemoryBytes  int64               `json:"memoryBytes,omitempty"`
	NodeSelector map[string]string   `json:"nodeSelector,omitempty"`
	// NodeAffinity is requiredDuringSchedulingIgnoredDuringExecution; nil when none.
	NodeAffinity *corev1.NodeSelector `json:"nodeAffinity,omitempty"`
	Tolerations  []corev1.Toleration  `json:"tolerations,omitempty"`
}

// ShapeOf derives the shape of a pod spec (a pod or a workload's pod template). It
// fails when the spec asks for no GPU or for more than one GPU resource name: such a
// pod cannot be stood in for by a single-resource placeholder, and the caller reports
// the workload as unsupported rather than guessing.
func ShapeOf(spec *corev1.PodSpec) (Shape, error) {
	req := PodSpecRequests(spec)
	names := req.GPUNames()
	switch len(names) {
	case 0:
		return Shape{}, fmt.Errorf("deriving shape: pod requests no GPU resource")
	case 1:
	default:
		return Shape{}, fmt.Errorf("deriving shape: pod requests several GPU resources %v; one is supported", names)
	}
	s := Shape{
		GPUResource:  names[0],
		GPUs:         req.GPUs[names[0]],
		CPUMilli:     req.CPUMilli,
		MemoryBytes:  req.MemoryBytes,
		NodeSelector: maps.Clone(spec.NodeSelector),
		Tolerations:  slices.Clone(spec.Tolerations),
	}
	if len(s.NodeSelector) == 0 {
		s.NodeSelector = nil
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		s.NodeAffinity = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.DeepCopy()
	}
	return s, nil
}

// Requests returns the shape's requests as Resources.
func (s Shape) Requests() Resources {
	r := Resources{CPUMilli: s.CPUMilli, MemoryBytes: s.MemoryBytes}
	if s.GPUs > 0 {
		r.GPUs = map[corev1.ResourceName]int64{s.GPUResource: s.GPUs}
	}
	return r
}

// String is a short human description for reasons and logs, e.g.
// "2x nvidia.com/gpu, 8 CPU, 64Gi".
func (s Shape) String() string {
	parts := []string{fmt.Sprintf("%dx %s", s.GPUs, s.GPUResource)}
	if s.CPUMilli > 0 {
		parts = append(parts, resource.NewMilliQuantity(s.CPUMilli, resource.DecimalSI).String()+" CPU")
	}
	if s.MemoryBytes > 0 {
		parts = append(parts, resource.NewQuantity(s.MemoryBytes, resource.BinarySI).String())
	}
	return strings.Join(parts, ", ")
}

// Hash returns a short deterministic identifier of the shape: the first 10 hex
// digits of a SHA-256 over a canonical JSON form (map keys sorted by encoding/json,
// tolerations and affinity terms sorted). Equal shapes written in a different order
// hash the same, so the placeholder ReplicaSet name does not change when a workload's
// YAML is reordered. 40 bits keep names short; a collision needs ~10^6 distinct shapes
// in one cluster.
func (s Shape) Hash() string {
	b, err := json.Marshal(s.canonical())
	if err != nil {
		// Shape holds only strings, integers and API structs that always marshal.
		panic(fmt.Sprintf("marshalling shape: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

// canonical returns a copy with every order-insensitive list sorted.
func (s Shape) canonical() Shape {
	c := s
	c.Tolerations = slices.Clone(s.Tolerations)
	sort.Slice(c.Tolerations, func(i, j int) bool { return tolKey(c.Tolerations[i]) < tolKey(c.Tolerations[j]) })
	if len(c.Tolerations) == 0 {
		c.Tolerations = nil
	}
	if s.NodeAffinity != nil {
		c.NodeAffinity = s.NodeAffinity.DeepCopy()
		terms := c.NodeAffinity.NodeSelectorTerms
		for i := range terms {
			sortRequirements(terms[i].MatchExpressions)
			sortRequirements(terms[i].MatchFields)
		}
		sort.Slice(terms, func(i, j int) bool { return jsonString(terms[i]) < jsonString(terms[j]) })
	}
	return c
}

func sortRequirements(rs []corev1.NodeSelectorRequirement) {
	for i := range rs {
		sort.Strings(rs[i].Values)
	}
	sort.Slice(rs, func(i, j int) bool { return jsonString(rs[i]) < jsonString(rs[j]) })
}

func tolKey(t corev1.Toleration) string {
	secs := ""
	if t.TolerationSeconds != nil {
		secs = strconv.FormatInt(*t.TolerationSeconds, 10)
	}
	return strings.Join([]string{t.Key, string(t.Operator), t.Value, string(t.Effect), secs}, "\x00")
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// FitsNode reports whether a pod of this shape may be placed on the node by its
// constraints: nodeSelector, required node affinity and NoSchedule/NoExecute taints.
// Capacity is not checked here (see FitCount).
func (s Shape) FitsNode(n NodeInfo) bool {
	for k, v := range s.NodeSelector {
		if got, ok := n.Labels[k]; !ok || got != v {
			return false
		}
	}
	if !matchesNodeSelector(s.NodeAffinity, n.Name, n.Labels) {
		return false
	}
	for i := range n.Taints {
		t := &n.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !tolerated(s.Tolerations, t) {
			return false
		}
	}
	return true
}

// FitCount returns how many pods of this shape fit in free resources. CPU or memory
// requests of zero do not limit the count.
func (s Shape) FitCount(free Resources) int64 {
	if s.GPUs <= 0 {
		return 0
	}
	n := free.GPUs[s.GPUResource] / s.GPUs
	if s.CPUMilli > 0 {
		n = min(n, free.CPUMilli/s.CPUMilli)
	}
	if s.MemoryBytes > 0 {
		n = min(n, free.MemoryBytes/s.MemoryBytes)
	}
	return max(n, 0)
}

// AllowsZone reports whether the shape's nodeSelector and required node affinity
// allow a node in zone. Only zone constraints are evaluated (either zone label key);
// other constraints are taken as satisfiable somewhere in the zone.
func (s Shape) AllowsZone(zone string) bool {
	for _, key := range []string{LabelZone, LabelZoneLegacy} {
		if v, ok := s.NodeSelector[key]; ok && v != zone {
			return false
		}
	}
	if s.NodeAffinity == nil || len(s.NodeAffinity.NodeSelectorTerms) == 0 {
		return true
	}
	labels := map[string]string{LabelZone: zone, LabelZoneLegacy: zone}
	for _, term := range s.NodeAffinity.NodeSelectorTerms {
		ok := true
		for _, r := range term.MatchExpressions {
			if r.Key != LabelZone && r.Key != LabelZoneLegacy {
				continue
			}
			if !matchesRequirement(r, labels) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// AllowedZones filters known zones (sorted) by AllowsZone.
func (s Shape) AllowedZones(known []string) []string {
	out := make([]string, 0, len(known))
	for _, z := range known {
		if s.AllowsZone(z) {
			out = append(out, z)
		}
	}
	sort.Strings(out)
	return out
}

// matchesNodeSelector evaluates required node affinity: the terms are ORed, the
// requirements inside a term are ANDed. A nil selector matches every node; a term
// with no requirement matches none (as in kube-scheduler).
func matchesNodeSelector(ns *corev1.NodeSelector, nodeName string, labels map[string]string) bool {
	if ns == nil || len(ns.NodeSelectorTerms) == 0 {
		return true
	}
	for _, term := range ns.NodeSelectorTerms {
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue
		}
		ok := true
		for _, r := range term.MatchExpressions {
			if !matchesRequirement(r, labels) {
				ok = false
				break
			}
		}
		for _, r := range term.MatchFields {
			if !ok {
				break
			}
			if r.Key != "metadata.name" || !matchesRequirement(corev1.NodeSelectorRequirement{Key: "f", Operator: r.Operator, Values: r.Values}, map[string]string{"f": nodeName}) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// matchesRequirement evaluates one node selector requirement against labels.
func matchesRequirement(r corev1.NodeSelectorRequirement, labels map[string]string) bool {
	v, has := labels[r.Key]
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return has && slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !has || !slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		got, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return got > want
		}
		return got < want
	}
	return false
}

// tolerated reports whether some toleration tolerates the taint, with the rules of
// corev1.Toleration.ToleratesTaint: an empty effect matches every effect, an empty
// key with Exists matches every taint, Exists ignores the value, Equal (or empty
// operator) compares it.
func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for _, tol := range tols {
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case corev1.TolerationOpExists:
			return true
		case "", corev1.TolerationOpEqual:
			if tol.Key != "" && tol.Value == t.Value {
				return true
			}
		}
	}
	return false
}
