package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/test/chart"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// The chart tests use Helm built from the Go module proxy by hack/helm-bins.sh
// (make helm-bins); HEADROOM_HELM_BINS overrides where it is looked for.
const releaseName = "gpu-headroom"

func helmBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEADROOM_HELM_BINS")
	if dir == "" {
		root, err := localcluster.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(filepath.Join(root, "hack", "helm-bins.sh"), "path").Output()
		if err != nil {
			t.Fatalf("hack/helm-bins.sh path: %v", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	bin := filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm is not built (%v): run make helm-bins", err)
	}
	return bin
}

func chartDir(t *testing.T) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "gpu-headroom")
}

// helm runs helm with args and returns its stdout; stderr is in the error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return chart.Helm(context.Background(), helmBinary(t), t.TempDir(), args...)
}

// renderChart is `helm template` of the release into controllerNS with a values file.
func renderChart(t *testing.T, values string, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	vf := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"template", releaseName, chartDir(t), "--namespace", controllerNS, "-f", vf}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := chart.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func toTyped[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &v); err != nil {
		t.Fatalf("converting %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}

// The chart lints, refuses bad values with a clear message, grants least privilege
// and renders pods that the restricted Pod Security level admits. No cluster needed.
func TestChartLintAndTemplate(t *testing.T) {
	chart := chartDir(t)
	all := "prometheusRule.enabled=true,serviceMonitor.enabled=true,networkPolicy.enabled=true,dashboard.enabled=true,agent.enabled=true"
	for _, sets := range []string{"", all, "priorityClass.create=false,leaderElection.enabled=false"} {
		args := []string{"lint", "--strict", chart}
		if sets != "" {
			args = append(args, "--set", sets)
		}
		if _, err := helm(t, args...); err != nil {
			t.Errorf("lint with %q: %v", sets, err)
		}
	}

	for _, c := range []struct{ set, want string }{
		{"priorityClass.value=0", "is >= 0"},
		{"priorityClass.value=-11", "below cluster-autoscaler's default expendable cutoff"},
		{"budgetGPUs=0", "budgetGPUs"},
		{"image.digest=latest", "digest"},
		{"config.zones.zone-a.min=-1", "min"},
		{"config.unknownKey=1", "unknownKey"},
	} {
		_, err := helm(t, "template", releaseName, chart, "--set", c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: error %v, want one that mentions %q", c.set, err, c.want)
		}
	}
	if _, err := helm(t, "template", releaseName, chart, "--set", "priorityClass.value=-20,priorityClass.allowOutsideRange=true"); err != nil {
		t.Errorf("an out-of-range priority with the override must render: %v", err)
	}

	objs := renderChart(t, "", all)
	dep := find(objs, "Deployment", releaseName)
	if dep == nil {
		t.Fatal("no Deployment rendered")
	}
	// RBAC: no wildcards, no secrets, cluster-wide read only; create on
	// PriorityClasses only when the chart does not make the class.
	for _, o := range objs {
		var rules []rbacv1.PolicyRule
		switch o.GetKind() {
		case "ClusterRole":
			rules = toTyped[rbacv1.ClusterRole](t, o).Rules
			for _, r := range rules {
				for _, v := range r.Verbs {
					if !slices.Contains([]string{"get", "list", "watch"}, v) {
						t.Errorf("ClusterRole %s grants %s on %v with the chart creating the PriorityClass", o.GetName(), v, r.Resources)
					}
				}
			}
		case "Role":
			rules = toTyped[rbacv1.Role](t, o).Rules
		}
		for _, r := range rules {
			for _, s := range slices.Concat(r.Verbs, r.Resources, r.APIGroups) {
				if s == "*" || s == "secrets" {
					t.Errorf("%s %s grants %q: %+v", o.GetKind(), o.GetName(), s, r)
				}
			}
		}
	}
	noPC := renderChart(t, "", "priorityClass.create=false")
	if find(noPC, "PriorityClass", "") != nil {
		t.Error("priorityClass.create=false still renders a PriorityClass")
	}
	cr := toTyped[rbacv1.ClusterRole](t, find(noPC, "ClusterRole", releaseName))
	if !slices.ContainsFunc(cr.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "priorityclasses") && slices.Contains(r.Verbs, "create")
	}) {
		t.Error("with priorityClass.create=false the ClusterRole must let headroomd create the class")
	}
	if args := deploymentArgs(t, noPC); !slices.Contains(args, "--create-priority-class=true") {
		t.Errorf("with priorityClass.create=false headroomd must create the class: args %v", args)
	}
	// --forecast writes its checkpoint only into the chart's own ConfigMap.
	fc := renderChart(t, "", "forecast=true")
	if find(fc, "ConfigMap", releaseName+"-forecast") == nil {
		t.Error("forecast=true renders no checkpoint ConfigMap")
	}
	role := toTyped[rbacv1.Role](t, find(fc, "Role", releaseName))
	if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.Resources, "configmaps") && slices.Equal(r.Verbs, []string{"update"}) &&
			slices.Equal(r.ResourceNames, []string{releaseName + "-forecast"})
	}) {
		t.Errorf("forecast=true: the Role must allow update on %s-forecast only: %+v", releaseName, role.Rules)
	}
	pc := find(objs, "PriorityClass", "gpu-headroom-placeholder")
	if pc == nil || pc.Object["value"] != int64(-10) || pc.Object["preemptionPolicy"] != "Never" || pc.Object["globalDefault"] != false {
		t.Errorf("placeholder PriorityClass = %v", pc)
	}
	for _, kind := range []string{"ServiceMonitor", "NetworkPolicy", "PrometheusRule", "DaemonSet", "PodDisruptionBudget", "Service", "Lease", "ConfigMap"} {
		if find(objs, kind, "") == nil {
			t.Errorf("no %s rendered with every option on", kind)
		}
	}
	cm := find(objs, "ConfigMap", releaseName+"-dashboard")
	if cm == nil || cm.GetLabels()["grafana_dashboard"] != "1" || !strings.Contains(fmt.Sprint(cm.Object["data"]), "headroom_reserved_gpus") {
		t.Errorf("dashboard ConfigMap missing, unlabelled or empty: %v", cm)
	}
	def := renderChart(t, "")
	for _, kind := range []string{"ServiceMonitor", "NetworkPolicy", "PrometheusRule", "DaemonSet"} {
		if find(def, kind, "") != nil {
			t.Errorf("%s is rendered with default values; it must be opt-in", kind)
		}
	}
}

