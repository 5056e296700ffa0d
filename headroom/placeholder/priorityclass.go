package placeholder

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// Placeholder priorities. cluster-autoscaler never scales up for pods below its
// --expendable-pods-priority-cutoff (default -10), so a placeholder below -10
// holds nothing; at 0 or above it would no longer be preempted by inference pods
// at the default priority.
const (
	DefaultPriority int32 = -10
	MinPriority     int32 = -10
	MaxPriority     int32 = -1
)

// ValidatePriority refuses values outside [-10, -1] unless allowOutside is set.
func ValidatePriority(value int32, allowOutside bool) error {
	if allowOutside || (value >= MinPriority && value <= MaxPriority) {
		return nil
	}
	if value >= 0 {
		return fmt.Errorf("placeholder priority %d is >= 0: inference pods at the default priority 0 could not preempt placeholders (allowed %d..%d; override with --allow-priority-outside-range)", value, MinPriority, MaxPriority)
	}
	return fmt.Errorf("placeholder priority %d is below cluster-autoscaler's default expendable cutoff %d: placeholders would never trigger a scale-up (allowed %d..%d; override with --allow-priority-outside-range)", value, MinPriority, MinPriority, MaxPriority)
}

// EnsurePriorityClass makes sure the placeholder PriorityClass exists with a sane
// value. It creates it (preemptionPolicy Never, never globalDefault) when absent
// and create is true; an existing class is used as it is, after the same checks.
// It returns the value in force.
func EnsurePriorityClass(ctx context.Context, kube kubernetes.Interface, name string, value int32, create, allowOutside bool) (int32, error) {
	if err := ValidatePriority(value, allowOutside); err != nil {
		return 0, err
	}
	pc, err := kube.SchedulingV1().PriorityClasses().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if !create {
			return 0, fmt.Errorf("PriorityClass %s does not exist and creating it is turned off (--create-priority-class=false)", name)
		}
		never := corev1.PreemptNever
		pc = &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				headroom.LabelManagedBy: headroom.ManagedByValue, headroom.LabelName: headroom.NameValue,
			}},
			Value:            value,
			PreemptionPolicy: &never,
			GlobalDefault:    false,
			Description:      "gpu-headroom placeholder pods: preempted by any inference pod at priority >= 0; still triggers cluster-autoscaler scale-ups (>= its expendable cutoff -10).",
		}
		created, err := kube.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			return EnsurePriorityClass(ctx, kube, name, value, false, allowOutside)
		}
		if err != nil {
			return 0, fmt.Errorf("creating PriorityClass %s: %w", name, err)
		}
		return created.Value, nil
	}
	if err != nil {
		return 0, fmt.Errorf("getting PriorityClass %s: %w", name, err)
	}
	if err := ValidatePriority(pc.Value, allowOutside); err != nil {
		return 0, fmt.Errorf("existing PriorityClass %s: %w", name, err)
	}
	if pc.GlobalDefault {
		return 0, fmt.Errorf("existing PriorityClass %s is globalDefault: every pod without a class would become a placeholder-priority pod", name)
	}
	return pc.Value, nil
}
