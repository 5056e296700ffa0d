package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/sim"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

const (
	gpusPerReplica = 8
	concurrency    = 32
	// kedaTarget is the Redis list length (requests waiting or in service) per
	// replica KEDA aims for, below the replica's batch of 32 as vLLM-style
	// autoscaling on num_requests is usually set.
	kedaTarget = 24
	appName    = "llm"
)

func helmBinDir(root string) (string, error) {
	if d := os.Getenv("HEADROOM_HELM_BINS"); d != "" {
		return d, nil
	}
	out, err := exec.Command(filepath.Join(root, "hack", "helm-bins.sh"), "path").Output()
	if err != nil {
		return "", fmt.Errorf("asking hack/helm-bins.sh where Helm is (run `make helm-bins`): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// demo is one `make demo`: the cluster, the replay and what it measured.
type demo struct {
	cfg       config
	out       io.Writer
	tty       bool
	log       *os.File
	c         *localcluster.Cluster
	rdb       *redis.Client
	replay    *Replay
	server    Server
	metrics   string // headroomd's /metrics URL while it runs
	probe     string // headroomd's probe address (/debug/plan)
	chartArgs []string
	hd        *localcluster.Process
	zoneOf    map[string]string // node group -> zone
	lines     int               // lines of the last table drawn (terminal mode)
}

func (d *demo) logf(format string, args ...any) {
	fmt.Fprintf(d.log, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

func (d *demo) say(format string, args ...any) {
	d.lines = 0
	fmt.Fprintf(d.out, format+"\n", args...)
	d.logf(format, args...)
}

// trace converts wall time to trace time.
func (d *demo) trace(w time.Duration) time.Duration { return time.Duration(float64(w) * d.cfg.speed) }

func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	start, reqs, err := sim.ReadAzureRequests(cfg.trace)
	if err != nil {
		return fmt.Errorf("%w (the demo replays a trace from ../shared/data/traces; --trace picks another)", err)
	}
	name := strings.TrimSuffix(filepath.Base(cfg.trace), filepath.Ext(cfg.trace))
	rp, err := BuildReplay(name, start, reqs, ReplayOptions{From: cfg.from, Span: cfg.span, Scale: cfg.scale, Speed: cfg.speed, Tick: cfg.tick, Seed: cfg.seed})
	if err != nil {
		return err
	}
	perf, err := sim.ReadPerf(cfg.perf, "llama2-70b", "h100-80gb", gpusPerReplica)
	if err != nil {
		return fmt.Errorf("%w (--perf points at the Splitwise profile)", err)
	}
	for _, bin := range []string{cfg.headroomd, cfg.helm} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s: %w (make demo builds headroomd and Helm)", bin, err)
		}
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", cfg.out, err)
	}
	logPath := filepath.Join(cfg.out, "demo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating %s: %w", logPath, err)
	}
	defer logFile.Close()
	d := &demo{cfg: cfg, out: out, log: logFile, replay: rp, zoneOf: map[string]string{},
		server: Server{Perf: perf, Concurrency: concurrency, Ctx: rp.MeanCtx, Gen: rp.MeanGen}}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			d.tty = true
		}
	}
	if d.cfg.refresh == 0 {
		d.cfg.refresh = 10 * time.Second
		if d.tty {
			d.cfg.refresh = 2 * time.Second
		}
	}
	d.intro()

	clusterDir := filepath.Join(cfg.out, "cluster")
	if err := os.RemoveAll(clusterDir); err != nil {
		return fmt.Errorf("removing the last demo's cluster folder: %w", err)
	}
	groups := localcluster.H100Zones(cfg.zones, 0, cfg.maxNodes)
	for _, g := range groups {
		d.zoneOf[g.Name] = g.Zone
	}
	d.say("starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok, KEDA, Redis); log: %s", logPath)
	t0 := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Options{
		Dir: clusterDir, KEDA: true, Redis: true, NodeGroups: groups,
		Provisioner: &localcluster.ProvisionerOptions{ScanInterval: time.Second, ProvisionDelay: cfg.provision,
			GPUReadyDelay: cfg.gpuReady, UnneededTime: cfg.unneeded},
		HPASyncPeriod: 2 * time.Second, Logf: d.logf,
	})
	if err != nil {
		return fmt.Errorf("starting the local cluster: %w", err)
	}
	d.c = c
	d.say("cluster up in %s; kubeconfig %s", time.Since(t0).Round(time.Second), c.KubeconfigPath)
	defer func() {
		if cfg.keep && err == nil {
			err = d.keep(ctx)
		}
		if stopErr := d.cleanup(err == nil); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	if err := d.writeState(); err != nil {
		return err
	}
	d.rdb = redis.NewClient(&redis.Options{Addr: c.RedisAddr})
	defer d.rdb.Close()

	if err := d.installChart(ctx); err != nil {
		return err
	}
	var runs []*RunResult
	without, err := d.runOnce(ctx, "without headroom", "without", "demo-without", false)
	if err != nil {
		return err
	}
	runs = append(runs, without)
	if err := d.reset(ctx, "demo-without"); err != nil {
		return err
	}
	if err := d.startHeadroomd(ctx); err != nil {
		return err
	}
	with, err := d.runOnce(ctx, "with headroom", "with", "demo-with", true)
	if err != nil {
		return err
	}
	runs = append(runs, with)
	return d.report(runs)
}

