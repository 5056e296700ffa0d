package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/controller"
	"github.com/gpu-headroom/gpu-headroom/headroom/doctor"
	"github.com/gpu-headroom/gpu-headroom/headroom/placeholder"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// headroomCLI builds cmd/headroom once per test binary.
func headroomCLI(t *testing.T) string { return buildBinary(t, "./cmd/headroom") }

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the headroom CLI and returns its exit code and output.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, headroomCLI(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running headroom %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// doctorProblems runs `headroom doctor --json` and returns, per failed check,
// the objects of its findings (sorted), with the exit code.
func doctorProblems(t *testing.T, args ...string) (map[string][]string, int, string) {
	t.Helper()
	res := runCLI(t, append([]string{"doctor", "--json"}, args...)...)
	if res.code == 2 && strings.TrimSpace(res.stdout) == "" {
		// The cluster could not be read (e.g. a CRD half-way through deletion
		// answers 404 while discovery still lists it): callers wait and retry.
		return nil, res.code, res.stderr
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("doctor: exit %d, decoding %q: %v; stderr %s", res.code, res.stdout, err, res.stderr)
	}
	m := map[string][]string{}
	for _, r := range rep.Results {
		for _, f := range r.Findings {
			m[r.Check] = append(m[r.Check], f.Object)
		}
		sort.Strings(m[r.Check])
	}
	return m, res.code, res.stdout
}

// expectProblems waits until doctor reports exactly want (check -> objects) and
// the exit code that goes with it.
func expectProblems(t *testing.T, what string, want map[string][]string, args ...string) {
	t.Helper()
	eventually(t, time.Minute, "doctor: "+what, func(context.Context) (bool, string) {
		got, code, _ := doctorProblems(t, args...)
		wantCode := 0
		if len(want) > 0 {
			wantCode = 1
		}
		return fmt.Sprint(got) == fmt.Sprint(want) && code == wantCode, fmt.Sprintf("exit %d, problems %v, want %v", code, got, want)
	})
}

// readOnlyKubeconfig writes a kubeconfig for a ServiceAccount bound to a
// ClusterRole that may only get, list and watch, with a token from the
// TokenRequest API. It checks that the token is refused a write.
func readOnlyKubeconfig(t *testing.T, c *localcluster.Cluster) string {
	t.Helper()
	ctx := context.Background()
	const name = "headroom-reader"
	objs := []func() error{
		func() error {
			_, err := c.Kube.CoreV1().ServiceAccounts(controllerNS).Create(ctx,
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: controllerNS}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := c.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := c.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: controllerNS}},
			}, metav1.CreateOptions{})
			return err
		},
	}
	for _, create := range objs {
		if err := create(); err != nil {
			t.Fatalf("creating the read-only identity: %v", err)
		}
	}
	exp := int64(3600)
	tr, err := c.Kube.CoreV1().ServiceAccounts(controllerNS).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token: %v", err)
	}
	cfg, err := clientcmd.LoadFromFile(c.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Token = tr.Status.Token
	}
	path := filepath.Join(t.TempDir(), "readonly.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	ro := kubernetes.NewForConfigOrDie(rc)
	eventually(t, 30*time.Second, "the read-only token may list but not write", func(ctx context.Context) (bool, string) {
		if _, err := ro.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			return false, "list: " + err.Error()
		}
		_, err := ro.CoreV1().ConfigMaps(controllerNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ro-probe"}}, metav1.CreateOptions{})
		return apierrors.IsForbidden(err), fmt.Sprint("create: ", err)
	})
	return path
}

// headroomWrites summarises every object headroomd would write (placeholder
// ReplicaSets, the PriorityClass, the Lease, Events in its namespace) and the
// ConfigMap's resourceVersion, to compare before and after a read-only command.
func headroomWrites(ctx context.Context, t *testing.T, c *localcluster.Cluster) string {
	t.Helper()
	var b strings.Builder
	rss, err := c.Kube.AppsV1().ReplicaSets(controllerNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		fmt.Fprintf(&b, "rs %s %s; ", rs.Name, rs.ResourceVersion)
	}
	evs, err := c.Kube.CoreV1().Events(controllerNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "events %d; ", len(evs.Items))
	for _, get := range []func() (metav1.Object, error){
		func() (metav1.Object, error) {
			return c.Kube.SchedulingV1().PriorityClasses().Get(ctx, "gpu-headroom-placeholder", metav1.GetOptions{})
		},
		func() (metav1.Object, error) {
			return c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, "gpu-headroom", metav1.GetOptions{})
		},
		func() (metav1.Object, error) {
			return c.Kube.CoreV1().ConfigMaps(controllerNS).Get(ctx, "gpu-headroom", metav1.GetOptions{})
		},
	} {
		o, err := get()
		switch {
		case apierrors.IsNotFound(err):
			b.WriteString("absent; ")
		case err != nil:
			t.Fatal(err)
		default:
			fmt.Fprintf(&b, "%s %s; ", o.GetName(), o.GetResourceVersion())
		}
	}
	return b.String()
}

