package agent

import (
	"runtime"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
	"github.com/gpu-headroom/gpu-headroom/nodes/nvml"
)

// Metrics are the agent's Prometheus metrics, registered on an injected
// registry (never the global one). Names start with headroom_agent_ and use base
// units (bytes, ratio, seconds). The node is not a label: Prometheus' pod
// discovery already attaches it, and per-node series would double it.
//
// Per-GPU gauges come from the latest summary through a collector, so a GPU
// that leaves the node leaves the metrics with it; counters are plain vectors.
type Metrics struct {
	xidEvents    *prometheus.CounterVec
	eccEvents    *prometheus.CounterVec
	nvmlErrors   *prometheus.CounterVec
	reportWrites *prometheus.CounterVec
	lastReport   prometheus.Gauge
	gpus         *gpuCollector
}

const ns = "headroom_agent"

// NewMetrics registers the agent's metrics on reg.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	f := promauto.With(reg)
	build := f.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Build of the running headroom-agent; always 1."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m := &Metrics{
		xidEvents: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "xid_events_total",
			Help: "XID events from NVML, by GPU, XID code and whether the agent treats the code as critical."},
			[]string{"gpu", "uuid", "xid", "critical"}),
		eccEvents: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ecc_events_total",
			Help: "ECC error events from NVML, by GPU and type (single_bit_ecc, double_bit_ecc)."},
			[]string{"gpu", "uuid", "type"}),
		nvmlErrors: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "nvml_errors_total",
			Help: "NVML calls that failed (not counting 'not supported'), by operation."}, []string{"op"}),
		reportWrites: f.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "report_writes_total",
			Help: "Writes of the node report ConfigMap, by result (ok, error)."}, []string{"result"}),
		lastReport: f.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "last_report_timestamp_seconds",
			Help: "Unix time of the last successful write of the node report."}),
		gpus: &gpuCollector{},
	}
	reg.MustRegister(m.gpus)
	return m
}

func (m *Metrics) nvmlError(op string) { m.nvmlErrors.WithLabelValues(op).Inc() }

// ReportWritten records a report write.
func (m *Metrics) ReportWritten(err error, at float64) {
	if err != nil {
		m.reportWrites.WithLabelValues("error").Inc()
		return
	}
	m.reportWrites.WithLabelValues("ok").Inc()
	m.lastReport.Set(at)
}

func (m *Metrics) event(e nvml.Event, index int, p nvml.XIDPolicy) {
	gpu := strconv.Itoa(index)
	if index < 0 {
		gpu = "unknown"
	}
	switch e.Type {
	case nvml.EventXID:
		m.xidEvents.WithLabelValues(gpu, e.UUID, strconv.FormatUint(e.XID, 10), strconv.FormatBool(p.IsCritical(e.XID))).Inc()
	case nvml.EventDoubleBitECC, nvml.EventSingleBitECC:
		m.eccEvents.WithLabelValues(gpu, e.UUID, e.Type.String()).Inc()
	case nvml.EventError:
		m.nvmlError(e.Op)
	}
}

func (m *Metrics) observe(s agentreport.Summary) { m.gpus.set(s) }

var (
	gpuLabels       = []string{"gpu", "uuid"}
	descAvailable   = desc("nvml_available", "1 when NVML is loaded and answering, 0 when the agent runs without it (see the log for why).")
	descUsable      = desc("usable_gpus", "GPUs on this node that are healthy.")
	descUnhealthy   = desc("unhealthy_gpus", "GPUs on this node that are not usable (critical XID, ECC, not answering).")
	descIdle        = desc("idle_gpus", "Healthy GPUs with no compute process and no utilisation.")
	descReady       = desc("driver_ready_timestamp_seconds", "Unix time when NVML first answered with GPUs on this boot.")
	descSampled     = desc("last_sample_timestamp_seconds", "Unix time of the last GPU sample.")
	descInfo        = prometheus.NewDesc(ns+"_gpu_info", "GPU identity; always 1.", []string{"gpu", "uuid", "product", "mig_enabled"}, nil)
	descHealthy     = desc("gpu_healthy", "1 when the GPU is usable, 0 when it is not.", gpuLabels...)
	descGPUIdle     = desc("gpu_idle", "1 when the GPU is healthy and idle.", gpuLabels...)
	descMemTotal    = desc("gpu_memory_total_bytes", "GPU memory size.", gpuLabels...)
	descMemUsed     = desc("gpu_memory_used_bytes", "GPU memory in use.", gpuLabels...)
	descUtil        = desc("gpu_utilization_ratio", "Fraction of the last sample period a kernel ran (absent in MIG mode).", gpuLabels...)
	descMIGDevices  = desc("gpu_mig_devices", "MIG devices on the GPU (0 when MIG is off).", gpuLabels...)
	descCriticalXID = desc("gpu_critical_xids", "Distinct critical XID codes seen on the GPU this boot.", gpuLabels...)
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

// gpuCollector exports the latest summary.
type gpuCollector struct {
	mu   sync.Mutex
	s    agentreport.Summary
	have bool
}

func (c *gpuCollector) set(s agentreport.Summary) {
	c.mu.Lock()
	c.s, c.have = s, true
	c.mu.Unlock()
}

// Describe sends every descriptor.
func (c *gpuCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAvailable, descUsable, descUnhealthy, descIdle, descReady, descSampled,
		descInfo, descHealthy, descGPUIdle, descMemTotal, descMemUsed, descUtil, descMIGDevices, descCriticalXID} {
		ch <- d
	}
}

// Collect sends the latest summary's values; nothing before the first sample.
func (c *gpuCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s, have := c.s, c.have
	c.mu.Unlock()
	if !have {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descAvailable, b2f(s.NVML.Available))
	gauge(descUsable, float64(s.UsableGPUs))
	gauge(descUnhealthy, float64(s.UnhealthyGPUs))
	gauge(descIdle, float64(s.IdleGPUs))
	gauge(descSampled, float64(s.ObservedAt.UnixNano())/1e9)
	if s.DriverReadyAt != nil {
		gauge(descReady, float64(s.DriverReadyAt.UnixNano())/1e9)
	}
	for _, g := range s.GPUs {
		idx := strconv.Itoa(g.Index)
		gauge(descInfo, 1, idx, g.UUID, g.Product, strconv.FormatBool(g.MIGEnabled))
		gauge(descHealthy, b2f(g.Healthy), idx, g.UUID)
		gauge(descGPUIdle, b2f(g.Idle), idx, g.UUID)
		gauge(descMemTotal, float64(g.MemoryTotalBytes), idx, g.UUID)
		gauge(descMemUsed, float64(g.MemoryUsedBytes), idx, g.UUID)
		if g.UtilizationRatio != nil {
			gauge(descUtil, *g.UtilizationRatio, idx, g.UUID)
		}
		gauge(descMIGDevices, float64(len(g.MIGDevices)), idx, g.UUID)
		gauge(descCriticalXID, float64(len(g.CriticalXIDs)), idx, g.UUID)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