func (d *demo) intro() {
	cfg, rp := d.cfg, d.replay
	d.say("gpu-headroom demo: %s, minutes %s to %s, request rate x%g (%d requests), replayed %gx faster (%s per run), twice:",
		rp.Name, clock(rp.From), clock(rp.From+rp.Span), rp.Scale, rp.Requests(), rp.Speed, rp.Wall().Round(time.Second))
	d.say("  1. without headroom: KEDA scales the inference Deployment; a replica beyond the warm nodes waits for the autoscaler to add one")
	d.say("  2. with headroom: headroomd (run from the chart's manifests) keeps placeholder pods per zone; new replicas preempt them")
	d.say("cluster: zones %s of kwok 8x H100 nodes (0..%d per zone); stand-in autoscaler: node in %s + GPUs in %s, removed after %s idle (trace time: %s + %s, %s)",
		strings.Join(cfg.zones, ","), cfg.maxNodes, cfg.provision, cfg.gpuReady, cfg.unneeded, d.trace(cfg.provision), d.trace(cfg.gpuReady), d.trace(cfg.unneeded))
	d.say("replica: llama2-70b on 8 H100s (Splitwise perf model, TP8), %d concurrent requests, up to %.1f req/s; model load %s (%s); KEDA target %d queued+running per replica",
		concurrency, d.server.Capacity(), cfg.modelLoad, d.trace(cfg.modelLoad), kedaTarget)
	d.say("the demo is the consumer: every tick it pops from the Redis list what the serving replicas finish\n")
}

// chartValues are the operator's values, with headroomd's timings compressed as
// the trace is: placeholder cooldown 5 min and scarcity 10 min of trace time.
func (d *demo) chartValues() string {
	dur := func(real time.Duration) string {
		return time.Duration(math.Max(float64(time.Second), float64(real)/d.cfg.speed)).Round(time.Second).String()
	}
	// The zones are listed: a zone whose node group is at 0 nodes has no node
	// that would tell headroomd it exists.
	var zones strings.Builder
	for _, z := range d.cfg.zones {
		fmt.Fprintf(&zones, "    %s: {min: %d, max: 32}\n", z, gpusPerReplica)
	}
	return fmt.Sprintf(`budgetGPUs: 64
resync: 2s
config:
  cooldown: %s
  scarcity: {pendingThreshold: %s, initialBackoff: %s, maxBackoff: %s}
  zones:
%s`, dur(5*time.Minute), dur(10*time.Minute), dur(5*time.Minute), dur(30*time.Minute), zones.String())
}

func (d *demo) installChart(ctx context.Context) error {
	root, err := localcluster.RepoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "gpu-headroom-demo-helm-")
	if err != nil {
		return fmt.Errorf("making a Helm home: %w", err)
	}
	defer os.RemoveAll(tmp)
	values := d.chartValues()
	objs, err := renderChart(ctx, d.cfg.helm, filepath.Join(root, "charts", "gpu-headroom"), values, tmp)
	if err != nil {
		return err
	}
	if err := d.c.EnsureNamespace(ctx, controllerNS, nil); err != nil {
		return err
	}
	if err := applyChart(ctx, d.c, objs); err != nil {
		return err
	}
	args, err := controllerArgs(objs)
	if err != nil {
		return err
	}
	d.chartArgs = args
	d.say("chart installed into namespace %s (helm template + server-side apply; values: %s)", controllerNS, strings.ReplaceAll(strings.TrimSpace(values), "\n", "; "))
	return nil
}

