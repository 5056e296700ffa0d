// Package doctor checks a cluster for the mistakes that make gpu-headroom keep no
// headroom, or headroom that does not help: KEDA missing, workloads it cannot
// read, placeholder priorities that the autoscaler ignores or that inference pods
// cannot preempt, GPU nodes outside every zone, no controller leading, and a
// budget too small to warm one node.
//
// The checks are pure functions over plain values (Inputs), so each one is
// table-tested without a cluster; Gather fills Inputs from a real cluster with
// reads only. `headroom doctor` prints the Report.
package doctor

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/headroom/placeholder"
)

// Check identifiers, stable for scripts that read `headroom doctor --json`.
const (
	CheckKEDA                = "keda-crds"
	CheckConfig              = "config"
	CheckScaledObjects       = "scaledobjects"
	CheckPlaceholderPriority = "placeholder-priority"
	CheckInferencePriority   = "inference-priority"
	CheckNodeZones           = "node-zones"
	CheckLeader              = "leader"
	CheckBudget              = "budget"
)

// Inputs is what the checks look at, as plain values (see Gather).
type Inputs struct {
	// Now is the time leases are judged against.
	Now time.Time
	// Namespace is the controller's namespace (ConfigMap, Lease, placeholders).
	Namespace string

	// KEDAInstalled is true when the API server serves keda.sh/v1alpha1
	// scaledobjects, i.e. KEDA's CRDs are installed.
	KEDAInstalled bool

	// ConfigMapName is the headroom ConfigMap; ConfigFound says whether it exists
	// and ConfigError is its parse error ("" when it parses).
	ConfigMapName string
	ConfigFound   bool
	ConfigError   string

	// Workloads are the ScaledObjects the config covers, translated.
	Workloads []Workload

	// PlaceholderClasses are the PriorityClasses placeholders use: the one
	// headroomd is configured with and any named by existing placeholder sets.
	PlaceholderClasses []PriorityClass

	// Nodes are the GPU nodes.
	Nodes []Node

	// LeaseName is the leader election Lease; Lease is nil when it does not exist.
	LeaseName string
	Lease     *Lease

	// BudgetGPUs is the placeholder GPU budget in force; BudgetKnown is false when
	// it could not be found out. BudgetSource says where it came from.
	BudgetGPUs   int64
	BudgetKnown  bool
	BudgetSource string
}

// Workload is one covered ScaledObject with the priorities of its pods.
type Workload struct {
	keda.Workload
	// TemplatePriority is the priority the target's pods get at admission: their
	// PriorityClass's value, the global default class's, or 0. TemplateClass is
	// the class name ("" when none is named).
	TemplatePriority int32
	TemplateClass    string
	// Pods are the target's pods that exist now, with their admitted priority.
	Pods []Pod
}

// Pod is an inference pod and its priority (spec.priority, set at admission).
type Pod struct {
	Name     string
	Priority int32
}

// PriorityClass is a placeholder PriorityClass; Found is false when it does not
// exist.
type PriorityClass struct {
	Name          string
	Found         bool
	Value         int32
	GlobalDefault bool
}

// Node is a GPU node: its zone label ("" when missing) and the largest count of
// any one GPU resource it has allocatable.
type Node struct {
	Name string
	Zone string
	GPUs int64
}

// Lease is the leader election Lease as plain values.
type Lease struct {
	Holder    string
	RenewTime time.Time
	Duration  time.Duration
}

// Finding is one problem and how to fix it.
type Finding struct {
	// Object names what is wrong (e.g. "llm/chat", "node gpu-7"); "" when the
	// problem is cluster-wide.
	Object  string `json:"object,omitempty"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// Result is the outcome of one check.
type Result struct {
	Check string `json:"check"`
	// Title says what the check looks at.
	Title string `json:"title"`
	// Skipped, when not empty, says why the check did not run.
	Skipped  string    `json:"skipped,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
	// OK is a short note on what was found fine, when there are no findings.
	OK string `json:"ok,omitempty"`
}

// Report is every check's result in a fixed order.
type Report struct {
	Results []Result `json:"results"`
	// Problems counts findings over all checks.
	Problems int `json:"problems"`
}

