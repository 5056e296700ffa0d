package headroom

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Plan decides how many placeholders each (zone, shape) should have. It is pure and
// deterministic: no clock, client or logger, maps are walked in sorted order, and the
// same input always gives the same Desired. The simulator calls this same function.
//
// Per shape (workloads with equal shapes share placeholders):
//
//  1. Need: the sum of the workloads' Demand (replicas), each capped by its
//     per-workload max, plus pending GPU pods not attributed to a covered workload
//     (attributed ones are already in their workload's not-ready replicas).
//  2. Free capacity that fits: free resources on usable GPU nodes that match the
//     shape (selector, affinity, taints) in the zones the shape allows, counting only
//     nodes the autoscaler will keep: their real pods use at least KeepUtilization of
//     their GPUs. An emptier node would be removed as unneeded; a placeholder is
//     what keeps it. Free capacity held by our own placeholders counts as free.
//     The GPUs that real pods use on the emptier nodes are taken out of the free
//     capacity of the kept nodes in their zone: when the autoscaler drains such a
//     node, its pods are rescheduled there.
//     When that capacity covers the whole need, no placeholder is planned and the
//     capacity is claimed so other shapes do not count it twice. When it covers only
//     part, the whole need is planned: placeholders are scheduled into free capacity
//     first, so planning need-minus-free would fill the free capacity with
//     placeholders and leave the rest of the need without nodes.
//  3. Spread: the need is split evenly over the allowed zones in sorted order, the
//     remainder going to the first zones. Zones marked scarce for the shape are
//     skipped, so their share moves to the others.
//
// Per zone, the floor (ZoneLimits.FloorGPUs) is added on top, as placeholders of the
// shapes that may run in the zone, one pod of each shape in turn (sorted by hash)
// until the floor is reached; free capacity that fits and is not claimed covers the
// floor the same all-or-nothing way.
//
// Clamping, never exceeded: per-zone MaxGPUs and the global BudgetGPUs. When they are
// short, placeholders are granted in this priority order: first floors, then need;
// within each tier one placeholder per (zone, shape) in turn, in sorted order, so a
// short budget is shared rather than given to the alphabetically first workload. A
// set whose next placeholder no longer fits is skipped while smaller shapes may
// still be granted.
func Plan(s Snapshot, demand map[string]Demand, p Policy) Desired {
	pl := newPlanner(s, p)
	pl.addWorkloads(s.Workloads, demand)
	pl.addPending(s.Pending)
	pl.placeNeed()
	pl.placeFloors()
	return pl.clamp()
}

// group is the need of one shape restricted to a set of zones.
type group struct {
	key     string
	shape   Shape
	hash    string
	zone    string // "" when the shape's own zone constraints apply
	pods    int64
	reasons []string
}

// request accumulates what a (zone, shape) set asks for before clamping.
type request struct {
	key     ZoneShape
	shape   Shape
	floor   int64 // pods for the zone floor
	need    int64 // pods for demand
	reasons []string
}

type freeNode struct {
	info  nodes.NodeInfo
	avail nodes.Resources
}

type planner struct {
	policy   Policy
	scarce   map[ZoneShape]bool
	zones    []string
	free     map[string][]*freeNode // by zone, nodes sorted by name
	groups   map[string]*group
	requests map[ZoneShape]*request
	notes    []string
	release  map[ZoneShape]bool
}

func newPlanner(s Snapshot, p Policy) *planner {
	pl := &planner{
		policy:   p,
		scarce:   s.Scarce,
		free:     map[string][]*freeNode{},
		groups:   map[string]*group{},
		requests: map[ZoneShape]*request{},
		release:  map[ZoneShape]bool{},
	}
	zoneSet := map[string]bool{}
	for z := range p.Zones {
		zoneSet[z] = true
	}
	ns := slices.Clone(s.Nodes)
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	var draining []Node
	for _, n := range ns {
		if n.Zone == "" || !n.GPUNode {
			continue
		}
		// A zone with GPU nodes in any state is a place the autoscaler provisions.
		zoneSet[n.Zone] = true
		if !n.Usable() {
			continue
		}
		if !keptByAutoscaler(n, p.KeepUtilization) {
			if n.Used.TotalGPUs() > 0 {
				draining = append(draining, n)
			}
			continue
		}
		pl.free[n.Zone] = append(pl.free[n.Zone], &freeNode{info: n.NodeInfo, avail: n.Allocatable.Sub(n.Used)})
	}
	for z := range zoneSet {
		pl.zones = append(pl.zones, z)
	}
	sort.Strings(pl.zones)
	// The autoscaler drains an under-used node when its pods fit elsewhere, and
	// those pods then take free GPUs on the nodes it keeps: reserve them.
	for _, n := range draining {
		pl.reserve(n)
	}
	for k := range s.Scarce {
		if s.Scarce[k] {
			pl.release[k] = true
		}
	}
	return pl
}

