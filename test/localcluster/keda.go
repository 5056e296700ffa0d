package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// KEDANamespace is where KEDA's objects live in the local cluster.
const KEDANamespace = "keda"

const fieldManager = "gpu-headroom-localcluster"

var (
	crdGVR        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
)

func (c *Cluster) installKEDACRDs(ctx context.Context) error {
	crdDir, err := c.bins.path("keda-crds")
	if err != nil {
		return fmt.Errorf("KEDA CRDs: %w (re-run `make cluster-bins`)", err)
	}
	return c.InstallCRDs(ctx, crdDir)
}

func (c *Cluster) startKEDA(ctx context.Context) error {
	err := c.installKEDACRDs(ctx)
	if err != nil {
		return err
	}
	if err := c.EnsureNamespace(ctx, KEDANamespace, nil); err != nil {
		return err
	}
	// The adapter must listen on an address Endpoints accept: a veth pair of ours.
	id, ip := vethID()
	if c.veth, err = newVethPair(id, ip); err != nil {
		return err
	}
	certDir := c.path("keda-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return fmt.Errorf("making KEDA cert folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), c.ca.pem, 0o644); err != nil {
		return fmt.Errorf("writing KEDA CA: %w", err)
	}
	if _, _, err := c.ca.writeIssued(certDir, "tls", "keda-operator", nil, []string{
		"localhost", "127.0.0.1", ip, "keda-operator", "keda-operator.keda.svc", "keda-metrics-apiserver.keda.svc",
	}); err != nil {
		return err
	}
	env := []string{
		"WATCH_NAMESPACE=", "POD_NAMESPACE=" + KEDANamespace, "KEDA_CLUSTER_OBJECT_NAMESPACE=" + KEDANamespace,
		"KUBECONFIG=" + c.KubeconfigPath,
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = FreePort("127.0.0.1"); err != nil {
			return err
		}
	}
	metricsPort, probePort, grpcPort, adapterMetricsPort := ports[0], ports[1], ports[2], ports[3]
	op, err := c.run("keda-operator", "keda-operator", []string{
		"--cert-dir=" + certDir, "--ca-dir=" + certDir,
		"--enable-cert-rotation=false", "--enable-webhook-patching=false", "--enable-apiservice-patching=false",
		"--leader-elect=false",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		fmt.Sprintf("--metrics-service-bind-address=127.0.0.1:%d", grpcPort),
		"--zap-log-level=info",
	}, env...)
	if err != nil {
		return err
	}
	if err := waitAlive(ctx, op, 90*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort), nil)); err != nil {
		return err
	}
	adapterPort, err := FreePort(ip)
	if err != nil {
		return err
	}
	ad, err := c.run("keda-adapter", "keda-adapter", []string{
		"--bind-address=" + ip, fmt.Sprintf("--secure-port=%d", adapterPort),
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + filepath.Join(certDir, "tls.crt"),
		"--tls-private-key-file=" + filepath.Join(certDir, "tls.key"),
		"--client-ca-file=" + filepath.Join(certDir, "ca.crt"),
		"--lister-kubeconfig=" + c.KubeconfigPath,
		"--authentication-kubeconfig=" + c.KubeconfigPath,
		"--authorization-kubeconfig=" + c.KubeconfigPath,
		fmt.Sprintf("--metrics-service-address=127.0.0.1:%d", grpcPort),
		"--metrics-service-grpc-authority=localhost",
		fmt.Sprintf("--port=%d", adapterMetricsPort),
	}, env...)
	if err != nil {
		return err
	}
	if err := waitAlive(ctx, ad, 90*time.Second, httpOK(fmt.Sprintf("https://%s:%d/healthz", ip, adapterPort), nil)); err != nil {
		return err
	}
	if err := c.registerExternalMetrics(ctx, ip, adapterPort); err != nil {
		return err
	}
	return waitAlive(ctx, ad, 90*time.Second, func(ctx context.Context) (bool, error) {
		obj, err := c.Dynamic.Resource(apiServiceGVR).Get(ctx, "v1beta1.external.metrics.k8s.io", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return conditionTrue(obj, "Available"), nil
	})
}

// registerExternalMetrics points the external.metrics.k8s.io APIService at the
// adapter: APIService -> Service without selector -> EndpointSlice on the veth address.
func (c *Cluster) registerExternalMetrics(ctx context.Context, ip string, port int) error {
	const svcName = "keda-metrics-apiserver"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: KEDANamespace},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port)), Protocol: corev1.ProtocolTCP,
		}}},
	}
	if _, err := c.Kube.CoreV1().Services(KEDANamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service %s: %w", svcName, err)
	}
	// The aggregator resolves the Service through EndpointSlices.
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: KEDANamespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: svcName, discoveryv1.LabelManagedBy: fieldManager,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("https"), Port: ptrTo(int32(port)), Protocol: ptrTo(corev1.ProtocolTCP)}},
	}
	if _, err := c.Kube.DiscoveryV1().EndpointSlices(KEDANamespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating endpoint slice %s: %w", svcName, err)
	}
	apiSvc := map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.external.metrics.k8s.io"},
		"spec": map[string]any{
			"group": "external.metrics.k8s.io", "version": "v1beta1",
			"service":               map[string]any{"name": svcName, "namespace": KEDANamespace, "port": 443},
			"insecureSkipTLSVerify": true,
			"groupPriorityMinimum":  100,
			"versionPriority":       100,
		},
	}
	return c.apply(ctx, apiServiceGVR, "", apiSvc)
}

// InstallCRDs server-side applies every CRD YAML in dir (KEDA's CRDs are too
// large for client-side apply's annotation) and waits until they are Established.
func (c *Cluster) InstallCRDs(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRD files in %s (%v)", dir, err)
	}
	sort.Strings(files)
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading CRD %s: %w", f, err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				return fmt.Errorf("parsing CRD %s: %w", f, err)
			}
			if obj == nil {
				continue
			}
			if err := c.apply(ctx, crdGVR, "", obj); err != nil {
				return err
			}
			names = append(names, obj["metadata"].(map[string]any)["name"].(string))
		}
	}
	for _, n := range names {
		err := waitFor(ctx, "CRD "+n+" established", 30*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
			obj, err := c.Dynamic.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return conditionTrue(obj, "Established"), nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// apply server-side applies obj with the harness's field manager.
func (c *Cluster) apply(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj map[string]any) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", gvr.Resource, err)
	}
	name := obj["metadata"].(map[string]any)["name"].(string)
	force := true
	var ri = c.Dynamic.Resource(gvr)
	if ns != "" {
		_, err = ri.Namespace(ns).Patch(ctx, name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
	} else {
		_, err = ri.Patch(ctx, name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
	}
	if err != nil {
		return fmt.Errorf("applying %s %s: %w", gvr.Resource, name, err)
	}
	return nil
}

func conditionTrue(obj *unstructured.Unstructured, condType string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, ci := range conds {
		m, ok := ci.(map[string]any)
		if ok && m["type"] == condType && m["status"] == "True" {
			return true
		}
	}
	return false
}

// vethID picks a random link id and an address from 10.250.0.0/16 on a /30
// boundary (+1), so concurrent clusters on one machine do not collide.
func vethID() (id, ip string) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id = fmt.Sprintf("%02x%02x%02x", b[0], b[1], b[2])
	return id, fmt.Sprintf("10.250.%d.%d", b[1], (b[2]&0xfc)+1)
}

func ptrTo[T any](v T) *T { return &v }
