package headroom

// Label and annotation keys. They are the contract with the cluster: the controller
// finds, adopts and deletes placeholders by these labels, and users opt ScaledObjects
// in with the annotation. Keep them stable once released.
//
// Our own keys live under one domain, headroom.gpu-headroom.io, so that `kubectl get
// -l` queries and RBAC-less audits can find everything we add.
const (
	// Domain prefixes our own label and annotation keys.
	Domain = "headroom.gpu-headroom.io"

	// LabelManagedBy is the owner label. The controller never creates, changes or
	// deletes an object that lacks LabelManagedBy=ManagedByValue.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "gpu-headroom"
	// LabelName and LabelComponent follow the Kubernetes recommended labels.
	LabelName      = "app.kubernetes.io/name"
	NameValue      = "gpu-headroom"
	LabelComponent = "app.kubernetes.io/component"
	ComponentValue = "placeholder"
	// LabelZone holds the zone a placeholder ReplicaSet and its pods are pinned to.
	// Zones come from the node label topology.kubernetes.io/zone, so they are always
	// valid label values.
	LabelZone = Domain + "/zone"
	// LabelShape holds the shape hash (nodes.Shape.Hash) of a placeholder.
	LabelShape = Domain + "/shape"

	// AnnotationEnabled opts a ScaledObject in ("true") or out ("false"), whatever
	// the config's label selector says.
	AnnotationEnabled = Domain + "/enabled"
	// AnnotationShape records the human-readable shape on a placeholder ReplicaSet.
	AnnotationShape = Domain + "/shape"

	// ConfigDataKey is the ConfigMap data key that holds the YAML config.
	ConfigDataKey = "config.yaml"
)

// PlaceholderLabels returns the labels of the placeholder ReplicaSet (and its pods)
// for a zone and shape hash.
func PlaceholderLabels(zone, shapeHash string) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelName:      NameValue,
		LabelComponent: ComponentValue,
		LabelZone:      zone,
		LabelShape:     shapeHash,
	}
}

// IsManaged reports whether an object's labels carry our owner label.
func IsManaged(labels map[string]string) bool {
	return labels[LabelManagedBy] == ManagedByValue
}

// IsPlaceholder reports whether a pod's labels mark it as one of our placeholders.
// The snapshot builder uses it to keep placeholders out of pending GPU pods and out
// of the node usage that counts as real load.
func IsPlaceholder(labels map[string]string) bool {
	return IsManaged(labels) && labels[LabelComponent] == ComponentValue
}
