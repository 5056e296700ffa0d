// Package nodes turns Kubernetes Node and Pod objects into the plain values the
// headroom planner works on: which zone a node is in, which GPUs it offers, whether
// those GPUs are usable yet, how many are free, and what a pod (or a pod template)
// needs from a node.
//
// Everything here is pure: no client, no clock, no logger. The controller lists
// objects from its informers and calls these functions; the simulator calls the same
// functions on synthetic objects. That keeps one definition of "a ready GPU node"
// and "a pod's GPU request" for both.
package nodes
