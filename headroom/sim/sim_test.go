package sim

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// stepTraffic is a constant request rate that steps up at a known time: exactly
// perTick requests per tick before, stepTo after, each with the same tokens.
func stepTraffic(span, at time.Duration, perTick, stepTo int32) *Traffic {
	n := int(span / time.Second)
	tr := &Traffic{Name: "step", Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Tick: time.Second,
		Count: make([]int32, n), Ctx: make([]float32, n), Gen: make([]float32, n)}
	for k := range n {
		c := perTick
		if time.Duration(k)*time.Second >= at {
			c = stepTo
		}
		tr.Count[k] = c
		tr.Ctx[k] = float32(c) * 1000
		tr.Gen[k] = float32(c) * 100
	}
	return tr
}

// knownConfig has constant delays on tick boundaries, so waits are exact.
func knownConfig() Config {
	c := DefaultConfig()
	c.Provision = Const(5 * time.Minute)
	c.GPUAllocatable = Const(time.Minute)
	c.ImagePull = Const(time.Minute)
	c.ModelLoad = Const(2 * time.Minute)
	c.CheckInvariants = true
	return c
}

func find(t *testing.T, rep *Report, name string) *Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Policy == name {
			return r
		}
	}
	t.Fatalf("no result for %s", name)
	return nil
}

