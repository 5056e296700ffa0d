package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/controller"
	"github.com/gpu-headroom/gpu-headroom/headroom/doctor"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// --help of the cluster subcommands shows an example; a stray argument is a
// usage error.
func TestPlanDoctorUsage(t *testing.T) {
	for _, cmd := range []string{"plan", "doctor"} {
		var out, errb bytes.Buffer
		if code := run([]string{cmd, "--help"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "example:\n  headroom "+cmd) {
			t.Errorf("%s --help: exit %d, stderr %q", cmd, code, errb.String())
		}
		errb.Reset()
		if code := run([]string{cmd, "extra"}, &out, &errb); code != 2 {
			t.Errorf("%s extra: exit %d, want 2", cmd, code)
		}
	}
}

// A kubeconfig that does not exist is an error (exit 2), not a clean bill of
// health.
func TestDoctorUnreadableCluster(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"doctor", "--kubeconfig", t.TempDir() + "/missing"}, &out, &errb); code != 2 {
		t.Errorf("exit %d, want 2; stderr %q", code, errb.String())
	}
}

func TestPrintPlan(t *testing.T) {
	shape := nodes.Shape{GPUResource: "nvidia.com/gpu", GPUs: 8}
	hash := shape.Hash()
	rep := &controller.Report{
		At:     time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		DryRun: true,
		Policy: headroom.Policy{
			Zones:   map[string]headroom.ZoneLimits{"zone-a": {FloorGPUs: 8, MaxGPUs: 32}},
			Default: headroom.ZoneLimits{MaxGPUs: headroom.MaxGPUs}, BudgetGPUs: 64, Cooldown: 10 * time.Second,
			Notes: []string{"schedule night active"},
		},
		Workloads: []headroom.Workload{{Namespace: "team", Name: "llm", State: keda.StateActive, Shape: shape, HasShape: true,
			ShapeHash: hash, HasDesired: true, DesiredReplicas: 3, ReadyReplicas: 1, Reason: "HPA desires 3"}},
		Demand: map[string]headroom.Demand{"team/llm": {Replicas: 2, Reason: "HPA desired 3,\nready 1"}},
		Desired: headroom.Desired{BudgetGPUs: 64, Placeholders: []headroom.Placeholder{
			{Zone: "zone-a", ShapeHash: hash, Shape: shape, Replicas: 2, Reason: "team/llm needs 2"},
			{Zone: "zone-b", ShapeHash: hash, Shape: shape, Replicas: 1, Reason: "floor"},
		}},
		Actions: []headroom.Action{
			{Kind: headroom.ActionDelete, Name: "old", Zone: "zone-c", ShapeHash: hash, From: 1, Reason: "no longer wanted"},
			{Kind: headroom.ActionScale, Name: "a", Zone: "zone-a", ShapeHash: hash, From: 1, To: 2, Reason: "demand"},
		},
	}
	var b bytes.Buffer
	if err := printPlan(&b, rep, "gpu-headroom", "--budget-gpus"); err != nil {
		t.Fatal(err)
	}
	// Compare with runs of blanks collapsed: column widths are tabwriter's business.
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"budget 64 GPUs (--budget-gpus)",
		"policy: schedule night active",
		"HPA desired 3, ready 1", // newlines flattened
		"zone-a " + hash + " 8x nvidia.com/gpu 1 2 16 team/llm needs 2",
		"zone-b " + hash + " 8x nvidia.com/gpu 1 1 8 floor",
		"zone-c " + hash + " - 1 0 0 no longer wanted",
		"total 3 24 of a budget of 64 GPUs",
		"scarce zones: none",
		"scale a (zone zone-a",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPrintDoctor(t *testing.T) {
	rep := doctor.Run(doctor.Inputs{Now: time.Now(), Namespace: "ns", ConfigMapName: "cm", LeaseName: "l"})
	var b bytes.Buffer
	if err := printDoctor(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"FAIL  keda-crds", "skip  scaledobjects", "[leader] lease ns/l: no leader Lease", "  fix: start headroomd",
		"problem(s) found"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
}
