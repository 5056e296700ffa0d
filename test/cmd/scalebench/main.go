// Command scalebench measures headroomd at scale on the real local control plane:
// it creates GPU nodes through kwok, KEDA ScaledObjects with their Deployments and
// HPAs, and pods bound to the nodes, then runs the headroomd binary against them
// and prints a table: informer sync time, reconcile duration (from headroomd's own
// histogram), resident memory, and the latency from a demand change (an HPA's
// desired replicas) to the placeholder ReplicaSet's change. `make bench` runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

func main() {
	nodes := flag.Int("nodes", 1000, "GPU nodes (8 GPUs each, over 3 zones)")
	workloads := flag.Int("workloads", 300, "KEDA-scaled workloads")
	pods := flag.Int("pods", 30000, "pods bound to the nodes (one per node takes its 8 GPUs, the rest ask for CPU only)")
	trials := flag.Int("trials", 10, "demand changes timed")
	bin := flag.String("headroomd", "bin/headroomd", "headroomd binary")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for headroomd only, as the chart sets it from the container's memory limit (e.g. 140MiB)")
	flag.Parse()
	if err := run(*nodes, *workloads, *pods, *trials, *bin, *memLimit); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

const ns = "bench"

func run(nNodes, nWorkloads, nPods, trials int, bin, memLimit string) error {
	ctx := context.Background()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }
	c, err := localcluster.Start(ctx, localcluster.Options{KEDACRDsOnly: true, Logf: logf,
		// The benchmark writes HPA status itself, as KEDA's HPA would have it.
		DisableControllers: []string{"horizontal-pod-autoscaler-controller"}})
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Stop(); err != nil {
			logf("stopping cluster: %v", err)
		}
	}()
	for _, n := range []string{ns, "gpu-headroom"} {
		if err := c.EnsureNamespace(ctx, n, nil); err != nil {
			return err
		}
	}
	zones := []string{"zone-a", "zone-b", "zone-c"}
	start := time.Now()
	err = parallel(nNodes, 16, func(i int) error {
		g := localcluster.NodeGroup{Name: "h100-" + zones[i%3], Zone: zones[i%3], GPUsPerNode: 8}
		_, err := c.AddNode(ctx, g, fmt.Sprintf("gpu-%05d", i), true)
		return err
	})
	if err != nil {
		return err
	}
	logf("%d nodes in %s", nNodes, time.Since(start).Round(time.Second))
	start = time.Now()
	err = parallel(nWorkloads, 16, func(i int) error { return createWorkload(ctx, c, i) })
	if err != nil {
		return err
	}
	logf("%d workloads in %s", nWorkloads, time.Since(start).Round(time.Second))
	start = time.Now()
	err = parallel(nPods, 32, func(i int) error {
		// The first pod of each node takes all 8 GPUs, so no free GPU covers
		// demand and every demand change moves placeholders. The pods carry a
		// label but are not the workloads' replicas (their Deployments stay at 0):
		// kwok marks 30,000 pods Ready over minutes, and not-Ready replicas count
		// as starting, which would cover the demand the benchmark times.
		gpus := int64(0)
		if i < nNodes {
			gpus = 8
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%05d", i), Namespace: ns, Labels: map[string]string{"filler": fmt.Sprintf("w-%03d", i%nWorkloads)}},
			Spec:       podSpec(gpus),
		}
		p.Spec.NodeName = fmt.Sprintf("gpu-%05d", i%nNodes)
		_, err := c.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return err
	}
	logf("%d pods in %s", nPods, time.Since(start).Round(time.Second))
	// Measure the steady state: kwok marks the pods Running and Ready over a few
	// minutes at this size, and until then every pass also counts them as
	// starting replicas.
	start = time.Now()
	for ready := readyPods(ctx, c); ready < nPods; ready = readyPods(ctx, c) {
		if time.Since(start) > 10*time.Minute {
			logf("only %d of %d pods Ready after 10 minutes; measuring anyway", ready, nPods)
			break
		}
		time.Sleep(5 * time.Second) // listing 30,000 pods is not free: poll gently
	}
	logf("pods Ready after another %s", time.Since(start).Round(time.Second))

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gpu-headroom", Namespace: "gpu-headroom"},
		Data: map[string]string{headroom.ConfigDataKey: "cooldown: 1s\n"}}
	if _, err := c.Kube.CoreV1().ConfigMaps("gpu-headroom").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return err
	}
	mport, err := localcluster.FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	pport, err := localcluster.FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	var env []string
	if memLimit != "" {
		env = []string{"GOMEMLIMIT=" + memLimit}
	}
	start = time.Now()
	hd, err := localcluster.StartProcess("headroomd", bin, []string{"--kubeconfig=" + c.KubeconfigPath, "--namespace=gpu-headroom", "--budget-gpus=100000",
		"--resync=5s", "--leader-elect=false", "--enable-pprof", "--kube-api-qps=100", "--kube-api-burst=200",
		fmt.Sprintf("--metrics-addr=127.0.0.1:%d", mport), fmt.Sprintf("--probe-addr=127.0.0.1:%d", pport)}, env, c.LogDir)
	if err != nil {
		return err
	}
	defer func() { _ = hd.Stop(0) }() // measured already: no graceful exit needed
	logPath := hd.LogPath()
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	if err := waitUntil(3*time.Minute, func() bool { return scrape(metricsURL, "headroom_last_successful_reconcile_timestamp_seconds") > 0 }); err != nil {
		return fmt.Errorf("headroomd never reconciled (log %s): %w", logPath, err)
	}
	syncTime := time.Since(start)
	logf("headroomd synced and reconciled in %s", syncTime.Round(time.Millisecond))

	// Demand changes: one workload at a time asks for 1 more replica than ready;
	// time until the placeholder ReplicaSet of its zone and shape changes.
	var lat []time.Duration
	for i := 0; i < trials; i++ {
		w := fmt.Sprintf("w-%03d", (i*37)%nWorkloads)
		before := placeholderReplicas(ctx, c)
		t0 := time.Now()
		if err := setDesired(ctx, c, w, 1); err != nil {
			return err
		}
		if err := waitUntil(30*time.Second, func() bool { return placeholderReplicas(ctx, c) != before }); err != nil {
			return fmt.Errorf("placeholders did not follow demand of %s: %w", w, err)
		}
		lat = append(lat, time.Since(t0))
		if err := setDesired(ctx, c, w, 0); err != nil {
			return err
		}
		if err := waitUntil(30*time.Second, func() bool { return placeholderReplicas(ctx, c) == before }); err != nil {
			return fmt.Errorf("placeholders did not return after %s: %w", w, err)
		}
	}
	// Let resyncs and pod events drive more reconciles at full size.
	reconciles := scrape(metricsURL, "headroom_reconcile_duration_seconds_count")
	_ = waitUntil(2*time.Minute, func() bool { return scrape(metricsURL, "headroom_reconcile_duration_seconds_count") >= reconciles+20 })
	p50, p99, over, count := histQuantiles(metricsURL, "headroom_reconcile_duration_seconds")
	if out := os.Getenv("SCALEBENCH_CPUPROFILE"); out != "" {
		saveProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=20", pport), out, logf)
	}
	rss := rssBytes(hd.Pid())
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	fmt.Printf("\nheadroomd at scale on the local control plane (%d GPU nodes, %d workloads, %d pods)\n\n", nNodes, nWorkloads, nPods)
	fmt.Printf("| measure | value | target |\n|---|---|---|\n")
	fmt.Printf("| informer sync + first reconcile | %s | |\n", syncTime.Round(time.Millisecond))
	fmt.Printf("| reconcile p50 (histogram bucket bound, %d passes) | <= %s | |\n", int(count), p50)
	fmt.Printf("| reconcile p99 (histogram bucket bound) | <= %s | < 100ms |\n", p99)
	fmt.Printf("| reconcile passes over 100ms | %d of %d (%.1f%%) | <= 1%% |\n", int(over), int(count), 100*over/max(count, 1))
	fmt.Printf("| headroomd RSS (GOMEMLIMIT %q) | %.0f MiB | < 150 MiB |\n", memLimit, float64(rss)/(1<<20))
	fmt.Printf("| demand change -> placeholder change, p50 | %s | |\n", lat[len(lat)/2].Round(time.Millisecond))
	fmt.Printf("| demand change -> placeholder change, max | %s | < 1s |\n", lat[len(lat)-1].Round(time.Millisecond))
	return nil
}

