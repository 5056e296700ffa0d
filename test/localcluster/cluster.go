package localcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	kedaclient "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options says what to run. The zero value runs the Kubernetes control plane and
// kwok only.
type Options struct {
	// Dir holds certificates, etcd's data and every component's log. Empty: a new
	// temporary folder.
	Dir string
	// KEDA starts KEDA's operator and metrics adapter and installs its CRDs. It
	// needs root (for the veth link the adapter listens on).
	KEDA bool
	// KEDACRDsOnly installs KEDA's CRDs without running KEDA (benchmarks that
	// write ScaledObjects and HPAs themselves).
	KEDACRDsOnly bool
	// Redis starts a redis-server on a loopback port (RedisAddr).
	Redis bool
	// NodeGroups are the GPU node pools; their MinSize nodes are created ready at
	// start. With Provisioner set, the stand-in autoscaler manages them.
	NodeGroups []NodeGroup
	// Provisioner, if not nil, runs the stand-in for cluster-autoscaler.
	Provisioner *ProvisionerOptions
	// HPASyncPeriod is kube-controller-manager's HPA loop period (default 2s so
	// tests see KEDA's scaling in seconds; Kubernetes' default is 15s).
	HPASyncPeriod time.Duration
	// DisableControllers lists extra kube-controller-manager controllers to turn
	// off (e.g. "horizontal-pod-autoscaler-controller" for a benchmark that
	// writes HPA status itself).
	DisableControllers []string
	// Logf receives progress lines (nil: discarded).
	Logf func(format string, args ...any)
}

// Cluster is a running local cluster.
type Cluster struct {
	// Dir is the cluster's folder; LogDir holds one log file per component.
	Dir, LogDir string
	// KubeconfigPath is an admin kubeconfig (token auth, system:masters).
	KubeconfigPath string
	// Config is the admin REST config.
	Config *rest.Config
	// Kube, Dynamic and KEDA are admin clients.
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	KEDA    kedaclient.Interface
	// RedisAddr is host:port of the Redis server, when Options.Redis.
	RedisAddr string
	// Provisioner is the stand-in autoscaler, when Options.Provisioner is set.
	Provisioner *Provisioner
	// APIServerURL is the https address of kube-apiserver.
	APIServerURL string

	opts     Options
	bins     *binaries
	ca       *certAuthority
	token    string
	mu       sync.Mutex
	procs    []*process
	veth     *vethPair
	cancel   context.CancelFunc
	provDone chan struct{}
	stopped  bool
	etcdURL  string
}

// Start brings the cluster up and returns once every component answers. On error
// it stops whatever it had started.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.HPASyncPeriod == 0 {
		opts.HPASyncPeriod = 2 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "gpu-headroom-cluster-"); err != nil {
			return nil, fmt.Errorf("making cluster folder: %w", err)
		}
	}
	c = &Cluster{Dir: dir, LogDir: filepath.Join(dir, "logs"), opts: opts, bins: bins}
	for _, d := range []string{c.LogDir, c.path("pki"), c.path("etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("making %s: %w", d, err)
		}
	}
	cl := c // the named result is nil on error returns; stop what was started
	defer func() {
		if r := recover(); r != nil {
			_ = cl.Stop()
			panic(r)
		}
		if err != nil {
			if stopErr := cl.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
			err = fmt.Errorf("%w (component logs in %s)", err, cl.LogDir)
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"pki", c.writePKI},
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"kube-controller-manager", c.startControllerManager},
		{"kube-scheduler", c.startScheduler},
		{"kwok", c.startKwok},
	}
	if opts.KEDACRDsOnly && !opts.KEDA {
		steps = append(steps, struct {
			name string
			fn   func(context.Context) error
		}{"KEDA CRDs", c.installKEDACRDs})
	}
	if opts.Redis {
		steps = append(steps, struct {
			name string
			fn   func(context.Context) error
		}{"redis", c.startRedis})
	}
	if opts.KEDA {
		steps = append(steps, struct {
			name string
			fn   func(context.Context) error
		}{"keda", c.startKEDA})
	}
	steps = append(steps, struct {
		name string
		fn   func(context.Context) error
	}{"node groups", c.startNodeGroups})
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("starting %s: %w", s.name, err)
		}
		opts.Logf("localcluster: %s up in %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	return c, nil
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

func (c *Cluster) run(name, bin string, args []string, env ...string) (*process, error) {
	path, err := c.bins.path(bin)
	if err != nil {
		if path, err = lookPath(bin); err != nil {
			return nil, err
		}
	}
	p, err := startProcess(name, path, args, env, c.LogDir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// alive fails fast when a component died while the harness waits on it.
func alive(p *process, cond func(context.Context) (bool, error)) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		if done, err := p.exited(); done {
			return false, fmt.Errorf("%s exited (%v); see %s", p.name, err, p.logPath)
		}
		return cond(ctx)
	}
}

// waitAlive is waitFor that stops at once if the process died.
func waitAlive(ctx context.Context, p *process, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	var dead error
	err := waitFor(ctx, p.name+" to be ready", timeout, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		ok, err := alive(p, cond)(ctx)
		if err != nil && strings.Contains(err.Error(), " exited (") {
			dead = err
			return true, nil
		}
		return ok, err
	})
	if dead != nil {
		return dead
	}
	return err
}

