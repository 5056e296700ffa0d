package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
)

// objects returns the Object of each finding, or "-" for one without.
func objects(r Result) []string {
	var out []string
	for _, f := range r.Findings {
		o := f.Object
		if o == "" {
			o = "-"
		}
		if f.Problem == "" || f.Fix == "" {
			o += "(no problem or fix text)"
		}
		out = append(out, o)
	}
	return out
}

func same(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func wl(ns, name string, state keda.State, prio int32, pods ...Pod) Workload {
	return Workload{Workload: keda.Workload{Namespace: ns, Name: name, State: state, TargetKind: "Deployment", TargetName: name,
		HPAName: "keda-hpa-" + name, Reason: "because"}, TemplatePriority: prio, Pods: pods}
}

func TestKEDA(t *testing.T) {
	if r := KEDA(true); len(r.Findings) != 0 || r.OK == "" {
		t.Errorf("installed: %+v", r)
	}
	if r := KEDA(false); !same(objects(r), []string{"-"}) {
		t.Errorf("missing: %+v", r)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		found  bool
		perr   string
		wantOK bool
	}{
		{"missing is fine", false, "", true},
		{"parses", true, "", true},
		{"rejected", true, "unknown field mni", false},
	} {
		r := Config("gpu-headroom", "gpu-headroom", tc.found, tc.perr)
		if (len(r.Findings) == 0) != tc.wantOK {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}
}

func TestScaledObjects(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   []Workload
		want []string
	}{
		{"none", nil, nil},
		{"active, paused, scaled to zero and fallback are fine", []Workload{
			wl("a", "x", keda.StateActive, 0), wl("a", "y", keda.StatePaused, 0),
			wl("a", "z", keda.StateScaledToZero, 0), wl("a", "w", keda.StateFallback, 0)}, nil},
		{"no GPU", []Workload{wl("a", "cpu", keda.StateNoGPU, 0), wl("a", "gpu", keda.StateActive, 0)}, []string{"a/cpu"}},
		{"HPA missing", []Workload{wl("b", "nohpa", keda.StateHPAMissing, 0)}, []string{"b/nohpa"}},
		{"target missing and unsupported", []Workload{wl("c", "gone", keda.StateTargetMissing, 0), wl("c", "odd", keda.StateUnsupported, 0)},
			[]string{"c/gone", "c/odd"}},
	} {
		if got := objects(ScaledObjects(tc.ws)); !same(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPlaceholderPriority(t *testing.T) {
	pc := func(v int32) PriorityClass { return PriorityClass{Name: "ph", Found: true, Value: v} }
	for _, tc := range []struct {
		name    string
		classes []PriorityClass
		ws      []Workload
		want    []string
		problem string
	}{
		{"default -10 with no workloads", []PriorityClass{pc(-10)}, nil, nil, ""},
		{"-1 is fine below 0", []PriorityClass{pc(-1)}, []Workload{wl("a", "x", keda.StateActive, 0)}, nil, ""},
		{"missing", []PriorityClass{{Name: "ph"}}, nil, []string{"priorityclass ph"}, "does not exist"},
		{"below the cutoff", []PriorityClass{pc(-11)}, nil, []string{"priorityclass ph"}, "expendable"},
		{"at 0 with no workloads (pods default to 0)", []PriorityClass{pc(0)}, nil, []string{"priorityclass ph"}, "not below"},
		{"at the inference template priority", []PriorityClass{pc(-5)}, []Workload{wl("a", "x", keda.StateActive, -5)},
			[]string{"priorityclass ph"}, "a/x's pod template"},
		{"above a running inference pod", []PriorityClass{pc(-5)},
			[]Workload{wl("a", "x", keda.StateActive, 100, Pod{Name: "x-1", Priority: -6})}, []string{"priorityclass ph"}, "pod a/x-1"},
		{"global default", []PriorityClass{{Name: "ph", Found: true, Value: -10, GlobalDefault: true}}, nil,
			[]string{"priorityclass ph"}, "globalDefault"},
	} {
		r := PlaceholderPriority(tc.classes, tc.ws)
		if got := objects(r); !same(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
			continue
		}
		if tc.problem != "" && !strings.Contains(r.Findings[0].Problem, tc.problem) {
			t.Errorf("%s: problem %q does not mention %q", tc.name, r.Findings[0].Problem, tc.problem)
		}
	}
}

func TestInferencePriority(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   []Workload
		want []string
	}{
		{"0 and above", []Workload{wl("a", "x", keda.StateActive, 0, Pod{Name: "x-1"}), wl("a", "y", keda.StateActive, 1000)}, nil},
		{"template below 0", []Workload{wl("a", "x", keda.StateActive, -1)}, []string{"a/x"}},
		{"a pod below 0 (class changed after admission)", []Workload{wl("a", "x", keda.StateActive, 0, Pod{Name: "x-1", Priority: -3})}, []string{"a/x"}},
	} {
		if got := objects(InferencePriority(tc.ws)); !same(got, tc.want) {
			t.Errorf("%s: findings %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNodeZones(t *testing.T) {
	got := objects(NodeZones([]Node{{Name: "a", Zone: "z1", GPUs: 8}, {Name: "b", GPUs: 8}, {Name: "c", Zone: "z2"}}))
	if !same(got, []string{"node b"}) {
		t.Errorf("findings %v, want node b", got)
	}
	if r := NodeZones(nil); len(r.Findings) != 0 {
		t.Errorf("no nodes: %+v", r)
	}
}

func TestLeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		lease   *Lease
		problem string
	}{
		{"held", &Lease{Holder: "h_1", RenewTime: now.Add(-3 * time.Second), Duration: 15 * time.Second}, ""},
		{"no lease", nil, "no leader Lease"},
		{"released", &Lease{Holder: "", RenewTime: now, Duration: time.Second}, "held by no one"},
		{"expired", &Lease{Holder: "h_1", RenewTime: now.Add(-time.Hour), Duration: 15 * time.Second}, "expired"},
		{"expires exactly now", &Lease{Holder: "h_1", RenewTime: now.Add(-15 * time.Second), Duration: 15 * time.Second}, "expired"},
	} {
		r := Leader("gpu-headroom", "gpu-headroom", tc.lease, now)
		switch {
		case tc.problem == "" && len(r.Findings) != 0:
			t.Errorf("%s: unexpected %+v", tc.name, r.Findings)
		case tc.problem != "" && (len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Problem, tc.problem)):
			t.Errorf("%s: findings %+v, want one about %q", tc.name, r.Findings, tc.problem)
		}
	}
}

func TestBudget(t *testing.T) {
	ns := []Node{{Name: "small", Zone: "a", GPUs: 4}, {Name: "big", Zone: "a", GPUs: 8}}
	for _, tc := range []struct {
		name    string
		budget  int64
		known   bool
		nodes   []Node
		want    []string
		skipped bool
	}{
		{"unknown is skipped", 0, false, ns, nil, true},
		{"equal to the largest node", 8, true, ns, nil, false},
		{"smaller than the largest node", 4, true, ns, []string{"budget"}, false},
		{"zero (config) is smaller", 0, true, ns, []string{"budget"}, false},
		{"no GPU nodes yet", 1, true, nil, nil, false},
	} {
		r := Budget(tc.budget, tc.known, "test", tc.nodes)
		if got := objects(r); !same(got, tc.want) || (r.Skipped != "") != tc.skipped {
			t.Errorf("%s: findings %v skipped %q, want %v skipped=%v", tc.name, got, r.Skipped, tc.want, tc.skipped)
		}
		if len(r.Findings) > 0 && !strings.Contains(r.Findings[0].Problem, "big has 8") {
			t.Errorf("%s: problem %q should name the largest node", tc.name, r.Findings[0].Problem)
		}
	}
}

// Run counts every finding and skips the ScaledObject check without KEDA.
func TestRun(t *testing.T) {
	now := time.Now()
	good := Inputs{
		Now: now, Namespace: "gpu-headroom", ConfigMapName: "gpu-headroom", KEDAInstalled: true, ConfigFound: true,
		Workloads:          []Workload{wl("team", "llm", keda.StateActive, 0)},
		PlaceholderClasses: []PriorityClass{{Name: "gpu-headroom-placeholder", Found: true, Value: -10}},
		Nodes:              []Node{{Name: "n1", Zone: "a", GPUs: 8}},
		LeaseName:          "gpu-headroom", Lease: &Lease{Holder: "me", RenewTime: now, Duration: 15 * time.Second},
		BudgetGPUs: 64, BudgetKnown: true, BudgetSource: "--budget-gpus",
	}
	if r := Run(good); r.Problems != 0 || len(r.Results) != 8 {
		t.Fatalf("a correct cluster: %d problems in %d results: %+v", r.Problems, len(r.Results), r)
	}
	bad := good
	bad.KEDAInstalled = false
	bad.Workloads = []Workload{wl("team", "cpu", keda.StateNoGPU, 0)}
	bad.Nodes = append(bad.Nodes, Node{Name: "n2", GPUs: 8})
	bad.Lease = nil
	r := Run(bad)
	if r.Problems != 3 {
		t.Errorf("problems = %d, want 3 (KEDA, node zone, leader; ScaledObjects skipped): %+v", r.Problems, r)
	}
	for _, res := range r.Results {
		if res.Check == CheckScaledObjects && res.Skipped == "" {
			t.Errorf("ScaledObject check ran without KEDA: %+v", res)
		}
	}
}

func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"headroomd", "--budget-gpus=64"}, "64", true},
		{[]string{"-budget-gpus", "32"}, "32", true},
		{[]string{"--budget-gpus-x=1", "budget-gpus=2"}, "", false},
		{[]string{"--budget-gpus"}, "", false},
	} {
		got, ok := FlagValue(tc.args, "budget-gpus")
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.args, got, ok, tc.want, tc.ok)
		}
	}
}