func podSpec(gpus int64) corev1.PodSpec {
	s := corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), Containers: []corev1.Container{{
		Name: "main", Image: "registry.example/inference:1",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
	}}}
	if gpus > 0 {
		s.Containers[0].Resources.Limits = corev1.ResourceList{localcluster.GPUResource: *resource.NewQuantity(gpus, resource.DecimalSI)}
	}
	return s
}

// createWorkload makes a Deployment at 0 replicas, its ScaledObject (opted in)
// and the HPA KEDA would own, with status desiredReplicas 0.
func createWorkload(ctx context.Context, c *localcluster.Cluster, i int) error {
	name := fmt.Sprintf("w-%03d", i)
	zero := int32(0)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.Template.Spec = podSpec(1)
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating deployment %s: %w", name, err)
	}
	maxR := int32(10)
	so := &kedav1alpha1.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{headroom.AnnotationEnabled: "true"}},
		Spec: kedav1alpha1.ScaledObjectSpec{ScaleTargetRef: &kedav1alpha1.ScaleTarget{Name: name}, MaxReplicaCount: &maxR,
			Triggers: []kedav1alpha1.ScaleTriggers{{Type: "redis", Metadata: map[string]string{"address": "127.0.0.1:1", "listName": "q", "listLength": "5"}}}},
	}
	if _, err := c.KEDA.KedaV1alpha1().ScaledObjects(ns).Create(ctx, so, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating ScaledObject %s: %w", name, err)
	}
	one := int32(1)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "keda-hpa-" + name, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: &one, MaxReplicas: 10,
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}}}
	if _, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating HPA %s: %w", name, err)
	}
	return setDesired(ctx, c, name, 0)
}

