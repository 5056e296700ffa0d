// Package agentreport is the contract between headroom-agent (one per GPU node) and
// the headroom controller: a small node summary of which GPUs are really usable,
// which are not (and why), and which are idle.
//
// The package is pure and builds without cgo: the controller imports it to read
// reports, the agent imports it to write them, and neither needs NVML to do so.
//
// # Channel and privilege
//
// Each agent writes one ConfigMap in the controller's namespace, named by
// ConfigMapName(nodeName). The agent's Role needs only get, create and update on
// configmaps in that namespace: no cluster-wide write, no access to Nodes.
//
// RBAC cannot narrow this further per node: resourceNames cannot restrict create
// (the name is not known when the request is authorised), and a DaemonSet shares
// one ServiceAccount, so any agent could in principle overwrite another node's
// report. The controller therefore never trusts a report on its own:
//
//   - the node name inside the report must map to the object's name
//     (ConfigMapName(summary.NodeName) == cm.Name), so a report cannot be filed
//     under one node and describe another;
//   - a report older than the stale window (DefaultStaleAfter) is ignored, which
//     also covers an agent that died and a node name reused by a new node;
//   - a report can only discount capacity the Node object already advertises,
//     never add to it, so a forged report costs money (more headroom) but cannot
//     make the controller hold less warm capacity than the cluster really has.
//
// Clusters that want the stronger binding can add a ValidatingAdmissionPolicy
// that compares the object name with the node name carried in the agent's bound
// ServiceAccount token (userInfo.extra["authentication.kubernetes.io/node-name"]);
// see nodes/nvml/README.md.
package agentreport

import (
	"errors"
	"fmt"
	"time"
)

// Version is the schema version of Summary. Adding optional fields does not
// change it (unknown fields are ignored on decode); renaming or changing the
// meaning of a field does, and a reader rejects a version it does not know.
const Version = 1

// Limits and defaults shared by writer and reader.
const (
	// MaxBytes bounds an encoded summary. Eight GPUs with seven MIG devices each
	// encode to well under 16 KiB; the limit keeps a buggy or hostile writer from
	// filling etcd (a ConfigMap may hold 1 MiB) or the controller's memory.
	MaxBytes = 64 << 10
	// DefaultStaleAfter is how old a report may be before the controller ignores
	// it. The agent writes every 30 s by default; five minutes tolerates a few
	// missed writes and an API server hiccup without flapping.
	DefaultStaleAfter = 5 * time.Minute
	// MaxClockSkew is how far in the future ObservedAt may lie (node clock ahead
	// of the controller's) before the report is refused.
	MaxClockSkew = 2 * time.Minute
	// MaxGPUs bounds the GPU list (the largest nodes today have 8 or 16).
	MaxGPUs = 64
)

// Summary is one node's GPU truth as its agent saw it at ObservedAt.
type Summary struct {
	// Version is the schema version; always Version when written by this code.
	Version int `json:"version"`
	// NodeName is the Kubernetes node the agent runs on (downward API).
	NodeName string `json:"nodeName"`
	// AgentVersion is the agent's build version.
	AgentVersion string `json:"agentVersion"`
	// ObservedAt is when the GPUs were last read.
	ObservedAt time.Time `json:"observedAt"`
	// BootID is the host's boot ID (/proc/sys/kernel/random/boot_id). The agent
	// keeps DriverReadyAt and sticky XID faults from its previous report only while
	// the boot ID is unchanged, so a restart of the agent does not forget them and
	// a reboot does.
	BootID string `json:"bootID,omitempty"`
	// NVML says whether the driver library answered.
	NVML NVMLStatus `json:"nvml"`
	// DriverReadyAt is when NVML first answered with at least one GPU on this
	// boot; nil while it never has. Together with the Node's creationTimestamp it
	// gives the GPU-ready lead time the forecaster needs (see ReadyLatency).
	DriverReadyAt *time.Time `json:"driverReadyAt,omitempty"`
	// GPUs lists every physical GPU seen on this boot, in index order,
	// including ones that stopped answering.
	GPUs []GPU `json:"gpus"`

	// UsableGPUs, UnhealthyGPUs and IdleGPUs are counts over GPUs, stored so that
	// a reader does not need to recount (Validate checks they agree). Usable +
	// Unhealthy = len(GPUs); Idle is a subset of Usable.
	UsableGPUs    int `json:"usableGPUs"`
	UnhealthyGPUs int `json:"unhealthyGPUs"`
	IdleGPUs      int `json:"idleGPUs"`
	// UsableMIGDevices counts healthy MIG devices on healthy GPUs by profile
	// (e.g. "1g.10gb"), for clusters using the device plugin's mixed strategy.
	UsableMIGDevices map[string]int `json:"usableMIGDevices,omitempty"`
}