// keptByAutoscaler reports whether the node's real pods use enough of its GPUs that
// cluster-autoscaler will not remove it as unneeded.
func keptByAutoscaler(n Node, threshold float64) bool {
	alloc := n.Allocatable.TotalGPUs()
	if alloc <= 0 {
		return false
	}
	return float64(n.Used.TotalGPUs())/float64(alloc) >= threshold
}

// reserve takes the GPUs that the real pods of a node below KeepUtilization use
// out of the free capacity of the kept nodes: when the autoscaler removes that
// node, the scheduler puts its evicted pods into that free capacity, so it is not
// there for the need. Its own zone first, then the other zones in sorted order
// (the scheduler spreads replicas over zones, so an evicted pod may land in any),
// nodes in name order. Only GPUs are reserved (the pods' shapes are not known
// here, and GPUs are what runs out); a reservation larger than the free GPUs just
// leaves none.
func (pl *planner) reserve(n Node) {
	zones := append([]string{n.Zone}, slices.DeleteFunc(slices.Clone(pl.zones), func(z string) bool { return z == n.Zone })...)
	for _, name := range n.Used.GPUNames() {
		left := n.Used.GPU(name)
		for _, z := range zones {
			for _, fn := range pl.free[z] {
				if left <= 0 {
					break
				}
				k := min(fn.avail.GPU(name), left)
				if k <= 0 {
					continue
				}
				fn.avail = fn.avail.Sub(nodes.Resources{GPUs: map[corev1.ResourceName]int64{name: k}})
				left -= k
			}
		}
	}
}

func (pl *planner) group(shape Shape, hash, zone string) *group {
	if hash == "" {
		hash = shape.Hash()
	}
	key := hash + "/" + zone
	g, ok := pl.groups[key]
	if !ok {
		g = &group{key: key, shape: shape, hash: hash, zone: zone}
		pl.groups[key] = g
	}
	return g
}

func (pl *planner) addWorkloads(ws []Workload, demand map[string]Demand) {
	ws = slices.Clone(ws)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Key() < ws[j].Key() })
	for _, w := range ws {
		if !w.HasShape || w.Shape.GPUs <= 0 {
			continue
		}
		// Register the shape even without demand: zone floors are kept in the
		// shapes of the covered workloads, including those scaled to zero.
		g := pl.group(w.Shape, w.ShapeHash, "")
		d := demand[w.Key()]
		if d.Replicas <= 0 {
			continue
		}
		pods := int64(d.Replicas)
		reason := fmt.Sprintf("%s needs %d (%s)", w.Key(), pods, d.Reason)
		if maxGPUs, ok := pl.policy.WorkloadMaxGPUs[w.Key()]; ok && pods*w.Shape.GPUs > maxGPUs {
			pods = maxGPUs / w.Shape.GPUs
			reason += fmt.Sprintf(", capped to %d by its max of %d GPUs", pods, maxGPUs)
		}
		if pods <= 0 {
			continue
		}
		g.pods += pods
		g.reasons = append(g.reasons, reason)
	}
}

