package headroom

import (
	"fmt"
	"time"
)

// CooldownState is what ApplyCooldown remembers between reconciles: per placeholder
// set, the count it holds and when that count was last asked for. The controller
// keeps it in memory. After a restart, seed it with SeedCooldown from the
// placeholders that exist, so a restart alone never shrinks headroom at once.
type CooldownState struct {
	Entries map[ZoneShape]CooldownEntry
}

// CooldownEntry is one placeholder set's held count.
type CooldownEntry struct {
	Shape    Shape
	Replicas int32
	// Since is the last time the plan asked for at least Replicas.
	Since time.Time
}

// SeedCooldown builds a state that holds the observed placeholder sets as if they
// had just been asked for. Sets without a shape (unknown hash) are skipped: without
// a shape there is nothing to rebuild, and Diff leaves them to the plan.
func SeedCooldown(observed []ObservedReplicaSet, shapes map[string]Shape, now time.Time) CooldownState {
	st := CooldownState{Entries: map[ZoneShape]CooldownEntry{}}
	for _, o := range observed {
		if !IsManaged(o.Labels) {
			continue
		}
		k := ZoneShape{Zone: o.Labels[LabelZone], ShapeHash: o.Labels[LabelShape]}
		sh, ok := shapes[k.ShapeHash]
		if !ok || k.Zone == "" || o.Replicas <= 0 {
			continue
		}
		st.Entries[k] = CooldownEntry{Shape: sh, Replicas: o.Replicas, Since: now}
	}
	return st
}

// ApplyCooldown lets scale-up through at once and holds scale-down until the plan
// has asked for less for a whole cooldown: a set keeps its previous count while
// now - Since < cooldown, where Since is the last time the plan asked for at least
// that count. This is the HPA's downscale stabilisation in its simplest form; it
// stops placeholders from flapping as demand wobbles, and a flapping placeholder
// means a node the autoscaler adds and removes.
//
// Held counts never break the plan's limits: if holding would exceed a zone's max or
// the budget (because other sets grew), held surplus is released at once, from the
// last set in sorted order backwards. Sets in d.Release (scarce zones) are never held.
//
// It returns the plan to apply and the state to keep. Neither input is modified.
func ApplyCooldown(prev CooldownState, d Desired, now time.Time, cooldown time.Duration) (Desired, CooldownState) {
	next := CooldownState{Entries: map[ZoneShape]CooldownEntry{}}
	out := d
	out.Placeholders = nil
	planned := map[ZoneShape]Placeholder{}
	for _, p := range d.Placeholders {
		planned[p.Key()] = p
	}
	held := map[ZoneShape]int32{} // surplus held over the plan, per set

	for _, p := range d.Placeholders {
		k := p.Key()
		e, ok := prev.Entries[k]
		if ok && p.Replicas < e.Replicas && !d.Release[k] && now.Sub(e.Since) < cooldown {
			held[k] = e.Replicas - p.Replicas
			p.Reason += fmt.Sprintf("; held at %d by cooldown until %s", e.Replicas, e.Since.Add(cooldown).UTC().Format(time.RFC3339))
			p.Replicas = e.Replicas
			next.Entries[k] = e
		} else {
			next.Entries[k] = CooldownEntry{Shape: p.Shape, Replicas: p.Replicas, Since: now}
		}
		out.Placeholders = append(out.Placeholders, p)
	}
	for k, e := range prev.Entries {
		if _, ok := planned[k]; ok || d.Release[k] || e.Replicas <= 0 || now.Sub(e.Since) >= cooldown {
			continue
		}
		held[k] = e.Replicas
		next.Entries[k] = e
		out.Placeholders = append(out.Placeholders, Placeholder{
			Zone: k.Zone, ShapeHash: k.ShapeHash, Shape: e.Shape, Replicas: e.Replicas,
			Reason: fmt.Sprintf("no longer planned; held at %d by cooldown until %s", e.Replicas, e.Since.Add(cooldown).UTC().Format(time.RFC3339)),
		})
	}
	sortPlaceholders(out.Placeholders)
	releaseOverLimits(&out, held, next)
	return out, next
}

// releaseOverLimits drops held surplus, last set first, until every zone is within
// its max and the total within the budget.
func releaseOverLimits(d *Desired, held map[ZoneShape]int32, st CooldownState) {
	zoneGPUs := map[string]int64{}
	var total int64
	for _, p := range d.Placeholders {
		zoneGPUs[p.Zone] += p.GPUs()
		total += p.GPUs()
	}
	over := func(zone string) bool {
		return total > d.BudgetGPUs || (d.ZoneMaxGPUs != nil && zoneGPUs[zone] > d.zoneMax(zone))
	}
	for i := len(d.Placeholders) - 1; i >= 0; i-- {
		p := &d.Placeholders[i]
		k := p.Key()
		for held[k] > 0 && over(p.Zone) {
			held[k]--
			p.Replicas--
			zoneGPUs[p.Zone] -= p.Shape.GPUs
			total -= p.Shape.GPUs
		}
		if e, ok := st.Entries[k]; ok && e.Replicas != p.Replicas {
			st.Entries[k] = CooldownEntry{Shape: e.Shape, Replicas: p.Replicas, Since: e.Since}
		}
	}
	kept := d.Placeholders[:0]
	for _, p := range d.Placeholders {
		if p.Replicas > 0 {
			kept = append(kept, p)
		} else {
			delete(st.Entries, p.Key())
		}
	}
	d.Placeholders = kept
}
