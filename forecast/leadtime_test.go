package forecast

import (
	"errors"
	"testing"
	"time"
)

func TestLeadTime(t *testing.T) {
	pool := NodeKey{Zone: "us-east-1a", GPUProduct: "NVIDIA-H100-80GB-HBM3"}
	cfg := DefaultLeadTimeConfig()
	cfg.Overrides = map[string]time.Duration{"pinned": 7 * time.Minute}
	l, err := NewLeadTime(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name, workload string, want time.Duration, src LeadSource) {
		t.Helper()
		got, gotSrc := l.Horizon(workload, pool)
		if got != want || gotSrc != src {
			t.Errorf("%s: Horizon = %v (%s), want %v (%s)", name, got, gotSrc, want, src)
		}
	}
	check("no samples", "llama", 13*time.Minute, LeadFallback)
	check("override", "pinned", 7*time.Minute, LeadOverride)
	for range 4 {
		_ = l.ObservePod("llama", 2*time.Minute)
	}
	check("4 pod samples < MinSamples", "llama", 13*time.Minute, LeadFallback)
	_ = l.ObservePod("llama", 2*time.Minute)
	check("pods measured, nodes fallback", "llama", 12*time.Minute, LeadPartial)
	// Nodes: 9 take 5 min, 1 takes 15 min; pods: all 2 min. p90 of the
	// sum by nearest rank is the 9th of 10 sorted sums per pod sample, 7 min;
	// p100 would be 17 min.
	for i := range 10 {
		d := 5 * time.Minute
		if i == 3 {
			d = 15 * time.Minute
		}
		if err := l.ObserveNode(pool, d); err != nil {
			t.Fatal(err)
		}
	}
	check("both measured", "llama", 7*time.Minute, LeadMeasured)
	check("override wins over measurements", "pinned", 7*time.Minute, LeadOverride)
	check("other workload: pods fallback", "mistral", 8*time.Minute, LeadPartial)
	if d, ok := l.NodePercentile(pool); d != 5*time.Minute || !ok {
		t.Errorf("NodePercentile = %v, %v; want 5m, true", d, ok)
	}
	if d, ok := l.PodPercentile("mistral"); d != 3*time.Minute || ok {
		t.Errorf("PodPercentile(unmeasured) = %v, %v; want fallback 3m, false", d, ok)
	}
	// The ring forgets: 64 new 20-minute nodes push every old sample out.
	for range cfg.Capacity {
		_ = l.ObserveNode(pool, 20*time.Minute)
	}
	check("old samples evicted", "llama", 22*time.Minute, LeadMeasured)
	if len(l.nodes[pool].v) != cfg.Capacity {
		t.Errorf("ring grew to %d, capacity %d", len(l.nodes[pool].v), cfg.Capacity)
	}
	l.ForgetWorkload("llama")
	check("forgotten workload", "llama", 23*time.Minute, LeadPartial)
	if err := l.ObservePod("x", -time.Second); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("negative duration: %v, want ErrInvalidValue", err)
	}
}

func TestLeadTimePercentileOfSum(t *testing.T) {
	// Independent parts: nodes 4 or 8 min, pods 1 or 3 min, equally often.
	// Sums 5,7,9,11 each a quarter: p50 = 7, p75 = 9, p90 = 11. The sum of
	// the two p50s (4+1=5) would be wrong.
	cfg := DefaultLeadTimeConfig()
	cfg.Percentile = 0.5
	l, _ := NewLeadTime(cfg)
	k := NodeKey{"z", "g"}
	for i := range 10 {
		_ = l.ObserveNode(k, time.Duration(4+4*(i%2))*time.Minute)
		_ = l.ObservePod("w", time.Duration(1+2*(i%2))*time.Minute)
	}
	if got, _ := l.Horizon("w", k); got != 7*time.Minute {
		t.Errorf("p50 of sum = %v, want 7m", got)
	}
	l.cfg.Percentile = 0.9
	if got, _ := l.Horizon("w", k); got != 11*time.Minute {
		t.Errorf("p90 of sum = %v, want 11m", got)
	}
}

func TestLeadTimeConfigValidation(t *testing.T) {
	for name, mut := range map[string]func(*LeadTimeConfig){
		"percentile 0":   func(c *LeadTimeConfig) { c.Percentile = 0 },
		"capacity 0":     func(c *LeadTimeConfig) { c.Capacity = 0 },
		"min > capacity": func(c *LeadTimeConfig) { c.MinSamples = c.Capacity + 1 },
		"negative fb":    func(c *LeadTimeConfig) { c.NodeFallback = -time.Minute },
		"zero override":  func(c *LeadTimeConfig) { c.Overrides = map[string]time.Duration{"w": 0} },
	} {
		c := DefaultLeadTimeConfig()
		mut(&c)
		if _, err := NewLeadTime(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLeadTimeCheckpoint(t *testing.T) {
	l, _ := NewLeadTime(DefaultLeadTimeConfig())
	pool := NodeKey{"eu-west-1b", "NVIDIA-A100-SXM4-80GB"}
	for i := range 100 { // more than Capacity: the ring wraps
		_ = l.ObserveNode(pool, time.Duration(300+i)*time.Second)
		_ = l.ObservePod("ns/llama", time.Duration(60+i%10)*time.Second)
	}
	blob, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r, err := UnmarshalLeadTime(blob, DefaultLeadTimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, srcA := l.Horizon("ns/llama", pool)
	b, srcB := r.Horizon("ns/llama", pool)
	if a != b || srcA != srcB || srcA != LeadMeasured {
		t.Errorf("restored horizon %v (%s), original %v (%s)", b, srcB, a, srcA)
	}
	for i := range blob {
		bad := append([]byte(nil), blob...)
		bad[i] ^= 1
		if _, err := UnmarshalLeadTime(bad, DefaultLeadTimeConfig()); !errors.Is(err, ErrCheckpointCorrupt) {
			t.Fatalf("flipped byte %d: %v, want ErrCheckpointCorrupt", i, err)
		}
	}
	if _, err := UnmarshalLeadTime(blob[:len(blob)/2], DefaultLeadTimeConfig()); !errors.Is(err, ErrCheckpointCorrupt) {
		t.Errorf("truncated: %v", err)
	}
	// The forecaster blob is not a lead-time blob.
	f, _ := NewForecaster(DefaultConfig())
	fb, _ := Marshal(map[string]*Forecaster{"w": f})
	if _, err := UnmarshalLeadTime(fb, DefaultLeadTimeConfig()); !errors.Is(err, ErrCheckpointCorrupt) {
		t.Errorf("forecaster blob accepted as lead times: %v", err)
	}
}
