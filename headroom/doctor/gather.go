package doctor

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	kedaclient "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/nodes"
)

// Options say where headroomd keeps its objects and what it runs with.
type Options struct {
	Namespace     string
	ConfigMapName string
	LeaseName     string
	// PriorityClass is headroomd's --priority-class.
	PriorityClass string
	// BudgetGPUs is headroomd's --budget-gpus; 0 means unknown, and Gather looks
	// for the flag in the Deployments of Namespace.
	BudgetGPUs int64
}

// Gather reads what the checks need from the cluster. It only reads (get, list
// and discovery), so it runs with a read-only token. An error means the cluster
// could not be read; problems found in what was read are left to the checks.
func Gather(ctx context.Context, kube kubernetes.Interface, kc kedaclient.Interface, o Options, now time.Time) (Inputs, error) {
	in := Inputs{Now: now, Namespace: o.Namespace, ConfigMapName: o.ConfigMapName, LeaseName: o.LeaseName}

	var err error
	if in.KEDAInstalled, err = KEDAServed(kube); err != nil {
		return in, err
	}

	cfg, _ := headroom.ParseConfig(nil)
	cm, err := kube.CoreV1().ConfigMaps(o.Namespace).Get(ctx, o.ConfigMapName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return in, fmt.Errorf("getting ConfigMap %s/%s: %w", o.Namespace, o.ConfigMapName, err)
	default:
		in.ConfigFound = true
		if c, perr := headroom.ParseConfig([]byte(cm.Data[headroom.ConfigDataKey])); perr != nil {
			in.ConfigError = perr.Error()
		} else {
			cfg = c
		}
	}

	pcs, err := kube.SchedulingV1().PriorityClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return in, fmt.Errorf("listing PriorityClasses: %w", err)
	}
	classes := map[string]PriorityClass{}
	var globalDefault *int32
	for _, pc := range pcs.Items {
		classes[pc.Name] = PriorityClass{Name: pc.Name, Found: true, Value: pc.Value, GlobalDefault: pc.GlobalDefault}
		if pc.GlobalDefault {
			v := pc.Value
			globalDefault = &v
		}
	}

	if in.KEDAInstalled {
		if in.Workloads, err = workloads(ctx, kube, kc, cfg, classes, globalDefault); err != nil {
			return in, err
		}
	}

	names := map[string]bool{o.PriorityClass: true}
	rss, err := kube.AppsV1().ReplicaSets(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{
		headroom.LabelManagedBy: headroom.ManagedByValue, headroom.LabelComponent: headroom.ComponentValue}).String()})
	if err != nil {
		return in, fmt.Errorf("listing placeholder ReplicaSets in %s: %w", o.Namespace, err)
	}
	for _, rs := range rss.Items {
		if n := rs.Spec.Template.Spec.PriorityClassName; n != "" {
			names[n] = true
		}
	}
	for n := range names {
		pc, ok := classes[n]
		if !ok {
			pc = PriorityClass{Name: n}
		}
		in.PlaceholderClasses = append(in.PlaceholderClasses, pc)
	}
	sort.Slice(in.PlaceholderClasses, func(i, j int) bool { return in.PlaceholderClasses[i].Name < in.PlaceholderClasses[j].Name })

	nl, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return in, fmt.Errorf("listing nodes: %w", err)
	}
	for i := range nl.Items {
		info := nodes.FromNode(&nl.Items[i])
		if !info.GPUNode {
			continue
		}
		n := Node{Name: info.Name, Zone: info.Zone}
		for _, name := range info.Allocatable.GPUNames() {
			n.GPUs = max(n.GPUs, info.Allocatable.GPU(name))
		}
		in.Nodes = append(in.Nodes, n)
	}
	sort.Slice(in.Nodes, func(i, j int) bool { return in.Nodes[i].Name < in.Nodes[j].Name })

	lease, err := kube.CoordinationV1().Leases(o.Namespace).Get(ctx, o.LeaseName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return in, fmt.Errorf("getting Lease %s/%s: %w", o.Namespace, o.LeaseName, err)
	default:
		l := &Lease{}
		if lease.Spec.HolderIdentity != nil {
			l.Holder = *lease.Spec.HolderIdentity
		}
		if lease.Spec.RenewTime != nil {
			l.RenewTime = lease.Spec.RenewTime.Time
		} else if lease.Spec.AcquireTime != nil {
			l.RenewTime = lease.Spec.AcquireTime.Time
		}
		if lease.Spec.LeaseDurationSeconds != nil {
			l.Duration = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
		}
		in.Lease = l
	}

	in.BudgetGPUs, in.BudgetSource = o.BudgetGPUs, "--budget-gpus"
	in.BudgetKnown = o.BudgetGPUs > 0
	if !in.BudgetKnown {
		if in.BudgetGPUs, in.BudgetSource, err = DeployedBudget(ctx, kube, o.Namespace); err != nil {
			return in, err
		}
		in.BudgetKnown = in.BudgetSource != ""
	}
	if in.BudgetKnown && cfg.BudgetGPUs != nil && *cfg.BudgetGPUs < in.BudgetGPUs {
		in.BudgetGPUs, in.BudgetSource = *cfg.BudgetGPUs, "lowered by config budgetGPUs"
	}
	return in, nil
}

