package headroom

import (
	"fmt"
	"sort"
	"time"
)

// ScarcityConfig tunes scarcity detection.
type ScarcityConfig struct {
	// PendingThreshold is how long a placeholder may stay Pending, with no node
	// added to its zone, before the zone counts as out of GPUs for its shape. It
	// should exceed the time a node takes to arrive (minutes for GPU nodes).
	PendingThreshold time.Duration
	// InitialBackoff is the first wait before a scarce zone is retried; each
	// further failure doubles it, up to MaxBackoff. cluster-autoscaler uses 5 and 30
	// minutes for node groups that fail to scale up.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// ResetAfter forgets past failures of a zone that has not been marked for this
	// long (cluster-autoscaler's node-group-backoff-reset-timeout is 3 hours).
	ResetAfter time.Duration
}

// DefaultScarcityConfig mirrors cluster-autoscaler's backoff defaults.
func DefaultScarcityConfig() ScarcityConfig {
	return ScarcityConfig{PendingThreshold: 10 * time.Minute, InitialBackoff: 5 * time.Minute, MaxBackoff: 30 * time.Minute, ResetAfter: 3 * time.Hour}
}

// ScarcityObservation is what the controller saw for one placeholder set.
type ScarcityObservation struct {
	Key ZoneShape
	// OldestPending is when the oldest placeholder pod of the set that is still
	// unschedulable was created; zero when none is Pending.
	OldestPending time.Time
}

// ScarcityEntry is one (zone, shape)'s scarcity record.
type ScarcityEntry struct {
	Scarce bool
	// MarkedAt is when the zone was last marked scarce for the shape.
	MarkedAt time.Time
	// RetryAt is when the mark lapses and placeholders are tried again.
	RetryAt time.Time
	// Failures counts consecutive marks; the backoff doubles with each.
	Failures int
	// RetriedAt is when the last retry began: placeholders pending from before it
	// do not count toward the next mark.
	RetriedAt time.Time
}

// ScarcityState is what the controller keeps between reconciles.
type ScarcityState struct {
	Entries map[ZoneShape]ScarcityEntry
}

// ScarcityEventKind names a scarcity transition.
type ScarcityEventKind string

// Scarcity transitions, for Events, metrics and logs.
const (
	ScarcityMarked  ScarcityEventKind = "Marked"
	ScarcityRetry   ScarcityEventKind = "Retry"
	ScarcityCleared ScarcityEventKind = "Cleared"
)

// ScarcityEvent is one transition.
type ScarcityEvent struct {
	Key     ZoneShape
	Kind    ScarcityEventKind
	Message string
}

// UpdateScarcity is the scarcity state machine, per (zone, shape):
//
//	not scarce --(a placeholder Pending >= threshold, no node added to the zone since it went Pending)--> scarce
//	scarce     --(a node added to the zone after the mark)--> not scarce, failures reset   [Cleared]
//	scarce     --(now >= RetryAt)--> not scarce, failures kept                              [Retry]
//
// Each mark doubles the backoff (InitialBackoff, 2x, 4x, ... capped at MaxBackoff), as
// cluster-autoscaler backs off a node group that fails to scale up. After a retry,
// the pending clock restarts at the retry time. A node arriving after a mark, or
// ResetAfter without a new mark, forgets the failures.
//
// lastNodeAdded maps a zone to the creation time of its newest node. The result is
// a new state (prev is not modified) and the transitions, sorted by key.
func UpdateScarcity(prev ScarcityState, obs []ScarcityObservation, lastNodeAdded map[string]time.Time, now time.Time, cfg ScarcityConfig) (ScarcityState, []ScarcityEvent) {
	seen := map[ZoneShape]ScarcityObservation{}
	for _, o := range obs {
		seen[o.Key] = o
	}
	keys := make([]ZoneShape, 0, len(seen)+len(prev.Entries))
	for k := range seen {
		keys = append(keys, k)
	}
	for k := range prev.Entries {
		if _, ok := seen[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })

	next := ScarcityState{Entries: map[ZoneShape]ScarcityEntry{}}
	var events []ScarcityEvent
	for _, k := range keys {
		e := prev.Entries[k]
		o := seen[k]
		nodeAt := lastNodeAdded[k.Zone]
		switch {
		// Node creation times have one-second resolution: a node created in the
		// same second as the mark counts as arriving after it (retrying early is
		// cheap; staying scarce for a whole backoff with a new node is not).
		case e.Scarce && nodeAt.After(e.MarkedAt.Truncate(time.Second).Add(-time.Nanosecond)):
			e = ScarcityEntry{}
			events = append(events, ScarcityEvent{Key: k, Kind: ScarcityCleared,
				Message: fmt.Sprintf("zone %s: a node arrived at %s; no longer scarce for shape %s", k.Zone, nodeAt.UTC().Format(time.RFC3339), k.ShapeHash)})
		case e.Scarce && !now.Before(e.RetryAt):
			e.Scarce = false
			e.RetriedAt = now
			events = append(events, ScarcityEvent{Key: k, Kind: ScarcityRetry,
				Message: fmt.Sprintf("zone %s: retrying shape %s after backoff (%d failures so far)", k.Zone, k.ShapeHash, e.Failures)})
		case e.Scarce:
			// Still backing off.
		default:
			start := o.OldestPending
			if start.Before(e.RetriedAt) {
				start = e.RetriedAt
			}
			switch {
			case !o.OldestPending.IsZero() && now.Sub(start) >= cfg.PendingThreshold && !nodeAt.After(start):
				e.Failures++
				backoff := cfg.InitialBackoff
				for i := 1; i < e.Failures && backoff < cfg.MaxBackoff; i++ {
					backoff *= 2
				}
				backoff = min(backoff, cfg.MaxBackoff)
				e.Scarce, e.MarkedAt, e.RetryAt = true, now, now.Add(backoff)
				events = append(events, ScarcityEvent{Key: k, Kind: ScarcityMarked,
					Message: fmt.Sprintf("zone %s: placeholder of shape %s Pending since %s with no new node; scarce, retry in %s (failure %d)",
						k.Zone, k.ShapeHash, start.UTC().Format(time.RFC3339), backoff, e.Failures)})
			case e.Failures > 0 && (nodeAt.After(e.MarkedAt) || now.Sub(e.MarkedAt) >= cfg.ResetAfter):
				e = ScarcityEntry{}
			}
		}
		if e != (ScarcityEntry{}) {
			next.Entries[k] = e
		}
	}
	return next, events
}

// Scarce returns the (zone, shape) sets marked scarce, for Snapshot.Scarce.
func (s ScarcityState) Scarce() map[ZoneShape]bool {
	out := map[ZoneShape]bool{}
	for k, e := range s.Entries {
		if e.Scarce {
			out[k] = true
		}
	}
	return out
}

// NextRetry returns the earliest RetryAt of a scarce set, so the controller can
// requeue itself then; false when nothing is scarce.
func (s ScarcityState) NextRetry() (time.Time, bool) {
	var at time.Time
	found := false
	for _, e := range s.Entries {
		if e.Scarce && (!found || e.RetryAt.Before(at)) {
			at, found = e.RetryAt, true
		}
	}
	return at, found
}