// scaledTarget creates a Deployment (replicas, pod spec) and a covered
// ScaledObject on it with the given trigger type (redis works; anything else
// keeps KEDA from creating the HPA).
func scaledTarget(t *testing.T, c *localcluster.Cluster, ns, name string, replicas int32, spec corev1.PodSpec, trigger string) {
	t.Helper()
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	d := inferenceDeployment(ns, name, 1)
	d.Spec.Replicas = &replicas
	d.Spec.Template.Spec = spec
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment %s/%s: %v", ns, name, err)
	}
	so := scaledObject(ns, name, c.RedisAddr, ns+"-"+name, 0, 4)
	so.Spec.Triggers[0].Type = trigger
	so.Annotations = map[string]string{headroom.AnnotationEnabled: "true"}
	if _, err := c.KEDA.KedaV1alpha1().ScaledObjects(ns).Create(ctx, so, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ScaledObject %s/%s: %v", ns, name, err)
	}
}

// optOut stops headroom covering a ScaledObject, taking it out of doctor's view.
func optOut(t *testing.T, c *localcluster.Cluster, ns, name string) {
	t.Helper()
	updateScaledObject(t, c, ns, name, func(so *kedav1alpha1.ScaledObject) {
		so.Annotations[headroom.AnnotationEnabled] = "false"
	})
}