func setDesired(ctx context.Context, c *localcluster.Cluster, name string, n int32) error {
	hpa, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "keda-hpa-"+name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	hpa.Status.DesiredReplicas, hpa.Status.CurrentReplicas = n, 0
	if _, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting desired replicas of %s: %w", name, err)
	}
	return nil
}

// readyPods counts the benchmark's pods whose Ready condition is True.
func readyPods(ctx context.Context, c *localcluster.Cluster) int {
	n := 0
	opts := metav1.ListOptions{Limit: 5000}
	for {
		l, err := c.Kube.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return n
		}
		for i := range l.Items {
			for _, cond := range l.Items[i].Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					n++
				}
			}
		}
		if l.Continue == "" {
			return n
		}
		opts.Continue = l.Continue
	}
}

// placeholderReplicas sums spec.replicas of the placeholder ReplicaSets.
func placeholderReplicas(ctx context.Context, c *localcluster.Cluster) int32 {
	l, err := c.Kube.AppsV1().ReplicaSets("gpu-headroom").List(ctx, metav1.ListOptions{LabelSelector: headroom.LabelManagedBy + "=" + headroom.ManagedByValue})
	if err != nil {
		return -1
	}
	var n int32
	for _, rs := range l.Items {
		n += *rs.Spec.Replicas
	}
	return n
}

func parallel(n, workers int, fn func(int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	return nil
}

// scrape returns the sum of the samples of a metric (0 when absent).
func scrape(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			sum += v
		}
	}
	return sum
}

// histQuantiles reads a histogram from a metrics page: the bucket bounds that
// hold its p50 and p99, how many observations were over 100 ms, and how many
// there were.
func histQuantiles(url, name string) (p50, p99 time.Duration, over100ms, count float64) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, 0, 0
	}
	defer resp.Body.Close()
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		le, _ := strconv.ParseFloat(line[i+4:i+4+j], 64)
		n, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		bs = append(bs, bucket{le, n})
	}
	if len(bs) == 0 {
		return 0, 0, 0, 0
	}
	count = bs[len(bs)-1].n
	q := func(f float64) time.Duration {
		for _, b := range bs {
			if b.n >= f*count {
				if math.IsInf(b.le, 1) {
					return -1
				}
				return time.Duration(b.le * float64(time.Second))
			}
		}
		return -1
	}
	over100ms = count
	for _, b := range bs {
		if b.le == 0.1 {
			over100ms = count - b.n
		}
	}
	return q(0.5), q(0.99), over100ms, count
}

// rssBytes reads VmRSS of a process.
func rssBytes(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// saveProfile fetches a CPU profile of headroomd into path.
func saveProfile(url, path string, logf func(string, ...any)) {
	resp, err := http.Get(url)
	if err != nil {
		logf("cpu profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		logf("cpu profile: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		logf("cpu profile: %v", err)
	}
}
