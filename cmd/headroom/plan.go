package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/tools/cache"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/controller"
	"github.com/gpu-headroom/gpu-headroom/headroom/doctor"
)

func planCommand() command {
	return command{
		Summary: "show what headroomd would do now, per zone and shape, and why (read-only)",
		Run:     runPlan,
	}
}

// runPlan runs one reconcile pass of the real controller in dry-run mode with no
// placeholder backend, over the same informers headroomd builds, and prints its
// report. Reusing the controller rather than re-deriving the plan is what makes
// the preview trustworthy: it is the same code path, minus the writes. It needs
// only get, list and watch.
func runPlan(args []string, stdout, stderr io.Writer) error {
	var f clusterFlags
	fs := flag.NewFlagSet("headroom plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.Usage = usageWithExample(fs, stderr, "headroom plan [--kubeconfig PATH] [--namespace NS] [--budget-gpus N] [--json]",
		"headroom plan --kubeconfig ~/.kube/config --namespace gpu-headroom --budget-gpus 64")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if f.budget < 0 {
		return fmt.Errorf("--budget-gpus %d is negative", f.budget)
	}
	kube, kc, err := f.clients("plan")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()

	budget, source := f.budget, "--budget-gpus"
	if budget == 0 {
		if budget, source, err = doctor.DeployedBudget(ctx, kube, f.namespace); err != nil {
			return err
		}
		if source == "" {
			return fmt.Errorf("no headroomd Deployment with --budget-gpus in namespace %s: pass --budget-gpus (the value headroomd runs with)", f.namespace)
		}
	}
	if ok, err := doctor.KEDAServed(kube); err != nil {
		return err
	} else if !ok {
		return errors.New("KEDA's ScaledObject API (keda.sh/v1alpha1) is not served: headroomd cannot run without it; `headroom doctor` says more")
	}

	inf := controller.NewInformers(kube, kc, f.namespace)
	// A private registry: the metrics of this one pass are thrown away.
	metrics := controller.NewMetrics(prometheus.NewRegistry(), version)
	c, err := controller.New(controller.Options{Namespace: f.namespace, ConfigMapName: f.configMap, BudgetGPUs: budget, DryRun: true},
		zap.NewNop(), kube, inf, nil, nil, metrics, nil, nil)
	if err != nil {
		return fmt.Errorf("making the controller: %w", err)
	}
	inf.Start(ctx.Done())
	defer func() {
		cancel()
		inf.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), c.Synced) {
		return fmt.Errorf("reading the cluster did not finish within --timeout %s (can this kubeconfig list and watch nodes, pods, deployments, statefulsets, HPAs, ScaledObjects, and ReplicaSets and ConfigMaps in %s?)", f.timeout, f.namespace)
	}
	if err := c.Reconcile(ctx); err != nil {
		return fmt.Errorf("planning: %w", err)
	}
	rep := c.LastReport()
	if rep == nil {
		return errors.New("planning produced no report")
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(planJSON{Report: rep, Namespace: f.namespace, BudgetSource: source})
	}
	return printPlan(stdout, rep, f.namespace, source)
}

// planJSON is `headroom plan --json`: the controller's report (the same as
// headroomd's /debug/plan) and where the budget came from.
type planJSON struct {
	*controller.Report
	Namespace    string `json:"namespace"`
	BudgetSource string `json:"budgetSource"`
}