// startHeadroomd runs the headroomd binary with the chart's container args, as the
// chart's ServiceAccount, on loopback ports.
func (d *demo) startHeadroomd(ctx context.Context) error {
	kc, err := serviceAccountKubeconfig(ctx, d.c, 24*time.Hour)
	if err != nil {
		return err
	}
	mp, err := localcluster.FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	pp, err := localcluster.FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	var args []string
	for _, a := range d.chartArgs {
		if !strings.HasPrefix(a, "--metrics-addr=") && !strings.HasPrefix(a, "--probe-addr=") {
			args = append(args, a)
		}
	}
	args = append(args, "--kubeconfig="+kc, "--namespace="+controllerNS,
		fmt.Sprintf("--metrics-addr=127.0.0.1:%d", mp), fmt.Sprintf("--probe-addr=127.0.0.1:%d", pp))
	if d.hd, err = localcluster.StartProcess("headroomd", d.cfg.headroomd, args, nil, d.c.LogDir); err != nil {
		return err
	}
	logPath := d.hd.LogPath()
	d.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", mp)
	d.probe = fmt.Sprintf("http://127.0.0.1:%d", pp)
	if err := d.writeState(); err != nil {
		return err
	}
	d.say("\nheadroomd started with the chart's args as ServiceAccount %s/%s: %s", controllerNS, releaseName, strings.Join(args, " "))
	return waitFor(ctx, "headroomd to lead (log "+logPath+")", time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case <-d.hd.Done():
			return false, fmt.Errorf("headroomd exited; see %s", logPath)
		default:
		}
		v, err := scrape(ctx, d.metrics, "headroom_leader")
		return err == nil && v["headroom_leader"] == 1, nil
	})
}

// state is what the demo started (state.json in its folder): the cluster's
// processes and links and headroomd, so that a test or a person can check that
// nothing of it is left.
type state struct {
	Kubeconfig string         `json:"kubeconfig"`
	Pids       map[string]int `json:"pids"`
	Links      []string       `json:"links"`
	Metrics    string         `json:"metrics,omitempty"`
}

func (d *demo) statePath() string { return filepath.Join(d.cfg.out, "state.json") }

func (d *demo) writeState() error {
	s := state{Kubeconfig: d.c.KubeconfigPath, Pids: d.c.Pids(), Links: d.c.LinkNames(), Metrics: d.metrics}
	if d.hd != nil {
		s.Pids["headroomd"] = d.hd.Pid()
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	if err := os.WriteFile(d.statePath(), data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", d.statePath(), err)
	}
	return nil
}

// cleanup stops headroomd and the cluster and checks that nothing is left. It
// removes the cluster's folder after a good run and keeps its logs otherwise.
func (d *demo) cleanup(ok bool) error {
	var errs []error
	if d.hd != nil {
		if err := d.hd.Stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
		if syscall.Kill(-d.hd.Pid(), 0) == nil {
			errs = append(errs, fmt.Errorf("headroomd (pgid %d) still running", d.hd.Pid()))
		}
	}
	if d.c != nil {
		if err := d.c.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the cluster: %w", err))
		}
		if left := d.c.Leftovers(); len(left) > 0 {
			errs = append(errs, fmt.Errorf("left behind: %v", left))
		}
	}
	if len(errs) == 0 {
		fmt.Fprintln(d.out, "cleaned up: every process stopped, network link removed")
	} else {
		fmt.Fprintln(d.out, "cleanup incomplete:", errors.Join(errs...))
	}
	if d.c != nil {
		if ok && len(errs) == 0 {
			_ = os.RemoveAll(d.c.Dir)
		} else {
			fmt.Fprintf(d.out, "component logs (headroomd's among them) kept in %s\n", d.c.LogDir)
		}
	}
	return errors.Join(errs...)
}

// keep holds the cluster until a signal.
func (d *demo) keep(ctx context.Context) error {
	fmt.Fprintf(d.out, `
the cluster and headroomd keep running (DEMO_KEEP=1 / --keep):
  export KUBECONFIG=%s
  kubectl get nodes -L topology.kubernetes.io/zone; kubectl -n %s get pods
  headroomd metrics: %s   plan: %s/debug/plan
  stop it: Ctrl-C here, or kill %d
`, d.c.KubeconfigPath, controllerNS, d.metrics, d.probe, os.Getpid())
	<-ctx.Done()
	return nil
}

