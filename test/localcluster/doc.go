// Package localcluster starts a real, small Kubernetes control plane on one machine
// for tests, benchmarks and the demo: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok (fake kubelets for GPU nodes), plus KEDA's operator and
// metrics adapter with KEDA's own CRDs, a Redis server as the request queue, and a
// node provisioner that stands in for cluster-autoscaler.
//
// Every component is the real binary, built once per machine from the Go module
// proxy by hack/cluster-bins.sh; nothing here is a fake API. The components run as
// child processes in their own process groups, on free loopback ports, in a
// temporary folder that keeps their logs. Stop kills every process group and
// removes the network link the harness made, and tests get that on failure and on
// panic through Start's t.Cleanup.
package localcluster