// Run applies every check to in.
func Run(in Inputs) Report {
	var r Report
	add := func(res Result) {
		r.Problems += len(res.Findings)
		r.Results = append(r.Results, res)
	}
	add(KEDA(in.KEDAInstalled))
	add(Config(in.Namespace, in.ConfigMapName, in.ConfigFound, in.ConfigError))
	if in.KEDAInstalled {
		add(ScaledObjects(in.Workloads))
	} else {
		add(Result{Check: CheckScaledObjects, Title: scaledObjectsTitle, Skipped: "KEDA's CRDs are not installed"})
	}
	add(PlaceholderPriority(in.PlaceholderClasses, in.Workloads))
	add(InferencePriority(in.Workloads))
	add(NodeZones(in.Nodes))
	add(Leader(in.Namespace, in.LeaseName, in.Lease, in.Now))
	add(Budget(in.BudgetGPUs, in.BudgetKnown, in.BudgetSource, in.Nodes))
	return r
}

// KEDA checks that KEDA's ScaledObject API is served: without it there is no
// demand to read and headroomd's informers never sync.
func KEDA(installed bool) Result {
	r := Result{Check: CheckKEDA, Title: "KEDA's CRDs are installed"}
	if installed {
		r.OK = "keda.sh/v1alpha1 scaledobjects is served"
		return r
	}
	r.Findings = []Finding{{
		Problem: "the API server does not serve keda.sh/v1alpha1 scaledobjects: KEDA's CRDs are not installed, so headroomd has no demand to read and its informers never sync",
		Fix:     "install KEDA (helm install keda kedacore/keda -n keda --create-namespace) before gpu-headroom",
	}}
	return r
}

// Config checks the headroom ConfigMap. A missing one is fine (defaults: no
// floors, only annotated ScaledObjects covered); one that does not parse means
// headroomd runs on the last good config or the defaults, not on what was written.
func Config(namespace, name string, found bool, parseErr string) Result {
	r := Result{Check: CheckConfig, Title: "the headroom ConfigMap parses"}
	switch {
	case !found:
		r.OK = fmt.Sprintf("ConfigMap %s/%s not found: built-in defaults apply (no floors; only ScaledObjects annotated %s=true are covered)", namespace, name, headroom.AnnotationEnabled)
	case parseErr != "":
		r.Findings = []Finding{{
			Object:  fmt.Sprintf("configmap %s/%s", namespace, name),
			Problem: "config.yaml is rejected (" + parseErr + "); headroomd keeps the last good config, or the defaults after a restart",
			Fix:     "correct config.yaml (the README's config reference lists every key); the InvalidConfig Event on the ConfigMap repeats the error",
		}}
	default:
		r.OK = fmt.Sprintf("ConfigMap %s/%s parses", namespace, name)
	}
	return r
}

const scaledObjectsTitle = "covered ScaledObjects target GPU pods and have their HPA"

// ScaledObjects checks each covered ScaledObject: its target must exist, be a
// Deployment or StatefulSet and request one GPU resource, and KEDA must have
// created its HPA (the HPA's desiredReplicas is the demand headroom reads).
func ScaledObjects(ws []Workload) Result {
	r := Result{Check: CheckScaledObjects, Title: scaledObjectsTitle}
	for _, w := range ws {
		target := fmt.Sprintf("%s %s", w.TargetKind, w.TargetName)
		var f *Finding
		switch w.State {
		case keda.StateNoGPU:
			f = &Finding{Problem: fmt.Sprintf("its target %s requests no GPU, so there is nothing to keep warm", target),
				Fix: fmt.Sprintf("add %s limits to the target's pod template, or opt the ScaledObject out with the annotation %s=false", "nvidia.com/gpu", headroom.AnnotationEnabled)}
		case keda.StateHPAMissing:
			f = &Finding{Problem: fmt.Sprintf("KEDA's HPA %s does not exist, so headroom sees no desired replicas (it falls back to the target's %d)", w.HPAName, w.SpecReplicas),
				Fix: fmt.Sprintf("look at the ScaledObject's Ready condition and the KEDA operator's log (kubectl -n %s describe scaledobject %s); KEDA creates the HPA once its triggers work", w.Namespace, w.Name)}
		case keda.StateTargetMissing:
			f = &Finding{Problem: "its scale target does not exist: " + w.Reason,
				Fix: "create the target or correct spec.scaleTargetRef"}
		case keda.StateUnsupported:
			f = &Finding{Problem: w.Reason,
				Fix: "scale a Deployment or StatefulSet whose pods request exactly one GPU resource, or opt the ScaledObject out with " + headroom.AnnotationEnabled + "=false"}
		}
		if f != nil {
			f.Object = w.Key()
			r.Findings = append(r.Findings, *f)
		}
	}
	if len(r.Findings) == 0 {
		r.OK = fmt.Sprintf("%d covered ScaledObject(s)", len(ws))
	}
	return r
}