// waitFor polls cond every 500ms until it is true, fails, or timeout passes.
func waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// scrape reads the samples of the named metrics from a Prometheus text endpoint,
// keyed by name and label set ("name" alone for unlabelled samples).
func scrape(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if !strings.HasPrefix(line, n+"{") && !strings.HasPrefix(line, n+" ") {
				continue
			}
			i := strings.LastIndex(line, " ")
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				m[line[:i]] = v
			}
		}
	}
	return m, sc.Err()
}

// workload creates the inference Deployment and its ScaledObject on the Redis list ns.
func (d *demo) workload(ctx context.Context, ns string, covered bool) error {
	if err := d.c.EnsureNamespace(ctx, ns, nil); err != nil {
		return err
	}
	zero := int32(0)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: appName, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": appName}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": appName}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{
						Name: "vllm", Image: "registry.example/llama2-70b-vllm:demo",
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("16"), corev1.ResourceMemory: resource.MustParse("200Gi")},
							Limits:   corev1.ResourceList{localcluster.GPUResource: *resource.NewQuantity(gpusPerReplica, resource.DecimalSI)},
						},
					}},
				},
			},
		},
	}
	if _, err := d.c.Kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Deployment %s/%s: %w", ns, appName, err)
	}
	// KEDA and HPA timings compressed as the trace is, where they matter:
	// scale-down stabilisation 5 min of trace time, scale-up at most +100% or +4
	// pods per 15 s of trace time (the HPA defaults).
	minR, maxR, polling, cooldown := int32(1), int32(d.cfg.maxReplicas), int32(1), int32(30)
	window := int32(math.Max(1, math.Round(300/d.cfg.speed)))
	period := int32(math.Max(1, math.Round(15/d.cfg.speed)))
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	so := &kedav1alpha1.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{Name: appName, Namespace: ns, Annotations: map[string]string{headroom.AnnotationEnabled: strconv.FormatBool(covered)}},
		Spec: kedav1alpha1.ScaledObjectSpec{
			ScaleTargetRef:  &kedav1alpha1.ScaleTarget{Name: appName},
			PollingInterval: &polling, CooldownPeriod: &cooldown,
			MinReplicaCount: &minR, MaxReplicaCount: &maxR,
			Advanced: &kedav1alpha1.AdvancedConfig{HorizontalPodAutoscalerConfig: &kedav1alpha1.HorizontalPodAutoscalerConfig{
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
					ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window},
					ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: &maxPolicy, Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: period},
						{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: period},
					}},
				},
			}},
			Triggers: []kedav1alpha1.ScaleTriggers{{
				Type:     "redis",
				Metadata: map[string]string{"address": d.c.RedisAddr, "listName": ns, "listLength": strconv.Itoa(kedaTarget)},
			}},
		},
	}
	if _, err := d.c.KEDA.KedaV1alpha1().ScaledObjects(ns).Create(ctx, so, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating ScaledObject %s/%s: %w", ns, appName, err)
	}
	return nil
}

// reset removes a run's workload and waits until the stand-in autoscaler has
// removed its nodes, so the next run starts from the same empty cluster.
func (d *demo) reset(ctx context.Context, ns string) error {
	d.say("\nremoving the workload of the first run; waiting for its nodes to be scaled down (%s idle)...", d.cfg.unneeded)
	if err := d.c.KEDA.KedaV1alpha1().ScaledObjects(ns).Delete(ctx, appName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting ScaledObject %s/%s: %w", ns, appName, err)
	}
	if err := d.c.Kube.AppsV1().Deployments(ns).Delete(ctx, appName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Deployment %s/%s: %w", ns, appName, err)
	}
	if err := d.rdb.Del(ctx, ns).Err(); err != nil {
		return fmt.Errorf("deleting Redis list %s: %w", ns, err)
	}
	t0 := time.Now()
	err := waitFor(ctx, "the first run's nodes to be removed", 3*time.Minute+3*d.cfg.unneeded, func(ctx context.Context) (bool, error) {
		n, err := d.c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, fmt.Errorf("listing nodes: %w", err)
		}
		prov := 0
		for _, v := range d.c.Provisioner.Provisioning() {
			prov += v
		}
		return len(n.Items) == 0 && prov == 0, nil
	})
	if err == nil {
		d.say("cluster back to 0 GPU nodes in %s", time.Since(t0).Round(time.Second))
	}
	return err
}