func (pl *planner) addPending(ps []PendingPods) {
	type hashed struct {
		PendingPods
		hash string
	}
	var hs []hashed
	for _, p := range ps {
		if p.Workload != "" || p.Count <= 0 || p.Shape.GPUs <= 0 {
			continue
		}
		hs = append(hs, hashed{p, p.Shape.Hash()})
	}
	sort.SliceStable(hs, func(i, j int) bool {
		if hs[i].hash != hs[j].hash {
			return hs[i].hash < hs[j].hash
		}
		if hs[i].Zone != hs[j].Zone {
			return hs[i].Zone < hs[j].Zone
		}
		return hs[i].Count < hs[j].Count
	})
	for _, h := range hs {
		p := h.PendingPods
		g := pl.group(p.Shape, h.hash, p.Zone)
		g.pods += int64(p.Count)
		where := "any zone"
		if p.Zone != "" {
			where = "zone " + p.Zone
		}
		g.reasons = append(g.reasons, fmt.Sprintf("%d pending pods (%s)", p.Count, where))
	}
}

// usableZones returns the zones a group may use now: allowed by its shape (and its
// pinned zone), not scarce for its shape. Sorted.
func (pl *planner) usableZones(shape Shape, hash, pinned string) (usable, scarce []string) {
	for _, z := range pl.zones {
		if pinned != "" && z != pinned {
			continue
		}
		if !shape.AllowsZone(z) {
			continue
		}
		if pl.scarce[ZoneShape{Zone: z, ShapeHash: hash}] {
			scarce = append(scarce, z)
			continue
		}
		usable = append(usable, z)
	}
	return usable, scarce
}

// fitFree counts the pods of shape that fit in free capacity in zones, and claims
// them when claim is true (up to limit pods), in zone then node order.
func (pl *planner) fitFree(shape Shape, zones []string, limit int64, claim bool) int64 {
	var n int64
	for _, z := range zones {
		for _, fn := range pl.free[z] {
			if n >= limit {
				return n
			}
			if !shape.FitsNode(fn.info) {
				continue
			}
			k := min(shape.FitCount(fn.avail), limit-n)
			if k <= 0 {
				continue
			}
			n += k
			if claim {
				used := shape.Requests()
				for i := int64(0); i < k; i++ {
					fn.avail = fn.avail.Sub(used)
				}
			}
		}
	}
	return n
}

func (pl *planner) request(zone string, shape Shape, hash string) *request {
	k := ZoneShape{Zone: zone, ShapeHash: hash}
	r, ok := pl.requests[k]
	if !ok {
		r = &request{key: k, shape: shape}
		pl.requests[k] = r
	}
	return r
}

func (pl *planner) placeNeed() {
	keys := make([]string, 0, len(pl.groups))
	for k := range pl.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := pl.groups[k]
		if g.pods <= 0 {
			continue
		}
		why := strings.Join(g.reasons, "; ")
		zones, scarce := pl.usableZones(g.shape, g.hash, g.zone)
		if len(zones) == 0 {
			pl.notes = append(pl.notes, fmt.Sprintf("shape %s (%s): %d pods not placed: no usable zone (scarce: %v): %s",
				g.hash, g.shape, g.pods, scarce, why))
			continue
		}
		if pl.fitFree(g.shape, zones, g.pods, false) >= g.pods {
			pl.fitFree(g.shape, zones, g.pods, true)
			pl.notes = append(pl.notes, fmt.Sprintf("shape %s (%s): %d pods covered by free capacity in %v: %s",
				g.hash, g.shape, g.pods, zones, why))
			continue
		}
		n := int64(len(zones))
		for i, z := range zones {
			share := g.pods / n
			if int64(i) < g.pods%n {
				share++
			}
			if share == 0 {
				continue
			}
			r := pl.request(z, g.shape, g.hash)
			r.need += share
			msg := fmt.Sprintf("need %d of %d over %d zones", share, g.pods, n)
			if len(scarce) > 0 {
				msg += fmt.Sprintf(" (scarce, skipped: %s)", strings.Join(scarce, ","))
			}
			r.reasons = append(r.reasons, msg+": "+why)
		}
	}
}