// NVMLStatus says whether the agent could talk to the driver.
type NVMLStatus struct {
	// Available is false when libnvidia-ml could not be loaded or initialised;
	// the GPU list then holds only GPUs seen earlier on this boot, all unhealthy.
	Available bool `json:"available"`
	// Reason is why NVML is not available ("" when it is).
	Reason string `json:"reason,omitempty"`
	// DriverVersion is the kernel driver version NVML reports.
	DriverVersion string `json:"driverVersion,omitempty"`
}

// GPU is one physical GPU.
type GPU struct {
	Index   int    `json:"index"`
	UUID    string `json:"uuid"`
	Product string `json:"product,omitempty"`
	// MemoryTotalBytes and MemoryUsedBytes come from NVML's memory info.
	MemoryTotalBytes uint64 `json:"memoryTotalBytes,omitempty"`
	MemoryUsedBytes  uint64 `json:"memoryUsedBytes,omitempty"`
	// UtilizationRatio is the fraction of the last sample period a kernel ran
	// (0..1); nil when NVML does not report it (MIG mode, or not supported).
	UtilizationRatio *float64 `json:"utilizationRatio,omitempty"`
	MIGEnabled       bool     `json:"migEnabled,omitempty"`
	// MIGDevices lists the MIG devices when MIG is enabled.
	MIGDevices []MIGDevice `json:"migDevices,omitempty"`
	// Healthy is false when any reason below holds.
	Healthy bool `json:"healthy"`
	// Idle is true for a healthy GPU that runs nothing: no compute process and no
	// utilisation. Never true for an unhealthy GPU.
	Idle bool `json:"idle,omitempty"`
	// Reasons say why the GPU is unhealthy, one short phrase each.
	Reasons []string `json:"reasons,omitempty"`
	// CriticalXIDs lists the critical XID codes seen on this GPU on this boot.
	CriticalXIDs []uint64 `json:"criticalXIDs,omitempty"`
}

// MIGDevice is one MIG device (a GPU instance plus compute instance).
type MIGDevice struct {
	UUID string `json:"uuid"`
	// Profile is the device plugin's name for the slice, e.g. "1g.10gb"; "" when
	// NVML did not say.
	Profile           string   `json:"profile,omitempty"`
	GPUInstanceID     int      `json:"gpuInstanceID"`
	ComputeInstanceID int      `json:"computeInstanceID"`
	MemoryTotalBytes  uint64   `json:"memoryTotalBytes,omitempty"`
	Healthy           bool     `json:"healthy"`
	Reasons           []string `json:"reasons,omitempty"`
}

// Recount sets the stored counts from GPUs. The agent calls it before encoding.
func (s *Summary) Recount() {
	s.UsableGPUs, s.UnhealthyGPUs, s.IdleGPUs = 0, 0, 0
	s.UsableMIGDevices = nil
	for _, g := range s.GPUs {
		if !g.Healthy {
			s.UnhealthyGPUs++
			continue
		}
		s.UsableGPUs++
		if g.Idle {
			s.IdleGPUs++
		}
		for _, m := range g.MIGDevices {
			if m.Healthy && m.Profile != "" {
				if s.UsableMIGDevices == nil {
					s.UsableMIGDevices = map[string]int{}
				}
				s.UsableMIGDevices[m.Profile]++
			}
		}
	}
}

// Unhealthy returns the unhealthy GPUs, each with its reasons.
func (s Summary) Unhealthy() []GPU {
	var out []GPU
	for _, g := range s.GPUs {
		if !g.Healthy {
			out = append(out, g)
		}
	}
	return out
}

// Stale reports whether the summary is older than staleAfter at now.
func (s Summary) Stale(now time.Time, staleAfter time.Duration) bool {
	return now.Sub(s.ObservedAt) > staleAfter
}

// ReadyLatency is the time from node creation to the driver first answering
// with GPUs. ok is false when the driver never answered, or when it answered
// before the node was created (a report about an earlier node of the same name).
func (s Summary) ReadyLatency(nodeCreated time.Time) (d time.Duration, ok bool) {
	if s.DriverReadyAt == nil || s.DriverReadyAt.Before(nodeCreated) {
		return 0, false
	}
	return s.DriverReadyAt.Sub(nodeCreated), true
}