func (c *Cluster) writePKI(context.Context) error {
	var err error
	if c.ca, err = newCA("gpu-headroom-localcluster-ca"); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("pki", "ca.crt"), c.ca.pem, 0o644); err != nil {
		return fmt.Errorf("writing CA: %w", err)
	}
	if _, _, err := c.ca.writeIssued(c.path("pki"), "apiserver", "kube-apiserver", nil,
		[]string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.0.0.1"}); err != nil {
		return err
	}
	front, err := newCA("front-proxy-ca")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.path("pki", "front-proxy-ca.crt"), front.pem, 0o644); err != nil {
		return fmt.Errorf("writing front-proxy CA: %w", err)
	}
	if _, _, err := front.writeIssued(c.path("pki"), "front-proxy-client", "front-proxy-client", nil, nil); err != nil {
		return err
	}
	if _, _, err := writeRSAKeyPair(c.path("pki")); err != nil {
		return err
	}
	c.token = randomToken()
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", c.token)
	if err := os.WriteFile(c.path("pki", "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return fmt.Errorf("writing token file: %w", err)
	}
	return nil
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	peer, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	p, err := c.run("etcd", "etcd", []string{
		"--name=default", "--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + clientURL, "--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		// A throwaway test store: skipping fsync keeps a 2-core machine responsive.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	})
	if err != nil {
		return err
	}
	c.opts.Logf("localcluster: etcd on %s", clientURL)
	c.etcdURL = clientURL
	return waitAlive(ctx, p, 60*time.Second, httpOK(clientURL+"/health", nil))
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	port, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	pki := func(f string) string { return c.path("pki", f) }
	p, err := c.run("kube-apiserver", "kube-apiserver", []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--advertise-address=127.0.0.1",
		// No kubernetes Service endpoints: they would carry a loopback address.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"),
		"--token-auth-file=" + pki("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// Aggregation, for KEDA's external metrics adapter.
		"--requestheader-client-ca-file=" + pki("front-proxy-ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--proxy-client-cert-file=" + pki("front-proxy-client.crt"),
		"--proxy-client-key-file=" + pki("front-proxy-client.key"),
		"--enable-aggregator-routing=true",
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	c.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := c.writeKubeconfig(); err != nil {
		return err
	}
	if err := waitAlive(ctx, p, 90*time.Second, httpOK(c.APIServerURL+"/readyz", c.Config)); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.APIServerURL, CertificateAuthority: c.path("pki", "ca.crt")}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: c.token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "admin"}
	cfg.CurrentContext = "local"
	c.KubeconfigPath = c.path("kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, c.KubeconfigPath); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = 200, 400
	c.Config = rc
	if c.Kube, err = kubernetes.NewForConfig(rc); err != nil {
		return fmt.Errorf("making kube client: %w", err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
		return fmt.Errorf("making dynamic client: %w", err)
	}
	if c.KEDA, err = kedaclient.NewForConfig(rc); err != nil {
		return fmt.Errorf("making KEDA client: %w", err)
	}
	return nil
}

// componentArgs are the flags every Kubernetes component shares here.
func (c *Cluster) componentArgs(port int) []string {
	return []string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--authentication-kubeconfig=" + c.KubeconfigPath,
		"--authorization-kubeconfig=" + c.KubeconfigPath,
		"--leader-elect=false",
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + c.path("pki"),
	}
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	port, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	controllers := "*,-node-ipam-controller,-kube-apiserver-serving-clustertrustbundle-publisher-controller"
	for _, d := range c.opts.DisableControllers {
		controllers += ",-" + d
	}
	args := append(c.componentArgs(port),
		// node-ipam needs a pod CIDR we do not have; the trust-bundle publisher
		// needs a feature this cluster does not turn on. The node lifecycle
		// controller stays on: it lifts the not-ready taint from new nodes.
		"--controllers="+controllers,
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+c.path("pki", "sa.key"),
		"--root-ca-file="+c.path("pki", "ca.crt"),
		"--horizontal-pod-autoscaler-sync-period="+c.opts.HPASyncPeriod.String(),
		"--profiling=false",
	)
	p, err := c.run("kube-controller-manager", "kube-controller-manager", args)
	if err != nil {
		return err
	}
	if err := waitAlive(ctx, p, 60*time.Second, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil)); err != nil {
		return err
	}
	// Pods are refused until the ServiceAccount controller made "default".
	return waitAlive(ctx, p, 60*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

func (c *Cluster) startScheduler(ctx context.Context) error {
	port, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	p, err := c.run("kube-scheduler", "kube-scheduler", c.componentArgs(port))
	if err != nil {
		return err
	}
	return waitAlive(ctx, p, 60*time.Second, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil))
}

// kwokNodeAnnotation marks the nodes kwok plays the kubelet for.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

func (c *Cluster) startKwok(ctx context.Context) error {
	stagesDir, err := c.bins.path("kwok-stages")
	if err != nil {
		return fmt.Errorf("kwok Stage files: %w (re-run `make cluster-bins`)", err)
	}
	entries, err := os.ReadDir(stagesDir)
	if err != nil {
		return fmt.Errorf("reading kwok stages: %w", err)
	}
	var cfg []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(stagesDir, e.Name()))
		if err != nil {
			return fmt.Errorf("reading kwok stage %s: %w", e.Name(), err)
		}
		cfg = append(cfg, strings.TrimSpace(string(data)))
	}
	cfgPath := c.path("kwok.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(cfg, "\n---\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing kwok config: %w", err)
	}
	port, err := FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	p, err := c.run("kwok", "kwok", []string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--config=" + cfgPath,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.96.0.1",
		// Node leases keep the node lifecycle controller from marking nodes
		// NotReady between kwok's status heartbeats.
		"--node-lease-duration-seconds=40",
		fmt.Sprintf("--server-address=127.0.0.1:%d", port),
	})
	if err != nil {
		return err
	}
	return waitAlive(ctx, p, 60*time.Second, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nil))
}