func (pl *planner) placeFloors() {
	for _, z := range pl.zones {
		floor := pl.policy.Limits(z).FloorGPUs
		if floor <= 0 {
			continue
		}
		// Shapes that may run in the zone: those of the workloads and pending pods.
		var shapes []*group
		seen := map[string]bool{}
		keys := make([]string, 0, len(pl.groups))
		for k := range pl.groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			g := pl.groups[k]
			if seen[g.hash] || !g.shape.AllowsZone(z) || (g.zone != "" && g.zone != z) {
				continue
			}
			if pl.scarce[ZoneShape{Zone: z, ShapeHash: g.hash}] {
				continue
			}
			seen[g.hash] = true
			shapes = append(shapes, g)
		}
		if len(shapes) == 0 {
			pl.notes = append(pl.notes, fmt.Sprintf("zone %s: floor of %d GPUs not applied: no workload shape may run there (or it is scarce)", z, floor))
			continue
		}
		// Round-robin: one pod of each shape in turn until the floor is reached.
		pods := make([]int64, len(shapes))
		var gpus int64
		for i := 0; gpus < floor; i = (i + 1) % len(shapes) {
			pods[i]++
			gpus += shapes[i].shape.GPUs
		}
		// Claim free capacity shape by shape; if any shape falls short, undo the
		// claims (shapes compete for the same free GPUs, so checking them one by
		// one without claiming would count those GPUs twice).
		saved := make([]nodes.Resources, len(pl.free[z]))
		for i, fn := range pl.free[z] {
			saved[i] = fn.avail
		}
		covered := true
		for i, g := range shapes {
			if pl.fitFree(g.shape, []string{z}, pods[i], true) < pods[i] {
				covered = false
				break
			}
		}
		if !covered {
			for i, fn := range pl.free[z] {
				fn.avail = saved[i]
			}
		}
		if covered {
			pl.notes = append(pl.notes, fmt.Sprintf("zone %s: floor of %d GPUs covered by free capacity", z, floor))
			continue
		}
		for i, g := range shapes {
			if pods[i] == 0 {
				continue
			}
			r := pl.request(z, g.shape, g.hash)
			r.floor += pods[i]
			r.reasons = append(r.reasons, fmt.Sprintf("floor %d (zone min %d GPUs)", pods[i], floor))
		}
	}
}

// clamp grants the requests under the per-zone max and the global budget (floors
// first, then need, round-robin) and builds the Desired.
func (pl *planner) clamp() Desired {
	keys := make([]ZoneShape, 0, len(pl.requests))
	for k := range pl.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })

	budget := max(pl.policy.BudgetGPUs, 0)
	zoneLeft := map[string]int64{}
	zoneMax := map[string]int64{}
	for _, z := range pl.zones {
		zoneMax[z] = max(pl.policy.Limits(z).MaxGPUs, 0)
		zoneLeft[z] = zoneMax[z]
	}
	granted := map[ZoneShape]int64{}
	for tier := 0; tier < 2; tier++ {
		want := map[ZoneShape]int64{}
		for _, k := range keys {
			if tier == 0 {
				want[k] = pl.requests[k].floor
			} else {
				want[k] = pl.requests[k].need
			}
		}
		for progress := true; progress; {
			progress = false
			for _, k := range keys {
				g := pl.requests[k].shape.GPUs
				if want[k] == 0 || g > budget || g > zoneLeft[k.Zone] {
					continue
				}
				want[k]--
				granted[k]++
				budget -= g
				zoneLeft[k.Zone] -= g
				progress = true
			}
		}
	}

	d := Desired{BudgetGPUs: max(pl.policy.BudgetGPUs, 0), ZoneMaxGPUs: zoneMax, Release: pl.release, Notes: pl.notes}
	for _, k := range keys {
		r := pl.requests[k]
		asked := r.floor + r.need
		reason := strings.Join(r.reasons, "; ")
		if granted[k] < asked {
			reason += fmt.Sprintf("; clamped from %d to %d by zone max %d GPUs / budget %d GPUs", asked, granted[k], zoneMax[k.Zone], d.BudgetGPUs)
		}
		if granted[k] == 0 {
			d.Notes = append(d.Notes, fmt.Sprintf("zone %s shape %s: nothing granted: %s", k.Zone, k.ShapeHash, reason))
			continue
		}
		d.Placeholders = append(d.Placeholders, Placeholder{
			Zone: k.Zone, ShapeHash: k.ShapeHash, Shape: r.shape, Replicas: int32(granted[k]), Reason: reason,
		})
	}
	return d
}
