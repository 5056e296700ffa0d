package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gpu-headroom/gpu-headroom/forecast/backtest"
)

func backtestCommand() command {
	return command{
		Summary: "replay a request trace through the forecast estimators",
		Run:     runBacktest,
	}
}

// backtestFlags are the parsed flags of `headroom forecast backtest`.
type backtestFlags struct {
	trace, format, horizons string
	q, replicaRPS           float64
	step, span, warmup      time.Duration
	repeat                  int
	json                    bool
}

func runBacktest(args []string, stdout, stderr io.Writer) error {
	var f backtestFlags
	fs := flag.NewFlagSet("headroom forecast backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.trace, "trace", "", "trace file, or a ServeGen folder of chunk-*-trace.csv (required)")
	fs.StringVar(&f.format, "format", "", "azure or servegen (default: servegen for a folder or chunk-*.csv, else azure)")
	fs.StringVar(&f.horizons, "horizons", "3m,5m,10m,15m", "comma-separated forecast horizons")
	fs.Float64Var(&f.q, "q", 0.95, "quantile of the peak to predict and to score")
	fs.Float64Var(&f.replicaRPS, "replica-rps", 0, "requests/s one replica serves (default 0.25 azure, 20 servegen)")
	fs.DurationVar(&f.step, "step", 30*time.Second, "sampling step for per-request traces (azure)")
	fs.DurationVar(&f.span, "span", 0, "replay only the first span of the trace (0: all)")
	fs.DurationVar(&f.warmup, "warmup", 0, "score warm-* columns only after this much of the trace (0: the longest horizon)")
	fs.IntVar(&f.repeat, "repeat", 1, "replay the (spanned) trace this many times back to back, for short traces (1 to 1000)")
	fs.BoolVar(&f.json, "json", false, "write JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if f.trace == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	hs, err := parseHorizons(f.horizons)
	if err != nil {
		return err
	}
	series, err := readTrace(f)
	if err != nil {
		return err
	}
	if series, err = backtest.Repeat(series, f.repeat); err != nil {
		return fmt.Errorf("--repeat: %w", err)
	}
	rep, err := backtest.RunWith(series, backtest.DefaultCandidates(), hs, f.q, backtest.Options{Warmup: f.warmup})
	if err != nil {
		return err
	}
	if f.json {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

func parseHorizons(s string) ([]time.Duration, error) {
	var hs []time.Duration
	for _, p := range strings.Split(s, ",") {
		h, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("parsing --horizons: %w", err)
		}
		if h <= 0 {
			return nil, fmt.Errorf("parsing --horizons: %v must be > 0", h)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func readTrace(f backtestFlags) (backtest.Series, error) {
	format := f.format
	if format == "" {
		format = "azure"
		if fi, err := os.Stat(f.trace); err == nil && fi.IsDir() || strings.HasPrefix(filepath.Base(f.trace), "chunk-") {
			format = "servegen"
		}
	}
	switch format {
	case "azure":
		return backtest.ReadAzure(f.trace, backtest.AzureOptions{Step: f.step, ReplicaRPS: f.replicaRPS, Span: f.span})
	case "servegen":
		return backtest.ReadServeGen(f.trace, backtest.ServeGenOptions{ReplicaRPS: f.replicaRPS, Span: f.span})
	}
	return backtest.Series{}, fmt.Errorf("unknown --format %q (want azure or servegen)", format)
}
