// Package controller is headroomd's reconcile loop: informers feed one
// level-triggered pass that builds a Snapshot, plans (headroom.Plan, pure), diffs
// against the placeholder ReplicaSets that exist and applies the difference
// through a placeholder backend. State is rebuilt from the cluster on every pass,
// so a restarted or newly elected controller adopts what exists.
package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	kedaclient "github.com/kedacore/keda/v2/pkg/generated/clientset/versioned"
	kedainformers "github.com/kedacore/keda/v2/pkg/generated/informers/externalversions"
	kedalisters "github.com/kedacore/keda/v2/pkg/generated/listers/keda/v1alpha1"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/gpu-headroom/gpu-headroom/headroom"
	"github.com/gpu-headroom/gpu-headroom/headroom/keda"
	"github.com/gpu-headroom/gpu-headroom/headroom/placeholder"
)

// Options are the controller's settings (flags in cmd/headroomd).
type Options struct {
	// Namespace holds the placeholders, the ConfigMap, the Lease and the Events.
	Namespace string
	// ConfigMapName is the headroom ConfigMap (key config.yaml) in Namespace.
	ConfigMapName string
	// BudgetGPUs is the hard cap on placeholder GPUs; the ConfigMap cannot raise it.
	BudgetGPUs int64
	// DryRun computes and exposes the plan and writes nothing.
	DryRun bool
	// Resync is the period of the reconcile tick besides informer events.
	Resync time.Duration
	// Prepull makes placeholders run the workload's image (see placeholder.Prepull).
	Prepull bool
	// MaxActionsPerPass bounds writes per pass (default 50).
	MaxActionsPerPass int
	// Forecast plans for the forecast q-quantile of each workload's peak need
	// within its lead time (ForecastDemand) instead of the reactive need, when no
	// forecaster is passed to New.
	Forecast bool
	// Batch is the window that coalesces informer events into one pass
	// (default 100ms).
	Batch time.Duration
	// CheckpointInterval is how often forecaster state is saved (default 1m).
	CheckpointInterval time.Duration
}

// Informers are the typed informers the controller reads, from shared
// factories (NewInformers).
type Informers struct {
	Kube      informers.SharedInformerFactory // cluster-wide
	Namespace informers.SharedInformerFactory // the controller's namespace only
	KEDA      kedainformers.SharedInformerFactory
}

// NewInformers builds the factories the controller reads, all through one
// NewTrim transform (compact pod records, labels shared between them).
func NewInformers(kube kubernetes.Interface, keda kedaclient.Interface, namespace string) Informers {
	trim := NewTrim()
	return Informers{
		Kube:      informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTransform(trim)),
		Namespace: informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(namespace), informers.WithTransform(trim)),
		KEDA:      kedainformers.NewSharedInformerFactoryWithOptions(keda, 0, kedainformers.WithTransform(trim)),
	}
}

// Start starts every informer that was asked for (after New).
func (i Informers) Start(stop <-chan struct{}) {
	i.Kube.Start(stop)
	i.Namespace.Start(stop)
	i.KEDA.Start(stop)
}

// Shutdown waits for the informers to stop once stop was closed.
func (i Informers) Shutdown() {
	i.Kube.Shutdown()
	i.Namespace.Shutdown()
	i.KEDA.Shutdown()
}

// Controller is the reconcile loop.
type Controller struct {
	opts           Options
	log            *zap.Logger
	kube           kubernetes.Interface
	backend        placeholder.Backend
	recorder       record.EventRecorder
	metrics        *Metrics
	forecaster     headroom.Forecaster
	forecasts      *ForecastDemand
	lead           *leadTimes
	usage          *usageIndex
	nodeInfos      nodeInfoCache
	restored       bool
	lastCheckpoint time.Time
	now            func() time.Time

	nodes        corelisters.NodeLister
	pods         cache.Indexer // of *Pod (see Trim)
	deployments  appslisters.DeploymentLister
	statefulsets appslisters.StatefulSetLister
	hpas         autoscalinglisters.HorizontalPodAutoscalerLister
	replicasets  appslisters.ReplicaSetLister
	configmaps   corelisters.ConfigMapLister
	scaledobjs   kedalisters.ScaledObjectLister
	synced       []cache.InformerSynced
	queue        workqueue.TypedRateLimitingInterface[string]

	// Kept between passes (only the worker goroutine touches them).
	goodConfig   *headroom.Config
	badConfigRV  string
	lastGood     map[string]headroom.Demand
	cooldown     headroom.CooldownState
	seeded       bool
	scarcity     headroom.ScarcityState
	warnedZones  string
	report       *Report
	reportMu     sync.RWMutex
	preemptedUID sync.Map
}

