package controller

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
)

// Trim is an informer transform that drops what the controller never reads, to
// keep memory low with tens of thousands of pods: managed fields everywhere, and
// pods become the controller's compact Pod record (see Pod).
func Trim(obj any) (any, error) { return trim(obj, nil) }

func trim(obj any, labels *labelInterner) (any, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		sp := slimPod(p)
		if labels != nil {
			sp.Labels = labels.intern(sp.Labels)
		}
		return sp, nil
	}
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// NewTrim returns Trim for one set of informers, which also shares one label
// map between pods whose labels are equal: the replicas of a ReplicaSet carry
// the same labels, and with tens of thousands of pods their maps are a fifth of
// what the pod informer holds. Nothing may modify a stored pod's labels (the
// controller only reads them).
func NewTrim() func(any) (any, error) {
	l := &labelInterner{sets: map[string]map[string]string{}}
	return func(obj any) (any, error) { return trim(obj, l) }
}

// labelInterner maps a label set's canonical form to one shared map. It is
// emptied when it grows past maxSets so that label sets of pods long gone are
// not kept forever; maps already shared stay valid.
type labelInterner struct {
	mu   sync.Mutex
	sets map[string]map[string]string
}

const maxSets = 16384

func (l *labelInterner) intern(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	id := b.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	if shared, ok := l.sets[id]; ok {
		return shared
	}
	if len(l.sets) >= maxSets {
		clear(l.sets)
	}
	l.sets[id] = m
	return m
}

// trimPodSpec keeps what scheduling and shapes read of a pod spec: node,
// selectors, required affinity, tolerations, priority and each container's
// resources.
func trimPodSpec(s *corev1.PodSpec) corev1.PodSpec {
	return corev1.PodSpec{
		NodeName: s.NodeName, NodeSelector: s.NodeSelector, Affinity: trimAffinity(s.Affinity),
		Tolerations: s.Tolerations, Priority: s.Priority, PriorityClassName: s.PriorityClassName,
		Overhead: s.Overhead, Containers: trimContainers(s.Containers), InitContainers: trimContainers(s.InitContainers),
	}
}

// trimContainers keeps each container's name, resources and restart policy
// (sidecars count like app containers).
func trimContainers(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
	}
	return out
}

// trimAffinity keeps required node affinity only (what decides where a pod fits).
func trimAffinity(a *corev1.Affinity) *corev1.Affinity {
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution}}
}

// ServeReport writes the last plan as JSON (the /debug/plan endpoint).
func ServeReport(w http.ResponseWriter, r *Report) {
	if r == nil {
		http.Error(w, "no reconcile pass yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}

// Protobuf returns a copy of a client config that speaks protobuf, for the
// clientset of built-in types: several times cheaper to decode than JSON with
// tens of thousands of pods. KEDA's CRDs only speak JSON; keep rc for those.
func Protobuf(rc *rest.Config) *rest.Config {
	pc := rest.CopyConfig(rc)
	pc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	pc.ContentType = "application/vnd.kubernetes.protobuf"
	return pc
}
