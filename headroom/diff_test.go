package headroom

import (
	"reflect"
	"strings"
	"testing"
)

func TestReplicaSetName(t *testing.T) {
	tests := []struct{ zone, hash, want string }{
		{"us-east-1a", "527dcf9e7e", "headroom-us-east-1a-527dcf9e7e"},
		{"europe-west4-b", "abc", "headroom-europe-west4-b-abc"},
		// Changed zones get a hash of the original so they cannot collide.
		{"Zone_A", "abc", "headroom-zone-a-" + zoneTag("Zone_A") + "-abc"},
		{"zone.a", "abc", "headroom-zone-a-" + zoneTag("zone.a") + "-abc"},
	}
	for _, tt := range tests {
		if got := ReplicaSetName(tt.zone, tt.hash); got != tt.want {
			t.Errorf("ReplicaSetName(%q) = %q, want %q", tt.zone, got, tt.want)
		}
	}
	long := ReplicaSetName(strings.Repeat("verylongzone", 10), "527dcf9e7e")
	if len(long) > 63 || !strings.HasSuffix(long, "-527dcf9e7e") || strings.Contains(long, "--") {
		t.Errorf("long name %q (%d)", long, len(long))
	}
	if ReplicaSetName("Zone_A", "x") == ReplicaSetName("zone-a", "x") {
		t.Error("sanitised zones collide")
	}
	for _, z := range []string{"a", "Zone_A", "-x-", strings.Repeat("z", 200), "ü"} {
		n := ReplicaSetName(z, "527dcf9e7e")
		if !isDNSLabel(n) {
			t.Errorf("%q -> %q is not a DNS label", z, n)
		}
	}
}

func zoneTag(zone string) string {
	n := ReplicaSetName(zone, "h")
	parts := strings.Split(strings.TrimSuffix(n, "-h"), "-")
	return parts[len(parts)-1]
}

func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func TestDiff(t *testing.T) {
	s1, s2 := shape(1), shape(2)
	h1, h2 := s1.Hash(), s2.Hash()
	ours := func(zone, hash string, n int32) ObservedReplicaSet {
		return ObservedReplicaSet{Name: ReplicaSetName(zone, hash), Labels: PlaceholderLabels(zone, hash), Replicas: n}
	}
	desired := []Placeholder{
		{Zone: "a", ShapeHash: h1, Shape: s1, Replicas: 3}, // exists at 3: nothing
		{Zone: "b", ShapeHash: h1, Shape: s1, Replicas: 2}, // exists at 5: scale
		{Zone: "c", ShapeHash: h2, Shape: s2, Replicas: 1}, // missing: create
		{Zone: "d", ShapeHash: h2, Shape: s2, Replicas: 0}, // zero, exists: delete
		{Zone: "e", ShapeHash: h1, Shape: s1, Replicas: 4}, // name taken by a foreign object: conflict
	}
	observed := []ObservedReplicaSet{
		ours("a", h1, 3),
		ours("b", h1, 5),
		ours("d", h2, 2),
		ours("z", h1, 1), // no longer desired: delete
		{Name: ReplicaSetName("e", h1), Labels: map[string]string{"app": "mine"}, Replicas: 4},
		{Name: "headroom-x-123", Labels: map[string]string{LabelZone: "x"}, Replicas: 7}, // unmanaged: untouched
	}
	actions, conflicts := Diff(desired, observed)
	var got []string
	for _, a := range actions {
		got = append(got, a.String())
	}
	want := []string{
		"delete " + ReplicaSetName("d", h2) + " (zone d, shape " + h2 + ") 2->0",
		"delete " + ReplicaSetName("z", h1) + " (zone z, shape " + h1 + ") 1->0",
		"scale " + ReplicaSetName("b", h1) + " (zone b, shape " + h1 + ") 5->2",
		"create " + ReplicaSetName("c", h2) + " (zone c, shape " + h2 + ") 0->1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("actions:\n got %q\nwant %q", got, want)
	}
	for _, a := range actions {
		if a.Kind == ActionCreate && a.Shape.GPUs != 2 {
			t.Errorf("create lacks its shape: %+v", a)
		}
	}
	if len(conflicts) != 1 || !strings.Contains(conflicts[0], ReplicaSetName("e", h1)+" exists without label app.kubernetes.io/managed-by=gpu-headroom") {
		t.Errorf("conflicts %q", conflicts)
	}
	// Idempotent: applying the actions and diffing again yields nothing.
	again, _ := Diff(desired[:3], []ObservedReplicaSet{ours("a", h1, 3), ours("b", h1, 2), ours("c", h2, 1)})
	if len(again) != 0 {
		t.Errorf("second diff %v", again)
	}
}