// queueKey is the only key: headroom depends on everything at once.
const queueKey = "headroom"

// New wires the controller to its informers. backend may be nil in dry-run.
func New(opts Options, log *zap.Logger, kube kubernetes.Interface, inf Informers, backend placeholder.Backend,
	recorder record.EventRecorder, metrics *Metrics, forecaster headroom.Forecaster, now func() time.Time) (*Controller, error) {
	if opts.Namespace == "" || opts.ConfigMapName == "" {
		return nil, errors.New("controller needs a namespace and a ConfigMap name")
	}
	if opts.BudgetGPUs < 0 {
		return nil, fmt.Errorf("negative GPU budget %d", opts.BudgetGPUs)
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 100 * time.Millisecond
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = time.Minute
	}
	if opts.MaxActionsPerPass <= 0 {
		opts.MaxActionsPerPass = 50
	}
	if now == nil {
		now = time.Now
	}
	c := &Controller{
		opts: opts, log: log, kube: kube, backend: backend, recorder: recorder, metrics: metrics,
		forecaster: forecaster, now: now, lastGood: map[string]headroom.Demand{}, lead: newLeadTimes(), usage: newUsageIndex(), nodeInfos: nodeInfoCache{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](200*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "headroom"}),
	}
	if c.forecaster == nil {
		if opts.Forecast {
			fd := NewForecastDemand(c.currentConfig)
			fd.Horizon = c.horizon
			c.forecaster, c.forecasts = fd, fd
		} else {
			c.forecaster = headroom.ReactiveForecaster{}
		}
	}
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueue() },
		UpdateFunc: func(any, any) { c.enqueue() },
		DeleteFunc: func(any) { c.enqueue() },
	}
	type informer interface {
		Informer() cache.SharedIndexInformer
	}
	add := func(i informer, h cache.ResourceEventHandler) error {
		reg, err := i.Informer().AddEventHandler(h)
		if err != nil {
			return fmt.Errorf("adding event handler: %w", err)
		}
		// Synced once the handler (not just the store) has seen the initial
		// list: the pod handler keeps the usage index.
		c.synced = append(c.synced, reg.HasSynced)
		return nil
	}
	ni := inf.Kube.Core().V1().Nodes()
	pi := inf.Kube.Core().V1().Pods()
	di := inf.Kube.Apps().V1().Deployments()
	si := inf.Kube.Apps().V1().StatefulSets()
	hi := inf.Kube.Autoscaling().V2().HorizontalPodAutoscalers()
	ri := inf.Namespace.Apps().V1().ReplicaSets()
	ci := inf.Namespace.Core().V1().ConfigMaps()
	oi := inf.KEDA.Keda().V1alpha1().ScaledObjects()
	nodeHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueue() },
		UpdateFunc: func(old, cur any) { c.lead.nodeUpdate(old, cur); c.enqueue() },
		DeleteFunc: func(any) { c.enqueue() },
	}
	usage := c.usage.handler()
	podHandler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { usage.OnAdd(obj, false); c.enqueue() },
		UpdateFunc: func(old, cur any) {
			usage.OnUpdate(old, cur)
			c.countPreemption(cur)
			c.lead.podUpdate(old, cur)
			c.enqueue()
		},
		DeleteFunc: func(obj any) { usage.OnDelete(obj); c.countPreemption(obj); c.enqueue() },
	}
	for _, x := range []struct {
		i informer
		h cache.ResourceEventHandler
	}{{ni, nodeHandler}, {pi, podHandler}, {di, enqueue}, {si, enqueue}, {hi, enqueue}, {ri, enqueue}, {ci, enqueue}, {oi, enqueue}} {
		if err := add(x.i, x.h); err != nil {
			return nil, err
		}
	}
	if err := pi.Informer().AddIndexers(cache.Indexers{podStateIndex: podState}); err != nil {
		return nil, fmt.Errorf("adding the pod state index: %w", err)
	}
	c.nodes, c.pods, c.deployments, c.statefulsets = ni.Lister(), pi.Informer().GetIndexer(), di.Lister(), si.Lister()
	c.hpas, c.replicasets, c.configmaps, c.scaledobjs = hi.Lister(), ri.Lister(), ci.Lister(), oi.Lister()
	return c, nil
}

