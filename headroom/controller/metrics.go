package controller

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the controller's Prometheus series: prefix headroom_, base units,
// _total only on counters, desired and observed in separate series.
type Metrics struct {
	PlaceholderPodsDesired *prometheus.GaugeVec
	PlaceholderPods        *prometheus.GaugeVec
	ReservedGPUs           *prometheus.GaugeVec
	DesiredGPUs            *prometheus.GaugeVec
	BudgetGPUs             prometheus.Gauge
	WorkloadReplicas       *prometheus.GaugeVec
	WorkloadDemand         *prometheus.GaugeVec
	PendingGPUPods         *prometheus.GaugeVec
	GPUNodes               *prometheus.GaugeVec
	FreeGPUs               *prometheus.GaugeVec
	UnhealthyGPUs          *prometheus.GaugeVec
	NodeProvisioning       *prometheus.GaugeVec
	PodStartup             *prometheus.GaugeVec
	LeadTime               *prometheus.GaugeVec
	Preemptions            *prometheus.CounterVec
	ScarceZones            *prometheus.GaugeVec
	Actions                *prometheus.CounterVec
	ReconcileDuration      prometheus.Histogram
	ReconcileErrors        *prometheus.CounterVec
	LastSuccess            prometheus.Gauge
	ConfigValid            prometheus.Gauge
	ConfigErrors           prometheus.Counter
	Leader                 prometheus.Gauge
	BuildInfo              *prometheus.GaugeVec
}

// NewMetrics registers the metrics on reg (never the global registry).
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		PlaceholderPodsDesired: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_placeholder_pods_desired",
			Help: "Placeholder pods the plan wants, per zone and shape."}, []string{"zone", "shape", "gpu_resource"}),
		PlaceholderPods: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_placeholder_pods",
			Help: "Placeholder pods that exist, per zone, shape and phase (running, pending)."}, []string{"zone", "shape", "phase"}),
		ReservedGPUs: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_reserved_gpus",
			Help: "GPUs held by running placeholder pods (warm headroom), per zone and GPU resource."}, []string{"zone", "gpu_resource"}),
		DesiredGPUs: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_desired_gpus",
			Help: "GPUs of headroom the plan wants, per zone and GPU resource."}, []string{"zone", "gpu_resource"}),
		BudgetGPUs: f.NewGauge(prometheus.GaugeOpts{Name: "headroom_budget_gpus",
			Help: "Global cap on placeholder GPUs in force (flag, possibly lowered by the config)."}),
		WorkloadReplicas: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_workload_replicas",
			Help: "Replica signals per covered ScaledObject: desired (HPA), metric (metric-implied, not clamped by maxReplicas), ready, max."},
			[]string{"namespace", "scaledobject", "signal"}),
		WorkloadDemand: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_workload_demand_replicas",
			Help: "Replicas a covered ScaledObject will need within its lead time beyond those ready (forecaster output)."},
			[]string{"namespace", "scaledobject"}),
		PendingGPUPods: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_pending_gpu_pods",
			Help: "Unschedulable GPU pods that are not placeholders, per pinned zone (\"any\" when not pinned)."}, []string{"zone"}),
		GPUNodes: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_gpu_nodes",
			Help: "GPU nodes per zone and state (ready, not_ready: includes nodes whose GPUs are not allocatable yet)."}, []string{"zone", "state"}),
		FreeGPUs: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_free_gpus",
			Help: "Allocatable GPUs not requested by any pod (placeholders count as using), per zone and GPU resource."}, []string{"zone", "gpu_resource"}),
		UnhealthyGPUs: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_unhealthy_gpus",
			Help: "GPUs that headroom-agent reports unhealthy (XID, ECC, not answering), per zone; not counted as warm or free."}, []string{"zone"}),
		NodeProvisioning: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_node_provisioning_seconds",
			Help: "Measured p90 time from GPU node creation until its GPUs are allocatable, per zone and GPU product."}, []string{"zone", "gpu_product"}),
		PodStartup: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_pod_startup_seconds",
			Help: "Measured p90 time from a workload pod's creation until Ready (scheduling, image pull, model load)."}, []string{"namespace", "scaledobject"}),
		LeadTime: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_lead_time_seconds",
			Help: "Forecast horizon in force per workload: measured node provisioning plus pod start (p90), or the configured lead time."}, []string{"namespace", "scaledobject"}),
		Preemptions: f.NewCounterVec(prometheus.CounterOpts{Name: "headroom_placeholder_preemptions_total",
			Help: "Placeholder pods preempted by the scheduler (an inference pod took their GPUs)."}, []string{"zone"}),
		ScarceZones: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_scarce_zone",
			Help: "1 while a zone is marked out of GPUs for a shape (a placeholder stayed Pending and no node arrived)."}, []string{"zone", "shape"}),
		Actions: f.NewCounterVec(prometheus.CounterOpts{Name: "headroom_placeholder_actions_total",
			Help: "Placeholder writes by kind (create, scale, delete), zone and result (ok, error)."}, []string{"action", "zone", "result"}),
		ReconcileDuration: f.NewHistogram(prometheus.HistogramOpts{Name: "headroom_reconcile_duration_seconds",
			// Bounds at 5 ms .. 10 s, one of them at the 100 ms target, so the
			// share of passes over it is exact.
			Help: "Time one reconcile pass takes.", Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}),
		ReconcileErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "headroom_reconcile_errors_total",
			Help: "Failed reconcile passes by stage (config, apply, snapshot)."}, []string{"stage"}),
		LastSuccess: f.NewGauge(prometheus.GaugeOpts{Name: "headroom_last_successful_reconcile_timestamp_seconds",
			Help: "Unix time of the last reconcile pass that completed without error."}),
		ConfigValid: f.NewGauge(prometheus.GaugeOpts{Name: "headroom_config_valid",
			Help: "1 when the headroom ConfigMap parsed; 0 while the last good config is kept after a bad edit."}),
		ConfigErrors: f.NewCounter(prometheus.CounterOpts{Name: "headroom_config_errors_total",
			Help: "Rejected headroom ConfigMap versions."}),
		Leader: f.NewGauge(prometheus.GaugeOpts{Name: "headroom_leader",
			Help: "1 when this replica holds the leader Lease and writes placeholders."}),
		BuildInfo: f.NewGaugeVec(prometheus.GaugeOpts{Name: "headroom_build_info",
			Help: "Build information; always 1."}, []string{"version", "go_version"}),
	}
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.ConfigValid.Set(1)
	for _, s := range []string{"config", "snapshot", "apply"} {
		m.ReconcileErrors.WithLabelValues(s).Add(0)
	}
	return m
}
