package nodes

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// GPU resource names the controller understands. Device plugins advertise GPUs as
// extended resources; these are the names used by the NVIDIA device plugin (whole
// GPUs, time-sliced GPUs with renameByDefault, MIG "mixed" strategy slices) and the
// AMD device plugin.
const (
	ResourceNvidiaGPU       corev1.ResourceName = "nvidia.com/gpu"
	ResourceNvidiaGPUShared corev1.ResourceName = "nvidia.com/gpu.shared"
	ResourceAMDGPU          corev1.ResourceName = "amd.com/gpu"
	// MIGResourcePrefix prefixes MIG slices such as nvidia.com/mig-1g.10gb.
	MIGResourcePrefix = "nvidia.com/mig-"
)

// IsGPUResource reports whether name is a GPU extended resource. cluster-autoscaler
// hard-codes nvidia.com/gpu (kubernetes/autoscaler#8095); we also accept MIG slices,
// time-sliced GPUs and AMD GPUs so that MIG and AMD clusters are not treated as
// GPU-less.
func IsGPUResource(name corev1.ResourceName) bool {
	switch name {
	case ResourceNvidiaGPU, ResourceNvidiaGPUShared, ResourceAMDGPU:
		return true
	}
	s := string(name)
	return strings.HasPrefix(s, MIGResourcePrefix) && len(s) > len(MIGResourcePrefix)
}

// Resources is a plain summary of CPU, memory and GPU quantities. GPU counts are kept
// per resource name because a MIG slice and a whole GPU are not interchangeable.
// The zero value is an empty set of resources.
type Resources struct {
	CPUMilli    int64
	MemoryBytes int64
	// GPUs maps a GPU resource name to a device count. Entries are never negative;
	// a nil map means no GPUs.
	GPUs map[corev1.ResourceName]int64
}

// GPU returns the count of one GPU resource.
func (r Resources) GPU(name corev1.ResourceName) int64 { return r.GPUs[name] }

// TotalGPUs returns the sum over all GPU resource names.
func (r Resources) TotalGPUs() int64 {
	var n int64
	for _, v := range r.GPUs {
		n += v
	}
	return n
}

// GPUNames returns the GPU resource names with a positive count, sorted, so callers
// iterate in a deterministic order.
func (r Resources) GPUNames() []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(r.GPUs))
	for k, v := range r.GPUs {
		if v > 0 {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Add returns r + o. Neither input is modified.
func (r Resources) Add(o Resources) Resources {
	out := Resources{CPUMilli: r.CPUMilli + o.CPUMilli, MemoryBytes: r.MemoryBytes + o.MemoryBytes}
	for k, v := range r.GPUs {
		out.addGPU(k, v)
	}
	for k, v := range o.GPUs {
		out.addGPU(k, v)
	}
	return out
}

// Sub returns r - o with every quantity floored at zero: a node that is
// over-committed (which happens briefly when kubelet admits pods before allocatable
// shrinks) has nothing free, not a negative amount.
func (r Resources) Sub(o Resources) Resources {
	out := Resources{CPUMilli: max(r.CPUMilli-o.CPUMilli, 0), MemoryBytes: max(r.MemoryBytes-o.MemoryBytes, 0)}
	for k, v := range r.GPUs {
		if d := v - o.GPUs[k]; d > 0 {
			out.addGPU(k, d)
		}
	}
	return out
}

// Clone returns a deep copy, so callers can mutate the GPU map safely.
func (r Resources) Clone() Resources {
	out := Resources{CPUMilli: r.CPUMilli, MemoryBytes: r.MemoryBytes}
	for k, v := range r.GPUs {
		out.addGPU(k, v)
	}
	return out
}

func (r *Resources) addGPU(name corev1.ResourceName, v int64) {
	if v == 0 {
		return
	}
	if r.GPUs == nil {
		r.GPUs = map[corev1.ResourceName]int64{}
	}
	r.GPUs[name] += v
}

// fromResourceList extracts CPU, memory and GPU quantities from a ResourceList.
func fromResourceList(l corev1.ResourceList) Resources {
	var r Resources
	if q, ok := l[corev1.ResourceCPU]; ok {
		r.CPUMilli = q.MilliValue()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		r.MemoryBytes = q.Value()
	}
	for name, q := range l {
		if IsGPUResource(name) {
			r.addGPU(name, q.Value())
		}
	}
	return r
}

// maxResources returns the per-quantity maximum of a and b.
func maxResources(a, b Resources) Resources {
	out := Resources{CPUMilli: max(a.CPUMilli, b.CPUMilli), MemoryBytes: max(a.MemoryBytes, b.MemoryBytes)}
	for k, v := range a.GPUs {
		out.addGPU(k, max(v, b.GPUs[k]))
	}
	for k, v := range b.GPUs {
		if _, seen := a.GPUs[k]; !seen {
			out.addGPU(k, v)
		}
	}
	return out
}