func TestStepKnownAnswers(t *testing.T) {
	// 2 req/s at 1000+100 tokens: the service time is about 4.2 s at batch 1-8,
	// so one replica holds ~9 requests: demand is 1 replica. At 40 min the rate
	// jumps to 60 req/s: ~250 in the system, 11 replicas at 24 each.
	tr := stepTraffic(90*time.Minute, 40*time.Minute, 2, 60)
	cfg := knownConfig()
	// The backlog that builds while pods load makes the HPA overshoot the
	// ~11 replicas the rate needs; the cap makes "enough headroom" knowable.
	cfg.MaxReplicas = 16
	// The autoscaler scans on the HPA's grid, so a pod created at a sync is
	// seen at once and every wait for a new node is exactly the node's delay.
	cfg.ScanInterval = 15 * time.Second
	rep, err := Simulate(tr, cfg, []PolicySpec{{Kind: KindReactive}, {Kind: KindOracle}, {Kind: KindStatic, N: 5}, {Kind: KindStatic, N: 1}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	re := find(t, rep, "reactive")
	// The step's pods wait for nodes: the HPA creates them at its syncs, the
	// autoscaler adds nodes in the same tick, and the node is usable 5 min + 1
	// min later. The HPA goes from 1 to its max of 16: 15 new pods, of which 3
	// fit on the warm node (4 slots of 2 GPUs) and 12 wait.
	if re.ReplicaStarts != 15 || re.WaitedStarts != 12 || re.WaitMax != 360 || re.WaitP50 != 360 {
		t.Errorf("reactive: %d of %d starts waited, p50 %vs, max %vs; want 12 of 15, p50 and max exactly 360 s",
			re.WaitedStarts, re.ReplicaStarts, re.WaitP50, re.WaitMax)
	}
	or := find(t, rep, "oracle")
	if or.WaitedStarts != 0 || or.WaitMax != 0 {
		t.Errorf("oracle: %d waited starts, max wait %vs; want none", or.WaitedStarts, or.WaitMax)
	}
	st := find(t, rep, "static-5")
	if st.WaitedStarts != 0 || st.WaitMax != 0 {
		t.Errorf("static-5 (15 placeholders, at most 15 new replicas): %d waited starts, max %vs, want 0", st.WaitedStarts, st.WaitMax)
	}
	if s1 := find(t, rep, "static-1"); s1.WaitedStarts == 0 || s1.WaitedStarts >= re.WaitedStarts {
		t.Errorf("static-1: %d waited starts, want fewer than reactive's %d but some", s1.WaitedStarts, re.WaitedStarts)
	}
	if or.CostVsOracle != 1 || re.CostVsOracle <= 0 {
		t.Errorf("cost relative to oracle: oracle %v, reactive %v", or.CostVsOracle, re.CostVsOracle)
	}
	for _, r := range rep.Results {
		if r.Requests != tr.Total() || r.Completed > r.Requests {
			t.Errorf("%s: %d requests, %d completed, traffic has %d", r.Policy, r.Requests, r.Completed, tr.Total())
		}
	}
}

// The forecast policy plans over the lead time it measures, as headroomd does:
// node creation to GPUs allocatable (constant 6 min here) plus replica creation
// to Ready (2 min model load at least, plus any wait for a node and the image).
func TestForecastMeasuresLeadTime(t *testing.T) {
	tr := stepTraffic(90*time.Minute, 40*time.Minute, 2, 60)
	cfg := knownConfig()
	cfg.MaxReplicas = 16
	cfg.Zones = []string{"zone-a"} // every new node in one pool: three samples sooner
	override, err := headroom.ParseConfig([]byte("workloads: [{namespace: sim, name: llm, leadTime: 4m}]"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Simulate(tr, cfg, []PolicySpec{{Kind: KindForecast}, {Kind: KindOracle}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	fc := find(t, rep, "forecast")
	if d := time.Duration(fc.LeadTimeSeconds * 1e9); fc.LeadTimeSource != "measured" || d < 8*time.Minute || d > 16*time.Minute {
		t.Errorf("forecast lead time %v (%s), want measured, 6 min + 2 to 10 min", d, fc.LeadTimeSource)
	}
	if or := find(t, rep, "oracle"); or.LeadTimeSource != "configured" || or.LeadTimeSeconds != 600 {
		t.Errorf("oracle lead time %vs (%s), want the configured 600 s", or.LeadTimeSeconds, or.LeadTimeSource)
	}
	rep, err = Simulate(tr, cfg, []PolicySpec{{Kind: KindForecast, Headroom: override}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fc := find(t, rep, "forecast"); fc.LeadTimeSource != "config override" || fc.LeadTimeSeconds != 240 {
		t.Errorf("override: %vs (%s), want 240 s from the config", fc.LeadTimeSeconds, fc.LeadTimeSource)
	}
}

func TestDeterministic(t *testing.T) {
	tr := stepTraffic(40*time.Minute, 10*time.Minute, 3, 40)
	cfg := DefaultConfig() // random delays
	cfg.Seed = 7
	cfg.CheckInvariants = true
	pols := []PolicySpec{{Kind: KindReactive}, {Kind: KindForecast}, {Kind: KindProportional, Fraction: 0.25}, {Kind: KindOracle}}
	a, err := Simulate(tr, cfg, pols, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Simulate(tr, cfg, pols, 4)
	if err != nil {
		t.Fatal(err)
	}
	var ja, jb bytes.Buffer
	if err := a.WriteJSON(&ja); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	if ja.String() != jb.String() {
		t.Fatal("same seed, different reports")
	}
	cfg.Seed = 8
	c, err := Simulate(tr, cfg, pols, 2)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Results[0].waits, c.Results[0].waits) && a.Results[0].GPUHoursIdleNodes == c.Results[0].GPUHoursIdleNodes {
		t.Error("another seed gave the same run: the delays are not drawn")
	}
}

func tracesDir(t *testing.T) string {
	t.Helper()
	for _, d := range []string{os.Getenv("HEADROOM_TRACES"), "../../../shared/data/traces", "/work/shared/data/traces"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "azure-llm-2023-code")); err == nil {
			return d
		}
	}
	t.Skip("shared traces not found (set HEADROOM_TRACES)")
	return ""
}

// TestRealTraceShort replays 20 minutes of the Azure code trace and 6 hours of
// ServeGen with every policy, checking the invariants on every tick.
func TestRealTraceShort(t *testing.T) {
	dir := tracesDir(t)
	start, reqs, err := ReadAzureRequests(filepath.Join(dir, "azure-llm-2023-code", "AzureLLMInferenceTrace_code.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := RequestTraffic("code", start, reqs, TrafficOptions{Scale: 10, Overlays: []time.Duration{17 * time.Minute}, Span: 20 * time.Minute, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.CheckInvariants = true
	pols := []PolicySpec{{Kind: KindReactive}, {Kind: KindStatic, N: 2}, {Kind: KindProportional, Fraction: 0.5},
		{Kind: KindSchedule, Windows: []Window{{Start: 18 * 60, End: 20 * 60, N: 1}}}, {Kind: KindForecast}, {Kind: KindOracle}}
	rep, err := Simulate(tr, cfg, pols, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != tr.Total() || rep.Requests < 10*8819/4 {
		t.Errorf("requests %d (traffic %d)", rep.Requests, tr.Total())
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, p := range pols {
		if !strings.Contains(table.String(), p.Name()) {
			t.Errorf("table lacks %s:\n%s", p.Name(), table.String())
		}
	}

	rs, err := ReadServeGen(filepath.Join(dir, "servegen-language-m-large"), 20)
	if err != nil {
		t.Fatal(err)
	}
	tr, err = RateTraffic(rs, TrafficOptions{Span: 6 * time.Hour, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The trace's volume, not a random one around it: each of the 20 x 36
	// client windows is rounded up or down by less than one request.
	want := 0.0
	for k := range 36 {
		want += rs.Rate(k) * 600
	}
	if got := float64(tr.Total()); math.Abs(got-want) > 20*36 {
		t.Errorf("6 h of 20 ServeGen clients: %.0f requests, the trace has %.0f", got, want)
	}
	if _, err := Simulate(tr, cfg, pols[:2], 2); err != nil {
		t.Fatal(err)
	}
}
