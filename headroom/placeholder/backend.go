package placeholder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// FieldManager names the controller's writes in managedFields.
const FieldManager = "gpu-headroom"

// Backend applies placeholder actions to the cluster. The ReplicaSet backend is
// the only one today; a CapacityBuffer backend could replace it.
type Backend interface {
	Apply(ctx context.Context, a headroom.Action, pre Prepull) error
}

// ErrRateLimited is returned when the write budget of this period is spent; the
// controller retries on its next pass.
var ErrRateLimited = errors.New("placeholder writes rate limited")

// ReplicaSets writes placeholder ReplicaSets in one namespace.
type ReplicaSets struct {
	Kube    kubernetes.Interface
	Options TemplateOptions
	// Limiter bounds writes per second so that a bug cannot create thousands of
	// objects; nil means 5 per second with a burst of 20.
	Limiter flowcontrol.RateLimiter
}

// NewReplicaSets returns the backend with its default rate limit.
func NewReplicaSets(kube kubernetes.Interface, o TemplateOptions) *ReplicaSets {
	return &ReplicaSets{Kube: kube, Options: o, Limiter: flowcontrol.NewTokenBucketRateLimiter(5, 20)}
}

// Apply performs one action. AlreadyExists on create and NotFound on delete are
// success; an object without the owner label is never changed or deleted.
func (b *ReplicaSets) Apply(ctx context.Context, a headroom.Action, pre Prepull) error {
	if b.Limiter != nil && !b.Limiter.TryAccept() {
		return ErrRateLimited
	}
	rsc := b.Kube.AppsV1().ReplicaSets(b.Options.Namespace)
	switch a.Kind {
	case headroom.ActionCreate:
		rs := ReplicaSet(a.Name, a.Zone, a.ShapeHash, a.Shape, a.To, b.Options, pre)
		_, err := rsc.Create(ctx, rs, metav1.CreateOptions{FieldManager: FieldManager})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating placeholder ReplicaSet %s: %w", a.Name, err)
		}
		return nil
	case headroom.ActionScale:
		cur, err := rsc.Get(ctx, a.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // gone meanwhile; the next pass creates it if still wanted
		}
		if err != nil {
			return fmt.Errorf("getting placeholder ReplicaSet %s: %w", a.Name, err)
		}
		if !headroom.IsManaged(cur.Labels) {
			return fmt.Errorf("not scaling ReplicaSet %s: it lacks %s=%s", a.Name, headroom.LabelManagedBy, headroom.ManagedByValue)
		}
		// The resourceVersion makes the patch fail on a concurrent change
		// (Conflict); the controller's next pass retries from fresh state.
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": cur.ResourceVersion},
			"spec":     map[string]any{"replicas": a.To},
		})
		if _, err := rsc.Patch(ctx, a.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("scaling placeholder ReplicaSet %s to %d: %w", a.Name, a.To, err)
		}
		return nil
	case headroom.ActionDelete:
		cur, err := rsc.Get(ctx, a.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("getting placeholder ReplicaSet %s: %w", a.Name, err)
		}
		if !headroom.IsManaged(cur.Labels) {
			return fmt.Errorf("not deleting ReplicaSet %s: it lacks %s=%s", a.Name, headroom.LabelManagedBy, headroom.ManagedByValue)
		}
		bg := metav1.DeletePropagationBackground
		err = rsc.Delete(ctx, a.Name, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion},
			PropagationPolicy: &bg,
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting placeholder ReplicaSet %s: %w", a.Name, err)
		}
		return nil
	}
	return fmt.Errorf("unknown placeholder action %q", a.Kind)
}

// Observed turns placeholder ReplicaSets (from a lister) into Diff's input.
func Observed(rss []*appsv1.ReplicaSet) []headroom.ObservedReplicaSet {
	out := make([]headroom.ObservedReplicaSet, 0, len(rss))
	for _, rs := range rss {
		var r int32 = 1
		if rs.Spec.Replicas != nil {
			r = *rs.Spec.Replicas
		}
		out = append(out, headroom.ObservedReplicaSet{Name: rs.Name, Labels: rs.Labels, Replicas: r})
	}
	return out
}