// Run processes the queue until ctx ends. Informers must have been started.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.log.Info("waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return errors.New("informer caches did not sync")
	}
	c.log.Info("caches synced; reconciling", zap.Bool("dryRun", c.opts.DryRun), zap.Int64("budgetGPUs", c.opts.BudgetGPUs))
	c.queue.Add(queueKey)
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		for c.processNext(ctx) {
		}
	}, time.Second)
	return nil
}

// Synced reports whether every informer has synced (the readiness probe).
func (c *Controller) Synced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.Reconcile(ctx); err != nil {
		c.log.Error("reconcile failed; retrying with backoff", zap.Error(err))
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	c.queue.AddAfter(key, c.opts.Resync)
	return true
}

// enqueue schedules a pass after a short batching window: a burst of events
// (thousands of pod status updates) becomes one pass, and a demand change still
// reaches the placeholders well within a second.
func (c *Controller) enqueue() { c.queue.AddAfter(queueKey, c.opts.Batch) }

// countPreemption counts a placeholder pod the scheduler preempted, once per pod.
func (c *Controller) countPreemption(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p := asPod(obj)
	if p == nil || !p.Preempted || p.Namespace != c.opts.Namespace || !p.Placeholder {
		return
	}
	if _, seen := c.preemptedUID.LoadOrStore(p.UID, true); !seen {
		c.metrics.Preemptions.WithLabelValues(p.Labels[headroom.LabelZone]).Inc()
	}
}

// horizon is a workload's lead time: a per-workload leadTime in the config, else
// the measured p90 of node provisioning plus pod start, else the configured
// default.
func (c *Controller) horizon(key string, cfg headroom.Config) time.Duration {
	d, _ := c.lead.horizon(key, cfg)
	return d
}

// currentConfig is the last good config (defaults before the first pass).
func (c *Controller) currentConfig() headroom.Config {
	if g := c.goodConfig; g != nil {
		return *g
	}
	cfg, _ := headroom.ParseConfig(nil)
	return cfg
}

// config returns the config in force: the ConfigMap's if it parses, else the last
// good one (a bad edit never drops headroom), else the built-in defaults.
func (c *Controller) config() headroom.Config {
	cm, err := c.configmaps.ConfigMaps(c.opts.Namespace).Get(c.opts.ConfigMapName)
	if apierrors.IsNotFound(err) {
		c.metrics.ConfigValid.Set(1)
		return c.currentConfig()
	}
	if err != nil {
		c.log.Error("reading headroom ConfigMap", zap.Error(err))
		c.metrics.ReconcileErrors.WithLabelValues("config").Inc()
		return c.currentConfig()
	}
	cfg, perr := headroom.ParseConfig([]byte(cm.Data[headroom.ConfigDataKey]))
	if perr == nil {
		c.goodConfig = &cfg
		c.badConfigRV = ""
		c.metrics.ConfigValid.Set(1)
		return cfg
	}
	c.metrics.ConfigValid.Set(0)
	if c.badConfigRV != cm.ResourceVersion {
		c.badConfigRV = cm.ResourceVersion
		c.metrics.ConfigErrors.Inc()
		c.log.Error("rejected headroom ConfigMap; keeping the last good config",
			zap.String("configmap", c.opts.Namespace+"/"+c.opts.ConfigMapName), zap.String("resourceVersion", cm.ResourceVersion), zap.Error(perr))
		if c.recorder != nil {
			c.recorder.Eventf(cm, corev1.EventTypeWarning, "InvalidConfig", "keeping the last good config: %v", perr)
		}
	}
	return c.currentConfig()
}

