package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

const controllerNS = "gpu-headroom"

var (
	builtMu sync.Mutex
	built   = map[string]string{} // package -> binary, built once per test binary
)

// buildBinary builds a main package of the repository (e.g. "./cmd/headroomd")
// once per test binary and returns the binary's path.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gpu-headroom-bin-")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// headroomdBinary builds cmd/headroomd once per test binary.
func headroomdBinary(t *testing.T) string { return buildBinary(t, "./cmd/headroomd") }

// headroomd is one running controller process.
type headroomd struct {
	proc         *localcluster.Process
	log          string
	metrics, prb string
	done         <-chan struct{}
}

func startHeadroomd(t *testing.T, c *localcluster.Cluster, name string, extra ...string) *headroomd {
	t.Helper()
	bin := headroomdBinary(t)
	mp, pp := freeLoopbackPort(t), freeLoopbackPort(t)
	h := &headroomd{metrics: fmt.Sprintf("127.0.0.1:%d", mp), prb: fmt.Sprintf("127.0.0.1:%d", pp)}
	args := append([]string{"--kubeconfig=" + c.KubeconfigPath, "--namespace=" + controllerNS,
		"--metrics-addr=" + h.metrics, "--probe-addr=" + h.prb, "--resync=2s", "--budget-gpus=64"}, extra...)
	proc, err := localcluster.StartProcess("headroomd-"+name, bin, args, nil, c.LogDir)
	if err != nil {
		t.Fatal(err)
	}
	h.proc, h.log, h.done = proc, proc.LogPath(), proc.Done()
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			data, _ := os.ReadFile(h.log)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- last lines of %s:\n%s", h.log, strings.Join(lines, "\n"))
		}
	})
	return h
}

// stop sends SIGTERM, and SIGKILL after 15 s.
func (h *headroomd) stop() { _ = h.proc.Stop(15 * time.Second) }

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	port, err := localcluster.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// metric sums the samples of name whose label set contains every given pair.
func (h *headroomd) metric(ctx context.Context, name string, lbls ...string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.metrics+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return sumMetric(resp.Body, name, lbls...)
}

func sumMetric(r io.Reader, name string, lbls ...string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(lbls); i += 2 {
			if !strings.Contains(line, lbls[i]+`="`+lbls[i+1]+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, sc.Err()
}

// placeholderSets returns the placeholder ReplicaSets by name.
func placeholderSets(ctx context.Context, c *localcluster.Cluster) (map[string]appsv1.ReplicaSet, error) {
	l, err := c.Kube.AppsV1().ReplicaSets(controllerNS).List(ctx, metav1.ListOptions{LabelSelector: headroom.LabelManagedBy + "=" + headroom.ManagedByValue})
	if err != nil {
		return nil, err
	}
	m := map[string]appsv1.ReplicaSet{}
	for _, rs := range l.Items {
		m[rs.Name] = rs
	}
	return m, nil
}

// runningPlaceholders counts running placeholder pods per zone.
func runningPlaceholders(ctx context.Context, c *localcluster.Cluster) (map[string]int, error) {
	pods, err := podsOf(ctx, c.Kube, controllerNS, map[string]string{headroom.LabelComponent: headroom.ComponentValue})
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for i := range pods {
		if running(&pods[i]) {
			m[pods[i].Labels[headroom.LabelZone]]++
		}
	}
	return m, nil
}

func setConfig(t *testing.T, c *localcluster.Cluster, yaml string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gpu-headroom", Namespace: controllerNS},
		Data: map[string]string{headroom.ConfigDataKey: yaml}}
	_, err := c.Kube.CoreV1().ConfigMaps(controllerNS).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		_, err = c.Kube.CoreV1().ConfigMaps(controllerNS).Create(ctx, cm, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("writing headroom ConfigMap: %v", err)
	}
}

// inferenceDeployment is a KEDA-scaled GPU Deployment with gpus GPUs per pod.
func inferenceDeployment(ns, name string, gpus int64) *appsv1.Deployment {
	zero := int32(0)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		},
	}
	d.Spec.Template.Labels = map[string]string{"app": name}
	d.Spec.Template.Spec = gpuPodSpec(gpus, "", "")
	return d
}

// scheduleWait is how long a pod waited from creation until it was bound.
func scheduleWait(p *corev1.Pod) (time.Duration, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Sub(p.CreationTimestamp.Time), true
		}
	}
	return 0, false
}
