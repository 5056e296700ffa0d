package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/util/retry"

	"github.com/gpu-headroom/gpu-headroom/forecast"
	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/controller"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// slowNodes makes node provisioning take several seconds, so waiting for a node
// is visible next to starting on a warm one.
func slowNodes() *localcluster.ProvisionerOptions {
	return &localcluster.ProvisionerOptions{
		ScanInterval:   500 * time.Millisecond,
		ProvisionDelay: 4 * time.Second,
		GPUReadyDelay:  3 * time.Second,
		UnneededTime:   4 * time.Second,
	}
}

const floorsConfig = `
cooldown: 10s
zones:
  zone-a: {min: 8, max: 32}
  zone-b: {min: 8, max: 32}
`

// deployScaled creates an 8-GPU Deployment and its ScaledObject on a Redis list;
// covered sets the opt-in annotation to "true" or "false".
func deployScaled(t *testing.T, c *localcluster.Cluster, ns, name string, covered bool) {
	t.Helper()
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, inferenceDeployment(ns, name, 8), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	so := scaledObject(ns, name, c.RedisAddr, ns+"-"+name, 0, 6)
	so.Annotations = map[string]string{headroom.AnnotationEnabled: fmt.Sprint(covered)}
	if _, err := c.KEDA.KedaV1alpha1().ScaledObjects(ns).Create(ctx, so, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ScaledObject: %v", err)
	}
}

// growQueue pushes items in two steps (1 replica, then 3) and returns how long
// each replica waited to be scheduled.
func growQueue(t *testing.T, c *localcluster.Cluster, rdb *redis.Client, ns, name string) []time.Duration {
	t.Helper()
	ctx := context.Background()
	list := ns + "-" + name
	for _, step := range []struct{ items, replicas int }{{5, 1}, {10, 3}} {
		items := make([]any, step.items)
		for i := range items {
			items[i] = "req"
		}
		if err := rdb.RPush(ctx, list, items...).Err(); err != nil {
			t.Fatalf("pushing to redis: %v", err)
		}
		eventually(t, 3*time.Minute, fmt.Sprintf("%s/%s at %d ready replicas", ns, name, step.replicas), func(ctx context.Context) (bool, string) {
			d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Status.ReadyReplicas >= int32(step.replicas), fmt.Sprintf("spec=%d ready=%d", *d.Spec.Replicas, d.Status.ReadyReplicas)
		})
	}
	pods, err := podsOf(ctx, c.Kube, ns, map[string]string{"app": name})
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	for i := range pods {
		if w, ok := scheduleWait(&pods[i]); ok {
			waits = append(waits, w)
		}
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	return waits
}

// Grow the queue: KEDA raises desired replicas; with headroomd the new replicas
// preempt placeholders on warm nodes and start at once, and placeholders refill
// behind them; without it every new replica waits for a node. Same queue pattern,
// same run.
func TestHeadroomdWarmNodesCutReplicaWait(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		KEDA: true, Redis: true,
		NodeGroups:  localcluster.H100Zones([]string{"zone-a", "zone-b"}, 0, 4),
		Provisioner: slowNodes(),
	})
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr})
	defer rdb.Close()

	// Without headroom.
	deployScaled(t, c, "plain", "llm", false)
	plain := growQueue(t, c, rdb, "plain", "llm")
	if err := c.KEDA.KedaV1alpha1().ScaledObjects("plain").Delete(ctx, "llm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Kube.AppsV1().Deployments("plain").Delete(ctx, "llm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the plain run's nodes scaled down", func(ctx context.Context) (bool, string) {
		n, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(n.Items) == 0, fmt.Sprint(len(n.Items), " nodes")
	})

	// With headroom: floors keep one warm 8-GPU node per zone, demand adds more.
	if err := c.EnsureNamespace(ctx, controllerNS, nil); err != nil {
		t.Fatal(err)
	}
	setConfig(t, c, floorsConfig)
	h := startHeadroomd(t, c, "a")
	deployScaled(t, c, "warm", "llm", true)
	eventually(t, 2*time.Minute, "a running placeholder in each zone", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] >= 1 && m["zone-b"] >= 1, fmt.Sprint(m, err)
	})
	warm := growQueue(t, c, rdb, "warm", "llm")
	t.Logf("replica wait to be scheduled, same queue pattern (1 then 3 replicas of 8 GPUs, node provisioning %s + %s):",
		slowNodes().ProvisionDelay, slowNodes().GPUReadyDelay)
	t.Logf("  without headroom: %v", plain)
	t.Logf("  with headroomd:   %v", warm)
	if len(plain) < 3 || len(warm) < 3 {
		t.Fatalf("expected 3 scheduled replicas each, got %v and %v", plain, warm)
	}
	if plain[0] < 5*time.Second {
		t.Errorf("without headroom the fastest replica waited %s; expected to wait for a node (>= 5s)", plain[0])
	}
	if warm[1] > 2*time.Second {
		t.Errorf("with headroom at least two replicas should start on warm nodes (<= 2s); waits %v", warm)
	}
	if median(warm) >= median(plain) {
		t.Errorf("median wait with headroom %s not below without %s", median(warm), median(plain))
	}
	eventually(t, time.Minute, "preemptions counted", func(ctx context.Context) (bool, string) {
		v, err := h.metric(ctx, "headroom_placeholder_preemptions_total")
		return err == nil && v >= 1, fmt.Sprint(v, err)
	})
	eventually(t, 2*time.Minute, "placeholders refilled behind the preempting replicas", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] >= 1 && m["zone-b"] >= 1, fmt.Sprint(m, err)
	})
}

