package controller

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// leadTimes measures the two halves of a workload's lead time from informer
// events: how long GPU nodes take from creation until their GPUs are
// allocatable (per zone and GPU product), and how long the workload's pods take
// from creation to Ready. forecast.LeadTime turns them into a horizon.
type leadTimes struct {
	mu    sync.Mutex
	lt    *forecast.LeadTime
	ready []podReady // pods that became Ready since the last pass
}

type podReady struct {
	namespace string
	labels    map[string]string
	d         time.Duration
}

func newLeadTimes() *leadTimes {
	lt, _ := forecast.NewLeadTime(headroom.LeadTimeConfig())
	return &leadTimes{lt: lt}
}

// nodeUpdate records a node whose GPUs just became allocatable.
func (l *leadTimes) nodeUpdate(oldObj, newObj any) {
	o, ok1 := oldObj.(*corev1.Node)
	n, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	before, after := nodes.FromNode(o), nodes.FromNode(n)
	if before.GPUReady || !after.GPUReady || after.Zone == "" {
		return
	}
	d := time.Since(n.CreationTimestamp.Time)
	l.mu.Lock()
	_ = l.lt.ObserveNode(forecast.NodeKey{Zone: after.Zone, GPUProduct: after.GPUProduct}, d)
	l.mu.Unlock()
}

// podUpdate records a pod that just became Ready; the pass maps it to its workload.
func (l *leadTimes) podUpdate(oldObj, newObj any) {
	o, n := asPod(oldObj), asPod(newObj)
	if o == nil || n == nil || o.Ready || !n.Ready {
		return
	}
	at := n.ReadyAt
	if at.IsZero() {
		at = time.Now()
	}
	l.mu.Lock()
	if len(l.ready) < 10000 { // bounded: a pass drains it
		l.ready = append(l.ready, podReady{namespace: n.Namespace, labels: n.Labels, d: at.Sub(n.CreationTimestamp.Time)})
	}
	l.mu.Unlock()
}

// drain attributes the pods that became Ready to workloads.
func (l *leadTimes) drain(owner func(namespace string, labels map[string]string) string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.ready {
		if w := owner(r.namespace, r.labels); w != "" {
			_ = l.lt.ObservePod(w, r.d)
		}
	}
	l.ready = l.ready[:0]
}

// horizon is the workload's lead time (headroom.Horizon over the measurements).
func (l *leadTimes) horizon(workload string, cfg headroom.Config) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return headroom.Horizon(l.lt, cfg, workload)
}

// percentiles returns the measured node provisioning percentile per key and the
// pod start percentile per workload, for metrics.
func (l *leadTimes) percentiles(workloads []string) (map[forecast.NodeKey]time.Duration, map[string]time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	nodesP := map[forecast.NodeKey]time.Duration{}
	for _, k := range l.lt.NodeKeys() {
		if d, ok := l.lt.NodePercentile(k); ok {
			nodesP[k] = d
		}
	}
	podsP := map[string]time.Duration{}
	for _, w := range workloads {
		if d, ok := l.lt.PodPercentile(w); ok {
			podsP[w] = d
		}
	}
	return nodesP, podsP
}
