package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/redis/go-redis/v9"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// KEDA for real: pushing items on a Redis list scales a GPU Deployment from 0
// through KEDA's activation and then through the HPA KEDA created (its external
// metric served by KEDA's adapter through the aggregation layer); draining the
// list scales it back to 0.
func TestKEDAScalesGPUDeploymentOnRedisList(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		KEDA: true, Redis: true,
		NodeGroups: localcluster.H100Zones([]string{"zone-a"}, 1, 1),
	})
	ctx := context.Background()
	const ns, name, list = "default", "llm", "requests"
	dep := inferenceDeployment(ns, name, 1)
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	so := scaledObject(ns, name, c.RedisAddr, list, 0, 8)
	if _, err := c.KEDA.KedaV1alpha1().ScaledObjects(ns).Create(ctx, so, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ScaledObject: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr})
	defer rdb.Close()
	eventually(t, time.Minute, "KEDA's HPA keda-hpa-llm", func(ctx context.Context) (bool, string) {
		_, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "keda-hpa-"+name, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	items := make([]any, 30)
	for i := range items {
		items[i] = fmt.Sprintf("req-%d", i)
	}
	if err := rdb.RPush(ctx, list, items...).Err(); err != nil {
		t.Fatalf("pushing to redis: %v", err)
	}
	// 30 items at 5 per replica: KEDA activates 0 -> 1, the HPA takes it to 6.
	eventually(t, 2*time.Minute, "6 ready replicas through the HPA", func(ctx context.Context) (bool, string) {
		d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return d.Status.ReadyReplicas == 6, fmt.Sprintf("spec=%d ready=%d", *d.Spec.Replicas, d.Status.ReadyReplicas)
	})
	hpa, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "keda-hpa-"+name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting HPA: %v", err)
	}
	if v := externalMetricValue(hpa); v != 30 {
		t.Errorf("HPA external metric = %v, want 30 (served by KEDA's adapter)", v)
	}
	if err := rdb.Del(ctx, list).Err(); err != nil {
		t.Fatalf("draining redis: %v", err)
	}
	eventually(t, 2*time.Minute, "scale back to 0", func(ctx context.Context) (bool, string) {
		d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return *d.Spec.Replicas == 0 && d.Status.Replicas == 0, fmt.Sprintf("spec=%d status=%d", *d.Spec.Replicas, d.Status.Replicas)
	})
}

// scaledObject scales name on the length of a Redis list, 5 items per replica,
// with short polling and cooldown so a test sees it in seconds.
func scaledObject(ns, name, redisAddr, list string, minR, maxR int32) *kedav1alpha1.ScaledObject {
	polling, cooldown, window := int32(1), int32(3), int32(0)
	return &kedav1alpha1.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: kedav1alpha1.ScaledObjectSpec{
			ScaleTargetRef:  &kedav1alpha1.ScaleTarget{Name: name},
			PollingInterval: &polling,
			CooldownPeriod:  &cooldown,
			MinReplicaCount: &minR,
			MaxReplicaCount: &maxR,
			Advanced: &kedav1alpha1.AdvancedConfig{HorizontalPodAutoscalerConfig: &kedav1alpha1.HorizontalPodAutoscalerConfig{
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
					ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window},
				},
			}},
			Triggers: []kedav1alpha1.ScaleTriggers{{
				Type:     "redis",
				Metadata: map[string]string{"address": redisAddr, "listName": list, "listLength": "5"},
			}},
		},
	}
}

func externalMetricValue(hpa *autoscalingv2.HorizontalPodAutoscaler) float64 {
	for _, m := range hpa.Status.CurrentMetrics {
		if m.External != nil {
			if m.External.Current.AverageValue != nil {
				return m.External.Current.AverageValue.AsApproximateFloat64() * float64(hpa.Status.CurrentReplicas)
			}
			if m.External.Current.Value != nil {
				return m.External.Current.Value.AsApproximateFloat64()
			}
		}
	}
	return -1
}
