package nvml

import "fmt"

// This file is the one place that decides which XIDs make a GPU unhealthy.
//
// An XID is an error report from the NVIDIA kernel driver (see NVIDIA's "XID
// Errors" catalogue, docs.nvidia.com/deploy/xid-errors). NVML delivers them as
// EventTypeXidCriticalError events. We follow the NVIDIA device plugin
// (internal/rm/health.go): every XID is critical except a short list that reports
// an application fault, after which the GPU itself is fine and the next pod runs
// normally. Treating every other XID as critical is deliberately conservative: a
// placeholder's only job is to promise a GPU that an inference pod can use at
// once, and a GPU that has reported a driver or hardware fault cannot promise
// that until someone has looked at it (usually a GPU reset or node reboot).
//
// A critical XID is sticky: the GPU stays unhealthy for the rest of the boot
// (the agent carries it across its own restarts through its report). Operators
// can move codes between the lists with the agent's --ignore-xids and
// --critical-xids flags.

// applicationXIDs are XIDs caused by the application, not the GPU. Each comes
// with the catalogue's description and why it does not make the GPU unhealthy.
var applicationXIDs = map[uint64]string{
	13:  "graphics engine exception (an illegal instruction or address in user code)",
	31:  "GPU memory page fault (an illegal address in user code)",
	43:  "GPU stopped processing (the application hit a software-induced fault)",
	45:  "preemptive cleanup after earlier errors (the application or driver killed the context)",
	68:  "video processor exception (NVDEC/NVENC fault in the application's stream)",
	109: "context switch timeout (the application's context did not yield)",
}

// knownCriticalXIDs name the critical XIDs most often seen on data-centre GPUs,
// so that reasons and logs say what happened. Any XID not in applicationXIDs is
// critical, named here or not.
var knownCriticalXIDs = map[uint64]string{
	48:  "double-bit ECC error",
	61:  "internal micro-controller breakpoint",
	62:  "internal micro-controller halt",
	63:  "ECC page retirement or row remap recorded (reset needed)",
	64:  "ECC page retirement or row remap failed",
	74:  "NVLink error",
	79:  "GPU has fallen off the bus",
	92:  "high single-bit ECC error rate",
	94:  "contained ECC error (reset needed to remap)",
	95:  "uncontained ECC error",
	119: "GSP RPC timeout",
	120: "GSP error",
	140: "unrecovered ECC error",
}

// XIDPolicy decides which XIDs are critical. The zero value is the default
// policy described at the top of this file.
type XIDPolicy struct {
	// Ignore lists extra XIDs to treat as application errors.
	Ignore []uint64
	// Critical lists XIDs to treat as critical even if they are in the
	// application list; it wins over Ignore.
	Critical []uint64
}

// IsCritical reports whether xid makes a GPU unhealthy under the policy.
func (p XIDPolicy) IsCritical(xid uint64) bool {
	for _, c := range p.Critical {
		if c == xid {
			return true
		}
	}
	for _, i := range p.Ignore {
		if i == xid {
			return false
		}
	}
	_, app := applicationXIDs[xid]
	return !app
}

// DescribeXID returns a short description of an XID, for reasons and logs.
func DescribeXID(xid uint64) string {
	if d, ok := knownCriticalXIDs[xid]; ok {
		return fmt.Sprintf("XID %d: %s", xid, d)
	}
	if d, ok := applicationXIDs[xid]; ok {
		return fmt.Sprintf("XID %d: %s", xid, d)
	}
	return fmt.Sprintf("XID %d", xid)
}
