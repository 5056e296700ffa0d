package agentreport

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names and labels of the report ConfigMaps.
const (
	// NamePrefix starts every report ConfigMap's name.
	NamePrefix = "headroom-agent-"
	// DataKey holds the JSON summary inside the ConfigMap.
	DataKey = "summary.json"
	// LabelComponent marks report ConfigMaps so the controller can watch only
	// them (a label-filtered informer), never the namespace's other ConfigMaps.
	LabelComponent = "app.kubernetes.io/component"
	// ComponentValue is LabelComponent's value on a report.
	ComponentValue = "headroom-agent-report"
	// AnnotationNode repeats the node name for people reading `kubectl get -o yaml`;
	// a label cannot hold it (node names may be 253 characters, label values 63).
	AnnotationNode = "headroom.gpu-headroom.io/node"
	// maxNameLen is the DNS-subdomain limit for object names.
	maxNameLen = 253
)

// ConfigMapName returns the report ConfigMap's name for a node: NamePrefix plus
// the node name, or, when that exceeds 253 characters, a truncated node name and
// a hash of the full name so that two long names never collide. The mapping is
// deterministic, so the controller can check a report's node against its name.
func ConfigMapName(node string) string {
	name := NamePrefix + node
	if len(name) <= maxNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(node))
	suffix := "-" + hex.EncodeToString(sum[:])[:16]
	keep := maxNameLen - len(NamePrefix) - len(suffix)
	head := node[:keep]
	// A DNS subdomain must end alphanumeric; the hash suffix guarantees that,
	// but a trailing '.' or '-' before it would leave "..-" or ".-": trim them.
	head = trimRight(head)
	return NamePrefix + head + suffix
}

func trimRight(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '.' || s[len(s)-1] == '-') {
		s = s[:len(s)-1]
	}
	return s
}

// Encode validates s and returns its JSON form, at most MaxBytes long.
func Encode(s Summary) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("encoding report: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding report: %w", err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("encoding report: %w: %d bytes, limit %d", ErrTooLarge, len(b), MaxBytes)
	}
	return b, nil
}

// Decode parses and validates a JSON summary. Unknown fields are ignored (an
// agent newer by a minor change may add some); a different Version is refused.
func Decode(b []byte) (Summary, error) {
	if len(b) > MaxBytes {
		return Summary{}, fmt.Errorf("decoding report: %w: %d bytes, limit %d", ErrTooLarge, len(b), MaxBytes)
	}
	// Read the version first so that a future schema gets ErrVersion, not a
	// confusing type error from a field that changed shape.
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Summary{}, fmt.Errorf("decoding report: %w: %v", ErrInvalid, err)
	}
	if head.Version == nil {
		return Summary{}, fmt.Errorf("decoding report: %w: no version field", ErrInvalid)
	}
	if *head.Version != Version {
		return Summary{}, fmt.Errorf("decoding report: %w: got %d, this build reads %d", ErrVersion, *head.Version, Version)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return Summary{}, fmt.Errorf("decoding report: %w: %v", ErrInvalid, err)
	}
	if err := s.Validate(); err != nil {
		return Summary{}, fmt.Errorf("decoding report: %w", err)
	}
	return s, nil
}

// ToConfigMap builds the report ConfigMap for s in namespace. The agent writes
// exactly this object (its Data, labels and annotations); see agent.Writer.
func ToConfigMap(namespace string, s Summary) (*corev1.ConfigMap, error) {
	b, err := Encode(s)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:        ConfigMapName(s.NodeName),
			Namespace:   namespace,
			Labels:      map[string]string{LabelComponent: ComponentValue},
			Annotations: map[string]string{AnnotationNode: s.NodeName},
		},
		Data: map[string]string{DataKey: string(b)},
	}, nil
}

// SummaryFromConfigMap reads a report ConfigMap as the controller does, with the
// default stale window. It needs no informer or client: pass an object from a
// lister, a Get, or a test.
func SummaryFromConfigMap(cm *corev1.ConfigMap, now time.Time) (Summary, error) {
	return SummaryFromConfigMapWithin(cm, now, DefaultStaleAfter)
}

// SummaryFromConfigMapWithin is SummaryFromConfigMap with a chosen stale window.
// It refuses an object that is not a report, a report whose node name does not
// map to the object's name, a report that does not decode or validate, and a
// report observed more than staleAfter before now (ErrStale) or too far after it
// (ErrFuture). On ErrStale and ErrFuture the decoded summary is still returned,
// for logging; the caller must not count it.
func SummaryFromConfigMapWithin(cm *corev1.ConfigMap, now time.Time, staleAfter time.Duration) (Summary, error) {
	if cm == nil {
		return Summary{}, fmt.Errorf("reading report: %w: nil ConfigMap", ErrNotReport)
	}
	if cm.Labels[LabelComponent] != ComponentValue {
		return Summary{}, fmt.Errorf("reading report %s/%s: %w: missing label %s=%s",
			cm.Namespace, cm.Name, ErrNotReport, LabelComponent, ComponentValue)
	}
	raw, ok := cm.Data[DataKey]
	if !ok {
		return Summary{}, fmt.Errorf("reading report %s/%s: %w: no %q key", cm.Namespace, cm.Name, ErrNotReport, DataKey)
	}
	s, err := Decode([]byte(raw))
	if err != nil {
		return Summary{}, fmt.Errorf("reading report %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	if want := ConfigMapName(s.NodeName); want != cm.Name {
		return Summary{}, fmt.Errorf("reading report %s/%s: %w: report is for node %q, whose report is named %q",
			cm.Namespace, cm.Name, ErrNodeMismatch, s.NodeName, want)
	}
	if err := s.CheckFresh(now, staleAfter); err != nil {
		return s, fmt.Errorf("reading report %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	return s, nil
}
