package headroom

import (
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
)

func TestHorizon(t *testing.T) {
	lt, err := forecast.NewLeadTime(LeadTimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	conf := 10 * time.Minute // DefaultLeadTime
	if d, src := Horizon(lt, Config{}, "ns/a"); d != conf || src != "configured (not yet measured)" {
		t.Errorf("nothing measured: %v (%s)", d, src)
	}
	for i := range 3 {
		_ = lt.ObserveNode(forecast.NodeKey{Zone: "a", GPUProduct: "h100"}, time.Duration(4+i)*time.Minute) // p90 6m
		_ = lt.ObserveNode(forecast.NodeKey{Zone: "b", GPUProduct: "h100"}, time.Duration(7+i)*time.Minute) // p90 9m
	}
	if d, _ := Horizon(lt, Config{}, "ns/a"); d != conf {
		t.Errorf("nodes measured, pods not: %v, want the configured %v", d, conf)
	}
	for i := range 3 {
		_ = lt.ObservePod("ns/a", time.Duration(60+30*i)*time.Second) // p90 2m
	}
	if d, src := Horizon(lt, Config{}, "ns/a"); d != 11*time.Minute || src != "measured" {
		t.Errorf("both measured: %v (%s), want the slowest pool's 9m + 2m", d, src)
	}
	if d, _ := Horizon(lt, Config{}, "ns/b"); d != conf {
		t.Errorf("another workload's pods: %v, want the configured %v", d, conf)
	}
	override, err := ParseConfig([]byte("leadTime: 20m\nworkloads: [{namespace: ns, name: a, leadTime: 3m}]"))
	if err != nil {
		t.Fatal(err)
	}
	if d, src := Horizon(lt, override, "ns/a"); d != 3*time.Minute || src != "config override" {
		t.Errorf("override: %v (%s)", d, src)
	}
}
