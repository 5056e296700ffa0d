// Command headroom-agent runs on each GPU node (a DaemonSet), reads the GPUs
// through NVML and reports what is really usable, and what is idle, to the
// headroom controller (one ConfigMap per node) and to Prometheus.
//
// It is the only binary that links NVML. Without the driver library it still
// runs, serves /healthz and /readyz, and reports "no NVML", retrying every
// interval until the driver appears. With --once it samples once, prints what it
// found and a metrics scrape, and exits non-zero when there is no NVML or no GPU
// (hack/gpu-check.sh).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gpu-headroom/gpu-headroom/nodes/agent"
	"github.com/gpu-headroom/gpu-headroom/nodes/agentreport"
	"github.com/gpu-headroom/gpu-headroom/nodes/nvml"
)

// version is set at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, deps{
		reader: nvml.NewLibrary,
		client: inClusterClient,
	}))
}

// deps are what tests replace: where GPUs and the API server come from.
type deps struct {
	reader func(libraryPath string) nvml.Reader
	client func() (kubernetes.Interface, error)
}

func inClusterClient() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("loading in-cluster config: %w", err)
	}
	cfg.UserAgent = "headroom-agent/" + version
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building client: %w", err)
	}
	return cs, nil
}

type options struct {
	nodeName     string
	namespace    string
	interval     time.Duration
	listen       string
	libraryPath  string
	bootIDFile   string
	ignoreXIDs   string
	criticalXIDs string
	logLevel     string
	once         bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("headroom-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.nodeName, "node-name", os.Getenv("NODE_NAME"), "node this agent runs on (default: $NODE_NAME, set from spec.nodeName by the downward API)")
	fs.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "gpu-headroom"), "namespace of the report ConfigMaps (the controller's; default: $POD_NAMESPACE)")
	fs.DurationVar(&o.interval, "interval", 30*time.Second, "how often to sample GPUs and write the report")
	fs.StringVar(&o.listen, "listen", ":9402", "address for /metrics, /healthz and /readyz")
	fs.StringVar(&o.libraryPath, "nvml-library", "", "path to libnvidia-ml.so.1 (default: the dynamic loader's search path)")
	fs.StringVar(&o.bootIDFile, "boot-id-file", "/proc/sys/kernel/random/boot_id", "file holding the host boot ID")
	fs.StringVar(&o.ignoreXIDs, "ignore-xids", "", "comma-separated XIDs to treat as application errors, in addition to the built-in list")
	fs.StringVar(&o.criticalXIDs, "critical-xids", "", "comma-separated XIDs to treat as critical even if listed as application errors")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.once, "once", false, "sample once, print the GPUs and a metrics scrape, and exit (non-zero without NVML or GPUs); writes nothing to the cluster")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.nodeName == "" {
		if !o.once {
			return o, errors.New("--node-name or $NODE_NAME is required (set NODE_NAME from spec.nodeName)")
		}
		o.nodeName, _ = os.Hostname()
	}
	if o.interval < time.Second {
		return o, fmt.Errorf("--interval %s is too short (at least 1s)", o.interval)
	}
	if o.interval > agentreport.DefaultStaleAfter/3 {
		return o, fmt.Errorf("--interval %s must be at most a third of the controller's stale window (%s)", o.interval, agentreport.DefaultStaleAfter)
	}
	return o, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func parseXIDs(s string) ([]uint64, error) {
	var out []uint64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		x, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing XID %q: %w", f, err)
		}
		out = append(out, x)
	}
	return out, nil
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("parsing --log-level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)), nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, d deps) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "headroom-agent:", err)
		return 2
	}
	log, err := newLogger(o.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "headroom-agent:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	policy := nvml.XIDPolicy{}
	if policy.Ignore, err = parseXIDs(o.ignoreXIDs); err != nil {
		log.Error("bad --ignore-xids", zap.Error(err))
		return 2
	}
	if policy.Critical, err = parseXIDs(o.criticalXIDs); err != nil {
		log.Error("bad --critical-xids", zap.Error(err))
		return 2
	}

	reader := nvml.NewFallback(d.reader(o.libraryPath), log)
	defer func() {
		if err := reader.Shutdown(); err != nil {
			log.Warn("shutting NVML down", zap.Error(err))
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := agent.NewMetrics(reg, version)
	mon := agent.NewMonitor(agent.Config{
		NodeName: o.nodeName, AgentVersion: version, BootID: readBootID(o.bootIDFile), XIDs: policy,
	}, reader, metrics, log)

	if o.once {
		return once(mon, reg, stdout, stderr)
	}

	client, err := d.client()
	if err != nil {
		log.Error("cannot reach the API server", zap.Error(err))
		return 1
	}
	writer := agent.Writer{Client: client, Namespace: o.namespace}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if prev, ok, err := writer.Previous(ctx, o.nodeName); err != nil {
		log.Warn("could not read the previous report; starting fresh", zap.Error(err))
	} else if ok && mon.Restore(prev) {
		log.Info("carried state over from the previous report on this boot",
			zap.Int("unhealthy_gpus", prev.UnhealthyGPUs), zap.Timep("driver_ready_at", prev.DriverReadyAt))
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		log.Error("cannot listen", zap.String("address", o.listen), zap.Error(err))
		return 1
	}
	srv := &http.Server{Handler: agent.Handler(mon, reg, o.interval, time.Now()), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", zap.Error(err))
		}
	}()
	log.Info("headroom-agent started", zap.String("version", version), zap.String("node", o.nodeName),
		zap.String("namespace", o.namespace), zap.String("report", agentreport.ConfigMapName(o.nodeName)),
		zap.Duration("interval", o.interval), zap.String("listen", ln.Addr().String()))

	last := ""
	mon.Run(ctx, o.interval, func(ctx context.Context, s agentreport.Summary) error {
		if desc := agent.Describe(s); desc != last {
			log.Info("GPU state", zap.String("summary", desc))
			last = desc
		}
		err := writer.Write(ctx, s)
		metrics.ReportWritten(err, float64(time.Now().UnixNano())/1e9)
		return err
	})

	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("HTTP shutdown", zap.Error(err))
	}
	return 0
}