func median(d []time.Duration) time.Duration { return d[len(d)/2] }

// Two replicas and a restart: only the leader writes, a new leader adopts the
// placeholders (no duplicate, none deleted); a bad ConfigMap edit changes
// nothing and says why in an Event; a good edit changes headroom without a
// restart.
func TestHeadroomdLeaderHandoverAndConfigEdits(t *testing.T) {
	c, ctx := controllerCluster(t, localcluster.H100Zones([]string{"zone-a", "zone-b"}, 0, 4), fastProvisioner(), floorsConfig)
	deployScaled(t, c, "team", "llm", true)
	a := startHeadroomd(t, c, "a")
	eventually(t, 2*time.Minute, "two placeholder sets with a running pod each", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] == 1 && m["zone-b"] == 1, fmt.Sprint(m, err)
	})
	before, err := placeholderSets(ctx, c)
	if err != nil || len(before) != 2 {
		t.Fatalf("placeholder sets = %v (err %v), want 2", keys(before), err)
	}
	b := startHeadroomd(t, c, "b")
	eventually(t, time.Minute, "b up as a follower", func(ctx context.Context) (bool, string) {
		la, err1 := a.metric(ctx, "headroom_leader")
		lb, err2 := b.metric(ctx, "headroom_leader")
		return err1 == nil && err2 == nil && la == 1 && lb == 0, fmt.Sprint(la, lb, err1, err2)
	})
	if v, _ := b.metric(ctx, "headroom_placeholder_actions_total"); v != 0 {
		t.Fatalf("follower wrote %v placeholder actions", v)
	}
	a.stop()
	eventually(t, time.Minute, "b leads and reconciled", func(ctx context.Context) (bool, string) {
		lb, err1 := b.metric(ctx, "headroom_leader")
		ts, err2 := b.metric(ctx, "headroom_last_successful_reconcile_timestamp_seconds")
		return err1 == nil && err2 == nil && lb == 1 && ts > 0, fmt.Sprint(lb, ts, err1, err2)
	})
	assertSameSets(t, c, before)
	if v, _ := b.metric(ctx, "headroom_placeholder_actions_total"); v != 0 {
		t.Fatalf("new leader wrote %v actions instead of adopting the placeholders", v)
	}

	// A bad edit: min above max.
	setConfig(t, c, "zones:\n  zone-a: {min: 64, max: 8}\n")
	eventually(t, time.Minute, "InvalidConfig event on the ConfigMap", func(ctx context.Context) (bool, string) {
		evs, err := c.Kube.CoreV1().Events(controllerNS).List(ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.kind": "ConfigMap", "reason": "InvalidConfig"}.String()})
		if err != nil || len(evs.Items) == 0 {
			return false, fmt.Sprint(err)
		}
		return strings.Contains(evs.Items[0].Message, "min"), evs.Items[0].Message
	})
	eventually(t, 30*time.Second, "config_valid 0", func(ctx context.Context) (bool, string) {
		v, err := b.metric(ctx, "headroom_config_valid")
		return err == nil && v == 0, fmt.Sprint(v, err)
	})
	// Two more passes with the bad config in place must leave headroom as it was.
	ts0, _ := b.metric(ctx, "headroom_last_successful_reconcile_timestamp_seconds")
	eventually(t, 30*time.Second, "two more reconciles", func(ctx context.Context) (bool, string) {
		ts, err := b.metric(ctx, "headroom_last_successful_reconcile_timestamp_seconds")
		return err == nil && ts >= ts0+3, fmt.Sprint(ts, err)
	})
	assertSameSets(t, c, before)

	// A good edit: more floor in zone-a, applied without a restart.
	setConfig(t, c, "cooldown: 10s\nzones:\n  zone-a: {min: 16, max: 32}\n  zone-b: {min: 8, max: 32}\n")
	eventually(t, time.Minute, "zone-a placeholders scaled to 2", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] == 2 && m["zone-b"] == 1, fmt.Sprint(m, err)
	})
	after, _ := placeholderSets(ctx, c)
	if len(after) != 2 {
		t.Fatalf("placeholder sets after edit = %v, want the same 2", keys(after))
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// assertSameSets checks that the placeholder ReplicaSets are the same objects
// (names, UIDs) with the same replicas as before.
func assertSameSets(t *testing.T, c *localcluster.Cluster, before map[string]appsv1.ReplicaSet) {
	t.Helper()
	now, err := placeholderSets(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(now) != len(before) {
		t.Fatalf("placeholder sets changed: before %v, now %v", keys(before), keys(now))
	}
	for name, b := range before {
		n, ok := now[name]
		if !ok || n.UID != b.UID || *n.Spec.Replicas != *b.Spec.Replicas {
			t.Fatalf("placeholder set %s changed (deleted, recreated or scaled)", name)
		}
	}
}

// A zone at max size: its placeholder stays Pending, the zone is marked scarce for
// the shape (Event, metric), its placeholders are released at once; a node
// arriving in the zone clears the mark.
func TestHeadroomdMarksScarceZone(t *testing.T) {
	groups := localcluster.H100Zones([]string{"zone-a", "zone-b"}, 1, 4)
	groups[0].MaxSize = 1
	c := localcluster.StartT(t, localcluster.Options{KEDA: true, Redis: true, NodeGroups: groups, Provisioner: fastProvisioner()})
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, controllerNS, nil); err != nil {
		t.Fatal(err)
	}
	// zone-a's only node is full with real work.
	createPod(t, c.Kube, "default", "filler", gpuPodSpec(8, "zone-a", ""))
	eventually(t, time.Minute, "filler running", func(ctx context.Context) (bool, string) {
		p, s := podState(ctx, c.Kube, "default", "filler")
		return running(p), s
	})
	setConfig(t, c, floorsConfig+"scarcity: {pendingThreshold: 3s, initialBackoff: 10m, maxBackoff: 30m}\n")
	deployScaled(t, c, "team", "llm", true)
	h := startHeadroomd(t, c, "a")
	eventually(t, 2*time.Minute, "zone-a marked scarce", func(ctx context.Context) (bool, string) {
		v, err := h.metric(ctx, "headroom_scarce_zone", "zone", "zone-a")
		return err == nil && v == 1, fmt.Sprint(v, err)
	})
	eventually(t, time.Minute, "ZoneScarce event", func(ctx context.Context) (bool, string) {
		evs, err := c.Kube.CoreV1().Events(controllerNS).List(ctx, metav1.ListOptions{FieldSelector: "reason=ZoneScarce"})
		if err != nil || len(evs.Items) == 0 {
			return false, fmt.Sprint(err)
		}
		return strings.Contains(evs.Items[0].InvolvedObject.Name, "zone-a"), evs.Items[0].Message
	})
	eventually(t, time.Minute, "zone-a placeholders released, zone-b's running", func(ctx context.Context) (bool, string) {
		sets, err := placeholderSets(ctx, c)
		if err != nil {
			return false, err.Error()
		}
		m, _ := runningPlaceholders(ctx, c)
		for name, rs := range sets {
			if rs.Labels[headroom.LabelZone] == "zone-a" && *rs.Spec.Replicas > 0 {
				return false, name + " still wants placeholders"
			}
		}
		return m["zone-b"] >= 1, fmt.Sprint(m)
	})
	if v, _ := h.metric(ctx, "headroom_scarce_zone", "zone", "zone-b"); v != 0 {
		t.Fatalf("zone-b marked scarce too")
	}
	// A node arrives in zone-a (capacity came back): the mark clears.
	if _, err := c.AddNode(ctx, groups[0], "h100-zone-a-extra", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "zone-a mark cleared", func(ctx context.Context) (bool, string) {
		v, err := h.metric(ctx, "headroom_scarce_zone", "zone", "zone-a")
		return err == nil && v == 0, fmt.Sprint(v, err)
	})
}

// Paused and fallback ScaledObjects: a paused one is planned at its paused replica
// count; one whose scaler fails (KEDA's Fallback condition) is reported as not
// genuine demand and its last good demand is held.
func TestHeadroomdPausedAndFallback(t *testing.T) {
	c, ctx := controllerCluster(t, localcluster.H100Zones([]string{"zone-a"}, 1, 4), fastProvisioner(), "cooldown: 10s\n")
	deployScaled(t, c, "team", "paused", true)
	updateScaledObject(t, c, "team", "paused", func(so *kedav1alpha1.ScaledObject) {
		so.Annotations["autoscaling.keda.sh/paused-replicas"] = "2"
	})
	// A scaler whose every poll fails (its key holds a string, not a list: Redis
	// answers WRONGTYPE), with KEDA's fallback configured.
	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr})
	defer rdb.Close()
	if err := rdb.Set(ctx, "team-broken", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	deployScaled(t, c, "team", "broken", true)
	updateScaledObject(t, c, "team", "broken", func(so *kedav1alpha1.ScaledObject) {
		so.Spec.Fallback = &kedav1alpha1.Fallback{FailureThreshold: 1, Replicas: 1}
		// KEDA applies fallback through the HPA, which only runs at 1+ replicas.
		one := int32(1)
		so.Spec.MinReplicaCount = &one
	})
	h := startHeadroomd(t, c, "a")
	eventually(t, 2*time.Minute, "plan reports paused and fallback", func(ctx context.Context) (bool, string) {
		rep, err := h.plan(ctx)
		if err != nil {
			return false, err.Error()
		}
		states := map[string]string{}
		reasons := map[string]string{}
		for _, w := range rep.Workloads {
			states[w.Name] = string(w.State)
			reasons[w.Name] = rep.Demand[w.Key()].Reason
		}
		ok := states["paused"] == string(keda.StatePaused) && strings.Contains(reasons["paused"], "paused 2") &&
			states["broken"] == string(keda.StateFallback)
		return ok, fmt.Sprintf("states=%v reasons=%v", states, reasons)
	})
	// The paused workload's two replicas need 16 GPUs; one node is warm: the
	// plan asks for placeholders for what is not yet ready, and KEDA keeps the
	// Deployment at 2.
	eventually(t, 2*time.Minute, "paused workload at 2 ready replicas, demand settles to 0", func(ctx context.Context) (bool, string) {
		d, err := c.Kube.AppsV1().Deployments("team").Get(ctx, "paused", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		v, err := h.metric(ctx, "headroom_workload_demand_replicas", "scaledobject", "paused")
		return err == nil && d.Status.ReadyReplicas == 2 && v == 0, fmt.Sprintf("ready=%d demand=%v", d.Status.ReadyReplicas, v)
	})
}

// plan reads the controller's last plan from /debug/plan.
func (h *headroomd) plan(ctx context.Context) (*controller.Report, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.prb+"/debug/plan", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/debug/plan: %s", resp.Status)
	}
	var r controller.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding plan: %w", err)
	}
	return &r, nil
}

