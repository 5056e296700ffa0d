package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

// A restarted controller restores what the forecasters learned; corrupt state
// is refused with a typed error (the controller logs it and starts fresh).
func TestForecastCheckpointRoundTrip(t *testing.T) {
	cfg, _ := headroom.ParseConfig(nil)
	a := NewForecastDemand(func() headroom.Config { return cfg })
	t0 := time.Unix(1_700_000_000, 0)
	w := headroom.Workload{Namespace: "ns", Name: "llm", State: keda.StateActive, HasShape: true, MaxReplicas: 50}
	for i := 0; i < 120; i++ {
		w.DesiredReplicas, w.ReadyReplicas = int32(5+i%7), int32(5+i%7)
		a.Demand(w, t0.Add(time.Duration(i)*15*time.Second))
	}
	data, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := NewForecastDemand(func() headroom.Config { return cfg })
	n, err := b.Restore(data, cfg.QuantileFor(""))
	if err != nil || n != 1 {
		t.Fatalf("restore: %d %v", n, err)
	}
	at := t0.Add(121 * 15 * time.Second)
	if ga, gb := a.Demand(w, at), b.Demand(w, at); ga != gb {
		t.Fatalf("restored forecaster answers differently: %+v vs %+v", ga, gb)
	}
	data[len(data)/2] ^= 0xff
	if _, err := b.Restore(data, cfg.QuantileFor("")); !errors.Is(err, forecast.ErrCheckpointCorrupt) {
		t.Fatalf("corrupt checkpoint: %v, want ErrCheckpointCorrupt", err)
	}
}