// KEDAServed asks discovery whether keda.sh/v1alpha1 serves scaledobjects.
func KEDAServed(kube kubernetes.Interface) (bool, error) {
	rl, err := kube.Discovery().ServerResourcesForGroupVersion(kedav1alpha1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s: %w", kedav1alpha1.SchemeGroupVersion, err)
	}
	for _, r := range rl.APIResources {
		if r.Name == "scaledobjects" {
			return true, nil
		}
	}
	return false, nil
}

// workloads translates the covered ScaledObjects the way the controller does
// (keda.Translate) and adds the priorities of their pods.
func workloads(ctx context.Context, kube kubernetes.Interface, kc kedaclient.Interface, cfg headroom.Config,
	classes map[string]PriorityClass, globalDefault *int32) ([]Workload, error) {
	sos, err := kc.KedaV1alpha1().ScaledObjects(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing ScaledObjects: %w", err)
	}
	sort.Slice(sos.Items, func(i, j int) bool {
		a, b := sos.Items[i], sos.Items[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	var out []Workload
	for i := range sos.Items {
		so := &sos.Items[i]
		if !cfg.Covers(so.Labels, so.Annotations) {
			continue
		}
		in := keda.Inputs{ScaledObject: so}
		hpa, err := kube.AutoscalingV2().HorizontalPodAutoscalers(so.Namespace).Get(ctx, keda.HPAName(so), metav1.GetOptions{})
		switch {
		case err == nil:
			in.HPA = hpa
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("getting HPA of ScaledObject %s/%s: %w", so.Namespace, so.Name, err)
		}
		var tmpl *corev1.PodTemplateSpec
		var sel *metav1.LabelSelector
		if kind, name, ok := keda.TargetRef(so); ok {
			switch kind {
			case "Deployment":
				d, err := kube.AppsV1().Deployments(so.Namespace).Get(ctx, name, metav1.GetOptions{})
				if err == nil {
					in.Deployment, tmpl, sel = d, &d.Spec.Template, d.Spec.Selector
				} else if !apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("getting Deployment %s/%s: %w", so.Namespace, name, err)
				}
			case "StatefulSet":
				s, err := kube.AppsV1().StatefulSets(so.Namespace).Get(ctx, name, metav1.GetOptions{})
				if err == nil {
					in.StatefulSet, tmpl, sel = s, &s.Spec.Template, s.Spec.Selector
				} else if !apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("getting StatefulSet %s/%s: %w", so.Namespace, name, err)
				}
			}
		}
		w := Workload{Workload: keda.Translate(in)}
		if tmpl != nil {
			w.TemplateClass = tmpl.Spec.PriorityClassName
			switch {
			case w.TemplateClass != "":
				// A class that does not exist makes admission refuse the pods; the
				// ReplicaSet's events say so. Count it as 0 here.
				w.TemplatePriority = classes[w.TemplateClass].Value
			case globalDefault != nil:
				w.TemplatePriority = *globalDefault
			}
		}
		if s, err := metav1.LabelSelectorAsSelector(sel); sel != nil && err == nil && !s.Empty() {
			pods, err := kube.CoreV1().Pods(so.Namespace).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
			if err != nil {
				return nil, fmt.Errorf("listing pods of %s/%s: %w", so.Namespace, so.Name, err)
			}
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil || nodes.IsTerminated(&p) {
					continue
				}
				var prio int32
				if p.Spec.Priority != nil {
					prio = *p.Spec.Priority
				}
				w.Pods = append(w.Pods, Pod{Name: p.Name, Priority: prio})
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// DeployedBudget looks for headroomd's --budget-gpus in the containers of the
// Deployments of namespace (the chart's install). It returns an empty source
// when no Deployment has the flag.
func DeployedBudget(ctx context.Context, kube kubernetes.Interface, namespace string) (int64, string, error) {
	ds, err := kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, "", fmt.Errorf("listing Deployments in %s: %w", namespace, err)
	}
	for _, d := range ds.Items {
		for _, c := range d.Spec.Template.Spec.Containers {
			if v, ok := FlagValue(append(append([]string{}, c.Command...), c.Args...), "budget-gpus"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil && n > 0 {
					return n, fmt.Sprintf("--budget-gpus of Deployment %s/%s", namespace, d.Name), nil
				}
			}
		}
	}
	return 0, "", nil
}

// FlagValue finds a Go-style flag (-name=v, --name=v, -name v or --name v) in args.
func FlagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		t := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if t == a {
			continue
		}
		if v, ok := strings.CutPrefix(t, name+"="); ok {
			return v, true
		}
		if t == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}
