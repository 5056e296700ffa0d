package headroom

import (
	"fmt"
	"math"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

// ReactiveDemand is the demand the controller uses until a forecast is plugged in:
// the replicas KEDA already wants that are neither ready nor starting.
//
//	want = max(HPA desiredReplicas, min(metric-implied replicas, maxReplicas))
//	need = max(0, want - readyReplicas - startingReplicas)
//
// Starting replicas (bound to a node, pulling the image or loading the model)
// already hold their GPUs (Plan sees them in the nodes' Used), so covering them
// again with placeholders would be waste.
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
	n := max(want-w.ReadyReplicas-w.StartingReplicas, 0)
	if w.StartingReplicas > 0 {
		return Demand{Replicas: n, Reason: fmt.Sprintf("%s %d, ready %d, starting %d: need %d", src, want, w.ReadyReplicas, w.StartingReplicas, n)}
	}
	return Demand{Replicas: n, Reason: fmt.Sprintf("%s %d, ready %d: need %d", src, want, w.ReadyReplicas, n)}
}

// ForecastSignals is what a workload's forecaster observes on one pass. The
// controller (ForecastDemand in headroom/controller) and the simulator both call
// it, so they learn the same series (forecast.Signals.Need: the largest of
// Desired, MetricImplied and Ready+Pending).
//
//   - Desired is the HPA's desiredReplicas: the pods the workload asks for.
//   - Ready is the replicas ready or starting (bound to a node, loading): every
//     pod that already holds its GPUs. With Pending (pods no node has taken) it
//     is the capacity in flight, a floor of the need.
//   - MetricImplied (the HPA metric over its target) is fed only while nothing is
//     in flight. It leads Desired by a KEDA poll and an HPA sync, which is worth
//     learning while the HPA has not acted yet. Once replicas are starting or
//     pending, the HPA has acted, and the metric's excess over Desired is the
//     backlog that queued while those replicas loaded or waited for a node: the
//     replicas in flight drain it once they are ready, and it would not recur
//     with enough headroom. Learning it teaches the forecaster the cluster's own
//     lateness (a queue metric divided by its target overshoots by the backlog)
//     and widens its margin after every burst. The present value still counts:
//     ReactiveDemand, the floor of ForecastNeed, includes it.
func ForecastSignals(w Workload) forecast.Signals {
	sig := forecast.Signals{
		Desired: float64(w.DesiredReplicas),
		Pending: float64(w.PendingReplicas),
		Ready:   float64(w.ReadyReplicas + w.StartingReplicas),
	}
	if w.HasMetricReplicas && w.StartingReplicas+w.PendingReplicas == 0 {
		sig.MetricImplied = float64(w.MetricReplicas)
	}
	return sig
}

// ForecastNeed turns a forecaster's prediction of the peak within the lead time
// into the workload's demand: the predicted peak (clamped to maxReplicas) minus
// the replicas already ready or starting, never below the reactive need.
func ForecastNeed(w Workload, p forecast.Prediction, lead time.Duration) Demand {
	base := ReactiveDemand(w)
	peak := int32(math.Min(math.Ceil(p.Peak-1e-9), float64(w.MaxReplicas)))
	n := max(peak-w.ReadyReplicas-w.StartingReplicas, 0)
	if n <= base.Replicas {
		return base
	}
	return Demand{Replicas: n, Reason: fmt.Sprintf("forecast q%.2f peak %d within %s (calibrated %v), ready %d, starting %d: need %d; reactive %s",
		p.Q, peak, lead, p.Calibrated, w.ReadyReplicas, w.StartingReplicas, n, base.Reason)}
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
