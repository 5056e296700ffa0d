package headroom

import (
	"testing"
	"time"
)

func TestApplyCooldown(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cool := 10 * time.Minute
	s1 := shape(1)
	ph := func(zone string, n int32) Placeholder {
		return Placeholder{Zone: zone, ShapeHash: s1.Hash(), Shape: s1, Replicas: n, Reason: "plan"}
	}
	plan := func(budget int64, ps ...Placeholder) Desired {
		return Desired{Placeholders: ps, BudgetGPUs: budget, ZoneMaxGPUs: map[string]int64{"a": 100, "b": 100}}
	}
	counts := func(d Desired) map[string]int32 {
		out := map[string]int32{}
		for _, p := range d.Placeholders {
			out[p.Zone] = p.Replicas
		}
		return out
	}
	type step struct {
		at   time.Duration
		plan Desired
		want map[string]int32
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"scale-up is immediate", []step{
			{0, plan(100, ph("a", 2)), map[string]int32{"a": 2}},
			{time.Minute, plan(100, ph("a", 5)), map[string]int32{"a": 5}},
		}},
		{"scale-down waits out the cooldown", []step{
			{0, plan(100, ph("a", 5)), map[string]int32{"a": 5}},
			{time.Minute, plan(100, ph("a", 2)), map[string]int32{"a": 5}},
			{9 * time.Minute, plan(100, ph("a", 2)), map[string]int32{"a": 5}},
			{10 * time.Minute, plan(100, ph("a", 2)), map[string]int32{"a": 2}},
		}},
		{"a blip back up restarts the cooldown", []step{
			{0, plan(100, ph("a", 5)), map[string]int32{"a": 5}},
			{5 * time.Minute, plan(100, ph("a", 5)), map[string]int32{"a": 5}},
			{12 * time.Minute, plan(100, ph("a", 1)), map[string]int32{"a": 5}},
			{15 * time.Minute, plan(100, ph("a", 1)), map[string]int32{"a": 1}},
		}},
		{"a set dropped from the plan is held, then removed", []step{
			{0, plan(100, ph("a", 3), ph("b", 1)), map[string]int32{"a": 3, "b": 1}},
			{time.Minute, plan(100, ph("b", 1)), map[string]int32{"a": 3, "b": 1}},
			{11 * time.Minute, plan(100, ph("b", 1)), map[string]int32{"b": 1}},
		}},
		{"holding never breaks the budget", []step{
			{0, plan(6, ph("a", 5)), map[string]int32{"a": 5}},
			{time.Minute, plan(6, ph("a", 1), ph("b", 5)), map[string]int32{"a": 1, "b": 5}},
		}},
		{"holding is trimmed to fit the budget", []step{
			{0, plan(8, ph("a", 5)), map[string]int32{"a": 5}},
			{time.Minute, plan(8, ph("a", 1), ph("b", 5)), map[string]int32{"a": 3, "b": 5}},
		}},
		{"scarce sets are released at once", []step{
			{0, plan(100, ph("a", 5)), map[string]int32{"a": 5}},
			{time.Minute, func() Desired {
				d := plan(100)
				d.Release = map[ZoneShape]bool{{Zone: "a", ShapeHash: s1.Hash()}: true}
				return d
			}(), map[string]int32{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st CooldownState
			for i, s := range tt.steps {
				var out Desired
				out, st = ApplyCooldown(st, s.plan, t0.Add(s.at), cool)
				if got := counts(out); len(got) != len(s.want) || !mapsEqual(got, s.want) {
					t.Fatalf("step %d: got %v, want %v", i, got, s.want)
				}
				if out.TotalGPUs() > s.plan.BudgetGPUs {
					t.Fatalf("step %d: over budget", i)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]int32) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

func TestSeedCooldown(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s1 := shape(1)
	obs := []ObservedReplicaSet{
		{Name: ReplicaSetName("a", s1.Hash()), Labels: PlaceholderLabels("a", s1.Hash()), Replicas: 4},
		{Name: "foreign", Labels: map[string]string{LabelZone: "a", LabelShape: s1.Hash()}, Replicas: 9},
		{Name: "unknown-shape", Labels: PlaceholderLabels("a", "ffffffffff"), Replicas: 2},
	}
	st := SeedCooldown(obs, map[string]Shape{s1.Hash(): s1}, t0)
	if len(st.Entries) != 1 || st.Entries[ZoneShape{Zone: "a", ShapeHash: s1.Hash()}].Replicas != 4 {
		t.Fatalf("seeded %+v", st.Entries)
	}
	// A restart with an empty plan does not drop the seeded placeholders at once.
	out, _ := ApplyCooldown(st, Desired{BudgetGPUs: 100, ZoneMaxGPUs: map[string]int64{"a": 100}}, t0.Add(time.Minute), 10*time.Minute)
	if len(out.Placeholders) != 1 || out.Placeholders[0].Replicas != 4 {
		t.Fatalf("after restart %+v", out.Placeholders)
	}
}
