package main

import (
	"fmt"
	"strings"
	"time"
)

// ZoneRow is what one zone looks like at one moment.
type ZoneRow struct {
	Zone string
	// Replicas are the inference pods bound in the zone (Serving of them past
	// model load); Placeholders the running placeholder pods and PendingHolders
	// those waiting for a node.
	Replicas, Serving            int
	Placeholders, PendingHolders int
	// Nodes are usable GPU nodes; Provisioning those the stand-in autoscaler
	// decided to add that are not usable yet.
	Nodes, Provisioning int
	// Scarce is true while headroomd marks the zone out of GPUs; Known false when
	// headroomd does not run (the column shows "-").
	Scarce, Known bool
}

// Frame is one refresh of the live view.
type Frame struct {
	Run string
	// At and Span are trace time played so far and the whole window.
	At, Span time.Duration
	Speed    float64
	Queue    int64
	// Desired is KEDA's demand (the HPA's desired replicas); Pending the replicas
	// not bound to a node (they have no zone yet).
	Desired, Pending int
	Zones            []ZoneRow
}

// clock formats a duration as m:ss (or h:mm:ss).
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

func (f Frame) totals() (replicas, serving, holders, pendingHolders, nodes, prov int, scarce []string) {
	for _, z := range f.Zones {
		replicas += z.Replicas
		serving += z.Serving
		holders += z.Placeholders
		pendingHolders += z.PendingHolders
		nodes += z.Nodes
		prov += z.Provisioning
		if z.Scarce {
			scarce = append(scarce, z.Zone)
		}
	}
	return
}

// Table renders the frame for a terminal: a header line and one row per zone.
func (f Frame) Table() string {
	var b strings.Builder
	_, serving, _, _, _, _, _ := f.totals()
	fmt.Fprintf(&b, "%-22s trace %s / %s (x%g)   queue %-6d demand (KEDA desired) %-3d serving %-3d pending %d\n",
		f.Run, clock(f.At), clock(f.Span), f.Speed, f.Queue, f.Desired, serving, f.Pending)
	fmt.Fprintf(&b, "  %-8s %9s %8s %13s %6s %13s %7s\n", "ZONE", "REPLICAS", "SERVING", "PLACEHOLDERS", "NODES", "PROVISIONING", "SCARCE")
	for _, z := range f.Zones {
		holders := fmt.Sprint(z.Placeholders)
		if z.PendingHolders > 0 {
			holders += fmt.Sprintf(" (+%d)", z.PendingHolders)
		}
		scarce := "-"
		if z.Known {
			scarce = "no"
			if z.Scarce {
				scarce = "YES"
			}
		}
		fmt.Fprintf(&b, "  %-8s %9d %8d %13s %6d %13d %7s\n", z.Zone, z.Replicas, z.Serving, holders, z.Nodes, z.Provisioning, scarce)
	}
	return b.String()
}

// Line renders the frame as one line, for logs and pipes.
func (f Frame) Line() string {
	replicas, serving, holders, pendingHolders, nodes, prov, scarce := f.totals()
	sc := "-"
	if len(scarce) > 0 {
		sc = strings.Join(scarce, ",")
	}
	return fmt.Sprintf("[%s] trace %s/%s queue=%d demand=%d replicas=%d serving=%d pending=%d placeholders=%d(+%d pending) nodes=%d provisioning=%d scarce=%s",
		f.Run, clock(f.At), clock(f.Span), f.Queue, f.Desired, replicas, serving, f.Pending, holders, pendingHolders, nodes, prov, sc)
}
