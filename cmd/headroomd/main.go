// Command headroomd keeps warm GPU headroom for KEDA-scaled inference workloads:
// low-priority placeholder pods per zone that the cluster autoscaler must honour.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	kedaclient "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/gpu-headroom/gpu-headroom/headroom/controller"
	"github.com/gpu-headroom/gpu-headroom/headroom/placeholder"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type flags struct {
	kubeconfig, namespace, configMap, metricsAddr, probeAddr string
	budget                                                   int64
	dryRun, prepull, leaderElect, forecast, pprof            bool
	resync, checkpointInterval                               time.Duration
	priorityClass                                            string
	priorityValue                                            int
	createPriorityClass, allowPriorityOutside                bool
	pauseImage, ownerDeployment, leaseName, logLevel         string
	qps                                                      float64
	burst                                                    int
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("headroomd", flag.ContinueOnError)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig path (empty: in-cluster config)")
	fs.StringVar(&f.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace for placeholders, the ConfigMap, the Lease and Events (default $POD_NAMESPACE)")
	fs.StringVar(&f.configMap, "config-map", "gpu-headroom", "name of the headroom ConfigMap (key config.yaml) in --namespace")
	fs.Int64Var(&f.budget, "budget-gpus", 0, "hard cap on GPUs that placeholders may ever hold, cluster-wide (required; the ConfigMap can only lower it)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "compute and expose the plan, write nothing")
	fs.BoolVar(&f.forecast, "forecast", false, "plan for the forecast peak of each workload within its lead time (quantile and lead time from the ConfigMap) instead of the reactive need")
	fs.DurationVar(&f.checkpointInterval, "checkpoint-interval", time.Minute, "with --forecast: how often forecaster state is saved to the ConfigMap <config-map>-forecast")
	fs.BoolVar(&f.prepull, "prepull", false, "placeholders run the workload's own image (command replaced by sleep) so warm nodes hold the image")
	fs.StringVar(&f.pauseImage, "pause-image", placeholder.DefaultPauseImage, "image of placeholder pods when --prepull is off")
	fs.DurationVar(&f.resync, "resync", 30*time.Second, "reconcile at least this often, besides watch events")
	fs.StringVar(&f.priorityClass, "priority-class", "gpu-headroom-placeholder", "PriorityClass of placeholder pods")
	fs.IntVar(&f.priorityValue, "priority-value", int(placeholder.DefaultPriority), "value when the controller creates the PriorityClass (-10..-1)")
	fs.BoolVar(&f.createPriorityClass, "create-priority-class", true, "create the PriorityClass if it does not exist")
	fs.BoolVar(&f.allowPriorityOutside, "allow-priority-outside-range", false, "accept a placeholder priority outside -10..-1 (you must know why)")
	fs.StringVar(&f.ownerDeployment, "owner-deployment", "", "Deployment in --namespace that owns placeholder ReplicaSets, so deleting it (helm uninstall) removes them")
	fs.BoolVar(&f.leaderElect, "leader-elect", true, "elect a leader on a Lease; only the leader writes")
	fs.StringVar(&f.leaseName, "lease-name", "gpu-headroom", "name of the leader election Lease in --namespace")
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":8080", "address of the Prometheus /metrics endpoint")
	fs.StringVar(&f.probeAddr, "probe-addr", ":8081", "address of /healthz, /readyz and /debug/plan")
	fs.BoolVar(&f.pprof, "enable-pprof", false, "serve Go's /debug/pprof on --probe-addr (for profiling; keep the probe port private)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Float64Var(&f.qps, "kube-api-qps", 20, "client QPS to the API server")
	fs.IntVar(&f.burst, "kube-api-burst", 40, "client burst to the API server")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case f.namespace == "":
		return nil, errors.New("--namespace (or $POD_NAMESPACE) is required")
	case f.budget <= 0:
		return nil, errors.New("--budget-gpus must be set to a positive hard cap on placeholder GPUs")
	case f.budget > 100000:
		return nil, fmt.Errorf("--budget-gpus %d is absurd (max 100000)", f.budget)
	case f.resync < time.Second:
		return nil, fmt.Errorf("--resync %s is too short (min 1s)", f.resync)
	}
	if err := placeholder.ValidatePriority(int32(f.priorityValue), f.allowPriorityOutside); err != nil {
		return nil, err
	}
	return f, nil
}

func main() {
	f, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "headroomd:", err)
		os.Exit(2)
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "headroomd:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, f, log); err != nil {
		log.Error("headroomd stopped", zap.Error(err))
		os.Exit(1)
	}
	log.Info("headroomd stopped")
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

