package controller

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// checkpointKey holds the forecaster state in the checkpoint ConfigMap.
const checkpointKey = "forecast.bin"

// checkpointName is the ConfigMap that keeps forecaster state across restarts
// and leader changes, next to the headroom ConfigMap.
func (c *Controller) checkpointName() string { return c.opts.ConfigMapName + "-forecast" }

// Snapshot encodes every workload's forecaster (compact, versioned, checksummed).
func (fd *ForecastDemand) Snapshot() ([]byte, error) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	states := make(map[string]*forecast.Forecaster, len(fd.per))
	for k, e := range fd.per {
		states[k] = e.f
	}
	return forecast.Marshal(states)
}

// Restore loads forecasters saved by Snapshot, for quantile q. Workloads whose
// quantile differs start fresh on their first sample.
func (fd *ForecastDemand) Restore(data []byte, q float64) (int, error) {
	cfg := forecast.DefaultConfig()
	cfg.Quantile.Q = q
	states, err := forecast.Unmarshal(data, cfg)
	if err != nil {
		return 0, err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	for k, f := range states {
		fd.per[k] = &entry{f: f, q: q}
	}
	return len(states), nil
}

// restoreForecasts runs once, before the first demand: a restarted or newly
// elected controller forecasts at once instead of relearning. Corrupt or
// version-mismatched state is discarded with a log line, never a crash.
func (c *Controller) restoreForecasts(cfg headroom.Config) {
	if c.forecasts == nil || c.restored {
		return
	}
	c.restored = true
	cm, err := c.configmaps.ConfigMaps(c.opts.Namespace).Get(c.checkpointName())
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		c.log.Warn("reading forecast checkpoint; starting without it", zap.Error(err))
		return
	}
	n, err := c.forecasts.Restore(cm.BinaryData[checkpointKey], cfg.QuantileFor(""))
	if err != nil {
		c.log.Warn("discarding forecast checkpoint", zap.String("configmap", cm.Name), zap.Error(err))
		return
	}
	c.log.Info("restored forecaster state", zap.Int("workloads", n), zap.String("configmap", cm.Name))
}

// saveForecasts writes the checkpoint at most once per interval.
func (c *Controller) saveForecasts(ctx context.Context, now time.Time) error {
	if c.forecasts == nil || c.opts.DryRun || now.Sub(c.lastCheckpoint) < c.opts.CheckpointInterval {
		return nil
	}
	data, err := c.forecasts.Snapshot()
	if err != nil {
		return fmt.Errorf("encoding forecast checkpoint: %w", err)
	}
	cms := c.kube.CoreV1().ConfigMaps(c.opts.Namespace)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: c.checkpointName(), Namespace: c.opts.Namespace, Labels: map[string]string{
			headroom.LabelManagedBy: headroom.ManagedByValue, headroom.LabelName: headroom.NameValue,
			headroom.LabelComponent: "forecast-checkpoint"}},
		BinaryData: map[string][]byte{checkpointKey: data},
	}
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "gpu-headroom"})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "gpu-headroom"})
	}
	if err != nil {
		return fmt.Errorf("writing forecast checkpoint %s: %w", cm.Name, err)
	}
	c.lastCheckpoint = now
	return nil
}
