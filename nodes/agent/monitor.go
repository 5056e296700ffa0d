// Package agent is headroom-agent's logic between NVML and the cluster: it
// samples GPUs through an nvml.Reader, keeps XID faults sticky, turns samples
// into an agentreport.Summary, exports Prometheus metrics, serves health
// endpoints and writes the node's report ConfigMap.
//
// It imports nodes/nvml for its types only and never go-nvml, so it builds and
// tests without cgo; cmd/headroom-agent chooses the real Reader.
package agent

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
	"github.com/gpu-headroom/gpu-headroom/nodes/nvml"
)

// Config is what the Monitor needs besides its Reader.
type Config struct {
	NodeName     string
	AgentVersion string
	// BootID identifies the host boot (see agentreport.Summary.BootID).
	BootID string
	XIDs   nvml.XIDPolicy
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// gpuKey identifies a MIG device inside a GPU (GPU instance, compute instance).
type gpuKey struct{ gi, ci uint32 }

// known is what the Monitor remembers about a GPU across samples, so that a GPU
// that stops answering (or disappears from the device list) is still reported,
// as unhealthy, with the identity it had.
type known struct {
	index   int
	product string
	memory  uint64
}

// Monitor samples GPUs and holds the agent's state. It is safe for concurrent
// use: events arrive on the watcher goroutine while the loop samples.
type Monitor struct {
	cfg     Config
	reader  nvml.Reader
	metrics *Metrics
	log     *zap.Logger

	mu            sync.Mutex
	known         map[string]known           // by UUID
	xids          map[string][]uint64        // critical XIDs by GPU UUID
	migXIDs       map[string]map[gpuKey]bool // MIG devices hit by a critical XID
	driverReadyAt *time.Time
	last          *agentreport.Summary
	lastSample    time.Time
}

// NewMonitor returns a Monitor over reader. metrics may be nil in tests that do
// not look at them.
func NewMonitor(cfg Config, reader nvml.Reader, metrics *Metrics, log *zap.Logger) *Monitor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{
		cfg: cfg, reader: reader, metrics: metrics, log: log,
		known:   map[string]known{},
		xids:    map[string][]uint64{},
		migXIDs: map[string]map[gpuKey]bool{},
	}
}