func readBootID(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// once samples, prints and judges. Exit codes: 0 GPUs found (healthy or not,
// both printed), 1 no NVML or no GPU.
func once(mon *agent.Monitor, reg *prometheus.Registry, stdout, stderr io.Writer) int {
	s := mon.Sample()
	fmt.Fprintf(stdout, "node %s: %s\n", s.NodeName, agent.Describe(s))
	for _, g := range s.GPUs {
		util := "n/a"
		if g.UtilizationRatio != nil {
			util = fmt.Sprintf("%.0f%%", *g.UtilizationRatio*100)
		}
		health := "healthy"
		if !g.Healthy {
			health = "UNHEALTHY: " + strings.Join(g.Reasons, "; ")
		}
		mig := "off"
		if g.MIGEnabled {
			mig = fmt.Sprintf("on, %d devices", len(g.MIGDevices))
		}
		fmt.Fprintf(stdout, "  gpu %d %s %q memory %.1f/%.1f GiB util %s MIG %s idle %v %s\n",
			g.Index, g.UUID, g.Product, float64(g.MemoryUsedBytes)/(1<<30), float64(g.MemoryTotalBytes)/(1<<30),
			util, mig, g.Idle, health)
		for _, m := range g.MIGDevices {
			fmt.Fprintf(stdout, "    mig %s profile %s gi %d ci %d memory %.1f GiB healthy %v\n",
				m.UUID, m.Profile, m.GPUInstanceID, m.ComputeInstanceID, float64(m.MemoryTotalBytes)/(1<<30), m.Healthy)
		}
	}
	fmt.Fprintln(stdout, "--- report (as written to the ConfigMap)")
	b, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintln(stdout, string(b))
	fmt.Fprintln(stdout, "--- metrics")
	mfs, err := reg.Gather()
	if err != nil {
		fmt.Fprintln(stderr, "headroom-agent: gathering metrics:", err)
		return 1
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "headroom_agent_") {
			if _, err := expfmt.MetricFamilyToText(stdout, mf); err != nil {
				fmt.Fprintln(stderr, "headroom-agent: writing metrics:", err)
				return 1
			}
		}
	}
	switch {
	case !s.NVML.Available:
		fmt.Fprintf(stderr, "headroom-agent --once: FAIL: %s\n", s.NVML.Reason)
		return 1
	case len(s.GPUs) == 0:
		fmt.Fprintln(stderr, "headroom-agent --once: FAIL: NVML answered but lists no GPU")
		return 1
	}
	if s.UnhealthyGPUs > 0 {
		fmt.Fprintf(stderr, "headroom-agent --once: %d of %d GPUs unhealthy (see above)\n", s.UnhealthyGPUs, len(s.GPUs))
	}
	return 0
}