// updateScaledObject applies change, retrying on conflicts with KEDA's own writes.
func updateScaledObject(t *testing.T, c *localcluster.Cluster, ns, name string, change func(*kedav1alpha1.ScaledObject)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		so, err := c.KEDA.KedaV1alpha1().ScaledObjects(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(so)
		_, err = c.KEDA.KedaV1alpha1().ScaledObjects(ns).Update(context.Background(), so, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating ScaledObject %s/%s: %v", ns, name, err)
	}
}

// Scale to zero with a night schedule: while the schedule is active the floor is
// 0, the placeholders go after the cooldown and the stand-in autoscaler removes
// the nodes they kept.
func TestHeadroomdNightScheduleDropsHeadroomAndNodes(t *testing.T) {
	c := localcluster.StartT(t, localcluster.Options{
		KEDA: true, Redis: true,
		NodeGroups:  localcluster.H100Zones([]string{"zone-a", "zone-b"}, 0, 4),
		Provisioner: fastProvisioner(),
	})
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, controllerNS, nil); err != nil {
		t.Fatal(err)
	}
	day := "cooldown: 3s\nzones:\n  zone-a: {min: 8, max: 32}\n  zone-b: {min: 8, max: 32}\n"
	setConfig(t, c, day)
	deployScaled(t, c, "team", "llm", true) // min 0 and an empty queue: scaled to zero
	h := startHeadroomd(t, c, "a")
	eventually(t, 2*time.Minute, "daytime floors: a warm node per zone", func(ctx context.Context) (bool, string) {
		m, err := runningPlaceholders(ctx, c)
		return err == nil && m["zone-a"] == 1 && m["zone-b"] == 1, fmt.Sprint(m, err)
	})
	// A schedule window around the current time, so "night" is now.
	now := time.Now().UTC()
	night := fmt.Sprintf("schedules:\n  - name: night\n    timeZone: UTC\n    start: %q\n    end: %q\n    min: 0\n",
		now.Add(-time.Hour).Format("15:04"), now.Add(time.Hour).Format("15:04"))
	setConfig(t, c, day+night)
	eventually(t, time.Minute, "no placeholders at night", func(ctx context.Context) (bool, string) {
		v, err := h.metric(ctx, "headroom_placeholder_pods_desired")
		m, _ := runningPlaceholders(ctx, c)
		return err == nil && v == 0 && len(m) == 0, fmt.Sprint(v, m, err)
	})
	eventually(t, time.Minute, "GPU nodes scaled down", func(ctx context.Context) (bool, string) {
		n, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(n.Items) == 0, fmt.Sprint(len(n.Items), " nodes")
	})
}

