package headroom

import (
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

func TestReactiveDemand(t *testing.T) {
	five := int32(5)
	base := Workload{Namespace: "llm", Name: "w", HasShape: true, MinReplicas: 1, MaxReplicas: 10}
	with := func(f func(*Workload)) Workload { w := base; f(&w); return w }
	tests := []struct {
		name     string
		w        Workload
		replicas int32
		hold     bool
		reason   string
	}{
		{"desired above ready", with(func(w *Workload) {
			w.State, w.DesiredReplicas, w.HasDesired, w.ReadyReplicas = keda.StateActive, 6, true, 2
		}),
			4, false, "HPA desired 6, ready 2: need 4"},
		{"metric leads desired", with(func(w *Workload) {
			w.State, w.DesiredReplicas, w.ReadyReplicas, w.MetricReplicas, w.HasMetricReplicas = keda.StateActive, 4, 4, 8, true
		}), 4, false, "metric-implied 8, ready 4: need 4"},
		{"metric capped at max", with(func(w *Workload) {
			w.State, w.DesiredReplicas, w.ReadyReplicas, w.MetricReplicas, w.HasMetricReplicas = keda.StateActive, 10, 9, 40, true
		}), 1, false, "HPA desired 10, ready 9: need 1"},
		{"all ready", with(func(w *Workload) { w.State, w.DesiredReplicas, w.ReadyReplicas = keda.StateActive, 3, 5 }), 0, false, "HPA desired 3, ready 5: need 0"},
		{"paused replicas", with(func(w *Workload) { w.State, w.PausedReplicas, w.ReadyReplicas = keda.StatePaused, &five, 2 }), 3, false, "paused 5, ready 2: need 3"},
		{"paused without count", with(func(w *Workload) { w.State, w.SpecReplicas, w.ReadyReplicas = keda.StatePaused, 2, 2 }), 0, false, "paused 2, ready 2: need 0"},
		{"fallback holds", with(func(w *Workload) { w.State, w.DesiredReplicas, w.ReadyReplicas = keda.StateFallback, 7, 2 }), 5, true, "fallback (not genuine): HPA desired 7, ready 2: need 5"},
		{"HPA missing holds", with(func(w *Workload) { w.State, w.SpecReplicas, w.ReadyReplicas = keda.StateHPAMissing, 3, 1 }), 2, true, "HPA missing, from the target's replicas 3, ready 1: need 2"},
		{"starting replicas hold their GPUs: not need", with(func(w *Workload) {
			w.State, w.DesiredReplicas, w.ReadyReplicas, w.StartingReplicas, w.PendingReplicas = keda.StateActive, 8, 2, 4, 1
		}), 2, false, "HPA desired 8, ready 2, starting 4: need 2"},
		{"starting and ready above desired", with(func(w *Workload) {
			w.State, w.DesiredReplicas, w.ReadyReplicas, w.StartingReplicas = keda.StateActive, 5, 3, 3
		}), 0, false, "HPA desired 5, ready 3, starting 3: need 0"},
		{"scaled to zero", with(func(w *Workload) {
			w.State, w.Reason = keda.StateScaledToZero, "scaled to zero: KEDA Active condition is False"
		}),
			0, false, "ScaledToZero: scaled to zero: KEDA Active condition is False"},
		{"target missing", with(func(w *Workload) { w.State, w.Reason = keda.StateTargetMissing, "gone" }), 0, false, "TargetMissing: gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ReactiveForecaster{}.Demand(tt.w, time.Time{})
			if d.Replicas != tt.replicas || d.Hold != tt.hold || d.Reason != tt.reason {
				t.Errorf("Demand = %+v, want %d hold=%v %q", d, tt.replicas, tt.hold, tt.reason)
			}
		})
	}
}

func TestHoldLastGood(t *testing.T) {
	last := map[string]Demand{"a": {Replicas: 4, Reason: "good"}, "gone": {Replicas: 1}}
	cur := map[string]Demand{
		"a": {Replicas: 9, Reason: "fallback", Hold: true},
		"b": {Replicas: 2, Reason: "fresh"},
		"c": {Replicas: 3, Reason: "new and held", Hold: true},
	}
	eff, next := HoldLastGood(last, cur)
	if eff["a"].Replicas != 4 || eff["a"].Reason != "holding last good demand (fallback): good" {
		t.Errorf("a = %+v", eff["a"])
	}
	if eff["b"].Replicas != 2 || eff["c"].Replicas != 3 {
		t.Errorf("b, c = %+v %+v", eff["b"], eff["c"])
	}
	if len(next) != 2 || next["a"].Reason != "good" || next["b"].Replicas != 2 {
		t.Errorf("next = %+v", next)
	}
	if _, ok := next["gone"]; ok {
		t.Error("deleted workload kept")
	}
}

func TestForecastSignals(t *testing.T) {
	w := Workload{State: keda.StateActive, DesiredReplicas: 6, MetricReplicas: 30, HasMetricReplicas: true, ReadyReplicas: 4, MaxReplicas: 100}
	if s := ForecastSignals(w); s.Desired != 6 || s.MetricImplied != 30 || s.Ready != 4 || s.Pending != 0 {
		t.Errorf("nothing in flight: %+v, want the metric as a leading signal", s)
	}
	w.StartingReplicas, w.PendingReplicas = 1, 1
	if s := ForecastSignals(w); s.Desired != 6 || s.MetricImplied != 0 || s.Ready != 5 || s.Pending != 1 || s.Need() != 6 {
		t.Errorf("replicas in flight: %+v (need %v), want the backlog left out and ready+starting as ready", s, s.Need())
	}
	w.StartingReplicas, w.PendingReplicas, w.HasMetricReplicas = 0, 0, false
	if s := ForecastSignals(w); s.MetricImplied != 0 {
		t.Errorf("unknown metric: %+v", s)
	}
}

func TestForecastNeed(t *testing.T) {
	w := Workload{State: keda.StateActive, DesiredReplicas: 6, ReadyReplicas: 4, StartingReplicas: 1, MaxReplicas: 12}
	tests := []struct {
		name string
		peak float64
		want int32
	}{
		{"peak minus ready and starting", 9.2, 5},
		{"never below the reactive need", 2, 1},
		{"capped at maxReplicas", 40, 7},
		{"an integer peak is not rounded up", 9.0000000001, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ForecastNeed(w, forecast.Prediction{Peak: tt.peak, Q: 0.9}, 10*time.Minute)
			if d.Replicas != tt.want || d.Reason == "" {
				t.Errorf("ForecastNeed(peak %v) = %+v, want %d", tt.peak, d, tt.want)
			}
		})
	}
}
