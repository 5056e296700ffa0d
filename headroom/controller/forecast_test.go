package controller

import (
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

func TestForecastDemandNeverBelowReactiveNorAboveMax(t *testing.T) {
	cfg, err := headroom.ParseConfig([]byte("leadTime: 10m\nquantile: 0.95\n"))
	if err != nil {
		t.Fatal(err)
	}
	fd := NewForecastDemand(func() headroom.Config { return cfg })
	t0 := time.Unix(1_700_000_000, 0)
	w := headroom.Workload{Namespace: "ns", Name: "llm", State: keda.StateActive, HasShape: true, MaxReplicas: 20}
	// A steady ramp: 1 replica more every minute, all ready.
	var d headroom.Demand
	for i := 0; i < 60; i++ {
		w.DesiredReplicas, w.ReadyReplicas = int32(i/6)+1, int32(i/6)+1
		d = fd.Demand(w, t0.Add(time.Duration(i)*10*time.Second))
		if r := headroom.ReactiveDemand(w); d.Replicas < r.Replicas {
			t.Fatalf("step %d: forecast %d below reactive %d", i, d.Replicas, r.Replicas)
		}
		if d.Replicas > w.MaxReplicas-w.ReadyReplicas {
			t.Fatalf("step %d: forecast %d beyond maxReplicas", i, d.Replicas)
		}
	}
	if d.Replicas == 0 {
		t.Fatalf("a rising series should forecast headroom ahead of it: %+v", d)
	}
	// Paused: not genuine demand, the reactive answer stands.
	w.State, w.Paused = keda.StatePaused, true
	if got, want := fd.Demand(w, t0.Add(time.Hour)), headroom.ReactiveDemand(w); got != want {
		t.Fatalf("paused: %+v, want reactive %+v", got, want)
	}
}