// Restart without amnesia: with --forecast, the forecaster state is checkpointed
// to a ConfigMap and a restarted controller restores it before it plans.
func TestHeadroomdForecastCheckpointSurvivesRestart(t *testing.T) {
	c, ctx := controllerCluster(t, localcluster.H100Zones([]string{"zone-a"}, 1, 2), fastProvisioner(), "leadTime: 5m\n")
	deployScaled(t, c, "team", "llm", true)
	a := startHeadroomd(t, c, "a", "--forecast", "--checkpoint-interval=2s")
	eventually(t, time.Minute, "checkpoint ConfigMap holds the workload's forecaster", func(ctx context.Context) (bool, string) {
		cm, err := c.Kube.CoreV1().ConfigMaps(controllerNS).Get(ctx, "gpu-headroom-forecast", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		// The first checkpoints may predate KEDA's HPA (no forecast yet).
		cfg, _ := headroom.ParseConfig(nil)
		fc := forecast.DefaultConfig()
		fc.Quantile.Q = cfg.QuantileFor("")
		states, err := forecast.Unmarshal(cm.BinaryData["forecast.bin"], fc)
		return err == nil && len(states) == 1, fmt.Sprint(len(states), err)
	})
	a.stop()
	b := startHeadroomd(t, c, "b", "--forecast", "--checkpoint-interval=2s")
	eventually(t, time.Minute, "state restored on start", func(ctx context.Context) (bool, string) {
		data, err := os.ReadFile(b.log)
		return err == nil && strings.Contains(string(data), "restored forecaster state") && strings.Contains(string(data), `"workloads":1`), "log: " + b.log
	})
	// Corrupt state is discarded with a log line, never a crash.
	b.stop()
	cm, err := c.Kube.CoreV1().ConfigMaps(controllerNS).Get(ctx, "gpu-headroom-forecast", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.BinaryData["forecast.bin"] = []byte("garbage")
	if _, err := c.Kube.CoreV1().ConfigMaps(controllerNS).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := startHeadroomd(t, c, "d", "--forecast", "--checkpoint-interval=2s")
	eventually(t, time.Minute, "corrupt checkpoint discarded, controller reconciling", func(ctx context.Context) (bool, string) {
		data, _ := os.ReadFile(d.log)
		ts, err := d.metric(ctx, "headroom_last_successful_reconcile_timestamp_seconds")
		return strings.Contains(string(data), "discarding forecast checkpoint") && err == nil && ts > 0, fmt.Sprint(ts, err)
	})
}

// controllerCluster starts a cluster with KEDA, Redis, the node groups and the
// stand-in autoscaler, and makes the controller's namespace and ConfigMap.
func controllerCluster(t *testing.T, groups []localcluster.NodeGroup, prov *localcluster.ProvisionerOptions, config string) (*localcluster.Cluster, context.Context) {
	t.Helper()
	c := localcluster.StartT(t, localcluster.Options{KEDA: true, Redis: true, NodeGroups: groups, Provisioner: prov})
	ctx := context.Background()
	if err := c.EnsureNamespace(ctx, controllerNS, nil); err != nil {
		t.Fatal(err)
	}
	setConfig(t, c, config)
	return c, ctx
}
