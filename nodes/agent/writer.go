package agent

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
)

// FieldManager names the agent in the report's managedFields.
const FieldManager = "headroom-agent"

// Writer writes this node's report ConfigMap with get, create and update only
// (no patch, no list, no watch, no delete), which is all the agent's Role
// grants. Conflicts (another write in between) are retried with a fresh read.
type Writer struct {
	Client    kubernetes.Interface
	Namespace string
}

// Write creates or updates the report for s.NodeName.
func (w Writer) Write(ctx context.Context, s agentreport.Summary) error {
	want, err := agentreport.ToConfigMap(w.Namespace, s)
	if err != nil {
		return fmt.Errorf("building report for node %s: %w", s.NodeName, err)
	}
	cms := w.Client.CoreV1().ConfigMaps(w.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cms.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				// Created between our Get and Create: retry as an update.
				return apierrors.NewConflict(corev1.Resource("configmaps"), want.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		next := cur.DeepCopy()
		if next.Labels == nil {
			next.Labels = map[string]string{}
		}
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		maps.Copy(next.Labels, want.Labels)
		maps.Copy(next.Annotations, want.Annotations)
		next.Data = want.Data
		next.BinaryData = nil
		_, err = cms.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing report %s/%s: %w", w.Namespace, want.Name, err)
	}
	return nil
}

// Previous reads this node's last report, whatever its age, so the Monitor can
// carry DriverReadyAt and sticky XIDs over an agent restart. ok is false when
// there is none or it does not decode (a fresh start is then the safe choice).
func (w Writer) Previous(ctx context.Context, node string) (s agentreport.Summary, ok bool, err error) {
	cm, err := w.Client.CoreV1().ConfigMaps(w.Namespace).Get(ctx, agentreport.ConfigMapName(node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return agentreport.Summary{}, false, nil
	}
	if err != nil {
		return agentreport.Summary{}, false, fmt.Errorf("reading previous report for node %s: %w", node, err)
	}
	s, err = agentreport.Decode([]byte(cm.Data[agentreport.DataKey]))
	if err != nil || s.NodeName != node {
		return agentreport.Summary{}, false, nil
	}
	return s, true, nil
}