// deploymentArgs returns the headroomd container's args of the rendered Deployment.
func deploymentArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	dep := find(objs, "Deployment", releaseName)
	if dep == nil {
		t.Fatal("no Deployment rendered")
	}
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		t.Fatal("Deployment has no containers")
	}
	args, _, err := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if err != nil || len(args) == 0 {
		t.Fatalf("headroomd args: %v %v", args, err)
	}
	return args
}

// warnings collects API warnings (Pod Security's "would violate" among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// applier applies rendered objects the way `helm install/upgrade` ends up writing
// them (server-side apply, one field manager) and deletes them like `helm uninstall`.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	warn   *warnings
}

func newApplier(t *testing.T, c *localcluster.Cluster) *applier {
	t.Helper()
	cfg := rest.CopyConfig(c.Config)
	w := &warnings{}
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Kube.Discovery())), warn: w}
}

func (a *applier) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

func (a *applier) apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		r, err := a.resource(o)
		if err != nil {
			return err
		}
		if _, err := r.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "helm", Force: true}); err != nil {
			return fmt.Errorf("applying %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// uninstall deletes the objects in reverse order with background propagation, as
// helm uninstall does: the garbage collector removes what they own.
func (a *applier) uninstall(ctx context.Context, objs []*unstructured.Unstructured) error {
	bg := metav1.DeletePropagationBackground
	for _, o := range slices.Backward(objs) {
		r, err := a.resource(o)
		if err != nil {
			return err
		}
		if err := r.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the chart's
// ServiceAccount with a bound token (TokenRequest), against the admin
// kubeconfig's server and CA: headroomd then runs with exactly the chart's RBAC.
func serviceAccountKubeconfig(t *testing.T, c *localcluster.Cluster, ns, sa string) string {
	t.Helper()
	ctx := context.Background()
	exp := int64(3600)
	tr, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	admin, err := clientcmd.LoadFromFile(c.KubeconfigPath)
	if err != nil {
		t.Fatalf("loading %s: %v", c.KubeconfigPath, err)
	}
	ctxName := admin.CurrentContext
	if ctxName == "" {
		for k := range admin.Contexts {
			ctxName = k
		}
	}
	cluster := admin.Clusters[admin.Contexts[ctxName].Cluster]
	if cluster == nil {
		t.Fatalf("no cluster for context %q in %s", ctxName, c.KubeconfigPath)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = cluster
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa, Namespace: ns}
	kc.CurrentContext = "sa"
	path := filepath.Join(c.Dir, "headroomd-"+sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// chartValues are the operator's values for the local cluster: floors in two
// zones (one 8-GPU placeholder each) and a fast resync.
func chartValues(zoneAMin int) string {
	return fmt.Sprintf(`resync: 2s
config:
  cooldown: 10s
  zones:
    zone-a: {min: %d, max: 32}
    zone-b: {min: 8, max: 32}
`, zoneAMin)
}

// The rendered chart installs into a namespace that enforces the restricted Pod
// Security level; headroomd, running with the chart's args as the chart's
// ServiceAccount, leads, keeps placeholders for a covered ScaledObject without any
// Forbidden error, follows a ConfigMap upgrade without a restart, releases its Lease
// on SIGTERM, and uninstalling leaves nothing behind.
func TestChartOnLocalCluster(t *testing.T) {
	helmBinary(t) // fail before starting a cluster when Helm is missing
	c := localcluster.StartT(t, localcluster.Options{
		KEDA: true, Redis: true,
		NodeGroups:  localcluster.H100Zones([]string{"zone-a", "zone-b"}, 0, 4),
		Provisioner: fastProvisioner(),
	})
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, controllerNS, map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}); err != nil {
		t.Fatal(err)
	}
	a := newApplier(t, c)
	objs := renderChart(t, chartValues(8))
	if err := a.apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	if w := a.warn.take(); len(w) > 0 {
		t.Errorf("the API server warned while installing the chart: %q", w)
	}

	// The controller's pods are admitted at the restricted level (kwok has no node
	// for them to run on; admission is what is checked here).
	sel := "app.kubernetes.io/instance=" + releaseName + ",app.kubernetes.io/component=controller"
	eventually(t, time.Minute, "both controller pods admitted", func(ctx context.Context) (bool, string) {
		pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 2, fmt.Sprintf("%d pods", len(pods.Items))
	})
	dep, err := c.Kube.AppsV1().Deployments(controllerNS).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	deployScaled(t, c, "team", "llm", true)
	kubeconfig := serviceAccountKubeconfig(t, c, controllerNS, releaseName)
	var args []string
	for _, a := range deploymentArgs(t, objs) {
		// Loopback ports instead of the pod's :8080/:8081 (startHeadroomd picks them).
		if !strings.HasPrefix(a, "--metrics-addr=") && !strings.HasPrefix(a, "--probe-addr=") {
			args = append(args, a)
		}
	}
	args = append(args, "--kubeconfig="+kubeconfig)
	h := startHeadroomd(t, c, "chart", args...)

	eventually(t, time.Minute, "headroomd leads as the chart's ServiceAccount", func(ctx context.Context) (bool, string) {
		l, err := h.metric(ctx, "headroom_leader")
		return err == nil && l == 1, fmt.Sprint(l, err)
	})
	eventually(t, 2*time.Minute, "a running placeholder in each zone", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] == 1 && m["zone-b"] == 1, fmt.Sprint(m, err)
	})
	if v, err := h.metric(ctx, "headroom_config_valid"); err != nil || v != 1 {
		t.Errorf("the chart's config.yaml was not accepted: headroom_config_valid %v (%v)", v, err)
	}
	sets, err := placeholderSets(ctx, c)
	if err != nil || len(sets) != 2 {
		t.Fatalf("placeholder sets = %v (%v), want 2", keys(sets), err)
	}
	// Placeholders are owned by the chart's Deployment, and their pods pass the
	// restricted level (a server-side dry-run create shows any warning).
	for _, rs := range sets {
		if !slices.ContainsFunc(rs.OwnerReferences, func(o metav1.OwnerReference) bool {
			return o.Kind == "Deployment" && o.UID == dep.UID
		}) {
			t.Errorf("placeholder ReplicaSet %s is not owned by Deployment %s: %v", rs.Name, dep.Name, rs.OwnerReferences)
		}
		pods, err := podsOf(ctx, c.Kube, controllerNS, rs.Spec.Selector.MatchLabels)
		if err != nil || len(pods) == 0 {
			t.Fatalf("pods of %s: %d (%v)", rs.Name, len(pods), err)
		}
		p := pods[0].DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{GenerateName: "psa-check-", Namespace: controllerNS, Labels: map[string]string{"psa-check": "1"}}
		p.Spec.NodeName, p.Status = "", corev1.PodStatus{}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.dyn.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Namespace(controllerNS).
			Create(ctx, &unstructured.Unstructured{Object: u}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("the restricted level refuses placeholder pods of %s: %v", rs.Name, err)
		}
		if w := a.warn.take(); len(w) > 0 {
			t.Errorf("placeholder pod of %s draws warnings: %q", rs.Name, w)
		}
	}
	evs, err := c.Kube.CoreV1().Events(controllerNS).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	if err == nil && len(evs.Items) > 0 {
		t.Errorf("pods were refused in %s: %s", controllerNS, evs.Items[0].Message)
	}

	// helm upgrade with more floor in zone-a: only the ConfigMap changes; headroomd
	// follows without a restart and the Deployment does not roll.
	upgraded := renderChart(t, chartValues(16))
	if err := a.apply(ctx, upgraded); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "zone-a placeholders scaled to 2 after the upgrade", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] == 2 && m["zone-b"] == 1, fmt.Sprint(m, err)
	})
	select {
	case <-h.done:
		t.Fatal("headroomd exited during the upgrade")
	default:
	}
	if d, err := c.Kube.AppsV1().Deployments(controllerNS).Get(ctx, releaseName, metav1.GetOptions{}); err != nil || d.Generation != dep.Generation {
		t.Errorf("the upgrade changed the Deployment (generation %d -> %v, %v): a ConfigMap edit must not roll pods", dep.Generation, d.Generation, err)
	}

	// A bad hand edit of the ConfigMap: headroomd reports it with an Event, which it
	// may write with the chart's RBAC, and keeps the last good config.
	setConfig(t, c, "zones:\n  zone-a: {min: 64, max: 8}\n")
	eventually(t, time.Minute, "InvalidConfig event written by headroomd", func(ctx context.Context) (bool, string) {
		evs, err := c.Kube.CoreV1().Events(controllerNS).List(ctx, metav1.ListOptions{FieldSelector: "reason=InvalidConfig"})
		if err != nil {
			return false, err.Error()
		}
		return len(evs.Items) > 0, fmt.Sprintf("%d events", len(evs.Items))
	})
	if err := a.apply(ctx, upgraded); err != nil { // helm upgrade puts it back
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "config valid again", func(ctx context.Context) (bool, string) {
		v, err := h.metric(ctx, "headroom_config_valid")
		return err == nil && v == 1, fmt.Sprint(v, err)
	})
	if m, err := runningPlaceholders(ctx, c); err != nil || m["zone-a"] != 2 || m["zone-b"] != 1 {
		t.Errorf("placeholders after a rejected edit = %v (%v), want the last good 2 + 1", m, err)
	}

	// No Forbidden error with the chart's RBAC.
	logText := func() string { b, _ := os.ReadFile(h.log); return string(b) }
	for _, bad := range []string{"forbidden", "Forbidden", "would violate PodSecurity"} {
		if strings.Contains(logText(), bad) {
			t.Errorf("headroomd log contains %q with the chart's RBAC:\n%s", bad, lastLines(logText(), 30))
		}
	}

	// SIGTERM releases the Lease at once; a fresh process leads right away.
	h.stop()
	lease, err := c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's Lease: %v", err)
	}
	if id := lease.Spec.HolderIdentity; id != nil && *id != "" {
		t.Errorf("Lease still held by %q after SIGTERM", *id)
	}
	h2 := startHeadroomd(t, c, "chart-2", args...)
	eventually(t, 30*time.Second, "a new process leads on the released Lease", func(ctx context.Context) (bool, string) {
		l, err := h2.metric(ctx, "headroom_leader")
		return err == nil && l == 1, fmt.Sprint(l, err)
	})

	// Uninstall while the leader still runs, as helm does (the pods get SIGTERM
	// only when their Deployment's ReplicaSet is collected).
	passes, _ := h2.metric(ctx, "headroom_reconcile_duration_seconds_count")
	if err := a.uninstall(ctx, upgraded); err != nil {
		t.Fatal(err)
	}
	// Let the leader see the uninstall (two more passes, renewing its Lease on
	// the way) before it gets SIGTERM: a renewal must not bring objects back.
	eventually(t, time.Minute, "the leader reconciles through the uninstall", func(ctx context.Context) (bool, string) {
		n, err := h2.metric(ctx, "headroom_reconcile_duration_seconds_count")
		return err == nil && n >= passes+2, fmt.Sprint(n, err)
	})
	h2.stop()
	eventually(t, 2*time.Minute, "nothing left behind after uninstall", func(ctx context.Context) (bool, string) {
		var left []string
		rss, err := c.Kube.AppsV1().ReplicaSets(controllerNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, rs := range rss.Items {
			left = append(left, "ReplicaSet/"+rs.Name)
		}
		pods, err := c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: headroom.LabelManagedBy + "=" + headroom.ManagedByValue})
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pods.Items {
			left = append(left, "Pod/"+p.Name)
		}
		if _, err := c.Kube.SchedulingV1().PriorityClasses().Get(ctx, "gpu-headroom-placeholder", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("PriorityClass/gpu-headroom-placeholder (%v)", err))
		}
		if _, err := c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, releaseName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("Lease/%s (%v)", releaseName, err))
		}
		if _, err := c.Kube.AppsV1().Deployments(controllerNS).Get(ctx, releaseName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			left = append(left, "Deployment/"+releaseName)
		}
		return len(left) == 0, strings.Join(left, ", ")
	})
	// The workload's own objects are untouched.
	if _, err := c.Kube.AppsV1().Deployments("team").Get(ctx, "llm", metav1.GetOptions{}); err != nil {
		t.Errorf("uninstall touched the workload: %v", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
