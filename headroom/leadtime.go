package headroom

import (
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast"
)

// LeadTimeConfig is how headroomd measures lead times: the p90 of the last 64
// samples of each part, from the third sample on, with no fallbacks (the
// configured lead time stands until both parts are measured, see Horizon).
func LeadTimeConfig() forecast.LeadTimeConfig {
	return forecast.LeadTimeConfig{Percentile: 0.9, MinSamples: 3, Capacity: 64}
}

// Horizon is a workload's planning horizon under cfg, and where it came from: an
// explicit per-workload leadTime (override) wins; else the measured percentile of
// node provisioning (the slowest zone and GPU product seen) plus the measured
// percentile of the workload's pod start, once both are measured; else the
// configured lead time (cfg.LeadTimeFor). The sum of the two percentiles stands in for the
// percentile of the sum (forecast.LeadTime.Horizon): a little above it for
// normal-like parts, and O(samples) per workload instead of O(samples²), which
// matters with hundreds of workloads on every pass. headroomd and the simulator both plan
// with it.
func Horizon(lt *forecast.LeadTime, cfg Config, workload string) (time.Duration, string) {
	configured := cfg.LeadTimeFor(workload)
	if wc, ok := cfg.Workload(workload); ok && wc.LeadTime != nil {
		return configured, "config override"
	}
	var node time.Duration
	for _, k := range lt.NodeKeys() {
		if d, ok := lt.NodePercentile(k); ok && d > node {
			node = d
		}
	}
	pod, ok := lt.PodPercentile(workload)
	if node == 0 || !ok {
		return configured, "configured (not yet measured)"
	}
	return node + pod, "measured"
}