// podRecord is one replica start: when the pod was created and bound.
type podRecord struct {
	created, bound, gone time.Time
}

// observation is one look at the cluster.
type observation struct {
	at       time.Time
	desired  int
	frame    Frame
	serving  int
	holdGPUs int64 // GPUs of running placeholders
	usable   int64 // allocatable GPUs of usable nodes
	used     int64 // GPUs of pods bound to usable nodes
}

func gpuLimit(p *corev1.Pod) int64 {
	var n int64
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Limits[localcluster.GPUResource]; ok {
			n += q.Value()
		}
	}
	return n
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// observe reads pods, placeholders, nodes and the HPA, and updates the replica
// starts of pods created at or after since.
func (d *demo) observe(ctx context.Context, ns string, since time.Time, recs map[string]*podRecord) (*observation, error) {
	o := &observation{at: time.Now()}
	nodes, err := d.c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	pods, err := d.c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + appName})
	if err != nil {
		return nil, fmt.Errorf("listing pods of %s: %w", ns, err)
	}
	holders, err := d.c.Kube.CoreV1().Pods(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: headroom.LabelComponent + "=" + headroom.ComponentValue})
	if err != nil {
		return nil, fmt.Errorf("listing placeholders: %w", err)
	}
	if hpa, err := d.c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "keda-hpa-"+appName, metav1.GetOptions{}); err == nil {
		o.desired = int(hpa.Status.DesiredReplicas)
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading KEDA's HPA: %w", err)
	}
	scarce := map[string]bool{}
	if d.metrics != "" {
		if m, err := scrape(ctx, d.metrics, "headroom_scarce_zone"); err == nil {
			for k, v := range m {
				if i := strings.Index(k, `zone="`); i >= 0 && v > 0 {
					z := k[i+6:]
					scarce[z[:strings.Index(z, `"`)]] = true
				}
			}
		}
	}
	rows := map[string]*ZoneRow{}
	for _, z := range d.cfg.zones {
		rows[z] = &ZoneRow{Zone: z, Known: d.metrics != "", Scarce: scarce[z]}
	}
	row := func(z string) *ZoneRow {
		if rows[z] == nil {
			rows[z] = &ZoneRow{Zone: z, Known: d.metrics != ""}
		}
		return rows[z]
	}
	nodeZone, usable := map[string]string{}, map[string]bool{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		q := n.Status.Allocatable[localcluster.GPUResource]
		nodeZone[n.Name] = n.Labels[localcluster.ZoneLabel]
		if localcluster.NodeSchedulable(n) && q.Value() > 0 && n.DeletionTimestamp == nil {
			usable[n.Name] = true
			o.usable += q.Value()
			row(n.Labels[localcluster.ZoneLabel]).Nodes++
		}
	}
	for g, n := range d.c.Provisioner.Provisioning() {
		row(d.zoneOf[g]).Provisioning += n
	}
	seen := map[string]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		seen[string(p.UID)] = true
		if !p.CreationTimestamp.Time.Before(since) {
			r := recs[string(p.UID)]
			if r == nil {
				r = &podRecord{created: p.CreationTimestamp.Time}
				recs[string(p.UID)] = r
			}
			if sc := condition(p, corev1.PodScheduled); r.bound.IsZero() && sc != nil && sc.Status == corev1.ConditionTrue && p.Spec.NodeName != "" {
				r.bound = sc.LastTransitionTime.Time
			}
		}
		if p.Spec.NodeName == "" {
			o.frame.Pending++
			continue
		}
		if usable[p.Spec.NodeName] {
			o.used += gpuLimit(p)
		}
		zr := row(nodeZone[p.Spec.NodeName])
		zr.Replicas++
		if rc := condition(p, corev1.PodReady); p.Status.Phase == corev1.PodRunning && rc != nil && rc.Status == corev1.ConditionTrue &&
			o.at.Sub(rc.LastTransitionTime.Time) >= d.cfg.modelLoad {
			zr.Serving++
			o.serving++
		}
	}
	for uid, r := range recs {
		if !seen[uid] && r.bound.IsZero() && r.gone.IsZero() {
			r.gone = o.at // deleted while pending
		}
	}
	for i := range holders.Items {
		p := &holders.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		zr := row(p.Labels[headroom.LabelZone])
		if p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning {
			zr.Placeholders++
			o.holdGPUs += gpuLimit(p)
			if usable[p.Spec.NodeName] {
				o.used += gpuLimit(p)
			}
		} else {
			zr.PendingHolders++
		}
	}
	zs := make([]string, 0, len(rows))
	for z := range rows {
		zs = append(zs, z)
	}
	sort.Strings(zs)
	for _, z := range zs {
		o.frame.Zones = append(o.frame.Zones, *rows[z])
	}
	o.desired = max(o.desired, 0)
	o.frame.Desired = o.desired
	return o, nil
}

