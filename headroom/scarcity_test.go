package headroom

import (
	"testing"
	"time"
)

func TestUpdateScarcity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	k := ZoneShape{Zone: "a", ShapeHash: "h"}
	cfg := DefaultScarcityConfig() // 10m threshold, 5m..30m backoff, 3h reset
	pending := func(since int) []ScarcityObservation {
		return []ScarcityObservation{{Key: k, OldestPending: at(since)}}
	}
	none := []ScarcityObservation{}
	type step struct {
		now        int // minutes
		obs        []ScarcityObservation
		nodeAdded  int // minutes; -1 for no node
		wantScarce bool
		wantEvent  ScarcityEventKind // "" for none
		wantRetry  int               // minutes, when scarce
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"pending under threshold is not scarce", []step{
			{now: 9, obs: pending(0), nodeAdded: -1},
		}},
		{"pending past threshold with no node: scarce, backoff 5m", []step{
			{now: 10, obs: pending(0), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 15},
			{now: 14, obs: none, nodeAdded: -1, wantScarce: true, wantRetry: 15},
		}},
		{"a node added since the pod went pending: the autoscaler is working", []step{
			{now: 20, obs: pending(0), nodeAdded: 5},
		}},
		{"a node from before the pending does not count", []step{
			{now: 20, obs: pending(10), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 25},
		}},
		{"backoff doubles per failure and caps at 30m", []step{
			{now: 10, obs: pending(0), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 15},
			{now: 15, obs: none, nodeAdded: -1, wantEvent: ScarcityRetry},
			// Old pending pods do not count after the retry: the clock restarts at 15.
			{now: 24, obs: pending(0), nodeAdded: -1},
			{now: 25, obs: pending(0), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 35},
			{now: 35, obs: none, nodeAdded: -1, wantEvent: ScarcityRetry},
			{now: 46, obs: pending(36), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 66},
			{now: 66, obs: none, nodeAdded: -1, wantEvent: ScarcityRetry},
			{now: 76, obs: pending(66), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 106}, // 40m capped at 30m
			{now: 106, obs: none, nodeAdded: -1, wantEvent: ScarcityRetry},
			{now: 116, obs: pending(106), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 146},
		}},
		{"a node arriving clears the mark and the failures", []step{
			{now: 10, obs: pending(0), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 15},
			{now: 12, obs: pending(0), nodeAdded: 11, wantEvent: ScarcityCleared},
			// Failures were reset: the next mark backs off 5m again.
			{now: 30, obs: pending(15), nodeAdded: 11, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 35},
		}},
		{"failures are forgotten after ResetAfter", []step{
			{now: 10, obs: pending(0), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 15},
			{now: 15, obs: none, nodeAdded: -1, wantEvent: ScarcityRetry},
			{now: 10 + 180, obs: none, nodeAdded: -1},
			{now: 200, obs: pending(190), nodeAdded: -1, wantScarce: true, wantEvent: ScarcityMarked, wantRetry: 205},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st ScarcityState
			for i, s := range tt.steps {
				nodes := map[string]time.Time{}
				if s.nodeAdded >= 0 {
					nodes["a"] = at(s.nodeAdded)
				}
				var evs []ScarcityEvent
				st, evs = UpdateScarcity(st, s.obs, nodes, at(s.now), cfg)
				if got := st.Scarce()[k]; got != s.wantScarce {
					t.Fatalf("step %d: scarce = %v, want %v (%+v)", i, got, s.wantScarce, st.Entries[k])
				}
				var kind ScarcityEventKind
				if len(evs) > 0 {
					kind = evs[0].Kind
				}
				if kind != s.wantEvent || len(evs) > 1 {
					t.Fatalf("step %d: events %+v, want %q", i, evs, s.wantEvent)
				}
				retry, ok := st.NextRetry()
				if ok != s.wantScarce || (ok && !retry.Equal(at(s.wantRetry))) {
					t.Fatalf("step %d: NextRetry = %s %v, want %d min", i, retry, ok, s.wantRetry)
				}
			}
		})
	}
}

func TestScarcityEventMessage(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, evs := UpdateScarcity(ScarcityState{}, []ScarcityObservation{{Key: ZoneShape{Zone: "a", ShapeHash: "h"}, OldestPending: t0}}, nil, t0.Add(time.Hour), DefaultScarcityConfig())
	want := "zone a: placeholder of shape h Pending since 2026-01-01T00:00:00Z with no new node; scarce, retry in 5m0s (failure 1)"
	if len(evs) != 1 || evs[0].Message != want {
		t.Fatalf("events %+v", evs)
	}
}

// API timestamps have one-second resolution: a node created in the same second
// as the mark, after it, still clears it.
func TestScarcityClearedByNodeInSameSecond(t *testing.T) {
	cfg := DefaultScarcityConfig()
	k := ZoneShape{Zone: "z", ShapeHash: "h"}
	marked := time.Date(2026, 1, 1, 10, 0, 33, 136e6, time.UTC)
	prev := ScarcityState{Entries: map[ZoneShape]ScarcityEntry{k: {Scarce: true, MarkedAt: marked, RetryAt: marked.Add(cfg.InitialBackoff), Failures: 1}}}
	next, events := UpdateScarcity(prev, nil, map[string]time.Time{"z": marked.Truncate(time.Second)}, marked.Add(2*time.Second), cfg)
	if next.Scarce()[k] || len(events) != 1 || events[0].Kind != ScarcityCleared {
		t.Fatalf("want cleared, got %+v %+v", next, events)
	}
	next, _ = UpdateScarcity(prev, nil, map[string]time.Time{"z": marked.Add(-2 * time.Second)}, marked.Add(2*time.Second), cfg)
	if !next.Scarce()[k] {
		t.Fatal("a node from before the mark's second must not clear it")
	}
}