// Reconcile is one pass: snapshot, plan, diff, apply, report.
func (c *Controller) Reconcile(ctx context.Context) (err error) {
	start := c.now()
	defer func() {
		c.metrics.ReconcileDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			c.metrics.LastSuccess.Set(float64(c.now().Unix()))
		}
	}()
	now := start
	cfg := c.config()
	policy := headroom.ResolvePolicy(cfg, now, c.opts.BudgetGPUs)

	allNodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		c.metrics.ReconcileErrors.WithLabelValues("snapshot").Inc()
		return fmt.Errorf("listing nodes: %w", err)
	}
	infos := c.nodeInfos.infos(allNodes)
	phRecs, err := podsInState(c.pods, podStatePlaceholder, true)
	if err != nil {
		c.metrics.ReconcileErrors.WithLabelValues("snapshot").Inc()
		return err
	}
	pendingRecs, err := podsInState(c.pods, podStatePending, true)
	if err != nil {
		c.metrics.ReconcileErrors.WithLabelValues("snapshot").Inc()
		return err
	}
	notReadyRecs, err := podsInState(c.pods, podStateNotReady, false)
	if err != nil {
		c.metrics.ReconcileErrors.WithLabelValues("snapshot").Inc()
		return err
	}
	rsSel := labels.SelectorFromSet(labels.Set{headroom.LabelManagedBy: headroom.ManagedByValue, headroom.LabelComponent: headroom.ComponentValue})
	rss, err := c.replicasets.ReplicaSets(c.opts.Namespace).List(rsSel)
	if err != nil {
		c.metrics.ReconcileErrors.WithLabelValues("snapshot").Inc()
		return fmt.Errorf("listing placeholder ReplicaSets: %w", err)
	}
	sort.Slice(rss, func(i, j int) bool { return rss[i].Name < rss[j].Name })
	observed := placeholder.Observed(rss)

	workloads, selectors, images := c.workloads(cfg)
	ownerByLabels := ownerOf(selectors)
	owner := func(p *corev1.Pod) string { return ownerByLabels(p.Namespace, p.Labels) }
	inflight := replicaPods(notReadyRecs, ownerByLabels)
	for i := range workloads {
		rp := inflight[workloads[i].Key()]
		workloads[i].StartingReplicas, workloads[i].PendingReplicas = rp.Starting, rp.Pending
	}
	c.lead.drain(ownerByLabels)
	c.restoreForecasts(cfg)
	current := map[string]headroom.Demand{}
	for _, w := range workloads {
		current[w.Key()] = c.forecaster.Demand(w, now)
	}
	if c.forecasts != nil {
		keep := map[string]bool{}
		for k := range current {
			keep[k] = true
		}
		c.forecasts.Forget(keep)
	}
	effective, lastGood := headroom.HoldLastGood(c.lastGood, current)
	c.lastGood = lastGood

	// Only pending GPU pods and placeholders need more than their node and
	// requests; rebuild Pods for those few.
	var placeholderPods, unschedulable []*corev1.Pod
	for _, p := range phRecs {
		if p.Namespace == c.opts.Namespace {
			placeholderPods = append(placeholderPods, p.Pod())
		}
	}
	for _, p := range pendingRecs {
		unschedulable = append(unschedulable, p.Pod())
	}
	var events []headroom.ScarcityEvent
	c.scarcity, events = headroom.UpdateScarcity(c.scarcity, headroom.ScarcityObservationsFrom(placeholderPods),
		headroom.LastNodeAdded(infos), now, cfg.ScarcityConfig())
	c.scarcityEvents(events, rss)

	unhealthy := c.agentReports(now)
	gpuNodes := headroom.NodesFrom(infos, c.usage.byNode())
	discountUnhealthy(gpuNodes, unhealthy)
	snap := headroom.Snapshot{
		Nodes:        gpuNodes,
		Pending:      headroom.PendingFrom(unschedulable, owner),
		Workloads:    workloads,
		Placeholders: observed,
		Scarce:       c.scarcity.Scarce(),
	}
	desired := headroom.Plan(snap, effective, policy)
	if !c.seeded {
		shapes := map[string]headroom.Shape{}
		for _, w := range workloads {
			if w.HasShape {
				shapes[w.ShapeHash] = w.Shape
			}
		}
		c.cooldown = headroom.SeedCooldown(observed, shapes, now)
		c.seeded = true
	}
	desired, c.cooldown = headroom.ApplyCooldown(c.cooldown, desired, now, policy.Cooldown)
	actions, conflicts := headroom.Diff(desired.Placeholders, observed)
	for _, msg := range conflicts {
		c.log.Warn("placeholder name conflict", zap.String("detail", msg))
	}
	c.warnUnknownZones(cfg, snap.Nodes)

	rep := &Report{At: now, DryRun: c.opts.DryRun, Policy: policy, Workloads: workloads, Demand: effective,
		Desired: desired, Actions: actions, Conflicts: conflicts, Scarce: c.scarcity}
	c.setReport(rep)
	c.observe(snap, desired, placeholderPods, workloads, effective, unhealthy)

	if err := c.saveForecasts(ctx, now); err != nil {
		c.log.Warn("forecast checkpoint not saved", zap.Error(err))
	}
	if c.opts.DryRun || c.backend == nil {
		if len(actions) > 0 {
			c.log.Info("dry run: not applying", zap.Stringers("actions", actions))
		}
		return nil
	}
	var errs []error
	for i, a := range actions {
		if i >= c.opts.MaxActionsPerPass {
			errs = append(errs, fmt.Errorf("%d actions left for the next pass (at most %d per pass)", len(actions)-i, c.opts.MaxActionsPerPass))
			break
		}
		pre := placeholder.Prepull{}
		if c.opts.Prepull {
			pre.Image = images[a.ShapeHash]
		}
		err := c.backend.Apply(ctx, a, pre)
		result := "ok"
		if err != nil {
			result = "error"
			errs = append(errs, err)
			if errors.Is(err, placeholder.ErrRateLimited) {
				break
			}
		} else {
			c.log.Info("placeholder action", zap.String("action", string(a.Kind)), zap.String("replicaSet", a.Name),
				zap.String("zone", a.Zone), zap.String("shape", a.ShapeHash), zap.Int32("from", a.From), zap.Int32("to", a.To), zap.String("reason", a.Reason))
		}
		c.metrics.Actions.WithLabelValues(string(a.Kind), a.Zone, result).Inc()
	}
	if len(errs) > 0 {
		c.metrics.ReconcileErrors.WithLabelValues("apply").Inc()
		return fmt.Errorf("applying placeholder actions: %w", errors.Join(errs...))
	}
	return nil
}