// draw shows a frame: redrawn in place on a terminal, one line otherwise.
func (d *demo) draw(f Frame) {
	if !d.tty {
		fmt.Fprintln(d.out, f.Line())
		d.logf("%s", f.Line())
		return
	}
	if d.lines > 0 {
		fmt.Fprintf(d.out, "\x1b[%dA\x1b[J", d.lines)
	}
	t := f.Table()
	fmt.Fprint(d.out, t)
	d.lines = strings.Count(t, "\n")
	d.logf("%s", f.Line())
}

// runOnce deploys the workload, waits for the starting state (one ready replica;
// with headroom, a running placeholder per zone), replays the trace and measures.
func (d *demo) runOnce(ctx context.Context, name, kind, ns string, covered bool) (*RunResult, error) {
	d.say("\n== run %s: namespace %s, ScaledObject %s=%t", name, ns, headroom.AnnotationEnabled, covered)
	if err := d.workload(ctx, ns, covered); err != nil {
		return nil, err
	}
	what := "the first replica to be ready"
	if covered {
		what += " and a running placeholder in every zone"
	}
	d.say("waiting for %s (nodes take %s + %s)...", what, d.cfg.provision, d.cfg.gpuReady)
	t0 := time.Now()
	noRecs := map[string]*podRecord{}
	lastDraw := time.Time{}
	err := waitFor(ctx, what, 3*time.Minute+2*(d.cfg.provision+d.cfg.gpuReady), func(ctx context.Context) (bool, error) {
		o, err := d.observe(ctx, ns, time.Now().Add(time.Hour), noRecs)
		if err != nil {
			return false, err
		}
		o.frame.Run, o.frame.Span, o.frame.Speed = name+" (setup)", d.replay.Span, d.cfg.speed
		if time.Since(lastDraw) >= d.cfg.refresh {
			d.draw(o.frame)
			lastDraw = time.Now()
		}
		if o.serving < 1 {
			return false, nil
		}
		if covered {
			for _, z := range o.frame.Zones {
				if z.Placeholders < 1 {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	d.say("ready after %s; replaying %s of trace in %s", time.Since(t0).Round(time.Second), clock(d.replay.Span), d.replay.Wall().Round(time.Second))
	return d.replayRun(ctx, name, kind, ns)
}

func (d *demo) replayRun(ctx context.Context, name, kind, ns string) (*RunResult, error) {
	res := &RunResult{Name: name, Kind: kind, Speed: d.cfg.speed}
	recs := map[string]*podRecord{}
	start := time.Now()
	since := start.Truncate(time.Second) // API timestamps have second resolution
	items := make([]any, 0, 1024)
	var backlog, servedCarry float64
	pushedTicks := 0
	last := start
	lastDraw := time.Time{}
	t := time.NewTicker(d.cfg.tick)
	defer t.Stop()
	for {
		o, err := d.observe(ctx, ns, since, recs)
		if err != nil {
			return nil, err
		}
		now := o.at
		// Arrivals due by now (wall schedule, so a slow API call does not stretch the replay).
		due := min(int(now.Sub(start)/d.cfg.tick)+1, len(d.replay.Arrivals))
		arrivals := 0
		for ; pushedTicks < due; pushedTicks++ {
			arrivals += d.replay.Arrivals[pushedTicks]
		}
		if arrivals > 0 {
			items = items[:0]
			for range arrivals {
				items = append(items, "req")
			}
			if err := d.rdb.RPush(ctx, ns, items...).Err(); err != nil {
				return nil, fmt.Errorf("pushing %d requests to Redis: %w", arrivals, err)
			}
			res.Pushed += int64(arrivals)
		}
		dt := now.Sub(last)
		last = now
		var served float64
		backlog, served = d.server.Step(backlog, float64(arrivals), o.serving, d.trace(dt).Seconds(), 20)
		servedCarry += served
		if n := int64(servedCarry); n > 0 {
			if err := d.rdb.LTrim(ctx, ns, n, -1).Err(); err != nil {
				return nil, fmt.Errorf("popping %d requests from Redis: %w", n, err)
			}
			servedCarry -= float64(n)
			res.Served += n
		}
		res.HeadroomGPUSeconds += float64(o.holdGPUs) * dt.Seconds()
		res.IdleGPUSeconds += float64(max(o.usable-o.used, 0)) * dt.Seconds()
		queue, err := d.rdb.LLen(ctx, ns).Result()
		if err != nil {
			return nil, fmt.Errorf("reading the queue length: %w", err)
		}
		at := d.trace(now.Sub(start))
		res.Series = append(res.Series, sim.Point{At: at, Demand: float64(o.desired), Desired: float64(o.desired), Ready: float64(o.serving),
			Headroom: float64(o.holdGPUs) / gpusPerReplica, Capacity: float64(o.usable) / gpusPerReplica, QueueDepth: float64(queue)})
		f := o.frame
		f.Run, f.At, f.Span, f.Speed, f.Queue = name, min(at, d.replay.Span), d.replay.Span, d.cfg.speed, queue
		ended := now.Sub(start) >= d.replay.Wall()
		if ended || time.Since(lastDraw) >= d.cfg.refresh {
			d.draw(f)
			lastDraw = time.Now()
		}
		if ended {
			res.Left = queue
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	end := time.Now()
	for _, r := range recs {
		switch {
		case !r.bound.IsZero():
			res.Waits = append(res.Waits, r.bound.Sub(r.created))
		case !r.gone.IsZero():
			res.Waits = append(res.Waits, r.gone.Sub(r.created))
		default:
			res.Waits = append(res.Waits, end.Sub(r.created))
		}
	}
	starts, waited, p50, longest := res.Stats(d.cfg.waitThreshold)
	d.say("run %s done: %d replica starts, %d waited for a node (p50 %s, max %s of trace time), headroom %.1f GPU-h",
		name, starts, waited, fmtWait(p50, waited), fmtWait(longest, waited), res.HeadroomGPUHours())
	return res, nil
}

// report writes the plot and the summary.
func (d *demo) report(runs []*RunResult) error {
	rep := &sim.Report{
		Trace: fmt.Sprintf("gpu-headroom demo, %s minutes %s-%s x%g, replayed %gx faster", d.replay.Name,
			clock(d.replay.From), clock(d.replay.From+d.replay.Span), d.replay.Scale, d.cfg.speed),
		Span: d.replay.Span, Tick: d.trace(d.cfg.tick), Requests: int64(d.replay.Requests()), Zones: d.cfg.zones, Seed: d.cfg.seed,
	}
	for _, r := range runs {
		rep.Results = append(rep.Results, r.simResult(d.cfg.waitThreshold))
	}
	plot := filepath.Join(d.cfg.out, "demo.svg")
	for path, write := range map[string]func(io.Writer, *sim.Report) error{plot: sim.WriteSVG, filepath.Join(d.cfg.out, "demo.png"): sim.WritePNG} {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("creating %s: %w", path, err)
		}
		if err := write(f, rep); err != nil {
			f.Close()
			return fmt.Errorf("drawing %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	info := SummaryInfo{
		Trace: fmt.Sprintf("%s minutes %s-%s, rate x%g", d.replay.Name, clock(d.replay.From), clock(d.replay.From+d.replay.Span), d.replay.Scale),
		Speed: d.cfg.speed, Threshold: d.cfg.waitThreshold,
		Delays: fmt.Sprintf("node provisioning %s + GPUs allocatable %s, model load %s (trace time)",
			d.trace(d.cfg.provision), d.trace(d.cfg.gpuReady), d.trace(d.cfg.modelLoad)),
		Metrics: d.metrics, Plot: plot + " (and demo.png)", Kept: d.cfg.keep,
	}
	d.lines = 0
	sf, err := os.Create(filepath.Join(d.cfg.out, "summary.txt"))
	if err != nil {
		return fmt.Errorf("creating the summary file: %w", err)
	}
	defer sf.Close()
	return WriteSummary(io.MultiWriter(d.out, sf, d.log), runs, info)
}
