package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes one row per policy.
func (rep *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "trace %s: %v in ticks of %v, %d requests, zones %v, seed %d\n\n", rep.Trace, rep.Span, rep.Tick, rep.Requests, rep.Zones, rep.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tstarts\twaited\twait p50\tp95\tp99\tdelay p50\tp99\t>SLO\tGPU-h used\tplaceholder\tidle nodes\tcost/oracle\tups\tdowns\t")
	for _, r := range rep.Results {
		cost := "-"
		if r.CostVsOracle > 0 {
			cost = fmt.Sprintf("%.2f", r.CostVsOracle)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%s\t%s\t%s\t%s\t%s\t%.2f%%\t%.1f\t%.1f\t%.1f\t%s\t%d\t%d\t\n",
			r.Policy, r.ReplicaStarts, 100*r.WaitedShare, secs(r.WaitP50), secs(r.WaitP95), secs(r.WaitP99),
			secs(r.DelayP50), secs(r.DelayP99), 100*r.OverSLOShare,
			r.GPUHoursUsed, r.GPUHoursPlaceholders, r.GPUHoursIdleNodes, cost, r.ScaleUps, r.ScaleDowns)
	}
	return tw.Flush()
}

func secs(s float64) string {
	if s >= 120 {
		return fmt.Sprintf("%.1fm", s/60)
	}
	return fmt.Sprintf("%.0fs", s)
}

// WriteJSON writes the report, series included.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}