// PlaceholderPriority checks the placeholder PriorityClasses: they must exist,
// not be below cluster-autoscaler's default expendable cutoff (-10, or it never
// scales up for them), not be a global default, and stay below the lowest
// inference priority (or inference pods cannot preempt them).
func PlaceholderPriority(classes []PriorityClass, ws []Workload) Result {
	r := Result{Check: CheckPlaceholderPriority, Title: "placeholders are above the autoscaler's cutoff and below inference pods"}
	lowest, who := lowestInference(ws)
	for _, pc := range classes {
		obj := "priorityclass " + pc.Name
		switch {
		case !pc.Found:
			r.Findings = append(r.Findings, Finding{Object: obj,
				Problem: "does not exist: placeholder ReplicaSets that name it cannot create pods",
				Fix:     fmt.Sprintf("let headroomd create it (--create-priority-class, the default, when it becomes leader) or: kubectl create priorityclass %s --value=%d --preemption-policy=Never", pc.Name, placeholder.DefaultPriority)})
			continue
		case pc.Value < placeholder.MinPriority:
			r.Findings = append(r.Findings, Finding{Object: obj,
				Problem: fmt.Sprintf("value %d is below cluster-autoscaler's default --expendable-pods-priority-cutoff %d: the autoscaler ignores pending placeholders and never adds a node for them", pc.Value, placeholder.MinPriority),
				Fix:     fmt.Sprintf("recreate it at %d (kubectl delete priorityclass %s && kubectl create priorityclass %s --value=%d --preemption-policy=Never), or lower the autoscaler's cutoff below %d", placeholder.DefaultPriority, pc.Name, pc.Name, placeholder.DefaultPriority, pc.Value)})
		case pc.Value >= lowest:
			r.Findings = append(r.Findings, Finding{Object: obj,
				Problem: fmt.Sprintf("value %d is not below the inference priority %d (%s): those pods cannot preempt placeholders and wait for a node anyway", pc.Value, lowest, who),
				Fix:     fmt.Sprintf("give placeholders a value in %d..%d and inference pods a priority of 0 or more", placeholder.MinPriority, placeholder.MaxPriority)})
		}
		if pc.GlobalDefault {
			r.Findings = append(r.Findings, Finding{Object: obj,
				Problem: "is globalDefault: every pod without a PriorityClass gets the placeholder priority",
				Fix:     fmt.Sprintf("set globalDefault: false on %s", pc.Name)})
		}
	}
	if len(r.Findings) == 0 {
		var vs []string
		for _, pc := range classes {
			vs = append(vs, fmt.Sprintf("%s=%d", pc.Name, pc.Value))
		}
		r.OK = strings.Join(vs, ", ") + fmt.Sprintf(" (lowest inference priority %d)", lowest)
	}
	return r
}

// lowestInference returns the lowest priority inference pods have or would get
// (0 when no workload is covered: the priority of pods that name no class) and
// where it comes from.
func lowestInference(ws []Workload) (int32, string) {
	var lowest int32
	who := "the default priority of pods without a PriorityClass"
	first := true
	for _, w := range ws {
		if first || w.TemplatePriority < lowest {
			lowest, who, first = w.TemplatePriority, w.Key()+"'s pod template", false
		}
		for _, p := range w.Pods {
			if p.Priority < lowest {
				lowest, who = p.Priority, "pod "+w.Namespace+"/"+p.Name
			}
		}
	}
	return lowest, who
}

// InferencePriority checks that inference pods run at priority 0 or more:
// placeholders sit at -10..-1, and only a pod of higher priority preempts one.
func InferencePriority(ws []Workload) Result {
	r := Result{Check: CheckInferencePriority, Title: "inference pods run at priority 0 or more"}
	for _, w := range ws {
		var low []string
		for _, p := range w.Pods {
			if p.Priority < 0 {
				low = append(low, fmt.Sprintf("%s (%d)", p.Name, p.Priority))
			}
		}
		if w.TemplatePriority >= 0 && len(low) == 0 {
			continue
		}
		class := w.TemplateClass
		if class == "" {
			class = "the global default class"
		}
		problem := fmt.Sprintf("pods of %s %s get priority %d from %s", w.TargetKind, w.TargetName, w.TemplatePriority, class)
		if len(low) > 0 {
			problem = fmt.Sprintf("pods of %s %s run below priority 0: %s", w.TargetKind, w.TargetName, strings.Join(low, ", "))
		}
		r.Findings = append(r.Findings, Finding{Object: w.Key(),
			Problem: problem + "; a pod below 0 may not preempt placeholders",
			Fix:     "set the pod template's priorityClassName to a class with value >= 0 (or none, for 0), then roll the pods"})
	}
	if len(r.Findings) == 0 {
		r.OK = fmt.Sprintf("%d covered workload(s)", len(ws))
	}
	return r
}

