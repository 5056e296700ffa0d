// Command demo is `make demo`: it starts the local GPU cluster (3 zones of kwok
// H100 nodes, real KEDA, Redis, the stand-in autoscaler), installs the chart, and
// replays a window of a real LLM request trace twice, time-compressed, through a
// KEDA-scaled inference Deployment on a Redis queue: first without headroom, then
// with headroomd running from the chart's manifests. It shows a live table per
// zone, ends with a summary (replica starts that waited for a node and for how
// long, GPU-hours spent on headroom) and an SVG timeline, and stops everything it
// started unless --keep (or DEMO_KEEP=1).
//
// Pods on kwok nodes do not run, so the demo itself is the consumer: every tick
// it pops from the Redis list what the ready replicas serve according to the GPU
// performance model (headroom/sim's Perf on the Splitwise profile).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gpu-headroom/gpu-headroom/test/localcluster"
)

// config is the command line.
type config struct {
	trace, perf                   string
	from, span                    time.Duration
	scale, speed                  float64
	tick, refresh                 time.Duration
	zones                         []string
	maxNodes                      int
	maxReplicas                   int
	provision, gpuReady, unneeded time.Duration
	modelLoad, waitThreshold      time.Duration
	out, headroomd, helm          string
	keep                          bool
	seed                          uint64
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	root, rootErr := localcluster.RepoRoot()
	shared := filepath.Join(root, "..", "shared", "data")
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&cfg.trace, "trace", filepath.Join(shared, "traces", "azure-llm-2023-code", "AzureLLMInferenceTrace_code.csv"), "Azure LLM per-request trace (TIMESTAMP,ContextTokens,GeneratedTokens)")
	fs.StringVar(&cfg.perf, "perf", filepath.Join(shared, "perf", "splitwise-perf-model", "perf_model.csv"), "Splitwise perf_model.csv (llama2-70b on h100-80gb, tensor parallelism 8 is used)")
	fs.DurationVar(&cfg.from, "trace-from", time.Minute, "start of the replayed window in the trace")
	fs.DurationVar(&cfg.span, "trace-span", 24*time.Minute, "length of the replayed window (trace time)")
	fs.Float64Var(&cfg.scale, "scale", 15, "multiply the trace's request rate (the code trace alone fills one replica)")
	fs.Float64Var(&cfg.speed, "speed", 12, "time compression: trace seconds per wall second; the autoscaler's delays below are wall time")
	fs.DurationVar(&cfg.tick, "tick", time.Second, "replay and consumer tick (wall)")
	fs.DurationVar(&cfg.refresh, "refresh", 0, "live view refresh (default 2s on a terminal, 10s otherwise)")
	zones := fs.String("zones", "zone-a,zone-b,zone-c", "zones, one node group of 8x H100 kwok nodes each")
	fs.IntVar(&cfg.maxNodes, "max-nodes-per-zone", 6, "max size of each zone's node group")
	fs.IntVar(&cfg.maxReplicas, "max-replicas", 12, "ScaledObject maxReplicaCount (one replica = 8 GPUs = one node)")
	fs.DurationVar(&cfg.provision, "provision-delay", 25*time.Second, "stand-in autoscaler: scale-up decision until the Node exists (wall)")
	fs.DurationVar(&cfg.gpuReady, "gpu-ready-delay", 10*time.Second, "stand-in autoscaler: further time until the node's GPUs are allocatable (wall)")
	fs.DurationVar(&cfg.unneeded, "unneeded-time", 25*time.Second, "stand-in autoscaler: idle time before a node is removed (wall)")
	fs.DurationVar(&cfg.modelLoad, "model-load", 3*time.Second, "a bound replica serves this long after it is Ready (model load, wall)")
	fs.DurationVar(&cfg.waitThreshold, "wait-threshold", 5*time.Second, "a replica start pending at least this long (wall) waited for a node")
	fs.StringVar(&cfg.out, "out", filepath.Join(root, "_output", "demo"), "folder for the plot, the summary, the log and the cluster")
	fs.StringVar(&cfg.headroomd, "headroomd", filepath.Join(root, "bin", "headroomd"), "headroomd binary")
	fs.StringVar(&cfg.helm, "helm", "", "helm binary (default: the one hack/helm-bins.sh built)")
	fs.BoolVar(&cfg.keep, "keep", os.Getenv("DEMO_KEEP") == "1", "keep the cluster and headroomd running after the summary, until Ctrl-C (also DEMO_KEEP=1)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the rate scaling's thinning")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if rootErr != nil {
		return cfg, fmt.Errorf("run the demo from the repository: %w", rootErr)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, z := range strings.Split(*zones, ",") {
		if z = strings.TrimSpace(z); z != "" {
			cfg.zones = append(cfg.zones, z)
		}
	}
	var errs []error
	if len(cfg.zones) == 0 {
		errs = append(errs, errors.New("--zones: need at least one zone"))
	}
	if cfg.maxNodes < 1 {
		errs = append(errs, fmt.Errorf("--max-nodes-per-zone %d: need at least 1", cfg.maxNodes))
	}
	if cfg.maxReplicas < 1 {
		errs = append(errs, fmt.Errorf("--max-replicas %d: need at least 1", cfg.maxReplicas))
	}
	for name, d := range map[string]time.Duration{"--provision-delay": cfg.provision, "--gpu-ready-delay": cfg.gpuReady, "--model-load": cfg.modelLoad} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", name, d))
		}
	}
	for name, d := range map[string]time.Duration{"--unneeded-time": cfg.unneeded, "--wait-threshold": cfg.waitThreshold, "--tick": cfg.tick} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if cfg.refresh < 0 {
		errs = append(errs, fmt.Errorf("--refresh %s: must not be negative", cfg.refresh))
	}
	if cfg.helm == "" {
		dir, err := helmBinDir(root)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.helm = filepath.Join(dir, "helm")
	}
	return cfg, errors.Join(errs...)
}