// workloads translates every covered ScaledObject. It also returns, per
// namespace, the target's pod selector (to tell which pending pods belong to a
// workload) and, per shape hash, the first workload image (for prepull).
func (c *Controller) workloads(cfg headroom.Config) ([]headroom.Workload, map[string][]ownerSel, map[string]string) {
	sos, err := c.scaledobjs.List(labels.Everything())
	if err != nil {
		c.log.Error("listing ScaledObjects", zap.Error(err))
		return nil, nil, nil
	}
	sort.Slice(sos, func(i, j int) bool {
		if sos[i].Namespace != sos[j].Namespace {
			return sos[i].Namespace < sos[j].Namespace
		}
		return sos[i].Name < sos[j].Name
	})
	var out []headroom.Workload
	sels := map[string][]ownerSel{}
	images := map[string]string{}
	for _, so := range sos {
		if !cfg.Covers(so.Labels, so.Annotations) {
			continue
		}
		in := keda.Inputs{ScaledObject: so}
		if hpa, err := c.hpas.HorizontalPodAutoscalers(so.Namespace).Get(keda.HPAName(so)); err == nil {
			in.HPA = hpa
		}
		var tmpl *corev1.PodTemplateSpec
		kind, name, ok := keda.TargetRef(so)
		var selector labels.Selector
		if ok {
			switch kind {
			case "Deployment":
				if d, err := c.deployments.Deployments(so.Namespace).Get(name); err == nil {
					in.Deployment = d
					tmpl = &d.Spec.Template
					selector = selectorOf(d.Spec.Selector)
				}
			case "StatefulSet":
				if s, err := c.statefulsets.StatefulSets(so.Namespace).Get(name); err == nil {
					in.StatefulSet = s
					tmpl = &s.Spec.Template
					selector = selectorOf(s.Spec.Selector)
				}
			}
		}
		w := keda.Translate(in)
		out = append(out, w)
		if selector != nil {
			sels[so.Namespace] = append(sels[so.Namespace], ownerSel{key: w.Key(), sel: selector})
		}
		if w.HasShape && tmpl != nil && len(tmpl.Spec.Containers) > 0 && images[w.ShapeHash] == "" {
			images[w.ShapeHash] = tmpl.Spec.Containers[0].Image
		}
	}
	return out, sels, images
}