// Errors a reader can test with errors.Is. Every error from Decode, Validate and
// SummaryFromConfigMap wraps one of them.
var (
	ErrNotReport    = errors.New("not a headroom-agent report")
	ErrVersion      = errors.New("unsupported report version")
	ErrTooLarge     = errors.New("report too large")
	ErrInvalid      = errors.New("invalid report")
	ErrNodeMismatch = errors.New("report node name does not match object name")
	ErrStale        = errors.New("report is stale")
	ErrFuture       = errors.New("report observed in the future")
)

// Validate checks the summary's own consistency; it does not look at the clock.
func (s Summary) Validate() error {
	if s.Version != Version {
		return fmt.Errorf("%w: got %d, this build reads %d", ErrVersion, s.Version, Version)
	}
	if s.NodeName == "" {
		return fmt.Errorf("%w: empty nodeName", ErrInvalid)
	}
	if s.ObservedAt.IsZero() {
		return fmt.Errorf("%w: missing observedAt", ErrInvalid)
	}
	if len(s.GPUs) > MaxGPUs {
		return fmt.Errorf("%w: %d GPUs, at most %d", ErrInvalid, len(s.GPUs), MaxGPUs)
	}
	var usable, unhealthy, idle int
	seen := make(map[string]bool, len(s.GPUs))
	for i, g := range s.GPUs {
		if g.UUID == "" {
			return fmt.Errorf("%w: gpu[%d] has no uuid", ErrInvalid, i)
		}
		if seen[g.UUID] {
			return fmt.Errorf("%w: gpu uuid %s listed twice", ErrInvalid, g.UUID)
		}
		seen[g.UUID] = true
		if g.Index < 0 {
			return fmt.Errorf("%w: gpu %s has negative index", ErrInvalid, g.UUID)
		}
		if g.MemoryUsedBytes > g.MemoryTotalBytes && g.MemoryTotalBytes > 0 {
			return fmt.Errorf("%w: gpu %s uses more memory than it has", ErrInvalid, g.UUID)
		}
		if r := g.UtilizationRatio; r != nil && (*r < 0 || *r > 1) {
			return fmt.Errorf("%w: gpu %s utilization %v outside [0,1]", ErrInvalid, g.UUID, *r)
		}
		switch {
		case g.Healthy && len(g.Reasons) > 0:
			return fmt.Errorf("%w: gpu %s is healthy but has reasons", ErrInvalid, g.UUID)
		case !g.Healthy && len(g.Reasons) == 0:
			return fmt.Errorf("%w: gpu %s is unhealthy without a reason", ErrInvalid, g.UUID)
		case !g.Healthy && g.Idle:
			return fmt.Errorf("%w: gpu %s is unhealthy and idle", ErrInvalid, g.UUID)
		}
		if g.Healthy {
			usable++
			if g.Idle {
				idle++
			}
		} else {
			unhealthy++
		}
	}
	if usable != s.UsableGPUs || unhealthy != s.UnhealthyGPUs || idle != s.IdleGPUs {
		return fmt.Errorf("%w: counts usable=%d unhealthy=%d idle=%d disagree with the GPU list (%d/%d/%d)",
			ErrInvalid, s.UsableGPUs, s.UnhealthyGPUs, s.IdleGPUs, usable, unhealthy, idle)
	}
	if s.DriverReadyAt != nil && s.DriverReadyAt.After(s.ObservedAt) {
		return fmt.Errorf("%w: driverReadyAt after observedAt", ErrInvalid)
	}
	return nil
}

// CheckFresh reports ErrStale or ErrFuture when the summary's ObservedAt is
// outside [now-staleAfter, now+MaxClockSkew].
func (s Summary) CheckFresh(now time.Time, staleAfter time.Duration) error {
	if s.Stale(now, staleAfter) {
		return fmt.Errorf("%w: observed %s ago (limit %s)", ErrStale,
			now.Sub(s.ObservedAt).Round(time.Second), staleAfter)
	}
	if s.ObservedAt.Sub(now) > MaxClockSkew {
		return fmt.Errorf("%w: observed %s ahead of now", ErrFuture,
			s.ObservedAt.Sub(now).Round(time.Second))
	}
	return nil
}