func restConfig(f *flags) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if f.kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("loading client config: %w", err)
	}
	rc.QPS, rc.Burst = float32(f.qps), f.burst
	rc.UserAgent = "headroomd/" + version
	return rc, nil
}

func run(ctx context.Context, f *flags, log *zap.Logger) error {
	rc, err := restConfig(f)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(controller.Protobuf(rc))
	if err != nil {
		return fmt.Errorf("making kube client: %w", err)
	}
	kc, err := kedaclient.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("making KEDA client: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := controller.NewMetrics(reg, version)

	var ctrl *controller.Controller
	ready := func() bool { return ctrl == nil || ctrl.Synced() }
	servers := startServers(f, reg, ready, func() *controller.Report {
		if ctrl == nil {
			return nil
		}
		return ctrl.LastReport()
	}, log)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
	}()

	bcast := record.NewBroadcaster(record.WithContext(ctx))
	bcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events(f.namespace)})
	defer bcast.Shutdown()
	recorder := bcast.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "headroomd"})

	lead := func(ctx context.Context) error {
		metrics.Leader.Set(1)
		defer metrics.Leader.Set(0)
		var owner *metav1.OwnerReference
		if f.ownerDeployment != "" && !f.dryRun {
			d, err := kube.AppsV1().Deployments(f.namespace).Get(ctx, f.ownerDeployment, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("getting owner Deployment %s: %w", f.ownerDeployment, err)
			}
			owner = &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID}
		}
		if !f.dryRun {
			v, err := placeholder.EnsurePriorityClass(ctx, kube, f.priorityClass, int32(f.priorityValue), f.createPriorityClass, f.allowPriorityOutside)
			if err != nil {
				return fmt.Errorf("placeholder PriorityClass: %w", err)
			}
			log.Info("placeholder PriorityClass ready", zap.String("name", f.priorityClass), zap.Int32("value", v))
		}
		inf := controller.NewInformers(kube, kc, f.namespace)
		var backend placeholder.Backend
		if !f.dryRun {
			backend = placeholder.NewReplicaSets(kube, placeholder.TemplateOptions{
				Namespace: f.namespace, PriorityClassName: f.priorityClass, PauseImage: f.pauseImage, Owner: owner,
			})
		}
		c, err := controller.New(controller.Options{
			Namespace: f.namespace, ConfigMapName: f.configMap, BudgetGPUs: f.budget, DryRun: f.dryRun,
			Resync: f.resync, Prepull: f.prepull, Forecast: f.forecast, CheckpointInterval: f.checkpointInterval,
		}, log, kube, inf, backend, recorder, metrics, nil, nil)
		if err != nil {
			return err
		}
		ctrl = c
		inf.Start(ctx.Done())
		defer inf.Shutdown()
		return c.Run(ctx)
	}
	if !f.leaderElect || f.dryRun {
		return lead(ctx)
	}
	id, _ := os.Hostname()
	id = fmt.Sprintf("%s_%d", id, os.Getpid())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: f.leaseName, Namespace: f.namespace},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	var leadErr error
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaderelection.RunOrDie(lctx, leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: "headroomd",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("became leader", zap.String("identity", id))
				leadErr = lead(ctx)
				cancel()
			},
			OnStoppedLeading: func() {
				log.Info("stopped leading", zap.String("identity", id))
				cancel()
			},
			OnNewLeader: func(identity string) {
				if identity != id {
					log.Info("following leader", zap.String("leader", identity))
				}
			},
		},
	})
	if leadErr != nil {
		return leadErr
	}
	if ctx.Err() == nil {
		return errors.New("lost the leader Lease; exiting so a fresh process campaigns again")
	}
	return nil
}

func startServers(f *flags, reg *prometheus.Registry, ready func() bool, report func() *controller.Report, log *zap.Logger) []*http.Server {
	mm := http.NewServeMux()
	mm.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	pm := http.NewServeMux()
	pm.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	pm.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	if f.pprof {
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	pm.HandleFunc("/debug/plan", func(w http.ResponseWriter, _ *http.Request) { controller.ServeReport(w, report()) })
	var out []*http.Server
	for _, s := range []*http.Server{{Addr: f.metricsAddr, Handler: mm}, {Addr: f.probeAddr, Handler: pm}} {
		s.ReadHeaderTimeout = 5 * time.Second
		go func(s *http.Server) {
			if err := s.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server failed", zap.String("addr", s.Addr), zap.Error(err))
			}
		}(s)
		out = append(out, s)
	}
	return out
}
