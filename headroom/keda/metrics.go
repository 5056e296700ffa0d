package keda

import (
	"math"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
)

// MetricReplicas is the replica count one HPA metric asks for, before the HPA clamps
// it to [minReplicas, maxReplicas] and before its tolerance and stabilisation
// windows. It shows how far demand is above what the HPA may grant.
type MetricReplicas struct {
	// Name identifies the metric: the external or object metric name, or the
	// resource name for Resource and ContainerResource metrics.
	Name string
	Type autoscalingv2.MetricSourceType
	// Replicas is ceil(current / target) scaled the way the HPA scales it.
	Replicas int32
}

// metricReplicas computes the metric-implied replicas of every HPA metric whose
// current value is reported in status.currentMetrics. It mirrors the HPA
// controller's replica calculator (pkg/controller/podautoscaler/replica_calculator.go)
// without tolerance:
//
//   - AverageValue targets on External and Object metrics (what KEDA creates for
//     most triggers): the HPA divides the metric total by the target per pod and
//     reports ceil(total/currentReplicas) in milli-units as current.averageValue, so
//     replicas = ceil(total / target) with total recovered as
//     (averageValue - 1m) * currentReplicas. The 1m undoes the HPA's rounding up,
//     which would otherwise turn a total of exactly 70 over 3 pods into 70.002 and
//     ask for one replica too many.
//   - Value targets (KEDA metricType: Value) and per-pod metrics (Pods, Resource,
//     ContainerResource): replicas = ceil(currentReplicas * current / target).
//
// Every formula needs currentReplicas > 0; at zero replicas the HPA is disabled and
// nothing is returned. Metrics with no status or a zero target are skipped.
func metricReplicas(hpa *autoscalingv2.HorizontalPodAutoscaler) []MetricReplicas {
	cur := float64(hpa.Status.CurrentReplicas)
	if cur <= 0 {
		return nil
	}
	var out []MetricReplicas
	for _, spec := range hpa.Spec.Metrics {
		name, target, current, ok := matchMetric(spec, hpa.Status.CurrentMetrics)
		if !ok {
			continue
		}
		var ratio float64
		switch target.Type {
		case autoscalingv2.AverageValueMetricType:
			t, c := qty(target.AverageValue), qty(current.AverageValue)
			if t <= 0 || current.AverageValue == nil {
				continue
			}
			if spec.Type == autoscalingv2.ExternalMetricSourceType || spec.Type == autoscalingv2.ObjectMetricSourceType {
				if m := current.AverageValue.MilliValue(); m > 0 {
					c = float64(m-1) / 1000
				}
			}
			ratio = cur * c / t
		case autoscalingv2.ValueMetricType:
			t, c := qty(target.Value), qty(current.Value)
			if t <= 0 || current.Value == nil {
				continue
			}
			ratio = cur * c / t
		case autoscalingv2.UtilizationMetricType:
			if target.AverageUtilization == nil || *target.AverageUtilization <= 0 || current.AverageUtilization == nil {
				continue
			}
			ratio = cur * float64(*current.AverageUtilization) / float64(*target.AverageUtilization)
		default:
			continue
		}
		out = append(out, MetricReplicas{Name: name, Type: spec.Type, Replicas: ceilReplicas(ratio)})
	}
	return out
}

// ceilReplicas rounds up, forgiving float noise (5.0000000001 is 5, not 6), and
// saturates at MaxInt32 so a runaway metric cannot overflow.
func ceilReplicas(x float64) int32 {
	if x <= 0 || math.IsNaN(x) {
		return 0
	}
	c := math.Ceil(x - 1e-9)
	if c >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(c)
}

func qty(q *resource.Quantity) float64 {
	if q == nil {
		return 0
	}
	return q.AsApproximateFloat64()
}

// matchMetric finds the status entry for one spec metric (same type and name).
func matchMetric(spec autoscalingv2.MetricSpec, status []autoscalingv2.MetricStatus) (string, autoscalingv2.MetricTarget, autoscalingv2.MetricValueStatus, bool) {
	for _, st := range status {
		if st.Type != spec.Type {
			continue
		}
		switch spec.Type {
		case autoscalingv2.ExternalMetricSourceType:
			if spec.External != nil && st.External != nil && spec.External.Metric.Name == st.External.Metric.Name {
				return spec.External.Metric.Name, spec.External.Target, st.External.Current, true
			}
		case autoscalingv2.ObjectMetricSourceType:
			if spec.Object != nil && st.Object != nil && spec.Object.Metric.Name == st.Object.Metric.Name {
				return spec.Object.Metric.Name, spec.Object.Target, st.Object.Current, true
			}
		case autoscalingv2.PodsMetricSourceType:
			if spec.Pods != nil && st.Pods != nil && spec.Pods.Metric.Name == st.Pods.Metric.Name {
				return spec.Pods.Metric.Name, spec.Pods.Target, st.Pods.Current, true
			}
		case autoscalingv2.ResourceMetricSourceType:
			if spec.Resource != nil && st.Resource != nil && spec.Resource.Name == st.Resource.Name {
				return string(spec.Resource.Name), spec.Resource.Target, st.Resource.Current, true
			}
		case autoscalingv2.ContainerResourceMetricSourceType:
			if spec.ContainerResource != nil && st.ContainerResource != nil && spec.ContainerResource.Name == st.ContainerResource.Name &&
				spec.ContainerResource.Container == st.ContainerResource.Container {
				return string(spec.ContainerResource.Name), spec.ContainerResource.Target, st.ContainerResource.Current, true
			}
		}
	}
	return "", autoscalingv2.MetricTarget{}, autoscalingv2.MetricValueStatus{}, false
}