// httpOK returns a condition that is true when url answers 200. With rc set it
// authenticates as rc does; otherwise it skips TLS verification (health ports of
// components that serve self-signed certificates).
func httpOK(url string, rc *rest.Config) func(context.Context) (bool, error) {
	var client *http.Client
	return func(ctx context.Context) (bool, error) {
		if client == nil {
			if rc != nil {
				hc, err := rest.HTTPClientFor(rc)
				if err != nil {
					return false, err
				}
				client = hc
			} else {
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			}
			client.Timeout = 5 * time.Second
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return true, nil
	}
}

// Stop stops every component, newest first, and removes the network link. It is
// safe to call more than once and from a cleanup after a failure.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	procs := append([]*process(nil), c.procs...)
	c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
		if c.provDone != nil {
			<-c.provDone
		}
	}
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if c.veth != nil {
		if err := c.veth.delete(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pids returns the process (and process group) ids of the components, for checks
// that nothing is left after Stop.
func (c *Cluster) Pids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		m[p.name] = p.pid()
	}
	return m
}

// LinkNames returns the network links the harness made.
func (c *Cluster) LinkNames() []string {
	if c.veth == nil {
		return nil
	}
	return []string{c.veth.name, c.veth.peer}
}

// Leftovers lists processes and links of this cluster that still exist; empty
// after a clean Stop.
func (c *Cluster) Leftovers() []string {
	var left []string
	for name, pid := range c.Pids() {
		if processGroupAlive(pid) {
			left = append(left, name+" (pgid "+strconv.Itoa(pid)+")")
		}
	}
	for _, l := range c.LinkNames() {
		if linkExists(l) {
			left = append(left, "link "+l)
		}
	}
	return left
}

// EnsureNamespace creates a namespace if it does not exist.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string, labels map[string]string) error {
	_, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}