// NodeZones checks that every GPU node has a zone label: headroom is kept per
// zone, and a node without one is never counted as warm capacity.
func NodeZones(ns []Node) Result {
	r := Result{Check: CheckNodeZones, Title: "GPU nodes carry a zone label"}
	for _, n := range ns {
		if n.Zone == "" {
			r.Findings = append(r.Findings, Finding{Object: "node " + n.Name,
				Problem: "GPU node without a topology.kubernetes.io/zone label: headroom never counts it, and placeholders pinned to a zone never land on it",
				Fix:     "label it (kubectl label node " + n.Name + " topology.kubernetes.io/zone=<zone>) and set the label in the node group's template so new nodes get it"})
		}
	}
	if len(r.Findings) == 0 {
		zones := map[string]bool{}
		for _, n := range ns {
			zones[n.Zone] = true
		}
		r.OK = fmt.Sprintf("%d GPU node(s) in %d zone(s)", len(ns), len(zones))
	}
	return r
}

// Leader checks that a headroomd holds the leader Lease now: only the leader
// writes placeholders, so without one headroom is not kept.
func Leader(namespace, name string, l *Lease, now time.Time) Result {
	r := Result{Check: CheckLeader, Title: "a headroomd is leading"}
	obj := fmt.Sprintf("lease %s/%s", namespace, name)
	fix := fmt.Sprintf("start headroomd (kubectl -n %s get pods; kubectl -n %s logs deploy/gpu-headroom): it campaigns on this Lease and renews it every few seconds", namespace, namespace)
	switch {
	case l == nil:
		r.Findings = []Finding{{Object: obj, Problem: "no leader Lease: headroomd has never led in this namespace (not running, wrong --namespace or --lease-name, or --leader-elect=false)", Fix: fix}}
	case l.Holder == "":
		r.Findings = []Finding{{Object: obj, Problem: "the Lease is held by no one: the last leader released it and none took over", Fix: fix}}
	case !l.RenewTime.Add(l.Duration).After(now):
		r.Findings = []Finding{{Object: obj,
			Problem: fmt.Sprintf("the Lease of %s expired %s ago (renewed %s, duration %s): the leader stopped renewing", l.Holder,
				now.Sub(l.RenewTime.Add(l.Duration)).Round(time.Second), l.RenewTime.UTC().Format(time.RFC3339), l.Duration),
			Fix: fix + "; if it runs, its log says why it cannot renew (API server reachable? RBAC on leases?)"}}
	default:
		r.OK = fmt.Sprintf("held by %s, renewed %s ago", l.Holder, now.Sub(l.RenewTime).Round(time.Second))
	}
	return r
}

// Budget checks that the placeholder GPU budget covers at least one node's GPUs:
// a smaller budget can never make the autoscaler add a whole node, so headroom
// for a workload that needs a full node is zero.
func Budget(budget int64, known bool, source string, ns []Node) Result {
	r := Result{Check: CheckBudget, Title: "the GPU budget covers one GPU node"}
	if !known {
		r.Skipped = "budget unknown: pass --budget-gpus (the value headroomd runs with)"
		return r
	}
	var largest int64
	var node string
	names := make([]Node, len(ns))
	copy(names, ns)
	sort.Slice(names, func(i, j int) bool { return names[i].Name < names[j].Name })
	for _, n := range names {
		if n.GPUs > largest {
			largest, node = n.GPUs, n.Name
		}
	}
	if largest == 0 {
		r.OK = fmt.Sprintf("budget %d GPUs (%s); no GPU node has allocatable GPUs to compare with", budget, source)
		return r
	}
	if budget < largest {
		r.Findings = []Finding{{Object: "budget",
			Problem: fmt.Sprintf("the budget of %d GPUs (%s) is smaller than one GPU node (%s has %d): placeholders can never warm a whole node", budget, source, node, largest),
			Fix:     fmt.Sprintf("raise headroomd's --budget-gpus (and config budgetGPUs, if set) to at least %d", largest)}}
		return r
	}
	r.OK = fmt.Sprintf("budget %d GPUs (%s) >= largest node %d", budget, source, largest)
	return r
}
