package headroom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// ObservedReplicaSet is a placeholder ReplicaSet as the controller sees it.
type ObservedReplicaSet struct {
	Name     string
	Labels   map[string]string
	Replicas int32 // spec.replicas
}

// ActionKind says what an Action does.
type ActionKind string

// Action kinds.
const (
	ActionCreate ActionKind = "create"
	ActionScale  ActionKind = "scale"
	ActionDelete ActionKind = "delete"
)

// Action is one write the placeholder backend performs.
type Action struct {
	Kind ActionKind
	// Name is the ReplicaSet name.
	Name      string
	Zone      string
	ShapeHash string
	// Shape is set for creates, so the backend can build the pod template.
	Shape Shape
	// From and To are the replica counts before and after (From is 0 for a create,
	// To is 0 for a delete).
	From, To int32
	Reason   string
}

// String renders the action for logs and dry-run output.
func (a Action) String() string {
	return fmt.Sprintf("%s %s (zone %s, shape %s) %d->%d", a.Kind, a.Name, a.Zone, a.ShapeHash, a.From, a.To)
}

// Diff turns desired placeholders and the observed placeholder ReplicaSets into
// actions: create what is missing, scale what differs, delete what is no longer
// wanted (or wanted at zero). It is pure and its output is sorted (deletes, then
// scales and creates by name), so a dry run prints the same list twice.
//
// Safety: an observed object without the owner label LabelManagedBy=ManagedByValue
// is never scaled or deleted. If such an object already has a desired name, Diff
// does not create over it either; it reports the conflict instead (the backend's
// create would fail with AlreadyExists anyway, and treating that as success would
// silently adopt someone else's object).
//
// Observed ReplicaSets are matched by name, which is a pure function of zone and
// shape (ReplicaSetName), so a restarted or second controller adopts what exists.
func Diff(desired []Placeholder, observed []ObservedReplicaSet) (actions []Action, conflicts []string) {
	byName := map[string]ObservedReplicaSet{}
	for _, o := range observed {
		byName[o.Name] = o
	}
	wanted := map[string]bool{}
	for _, p := range desired {
		if p.Replicas <= 0 {
			continue
		}
		name := ReplicaSetName(p.Zone, p.ShapeHash)
		wanted[name] = true
		o, exists := byName[name]
		switch {
		case !exists:
			actions = append(actions, Action{Kind: ActionCreate, Name: name, Zone: p.Zone, ShapeHash: p.ShapeHash, Shape: p.Shape, To: p.Replicas, Reason: p.Reason})
		case !IsManaged(o.Labels):
			conflicts = append(conflicts, fmt.Sprintf("ReplicaSet %s exists without label %s=%s; not touching it", name, LabelManagedBy, ManagedByValue))
		case o.Replicas != p.Replicas:
			actions = append(actions, Action{Kind: ActionScale, Name: name, Zone: p.Zone, ShapeHash: p.ShapeHash, From: o.Replicas, To: p.Replicas, Reason: p.Reason})
		}
	}
	for _, o := range observed {
		if wanted[o.Name] || !IsManaged(o.Labels) {
			continue
		}
		actions = append(actions, Action{Kind: ActionDelete, Name: o.Name, Zone: o.Labels[LabelZone], ShapeHash: o.Labels[LabelShape], From: o.Replicas,
			Reason: "no longer desired"})
	}
	sort.Slice(actions, func(i, j int) bool {
		if (actions[i].Kind == ActionDelete) != (actions[j].Kind == ActionDelete) {
			return actions[i].Kind == ActionDelete
		}
		return actions[i].Name < actions[j].Name
	})
	sort.Strings(conflicts)
	return actions, conflicts
}

// ReplicaSetName returns the deterministic name of the placeholder ReplicaSet for a
// zone and shape hash: "headroom-<zone>-<shapehash>", made a valid DNS label (lower
// case alphanumerics and '-', at most 63 characters). When the zone had to be
// changed to fit (other characters, too long), a short hash of the original zone is
// appended so that two zones never share a name.
func ReplicaSetName(zone, shapeHash string) string {
	const maxLen = 63
	z := sanitize(zone)
	suffix := "-" + sanitize(shapeHash)
	changed := z != zone
	if room := maxLen - len("headroom-") - len(suffix); len(z) > room {
		changed = true
		z = strings.TrimRight(z[:room], "-")
	}
	if changed {
		sum := sha256.Sum256([]byte(zone))
		tag := "-" + hex.EncodeToString(sum[:])[:6]
		room := maxLen - len("headroom-") - len(suffix) - len(tag)
		if len(z) > room {
			z = strings.TrimRight(z[:room], "-")
		}
		z += tag
		z = strings.TrimLeft(z, "-")
	}
	return "headroom-" + z + suffix
}

// sanitize lowercases s, maps every character outside [a-z0-9] to '-', collapses
// runs of '-' and trims them from both ends.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}
