package nodes

import (
	corev1 "k8s.io/api/core/v1"
)

// ContainerRequests returns what one container asks the scheduler for.
//
// For extended resources such as GPUs, Kubernetes requires limits and defaults the
// request to the limit (GPUs "can only be specified in the limits section"), so the
// limit takes precedence over a request. For CPU and memory the request counts; when
// only a limit is set the API server defaults the request to it, so we do the same
// for objects that were never defaulted (pod templates in tests, dry-run input).
func ContainerRequests(c *corev1.Container) Resources {
	r := fromResourceList(c.Resources.Requests)
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			r.CPUMilli = q.MilliValue()
		}
	}
	if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			r.MemoryBytes = q.Value()
		}
	}
	for name, q := range c.Resources.Limits {
		if IsGPUResource(name) {
			if r.GPUs == nil {
				r.GPUs = map[corev1.ResourceName]int64{}
			}
			r.GPUs[name] = q.Value()
			if r.GPUs[name] == 0 {
				delete(r.GPUs, name)
			}
		}
	}
	return r
}

// PodSpecRequests returns the effective requests of a pod spec, following the
// scheduler's rule (k8s.io/component-helpers resource.PodRequests):
//
//   - regular containers run together, so their requests add up;
//   - restartable init containers (sidecars, restartPolicy: Always) keep running
//     beside everything that starts after them, so they add up too;
//   - a classic init container runs alone (plus the sidecars started before it), so it
//     only raises the total when it needs more than everything else;
//   - pod overhead (RuntimeClass) is added on top.
//
// An init container that needs one GPU in a pod whose main container needs two thus
// counts as two, not three.
func PodSpecRequests(spec *corev1.PodSpec) Resources {
	var regular Resources
	for i := range spec.Containers {
		regular = regular.Add(ContainerRequests(&spec.Containers[i]))
	}
	var sidecars, initPeak Resources
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		req := ContainerRequests(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = sidecars.Add(req)
			// A sidecar starts while the sidecars before it run.
			initPeak = maxResources(initPeak, sidecars)
			continue
		}
		initPeak = maxResources(initPeak, req.Add(sidecars))
	}
	total := maxResources(regular.Add(sidecars), initPeak)
	if spec.Overhead != nil {
		total = total.Add(fromResourceList(spec.Overhead))
	}
	return total
}

// PodRequests returns the effective requests of a pod (see PodSpecRequests).
func PodRequests(pod *corev1.Pod) Resources { return PodSpecRequests(&pod.Spec) }

// PodGPURequests returns only the GPU part of PodRequests: device counts per GPU
// resource name. It is nil for a pod without GPUs.
func PodGPURequests(pod *corev1.Pod) map[corev1.ResourceName]int64 {
	return PodRequests(pod).GPUs
}

// IsTerminated reports whether a pod no longer holds its node's resources. The
// scheduler and kubelet release a pod's resources once it has Succeeded or Failed;
// a pod that is being deleted still holds them until it is gone.
func IsTerminated(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// UsedOn sums the requests of the non-terminated pods bound to nodeName. Pods bound
// to other nodes and unbound pods are ignored, so callers may pass every pod they
// hold.
func UsedOn(nodeName string, pods []*corev1.Pod) Resources {
	var used Resources
	for _, p := range pods {
		if p == nil || p.Spec.NodeName != nodeName || IsTerminated(p) {
			continue
		}
		used = used.Add(PodRequests(p))
	}
	return used
}

// Free returns what is left on a node after the pods bound to it: allocatable minus
// the requests of its non-terminated pods, floored at zero. A node whose GPUs are not
// ready yet (see NodeInfo.GPUReady) reports no free GPUs even if its allocatable says
// otherwise, because nothing can be scheduled there that needs them.
func Free(n NodeInfo, pods []*corev1.Pod) Resources {
	free := n.Allocatable.Sub(UsedOn(n.Name, pods))
	if !n.GPUReady {
		free.GPUs = nil
	}
	return free
}

// FreeGPUs returns the free device count per GPU resource name on a node, given the
// pods bound to it (see Free).
func FreeGPUs(n NodeInfo, pods []*corev1.Pod) map[corev1.ResourceName]int64 {
	return Free(n, pods).GPUs
}
