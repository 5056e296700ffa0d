package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/sim"
)

func simulateCommand() command {
	return command{
		Summary: "replay a trace through a simulated GPU cluster and score headroom policies",
		Run:     runSimulate,
	}
}

// simulateFlags are the parsed flags of `headroom simulate`.
type simulateFlags struct {
	trace, format, config, policies, static, proportional, schedule string
	zones, overlays, perf, model, hardware, plot, stockouts         string
	provision, gpuReady, pull, load                                 string
	scale, ctxTokens, genTokens                                     float64
	span, tick                                                      time.Duration
	seed                                                            uint64
	json                                                            bool
	parallel, tp, clients, repeat                                   int
}

func runSimulate(args []string, stdout, stderr io.Writer) error {
	var f simulateFlags
	cfg := sim.DefaultConfig()
	fs := flag.NewFlagSet("headroom simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.trace, "trace", "", "Azure CSV, ServeGen folder or chunk file, or a timestamp,rate CSV (required)")
	fs.StringVar(&f.format, "format", "", "azure, servegen or rate (default: from the path)")
	fs.Float64Var(&f.scale, "scale", 1, "multiply the request rate")
	fs.StringVar(&f.overlays, "overlay", "", "comma-separated shifts of extra copies of the trace, e.g. 17m,31m")
	fs.DurationVar(&f.span, "span", 0, "replay only the first span of the trace (0: all)")
	fs.IntVar(&f.repeat, "repeat", 1, "replay the (spanned, scaled) trace this many times back to back, for short traces (1 to 1000)")
	fs.DurationVar(&f.tick, "tick", time.Second, "simulation tick")
	fs.IntVar(&f.clients, "clients", 0, "ServeGen: read only the first N clients (0: all)")
	fs.Float64Var(&f.ctxTokens, "context-tokens", 0, "context tokens per request of rate-only traces (default 1155)")
	fs.Float64Var(&f.genTokens, "generated-tokens", 0, "generated tokens per request of rate-only traces (default 211)")
	fs.StringVar(&f.config, "config", "", "the controller's ConfigMap YAML (data of key config.yaml) for the forecast policy")
	fs.StringVar(&f.policies, "policies", "reactive,static,proportional,schedule,forecast,oracle", "policies to run")
	fs.StringVar(&f.static, "static", "1,2,4", "static: placeholders per zone to sweep")
	fs.StringVar(&f.proportional, "proportional", "0.1,0.25,0.5", "proportional: fractions of current replicas to sweep")
	fs.StringVar(&f.schedule, "schedule", "08:00-22:00=2", "schedule: windows HH:MM-HH:MM=N per zone, in the trace's clock")
	fs.StringVar(&f.zones, "zones", strings.Join(cfg.Zones, ","), "zones")
	fs.Int64Var(&cfg.GPUsPerNode, "gpus-per-node", cfg.GPUsPerNode, "GPUs per node")
	fs.Int64Var(&cfg.GPUsPerReplica, "gpus-per-replica", cfg.GPUsPerReplica, "GPUs per replica (1, 8, or MIG slices of --gpu-resource)")
	fs.StringVar(&cfg.GPUResource, "gpu-resource", cfg.GPUResource, "GPU resource name")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests one replica serves at once")
	fs.StringVar(&f.perf, "perf", "", "Splitwise perf_model.csv (default: built-in llama2-70b H100 TP2)")
	fs.StringVar(&f.model, "model", "llama2-70b", "perf model: model")
	fs.StringVar(&f.hardware, "hardware", "h100-80gb", "perf model: hardware")
	fs.IntVar(&f.tp, "tp", 0, "perf model: tensor parallelism (default: --gpus-per-replica)")
	fs.StringVar(&cfg.Metric, "metric", cfg.Metric, "KEDA metric: queue (waiting) or system (waiting+running)")
	fs.Float64Var(&cfg.Target, "target", cfg.Target, "KEDA target metric per replica")
	fs.Float64Var(&cfg.ActivationThreshold, "activation", cfg.ActivationThreshold, "KEDA activation threshold")
	fs.DurationVar(&cfg.PollingInterval, "polling-interval", cfg.PollingInterval, "KEDA polling interval")
	fs.DurationVar(&cfg.CooldownPeriod, "cooldown-period", cfg.CooldownPeriod, "KEDA cooldown before scaling to zero")
	min, maxR := int(cfg.MinReplicas), int(cfg.MaxReplicas)
	fs.IntVar(&min, "min-replicas", min, "minReplicaCount (0 allows scale to zero)")
	fs.IntVar(&maxR, "max-replicas", maxR, "maxReplicaCount")
	fs.StringVar(&f.provision, "provision", cfg.Provision.String(), "node provisioning delay: D, LO..HI or lognormal:MEDIAN,SIGMA")
	fs.StringVar(&f.gpuReady, "gpu-allocatable", cfg.GPUAllocatable.String(), "delay from node Ready to allocatable GPUs")
	fs.StringVar(&f.pull, "image-pull", cfg.ImagePull.String(), "image pull delay on a node without the image")
	fs.StringVar(&f.load, "model-load", cfg.ModelLoad.String(), "model load delay")
	fs.BoolVar(&cfg.Prepull, "prepull", cfg.Prepull, "placeholders pull the inference image")
	fs.DurationVar(&cfg.ScanInterval, "scan-interval", cfg.ScanInterval, "cluster-autoscaler scan interval")
	fs.IntVar(&cfg.MaxNodesPerZone, "max-nodes-per-zone", cfg.MaxNodesPerZone, "node group max size per zone")
	fs.DurationVar(&cfg.ScaleDownUnneeded, "scale-down-unneeded", cfg.ScaleDownUnneeded, "cluster-autoscaler scale-down-unneeded-time")
	var cutoff, prio int
	fs.IntVar(&cutoff, "expendable-cutoff", int(cfg.ExpendableCutoff), "cluster-autoscaler expendable-pods-priority-cutoff")
	fs.IntVar(&prio, "placeholder-priority", int(cfg.PlaceholderPriority), "placeholder priority")
	fs.StringVar(&f.stockouts, "stockout", "", "comma-separated ZONE@FROM-TO windows where scale-ups fail, e.g. zone-b@2h-4h")
	fs.DurationVar(&cfg.ControllerInterval, "controller-interval", cfg.ControllerInterval, "how often policies re-plan")
	fs.DurationVar(&cfg.SLO, "slo", cfg.SLO, "request queueing delay SLO")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed")
	fs.IntVar(&f.parallel, "parallel", runtime.GOMAXPROCS(0), "policies simulated at once")
	fs.BoolVar(&f.json, "json", false, "write JSON instead of a table")
	fs.StringVar(&f.plot, "plot", "", "write an SVG (or PNG, by extension) of demand, capacity and headroom per policy and the cost-vs-wait frontier")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if f.trace == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	cfg.MinReplicas, cfg.MaxReplicas = int32(min), int32(maxR)
	cfg.ExpendableCutoff, cfg.PlaceholderPriority = int32(cutoff), int32(prio)
	cfg.Seed = f.seed
	cfg.Zones = splitList(f.zones)
	var err error
	for _, d := range []struct {
		s   string
		dst *sim.Dist
	}{{f.provision, &cfg.Provision}, {f.gpuReady, &cfg.GPUAllocatable}, {f.pull, &cfg.ImagePull}, {f.load, &cfg.ModelLoad}} {
		if *d.dst, err = sim.ParseDist(d.s); err != nil {
			return err
		}
	}
	for _, s := range splitList(f.stockouts) {
		so, err := sim.ParseStockout(s)
		if err != nil {
			return err
		}
		cfg.Stockouts = append(cfg.Stockouts, so)
	}
	if f.perf != "" {
		tp := f.tp
		if tp == 0 {
			tp = int(cfg.GPUsPerReplica)
		}
		if cfg.Perf, err = sim.ReadPerf(f.perf, f.model, f.hardware, tp); err != nil {
			return err
		}
	}
	pols, err := simPolicies(f)
	if err != nil {
		return err
	}
	tr, err := simTraffic(f)
	if err != nil {
		return err
	}
	if tr, err = tr.Repeat(f.repeat); err != nil {
		return fmt.Errorf("--repeat: %w", err)
	}
	if isTerminal(stderr) {
		cfg.Progress = newProgress(stderr, len(pols))
	}
	rep, err := sim.Simulate(tr, cfg, pols, f.parallel)
	if cfg.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if f.plot != "" {
		if err := writePlot(f.plot, rep); err != nil {
			return err
		}
	}
	if f.json {
		return rep.WriteJSON(stdout)
	}
	for _, r := range rep.Results {
		r.Series = nil
	}
	return rep.WriteTable(stdout)
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// simPolicies expands --policies with the sweeps and the config.
func simPolicies(f simulateFlags) ([]sim.PolicySpec, error) {
	var hc headroom.Config
	if f.config != "" {
		b, err := os.ReadFile(f.config)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		if hc, err = headroom.ParseConfig(b); err != nil {
			return nil, fmt.Errorf("config %s: %w", f.config, err)
		}
	}
	var out []sim.PolicySpec
	for _, k := range splitList(f.policies) {
		switch k {
		case sim.KindReactive, sim.KindForecast, sim.KindOracle:
			out = append(out, sim.PolicySpec{Kind: k, Headroom: hc})
		case sim.KindStatic:
			for _, s := range splitList(f.static) {
				n, err := strconv.ParseInt(s, 10, 32)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("--static: bad count %q", s)
				}
				out = append(out, sim.PolicySpec{Kind: k, N: int32(n)})
			}
		case sim.KindProportional:
			for _, s := range splitList(f.proportional) {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil || v < 0 || v > 10 {
					return nil, fmt.Errorf("--proportional: bad fraction %q", s)
				}
				out = append(out, sim.PolicySpec{Kind: k, Fraction: v})
			}
		case sim.KindSchedule:
			ws, err := sim.ParseWindows(f.schedule)
			if err != nil {
				return nil, err
			}
			out = append(out, sim.PolicySpec{Kind: k, Windows: ws})
		default:
			return nil, fmt.Errorf("--policies: unknown policy %q", k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--policies: none given")
	}
	return out, nil
}

// simTraffic reads the trace in its format.
func simTraffic(f simulateFlags) (*sim.Traffic, error) {
	opt := sim.TrafficOptions{Tick: f.tick, Scale: f.scale, Span: f.span, ContextTokens: f.ctxTokens, GeneratedTokens: f.genTokens, Clients: f.clients, Seed: f.seed}
	for _, s := range splitList(f.overlays) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("--overlay: %w", err)
		}
		opt.Overlays = append(opt.Overlays, d)
	}
	format := f.format
	if format == "" {
		fi, err := os.Stat(f.trace)
		switch {
		case err != nil:
			return nil, fmt.Errorf("reading trace: %w", err)
		case fi.IsDir() || strings.HasPrefix(filepath.Base(f.trace), "chunk-"):
			format = "servegen"
		case strings.Contains(filepath.Base(f.trace), "Azure"):
			format = "azure"
		default:
			format = "rate"
		}
	}
	switch format {
	case "azure":
		start, reqs, err := sim.ReadAzureRequests(f.trace)
		if err != nil {
			return nil, err
		}
		return sim.RequestTraffic(strings.TrimSuffix(filepath.Base(f.trace), ".csv"), start, reqs, opt)
	case "servegen":
		rs, err := sim.ReadServeGen(f.trace, f.clients)
		if err != nil {
			return nil, err
		}
		return sim.RateTraffic(rs, opt)
	case "rate":
		rs, err := sim.ReadRateCSV(f.trace)
		if err != nil {
			return nil, err
		}
		return sim.RateTraffic(rs, opt)
	}
	return nil, fmt.Errorf("--format: %q, want azure, servegen or rate", format)
}

// isTerminal reports whether w is a character device (a terminal), where a
// progress bar helps; in a pipe or a file it would be noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgress returns a Progress callback drawing one bar for all policies.
func newProgress(w io.Writer, policies int) func(string, float64) {
	var mu sync.Mutex
	done := map[string]float64{}
	last := -1
	return func(name string, frac float64) {
		mu.Lock()
		defer mu.Unlock()
		done[name] = frac
		var sum float64
		for _, v := range done {
			sum += v
		}
		pct := int(100 * sum / float64(policies))
		if pct == last {
			return
		}
		last = pct
		n := pct * 30 / 100
		fmt.Fprintf(w, "\rsimulating [%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(".", 30-n), pct)
	}
}
func writePlot(path string, rep *sim.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing plot: %w", err)
	}
	write := sim.WriteSVG
	if strings.EqualFold(filepath.Ext(path), ".png") {
		write = sim.WritePNG
	}
	if err := write(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("writing plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing plot %s: %w", path, err)
	}
	return nil
}
