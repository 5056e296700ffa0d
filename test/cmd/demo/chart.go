package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gpu-headroom/gpu-headroom/test/chart"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// The chart is installed the way the chart e2e test does it (test/e2e/chart_test.go):
// `helm template` with the repository's Helm, every object server-side applied, and
// headroomd run locally with the rendered container's args as the chart's
// ServiceAccount. kwok plays kubelets for GPU nodes only; it cannot run the
// controller's container, so the chart's Deployment is applied at 0 replicas (it
// still owns the placeholder ReplicaSets, as in a real install).
const (
	releaseName  = "gpu-headroom"
	controllerNS = "gpu-headroom"
)

// renderChart runs `helm template` of the release with values and returns its objects.
func renderChart(ctx context.Context, helmBin, chartDir, values, tmp string) ([]*unstructured.Unstructured, error) {
	vf := filepath.Join(tmp, "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o644); err != nil {
		return nil, fmt.Errorf("writing chart values: %w", err)
	}
	out, err := chart.Helm(ctx, helmBin, tmp, "template", releaseName, chartDir, "--namespace", controllerNS, "-f", vf)
	if err != nil {
		return nil, err
	}
	return chart.Decode(out)
}

// controllerArgs returns the headroomd container's args of the rendered Deployment.
func controllerArgs(objs []*unstructured.Unstructured) ([]string, error) {
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetName() != releaseName {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if len(cs) == 0 {
			return nil, errors.New("the chart's Deployment has no containers")
		}
		c, ok := cs[0].(map[string]any)
		if !ok {
			return nil, errors.New("the chart's Deployment has a malformed container")
		}
		args, _, err := unstructured.NestedStringSlice(c, "args")
		if err != nil || len(args) == 0 {
			return nil, fmt.Errorf("the chart's headroomd args: %v (%v)", args, err)
		}
		return args, nil
	}
	return nil, fmt.Errorf("the chart rendered no Deployment %s", releaseName)
}

// applyChart server-side applies every object, the Deployment at 0 replicas.
func applyChart(ctx context.Context, c *localcluster.Cluster, objs []*unstructured.Unstructured) error {
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("making dynamic client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Kube.Discovery()))
	for _, o := range objs {
		o = o.DeepCopy()
		if o.GetKind() == "Deployment" {
			if err := unstructured.SetNestedField(o.Object, int64(0), "spec", "replicas"); err != nil {
				return fmt.Errorf("scaling the chart's Deployment to 0: %w", err)
			}
		}
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("mapping %s: %w", gvk, err)
		}
		var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			r = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if _, err := r.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "helm", Force: true}); err != nil {
			return fmt.Errorf("applying %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the chart's
// ServiceAccount with a bound token: headroomd then runs with exactly the chart's RBAC.
func serviceAccountKubeconfig(ctx context.Context, c *localcluster.Cluster, ttl time.Duration) (string, error) {
	exp := int64(ttl.Seconds())
	tr, err := c.Kube.CoreV1().ServiceAccounts(controllerNS).CreateToken(ctx, releaseName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", controllerNS, releaseName, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.APIServerURL, CertificateAuthorityData: caData(c)}
	kc.AuthInfos[releaseName] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: releaseName, Namespace: controllerNS}
	kc.CurrentContext = "sa"
	path := filepath.Join(c.Dir, "headroomd.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

func caData(c *localcluster.Cluster) []byte {
	if len(c.Config.CAData) > 0 {
		return c.Config.CAData
	}
	data, _ := os.ReadFile(c.Config.CAFile)
	return data
}
