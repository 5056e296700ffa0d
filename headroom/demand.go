package headroom

import (
	"fmt"

	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

// ReactiveDemand is the demand the controller uses until a forecast is plugged in:
// the replicas KEDA already wants that are not ready yet.
//
//	want = max(HPA desiredReplicas, min(metric-implied replicas, maxReplicas))
//	need = max(0, want - readyReplicas)
//
// The metric-implied count leads the HPA's desiredReplicas, which its scaling
// policies and stabilisation windows hold back, so it shows where the HPA is going.
// It is capped at maxReplicas here because the HPA never creates pods beyond it:
// warming GPUs for them would be waste. (Workload keeps the uncapped value for
// reporting.)
//
// KEDA states: paused workloads want their paused replica count (or their current
// size); workloads scaled to zero, without a GPU or with a missing or unsupported
// target want nothing; in fallback, or while the HPA is missing, the numbers are not
// genuine, so the Demand is marked Hold and the caller keeps its last good value.
func ReactiveDemand(w Workload) Demand {
	switch w.State {
	case keda.StateNoGPU, keda.StateUnsupported, keda.StateTargetMissing, keda.StateScaledToZero:
		return Demand{Reason: string(w.State) + ": " + w.Reason}
	case keda.StatePaused:
		want := w.SpecReplicas
		if w.PausedReplicas != nil {
			want = *w.PausedReplicas
		}
		return need(want, w, "paused")
	case keda.StateHPAMissing:
		d := need(max(w.SpecReplicas, w.MinReplicas), w, "HPA missing, from the target's replicas")
		d.Hold = true
		return d
	}
	want := w.DesiredReplicas
	src := "HPA desired"
	if w.HasMetricReplicas && min(w.MetricReplicas, w.MaxReplicas) > want {
		want = min(w.MetricReplicas, w.MaxReplicas)
		src = "metric-implied"
	}
	d := need(want, w, src)
	if w.State == keda.StateFallback {
		d.Hold = true
		d.Reason = "fallback (not genuine): " + d.Reason
	}
	return d
}

func need(want int32, w Workload, src string) Demand {
	n := max(want-w.ReadyReplicas, 0)
	return Demand{Replicas: n, Reason: fmt.Sprintf("%s %d, ready %d: need %d", src, want, w.ReadyReplicas, n)}
}

// HoldLastGood replaces Hold demands by the last good demand of the same workload
// and returns the demands to plan with and the updated last-good map. A held
// workload without a last good value keeps its current (best-effort) demand. Keys
// not in current are dropped from the last-good map, so deleted workloads do not
// linger. Neither input is modified.
func HoldLastGood(lastGood, current map[string]Demand) (effective, newLastGood map[string]Demand) {
	effective = make(map[string]Demand, len(current))
	newLastGood = make(map[string]Demand, len(current))
	for k, d := range current {
		if !d.Hold {
			effective[k], newLastGood[k] = d, d
			continue
		}
		if last, ok := lastGood[k]; ok {
			last.Reason = "holding last good demand (" + d.Reason + "): " + last.Reason
			effective[k], newLastGood[k] = last, lastGood[k]
			continue
		}
		effective[k] = d
	}
	return effective, newLastGood
}