// Restore carries state over from the agent's previous report on this node:
// DriverReadyAt and sticky critical XIDs, but only when the host has not
// rebooted since (same boot ID), because a reboot resets the GPUs.
func (m *Monitor) Restore(prev agentreport.Summary) bool {
	if prev.NodeName != m.cfg.NodeName || prev.BootID == "" || prev.BootID != m.cfg.BootID {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev.DriverReadyAt != nil {
		t := *prev.DriverReadyAt
		m.driverReadyAt = &t
	}
	for _, g := range prev.GPUs {
		m.known[g.UUID] = known{index: g.Index, product: g.Product, memory: g.MemoryTotalBytes}
		for _, x := range g.CriticalXIDs {
			if !slices.Contains(m.xids[g.UUID], x) {
				m.xids[g.UUID] = append(m.xids[g.UUID], x)
			}
		}
	}
	return true
}

// HandleEvent records one NVML event. Critical XIDs make the GPU (or the MIG
// device) unhealthy for the rest of the boot.
func (m *Monitor) HandleEvent(e nvml.Event) {
	if m.metrics != nil {
		m.metrics.event(e, m.indexOf(e.UUID), m.cfg.XIDs)
	}
	switch e.Type {
	case nvml.EventError:
		m.log.Warn("NVML event watch error", zap.String("op", e.Op), zap.String("gpu_uuid", e.UUID), zap.String("error", e.Err))
		return
	case nvml.EventXID:
	default:
		m.log.Info("GPU ECC event", zap.String("gpu_uuid", e.UUID), zap.Stringer("type", e.Type))
		return
	}
	critical := m.cfg.XIDs.IsCritical(e.XID)
	fields := []zap.Field{zap.String("gpu_uuid", e.UUID), zap.Uint64("xid", e.XID),
		zap.String("meaning", nvml.DescribeXID(e.XID)), zap.Bool("critical", critical)}
	if e.GPUInstanceID != nvml.NoInstance {
		fields = append(fields, zap.Uint32("gpu_instance", e.GPUInstanceID), zap.Uint32("compute_instance", e.ComputeInstanceID))
	}
	if !critical {
		m.log.Info("XID event (application error, GPU stays healthy)", fields...)
		return
	}
	m.log.Warn("critical XID: marking GPU unhealthy", fields...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.UUID == "" {
		// NVML could not say which GPU: do not guess; the sampler still checks
		// every GPU each interval.
		return
	}
	if e.GPUInstanceID != nvml.NoInstance && e.ComputeInstanceID != nvml.NoInstance {
		if m.migXIDs[e.UUID] == nil {
			m.migXIDs[e.UUID] = map[gpuKey]bool{}
		}
		m.migXIDs[e.UUID][gpuKey{e.GPUInstanceID, e.ComputeInstanceID}] = true
		return
	}
	if !slices.Contains(m.xids[e.UUID], e.XID) {
		m.xids[e.UUID] = append(m.xids[e.UUID], e.XID)
	}
}

func (m *Monitor) indexOf(uuid string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.known[uuid]; ok {
		return k.index
	}
	return -1
}

// Sample reads the GPUs once and returns the node summary. While NVML is not
// available it retries Init first, so a driver installed after the agent
// started is picked up at the next interval.
func (m *Monitor) Sample() agentreport.Summary {
	now := m.cfg.Now()
	st := m.reader.Status()
	if !st.Available {
		_ = m.reader.Init()
		st = m.reader.Status()
	}
	var gpus []nvml.GPU
	listErr := ""
	if st.Available {
		var err error
		gpus, err = m.reader.GPUs()
		if err != nil {
			gpus, listErr = nil, err.Error()
			m.log.Warn("reading GPUs failed; reporting every known GPU as not answering", zap.Error(err))
			if m.metrics != nil {
				m.metrics.nvmlError("listing GPUs")
			}
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	s := agentreport.Summary{
		Version:      agentreport.Version,
		NodeName:     m.cfg.NodeName,
		AgentVersion: m.cfg.AgentVersion,
		ObservedAt:   now,
		BootID:       m.cfg.BootID,
		NVML:         agentreport.NVMLStatus{Available: st.Available, Reason: st.Reason, DriverVersion: st.DriverVersion},
	}
	seen := map[string]bool{}
	answering := 0
	for _, g := range gpus {
		if m.metrics != nil {
			for _, q := range g.QueryErrors {
				m.metrics.nvmlError(q.Op)
			}
		}
		if g.UUID == "" {
			g.UUID = m.uuidAtIndex(g.Index)
		}
		if g.UUID == "" || seen[g.UUID] {
			continue // never seen answering: nothing to name it by, and not counted usable
		}
		seen[g.UUID] = true
		if !g.NotAnswering {
			answering++
			m.known[g.UUID] = known{index: g.Index, product: g.Name, memory: g.MemoryTotalBytes}
		}
		s.GPUs = append(s.GPUs, m.report(g))
	}
	// GPUs seen earlier on this boot that NVML no longer lists, or all of them
	// when NVML is down: report them, unhealthy, rather than let them vanish.
	for uuid, k := range m.known {
		if seen[uuid] {
			continue
		}
		why := "no longer listed by NVML"
		switch {
		case !st.Available:
			why = "NVML unavailable: " + st.Reason
		case listErr != "":
			why = "NVML could not list GPUs: " + listErr
		}
		s.GPUs = append(s.GPUs, m.report(nvml.GPU{Index: k.index, UUID: uuid, Name: k.product,
			MemoryTotalBytes: k.memory, NotAnswering: true, Err: why}))
	}
	sort.Slice(s.GPUs, func(i, j int) bool {
		if s.GPUs[i].Index != s.GPUs[j].Index {
			return s.GPUs[i].Index < s.GPUs[j].Index
		}
		return s.GPUs[i].UUID < s.GPUs[j].UUID
	})
	if m.driverReadyAt == nil && answering > 0 {
		t := now
		m.driverReadyAt = &t
		m.log.Info("GPU driver answering", zap.Int("gpus", answering), zap.String("driver", st.DriverVersion))
	}
	if m.driverReadyAt != nil {
		t := *m.driverReadyAt
		s.DriverReadyAt = &t
	}
	s.Recount()
	m.last = &s
	m.lastSample = now
	if m.metrics != nil {
		m.metrics.observe(s)
	}
	return s
}

func (m *Monitor) uuidAtIndex(i int) string {
	for uuid, k := range m.known {
		if k.index == i {
			return uuid
		}
	}
	return ""
}

// report turns one sampled GPU into its report entry. Caller holds m.mu.
func (m *Monitor) report(g nvml.GPU) agentreport.GPU {
	r := agentreport.GPU{
		Index: g.Index, UUID: g.UUID, Product: g.Name,
		MemoryTotalBytes: g.MemoryTotalBytes, MemoryUsedBytes: g.MemoryUsedBytes,
		UtilizationRatio: g.Utilization, MIGEnabled: g.MIGEnabled,
		Reasons: nvml.Reasons(g),
	}
	if g.MemoryUsedBytes > g.MemoryTotalBytes {
		r.MemoryUsedBytes = g.MemoryTotalBytes
	}
	if u := r.UtilizationRatio; u != nil && (*u < 0 || *u > 1) {
		r.UtilizationRatio = nil
	}
	for _, x := range m.xids[g.UUID] {
		r.CriticalXIDs = append(r.CriticalXIDs, x)
		r.Reasons = append(r.Reasons, "critical "+nvml.DescribeXID(x))
	}
	for _, d := range g.MIGDevices {
		md := agentreport.MIGDevice{UUID: d.UUID, Profile: d.Profile, GPUInstanceID: d.GPUInstanceID,
			ComputeInstanceID: d.ComputeInstanceID, MemoryTotalBytes: d.MemoryTotalBytes, Healthy: true}
		if m.migXIDs[g.UUID][gpuKey{uint32(d.GPUInstanceID), uint32(d.ComputeInstanceID)}] {
			md.Healthy = false
			md.Reasons = []string{"critical XID on this MIG device"}
		}
		r.MIGDevices = append(r.MIGDevices, md)
	}
	r.Healthy = len(r.Reasons) == 0
	r.Idle = r.Healthy && nvml.Idle(g)
	return r
}

// Last returns the latest summary and when it was sampled; ok is false before
// the first sample.
func (m *Monitor) Last() (s agentreport.Summary, at time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		return agentreport.Summary{}, time.Time{}, false
	}
	return *m.last, m.lastSample, true
}

// ReportFunc publishes a summary (the ConfigMap writer, or a printer).
type ReportFunc func(context.Context, agentreport.Summary) error

// Run samples every interval and publishes each summary until ctx ends, and
// keeps one event watcher running while NVML is available. It returns after the
// watcher has stopped.
func (m *Monitor) Run(ctx context.Context, interval time.Duration, publish ReportFunc) {
	var wg sync.WaitGroup
	defer wg.Wait()
	watching := false
	watchDone := make(chan struct{}, 1)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s := m.Sample()
		if s.NVML.Available && !watching {
			watching = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.reader.WatchEvents(ctx, m.HandleEvent); err != nil {
					m.log.Warn("cannot watch NVML events; XIDs will not be seen until the next retry", zap.Error(err))
					if m.metrics != nil {
						m.metrics.nvmlError("watching events")
					}
				}
				watchDone <- struct{}{}
			}()
		}
		if err := publish(ctx, s); err != nil && ctx.Err() == nil {
			m.log.Warn("publishing node report failed; retrying next interval", zap.Error(err))
		}
		// Wait for the next tick; a watcher that ends meanwhile is restarted on
		// the next pass, not at once, so a watch that keeps failing cannot spin.
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return
			case <-watchDone:
				watching = false
			case <-tick.C:
				waiting = false
			}
		}
	}
}

// Describe returns a one-line human description of a summary, for logs,
// health bodies and --once output.
func Describe(s agentreport.Summary) string {
	if !s.NVML.Available {
		return fmt.Sprintf("no NVML (%s); %d GPUs known, %d unhealthy", s.NVML.Reason, len(s.GPUs), s.UnhealthyGPUs)
	}
	return fmt.Sprintf("NVML available (driver %s): %d GPUs, %d usable, %d unhealthy, %d idle",
		s.NVML.DriverVersion, len(s.GPUs), s.UsableGPUs, s.UnhealthyGPUs, s.IdleGPUs)
}
