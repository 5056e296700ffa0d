package nvml

import "fmt"

// Reasons returns why a sampled GPU cannot be trusted with a new pod, apart from
// XID events (which the agent tracks over time, see xid.go). An empty result
// means the sample shows nothing wrong.
//
// Each rule is a state after which NVIDIA asks for a GPU reset or a node drain:
//   - the GPU did not answer (lost, or no handle or UUID): nothing can run on it;
//   - a page retirement or row remap is pending: the faulty memory stays mapped
//     until the GPU is reset, so the next allocation may hit it;
//   - row remapping failed: the GPU has no spare rows left (an RMA case);
//   - uncorrected ECC errors since the driver loaded: memory returned wrong data;
//     on Ampere and later this also leaves a remap pending.
func Reasons(g GPU) []string {
	var r []string
	if g.NotAnswering {
		r = append(r, "not answering: "+g.Err)
	}
	if g.RetiredPagesPending {
		r = append(r, "page retirement pending (reset needed)")
	}
	if g.RowRemapFailed {
		r = append(r, "row remapping failed (no spare rows)")
	} else if g.RowRemapPending {
		r = append(r, "row remap pending (reset needed)")
	}
	if g.UncorrectedECCErrors > 0 {
		r = append(r, fmt.Sprintf("%d uncorrected ECC errors since driver load", g.UncorrectedECCErrors))
	}
	return r
}

// Idle reports whether a GPU runs nothing: no compute process and no
// utilisation. When NVML reports neither (both unknown), the GPU is not called
// idle: an unknown GPU must not be offered as free capacity.
func Idle(g GPU) bool {
	if g.NotAnswering {
		return false
	}
	known := false
	if g.ComputeProcesses != nil {
		if *g.ComputeProcesses > 0 {
			return false
		}
		known = true
	}
	if g.Utilization != nil {
		if *g.Utilization > 0 {
			return false
		}
		known = true
	}
	return known
}
