package headroom

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Workload is a KEDA-scaled workload as plain values (see package keda). The alias
// keeps the definition in keda, which must not import this package: the controller
// here imports keda.
type Workload = keda.Workload

// Shape is what one GPU pod needs from a node (see package nodes).
type Shape = nodes.Shape

// Node is a GPU node with its current load.
type Node struct {
	nodes.NodeInfo
	// Used sums the requests of the non-terminated pods bound to the node that are
	// not our placeholders (nodes.UsedOn over the non-placeholder pods).
	Used nodes.Resources
}

// PendingPods counts unschedulable GPU pods of one shape that are not placeholders.
type PendingPods struct {
	Shape Shape
	// Zone is the zone the pods are pinned to, or "" when any zone their shape
	// allows will do.
	Zone  string
	Count int32
	// Workload is the key of the covered workload these pods belong to, when the
	// snapshot builder could tell. Such pods are already part of that workload's
	// not-ready replicas and are not counted again.
	Workload string
}

// ZoneShape identifies one placeholder set: a zone and a shape hash.
type ZoneShape struct {
	Zone      string
	ShapeHash string
}

// Less orders by zone, then shape hash.
func (k ZoneShape) Less(o ZoneShape) bool {
	if k.Zone != o.Zone {
		return k.Zone < o.Zone
	}
	return k.ShapeHash < o.ShapeHash
}

// Snapshot is everything Plan looks at, as plain values. The controller builds it
// from informer caches; the simulator builds it from a trace.
type Snapshot struct {
	Nodes     []Node
	Pending   []PendingPods
	Workloads []Workload
	// Placeholders are the placeholder ReplicaSets that exist now (Diff's input).
	Placeholders []ObservedReplicaSet
	// Scarce marks zones that have run out of GPUs for a shape (see Scarcity).
	Scarce map[ZoneShape]bool
}

// Demand is what one workload will need within its lead time, in replicas beyond
// those already ready.
type Demand struct {
	Replicas int32
	Reason   string
	// Hold is true when the signal is not genuine (KEDA fallback, HPA missing): the
	// caller should use the last good Demand for this workload instead, if it has
	// one (see HoldLastGood).
	Hold bool
}

// Forecaster turns a workload into its demand within the lead time. The controller
// calls it once per workload per reconcile; the forecast package implements it, and
// ReactiveForecaster is the default until it does.
type Forecaster interface {
	Demand(w Workload, now time.Time) Demand
}

// ReactiveForecaster is the Forecaster that only looks at the present (see
// ReactiveDemand).
type ReactiveForecaster struct{}

// Demand implements Forecaster.
func (ReactiveForecaster) Demand(w Workload, _ time.Time) Demand { return ReactiveDemand(w) }

// ZoneLimits are one zone's bounds, in GPUs (devices of the shape's GPU resource;
// a MIG slice counts as one).
type ZoneLimits struct {
	// FloorGPUs is headroom kept in the zone whatever the demand.
	FloorGPUs int64
	// MaxGPUs caps the placeholder GPUs in the zone.
	MaxGPUs int64
}

// Policy is the resolved config at one instant (schedules already applied).
type Policy struct {
	// Zones holds the configured zones; Default applies to every other zone.
	Zones   map[string]ZoneLimits
	Default ZoneLimits
	// BudgetGPUs caps the placeholder GPUs of the whole cluster. It comes from a
	// flag; the config can lower it, never raise it.
	BudgetGPUs int64
	// Cooldown delays scale-down of placeholders (see ApplyCooldown).
	Cooldown time.Duration
	// KeepUtilization is cluster-autoscaler's scale-down GPU utilisation threshold
	// (--scale-down-gpu-utilization-threshold, default 0.5): free GPUs on a node
	// whose real pods use less than this fraction of its GPUs are not counted as
	// headroom, because the autoscaler would remove the node.
	KeepUtilization float64
	// WorkloadMaxGPUs caps the placeholder GPUs planned for one workload (by key).
	WorkloadMaxGPUs map[string]int64
	// Notes says how the policy was resolved (active schedules, lowered budget).
	Notes []string
}

// Limits returns the limits of a zone.
func (p Policy) Limits(zone string) ZoneLimits {
	if l, ok := p.Zones[zone]; ok {
		return l
	}
	return p.Default
}

// Placeholder is the desired placeholder set for one zone and shape.
type Placeholder struct {
	Zone      string
	ShapeHash string
	Shape     Shape
	Replicas  int32
	// Reason explains the count: demand, floor, clamps, cooldown.
	Reason string
}

// GPUs returns the placeholder GPUs of the set.
func (p Placeholder) GPUs() int64 { return int64(p.Replicas) * p.Shape.GPUs }

// Key returns the set's zone and shape hash.
func (p Placeholder) Key() ZoneShape { return ZoneShape{Zone: p.Zone, ShapeHash: p.ShapeHash} }

// Desired is Plan's result: the placeholders to keep, sorted by zone then shape hash,
// with the limits they were planned under (ApplyCooldown re-checks them).
type Desired struct {
	Placeholders []Placeholder
	BudgetGPUs   int64
	ZoneMaxGPUs  map[string]int64
	// Release lists sets that must shrink at once, without cooldown: their zone is
	// scarce for their shape, so their pods are Pending and hold nothing.
	Release map[ZoneShape]bool
	// Notes records demand that could not be placed and why.
	Notes []string
}

// TotalGPUs sums the placeholder GPUs.
func (d Desired) TotalGPUs() int64 {
	var n int64
	for _, p := range d.Placeholders {
		n += p.GPUs()
	}
	return n
}

// zoneMax returns the zone's cap recorded in the plan.
func (d Desired) zoneMax(zone string) int64 { return d.ZoneMaxGPUs[zone] }

// sortPlaceholders sorts by zone, then shape hash.
func sortPlaceholders(ps []Placeholder) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Key().Less(ps[j].Key()) })
}

// MarshalText renders the key as "zone/shapehash", so maps keyed by ZoneShape
// encode as JSON objects (the /debug/plan report, `headroom plan --json`).
func (k ZoneShape) MarshalText() ([]byte, error) { return []byte(k.Zone + "/" + k.ShapeHash), nil }

// UnmarshalText parses "zone/shapehash" (MarshalText's form).
func (k *ZoneShape) UnmarshalText(b []byte) error {
	s := string(b)
	i := strings.LastIndex(s, "/")
	if i < 0 {
		return fmt.Errorf("zone/shape key %q has no '/'", s)
	}
	k.Zone, k.ShapeHash = s[:i], s[i+1:]
	return nil
}