// printPlan renders the report as tables: policy, workloads with their demand,
// placeholders per zone and shape with now/plan counts, scarce zones, actions
// and notes. Every number comes with the reason the planner gave.
func printPlan(w io.Writer, r *controller.Report, namespace, budgetSource string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := r.Policy
	fmt.Fprintf(tw, "headroom plan for namespace %s at %s (dry run: nothing was written)\n", namespace, r.At.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(tw, "budget %d GPUs (%s); scale-down cooldown %s; keep-utilization %.2f\n\n", p.BudgetGPUs, budgetSource, p.Cooldown, p.KeepUtilization)

	fmt.Fprintln(tw, "ZONE LIMITS\tFLOOR GPUS\tMAX GPUS")
	zones := make([]string, 0, len(p.Zones))
	for z := range p.Zones {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", z, p.Zones[z].FloorGPUs, maxText(p.Zones[z].MaxGPUs))
	}
	fmt.Fprintf(tw, "(other zones)\t%d\t%s\n", p.Default.FloorGPUs, maxText(p.Default.MaxGPUs))
	for _, n := range p.Notes {
		fmt.Fprintf(tw, "policy: %s\n", n)
	}

	fmt.Fprintln(tw, "\nWORKLOAD\tSTATE\tSHAPE\tHPA DESIRED\tREADY\tDEMAND\tWHY")
	if len(r.Workloads) == 0 {
		fmt.Fprintln(tw, "(no covered ScaledObjects: annotate one "+headroom.AnnotationEnabled+"=true or set coverage.selector)")
	}
	for _, wl := range r.Workloads {
		shape := "-"
		if wl.HasShape {
			shape = wl.Shape.String()
		}
		desired := "-"
		if wl.HasDesired {
			desired = fmt.Sprint(wl.DesiredReplicas)
		}
		d := r.Demand[wl.Key()]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", wl.Key(), wl.State, shape, desired, wl.ReadyReplicas, d.Replicas, oneLine(d.Reason, wl.Reason))
	}

	// Current counts come from the actions: a set with no action stays as it is.
	now := map[headroom.ZoneShape]int32{}
	changed := map[headroom.ZoneShape]bool{}
	for _, a := range r.Actions {
		k := headroom.ZoneShape{Zone: a.Zone, ShapeHash: a.ShapeHash}
		now[k], changed[k] = a.From, true
	}
	fmt.Fprintln(tw, "\nPLACEHOLDERS\tSHAPE\tGPU SHAPE\tNOW\tPLAN\tGPUS\tWHY")
	var pods int32
	for _, ph := range r.Desired.Placeholders {
		cur := ph.Replicas
		if changed[ph.Key()] {
			cur = now[ph.Key()]
		}
		pods += ph.Replicas
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", ph.Zone, ph.ShapeHash, ph.Shape.String(), cur, ph.Replicas, ph.GPUs(), oneLine(ph.Reason))
	}
	for _, a := range r.Actions {
		if a.Kind == headroom.ActionDelete {
			fmt.Fprintf(tw, "%s\t%s\t-\t%d\t0\t0\t%s\n", a.Zone, a.ShapeHash, a.From, oneLine(a.Reason))
		}
	}
	fmt.Fprintf(tw, "total\t\t\t\t%d\t%d\tof a budget of %d GPUs\n", pods, r.Desired.TotalGPUs(), r.Desired.BudgetGPUs)

	var scarce []string
	for k, e := range r.Scarce.Entries {
		if e.Scarce {
			scarce = append(scarce, fmt.Sprintf("%s (shape %s) until %s", k.Zone, k.ShapeHash, e.RetryAt.UTC().Format("15:04:05Z")))
		}
	}
	sort.Strings(scarce)
	if len(scarce) == 0 {
		scarce = []string{"none"}
	}
	fmt.Fprintf(tw, "\nscarce zones: %s\n", strings.Join(scarce, "; "))
	fmt.Fprintln(tw, "(scarcity is judged from this one look at the cluster: a zone headroomd already backed off from may show here as not scarce)")

	fmt.Fprintln(tw, "\nactions headroomd would take now:")
	if len(r.Actions) == 0 {
		fmt.Fprintln(tw, "  none: the placeholders match the plan")
	}
	for _, a := range r.Actions {
		fmt.Fprintf(tw, "  %s: %s\n", a, oneLine(a.Reason))
	}
	for _, n := range r.Desired.Notes {
		fmt.Fprintf(tw, "note: %s\n", n)
	}
	for _, c := range r.Conflicts {
		fmt.Fprintf(tw, "conflict: %s\n", c)
	}
	return tw.Flush()
}

func maxText(v int64) string {
	if v >= headroom.MaxGPUs {
		return "-"
	}
	return fmt.Sprint(v)
}

// oneLine returns the first non-empty reason with newlines and tabs flattened,
// so a reason never breaks the table.
func oneLine(reasons ...string) string {
	for _, s := range reasons {
		if s != "" {
			return strings.Join(strings.Fields(s), " ")
		}
	}
	return "-"
}
