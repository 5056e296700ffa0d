package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom/doctor"
)

func doctorCommand() command {
	return command{
		Summary: "check a cluster for what keeps headroom from working; print each problem with its fix",
		Run:     runDoctor,
	}
}

// exitError ends the command with a chosen exit code. doctor uses 1 for "the
// cluster has problems", so scripts can tell it from 2, "could not check".
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// runDoctor gathers the cluster's state with reads only and runs the checks of
// package doctor. Exit 0: nothing wrong; 1: problems found; 2: the cluster could
// not be read or the flags are wrong.
func runDoctor(args []string, stdout, stderr io.Writer) error {
	var f clusterFlags
	var leaseName, priorityClass string
	fs := flag.NewFlagSet("headroom doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.StringVar(&leaseName, "lease-name", "gpu-headroom", "headroomd's --lease-name (the leader election Lease in --namespace)")
	fs.StringVar(&priorityClass, "priority-class", "gpu-headroom-placeholder", "headroomd's --priority-class (placeholder PriorityClass)")
	fs.Usage = usageWithExample(fs, stderr, "headroom doctor [--kubeconfig PATH] [--namespace NS] [--budget-gpus N] [--json]",
		"headroom doctor --kubeconfig ~/.kube/config --namespace gpu-headroom --budget-gpus 64 || echo 'fix the problems above'")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	kube, kc, err := f.clients("doctor")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	in, err := doctor.Gather(ctx, kube, kc, doctor.Options{
		Namespace: f.namespace, ConfigMapName: f.configMap, LeaseName: leaseName, PriorityClass: priorityClass, BudgetGPUs: f.budget,
	}, time.Now())
	if err != nil {
		return fmt.Errorf("reading the cluster: %w", err)
	}
	rep := doctor.Run(in)
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := printDoctor(stdout, rep); err != nil {
		return err
	}
	if rep.Problems > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d problem(s) found", rep.Problems)}
	}
	return nil
}

// printDoctor writes one line per check (ok, FAIL or skip) and, under a failed
// check, each problem with its fix.
func printDoctor(w io.Writer, r doctor.Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, res := range r.Results {
		switch {
		case res.Skipped != "":
			fmt.Fprintf(tw, "skip\t%s\t%s\n", res.Check, res.Skipped)
		case len(res.Findings) == 0:
			fmt.Fprintf(tw, "ok\t%s\t%s\n", res.Check, res.OK)
		default:
			fmt.Fprintf(tw, "FAIL\t%s\t%s\n", res.Check, res.Title)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, res := range r.Results {
		for _, f := range res.Findings {
			obj := ""
			if f.Object != "" {
				obj = f.Object + ": "
			}
			fmt.Fprintf(&b, "\n[%s] %s%s\n  fix: %s\n", res.Check, obj, f.Problem, f.Fix)
		}
	}
	if r.Problems == 0 {
		b.WriteString("\nno problems found\n")
	} else {
		fmt.Fprintf(&b, "\n%d problem(s) found\n", r.Problems)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