// recreatePriorityClass replaces the placeholder PriorityClass (its value is
// immutable) with one at value.
func recreatePriorityClass(t *testing.T, c *localcluster.Cluster, value int32) {
	t.Helper()
	ctx := context.Background()
	const name = "gpu-headroom-placeholder"
	if err := c.Kube.SchedulingV1().PriorityClasses().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "PriorityClass deleted", func(ctx context.Context) (bool, string) {
		_, err := c.Kube.SchedulingV1().PriorityClasses().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	priorityClass(t, c.Kube, name, value, true)
}

// The CLI against a real cluster: `plan` previews headroomd's first pass (floors
// in two zones) with a read-only token and writes nothing; `doctor` finds each
// problem in turn in a cluster that has it, and passes once the cluster is
// right.
func TestCLIPlanAndDoctor(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		KEDA: true, Redis: true,
		NodeGroups:  localcluster.H100Zones([]string{"zone-a", "zone-b"}, 0, 4),
		Provisioner: fastProvisioner(),
	})
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, controllerNS, nil); err != nil {
		t.Fatal(err)
	}
	setConfig(t, c, floorsConfig)
	deployScaled(t, c, "team", "llm", true)
	eventually(t, time.Minute, "KEDA's HPA for team/llm", func(ctx context.Context) (bool, string) {
		_, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers("team").Get(ctx, "keda-hpa-llm", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	admin := "--kubeconfig=" + c.KubeconfigPath
	budget := "--budget-gpus=64"

	// plan: floors of 8 GPUs in zone-a and zone-b with an 8-GPU workload and no
	// nodes yet: one placeholder pod per zone, two creates. Read-only token.
	ro := readOnlyKubeconfig(t, c)
	before := headroomWrites(ctx, t, c)
	res := runCLI(t, "plan", "--kubeconfig="+ro, budget, "--json")
	if res.code != 0 {
		t.Fatalf("plan --json: exit %d\nstdout %s\nstderr %s", res.code, res.stdout, res.stderr)
	}
	var rep controller.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("decoding plan --json: %v\n%s", err, res.stdout)
	}
	got := map[string]int32{}
	for _, ph := range rep.Desired.Placeholders {
		got[ph.Zone] += ph.Replicas
		if ph.Shape.GPUs != 8 || ph.Reason == "" {
			t.Errorf("placeholder %+v: want an 8-GPU shape and a reason", ph)
		}
	}
	if fmt.Sprint(got) != "map[zone-a:1 zone-b:1]" || len(rep.Actions) != 2 || !rep.DryRun || rep.Policy.BudgetGPUs != 64 {
		t.Errorf("plan: placeholders %v, %d actions, dryRun %v, budget %d; want one per zone, 2 creates, dry run, 64",
			got, len(rep.Actions), rep.DryRun, rep.Policy.BudgetGPUs)
	}
	if d := rep.Demand["team/llm"]; d.Reason == "" {
		t.Errorf("plan: no demand reason for team/llm: %+v", rep.Demand)
	}
	res = runCLI(t, "plan", "--kubeconfig="+ro, budget)
	text := strings.Join(strings.Fields(res.stdout), " ")
	hash := rep.Desired.Placeholders[0].ShapeHash
	for _, want := range []string{"zone-a 8 32", "zone-b 8 32", "team/llm ", "total 2 16 of a budget of 64 GPUs",
		"create " + headroom.ReplicaSetName("zone-a", hash), "create " + headroom.ReplicaSetName("zone-b", hash)} {
		if res.code != 0 || !strings.Contains(text, want) {
			t.Errorf("plan text (exit %d) lacks %q:\n%s%s", res.code, want, res.stdout, res.stderr)
		}
	}
	for _, zone := range []string{"zone-a", "zone-b"} {
		row := ""
		for _, line := range strings.Split(res.stdout, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == zone && f[1] == hash {
				row = strings.Join(f, " ")
			}
		}
		if !strings.Contains(row, " 0 1 8 ") { // NOW PLAN GPUS
			t.Errorf("plan row for %s: %q, want 0 now, 1 planned, 8 GPUs", zone, row)
		}
	}
	t.Logf("headroom plan:\n%s", res.stdout)
	if after := headroomWrites(ctx, t, c); after != before {
		t.Errorf("plan wrote to the cluster:\nbefore %s\nafter  %s", before, after)
	}

	// Without --budget-gpus, plan takes headroomd's from its Deployment, and says
	// to pass it when there is none.
	res = runCLI(t, "plan", "--kubeconfig="+ro)
	if res.code != 2 || !strings.Contains(res.stderr, "pass --budget-gpus") {
		t.Errorf("plan without a budget or a headroomd Deployment: exit %d, stderr %q", res.code, res.stderr)
	}
	hd := inferenceDeployment(controllerNS, "gpu-headroom", 0) // zero replicas: only its flags matter
	hd.Spec.Template.Spec.Containers[0].Args = []string{"--namespace=" + controllerNS, "--budget-gpus=48"}
	if _, err := c.Kube.AppsV1().Deployments(controllerNS).Create(ctx, hd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, "plan", "--kubeconfig="+ro, "--json")
	var rep48 controller.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep48); err != nil || rep48.Policy.BudgetGPUs != 48 {
		t.Errorf("plan with the budget from the Deployment: exit %d, budget %d (want 48), err %v, stderr %s", res.code, rep48.Policy.BudgetGPUs, err, res.stderr)
	}

	// doctor before headroomd ever ran: no PriorityClass, no Lease. Read-only too.
	expectProblems(t, "no controller yet", map[string][]string{
		doctor.CheckPlaceholderPriority: {"priorityclass gpu-headroom-placeholder"},
		doctor.CheckLeader:              {"lease gpu-headroom/gpu-headroom"},
	}, "--kubeconfig="+ro, budget)

	// A correct cluster: headroomd leading, PriorityClass -10, placeholders on
	// zone-labelled nodes, a covered GPU ScaledObject with its HPA.
	h := startHeadroomd(t, c, "a")
	eventually(t, 2*time.Minute, "a running placeholder in each zone", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] >= 1 && m["zone-b"] >= 1, fmt.Sprint(m, err)
	})
	expectProblems(t, "a correct cluster", map[string][]string{}, admin, budget)
	res = runCLI(t, "doctor", admin, budget)
	if res.code != 0 || !strings.Contains(res.stdout, "no problems found") {
		t.Errorf("doctor on a correct cluster: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	t.Logf("headroom doctor on a correct cluster:\n%s", res.stdout)

	// A budget smaller than one 8-GPU node.
	expectProblems(t, "budget below one node", map[string][]string{doctor.CheckBudget: {"budget"}}, admin, "--budget-gpus=4")

	// A GPU node without a zone label.
	nz := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "gpu-no-zone", Labels: map[string]string{localcluster.GPUProductLabel: "NVIDIA-H100-80GB-HBM3"}}}
	if _, err := c.Kube.CoreV1().Nodes().Create(ctx, nz, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectProblems(t, "a GPU node without zone", map[string][]string{doctor.CheckNodeZones: {"node gpu-no-zone"}}, admin, budget)
	res = runCLI(t, "doctor", admin, budget)
	if res.code != 1 || !strings.Contains(res.stdout, "fix: label it") {
		t.Errorf("doctor text for a zoneless node: exit %d\n%s", res.code, res.stdout)
	}
	t.Logf("headroom doctor with a zoneless GPU node:\n%s", res.stdout)
	if err := c.Kube.CoreV1().Nodes().Delete(ctx, nz.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// A covered ScaledObject whose Deployment requests no GPU.
	cpu := gpuPodSpec(0, "", "")
	cpu.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	scaledTarget(t, c, "cpu", "web", 0, cpu, "redis")
	expectProblems(t, "a ScaledObject without GPU", map[string][]string{doctor.CheckScaledObjects: {"cpu/web"}}, admin, budget)
	optOut(t, c, "cpu", "web")

	// A covered ScaledObject whose HPA KEDA cannot create (a trigger type KEDA
	// does not know); one replica, so it is not scaled to zero.
	scaledTarget(t, c, "nohpa", "llm", 1, gpuPodSpec(1, "", ""), "no-such-scaler")
	expectProblems(t, "a ScaledObject without HPA", map[string][]string{doctor.CheckScaledObjects: {"nohpa/llm"}}, admin, budget)
	optOut(t, c, "nohpa", "llm")

	// Inference pods below priority 0.
	priorityClass(t, c.Kube, "low-inference", -1, false)
	scaledTarget(t, c, "low", "llm", 0, gpuPodSpec(1, "", "low-inference"), "redis")
	expectProblems(t, "inference below priority 0", map[string][]string{doctor.CheckInferencePriority: {"low/llm"}}, admin, budget)
	optOut(t, c, "low", "llm")

	// The placeholder PriorityClass below the expendable cutoff, then at the
	// inference pods' priority (0).
	recreatePriorityClass(t, c, -11)
	expectProblems(t, "placeholder class at -11", map[string][]string{
		doctor.CheckPlaceholderPriority: {"priorityclass gpu-headroom-placeholder"}}, admin, budget)
	recreatePriorityClass(t, c, 0)
	_, _, out := doctorProblems(t, admin, budget)
	if !strings.Contains(out, "is not below the inference priority 0") {
		t.Errorf("placeholder class at 0 not reported as at/above inference:\n%s", out)
	}
	recreatePriorityClass(t, c, placeholder.DefaultPriority)
	expectProblems(t, "the class back at -10", map[string][]string{}, admin, budget)

	// The controller not leading: released on stop, then expired.
	h.stop()
	expectProblems(t, "lease released", map[string][]string{doctor.CheckLeader: {"lease gpu-headroom/gpu-headroom"}}, admin, budget)
	lease, err := c.Kube.CoordinationV1().Leases(controllerNS).Get(ctx, "gpu-headroom", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ghost, dur := "ghost_1", int32(15)
	old := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &ghost, &dur, &old
	if _, err := c.Kube.CoordinationV1().Leases(controllerNS).Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, code, out := doctorProblems(t, admin, budget)
	if code != 1 || !strings.Contains(out, "the Lease of ghost_1 expired") {
		t.Errorf("expired Lease: exit %d\n%s", code, out)
	}

	// KEDA's CRDs missing.
	crd := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if err := c.Dynamic.Resource(crd).Delete(ctx, "scaledobjects.keda.sh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "doctor: KEDA CRDs missing", func(ctx context.Context) (bool, string) {
		// The CRD goes once its ScaledObjects do; do not wait on KEDA's
		// finalizers if the operator lost its watch with the CRD.
		if sos, err := c.KEDA.KedaV1alpha1().ScaledObjects("").List(ctx, metav1.ListOptions{}); err == nil {
			for i := range sos.Items {
				if so := &sos.Items[i]; so.DeletionTimestamp != nil && len(so.Finalizers) > 0 {
					so.Finalizers = nil
					_, _ = c.KEDA.KedaV1alpha1().ScaledObjects(so.Namespace).Update(ctx, so, metav1.UpdateOptions{})
				}
			}
		}
		got, code, _ := doctorProblems(t, admin, budget)
		return len(got[doctor.CheckKEDA]) == 1 && code == 1, fmt.Sprint(code, got)
	})
}
