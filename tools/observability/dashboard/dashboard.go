// Package dashboard builds the gpu-headroom Grafana dashboard from typed Go (the
// Grafana foundation SDK), so panels, units and queries are checked by the compiler
// and by tests instead of living in hand-edited JSON.
package dashboard

//lint:file-ignore SA1019 the v1 dashboard schema is what the Grafana sidecar and every Grafana before 12 load; dashboardv2 needs Grafana 12 with feature flags.

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is stable so that the sidecar replaces the dashboard on upgrade instead of
// adding a copy.
const UID = "gpu-headroom"

// ds points every panel at the dashboard's Prometheus data source variable, so the
// dashboard works in any Grafana whatever its data source is called.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// zone filters a selector by the $zone variable.
const zone = `zone=~"$zone"`

type query struct{ expr, legend string }

func q(expr, legend string) query { return query{expr, legend} }

func series(title, desc, unit string, qs ...query) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(desc).Datasource(ds).
		Unit(unit).Min(0).FillOpacity(10).Height(8).Span(12)
	for _, x := range qs {
		p.WithTarget(prometheus.NewDataqueryBuilder().Expr(x.expr).LegendFormat(x.legend))
	}
	return p
}

func single(title, desc, unit, expr string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(desc).Datasource(ds).Unit(unit).
		Height(4).Span(4).GraphMode(common.BigValueGraphModeArea).
		WithTarget(prometheus.NewDataqueryBuilder().Expr(expr).Instant())
}

// Builder returns the dashboard. Both controller replicas export the gauges (only
// the leader's move), so queries take max over replicas, never sum.
func Builder() *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder("GPU headroom").
		Uid(UID).
		Description("Warm GPU headroom kept by gpu-headroom for KEDA-scaled inference: warm vs desired GPUs per zone, demand, placeholders, preemptions, scarce zones, node provisioning, budget and controller health.").
		Tags([]string{"gpu-headroom", "gpu", "keda"}).
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("zone").Label("Zone").Datasource(ds).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(headroom_gpu_nodes, zone)")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Multi(true).IncludeAll(true).AllValue(".*")).
		WithRow(dashboard.NewRowBuilder("Overview")).
		WithPanel(single("Leading replicas", "Replicas holding the leader Lease; anything but 1 for minutes is an incident (HeadroomNoLeader).", "none",
			`sum(headroom_leader)`)).
		WithPanel(single("Budget in use", "Desired placeholder GPUs over the global budget in force.", "percentunit",
			`sum(max by (zone, gpu_resource) (headroom_desired_gpus)) / max(headroom_budget_gpus)`)).
		WithPanel(single("Warm GPUs", "GPUs held by running placeholders, all zones.", "none",
			`sum(max by (zone, gpu_resource) (headroom_reserved_gpus))`)).
		WithPanel(single("Scarce zone/shapes", "Zone and shape pairs marked out of GPUs.", "none",
			`sum(max by (zone, shape) (headroom_scarce_zone))`)).
		WithPanel(single("Pending GPU pods", "Unschedulable GPU pods that are not placeholders.", "none",
			`sum(max by (zone) (headroom_pending_gpu_pods))`)).
		WithPanel(single("Since last good reconcile", "Seconds since the leader completed a reconcile pass without error.", "s",
			`time() - max(headroom_last_successful_reconcile_timestamp_seconds)`)).
		WithRow(dashboard.NewRowBuilder("Headroom")).
		WithPanel(series("Warm vs desired GPUs per zone", "Warm: GPUs held by running placeholders. Desired: what the plan wants. A lasting gap means placeholders wait for nodes (HeadroomWarmGPUsBelowTarget).", "none",
			q(`max by (zone) (headroom_reserved_gpus{`+zone+`})`, "warm {{zone}}"),
			q(`max by (zone) (headroom_desired_gpus{`+zone+`})`, "desired {{zone}}"),
			q(`max(headroom_budget_gpus)`, "budget (all zones)"))).
		WithPanel(series("Demand per ScaledObject", "Replicas each covered ScaledObject needs within its lead time beyond those ready (forecast), next to what KEDA's HPA wants and what is ready.", "none",
			q(`max by (namespace, scaledobject) (headroom_workload_demand_replicas)`, "demand {{namespace}}/{{scaledobject}}"),
			q(`max by (namespace, scaledobject) (headroom_workload_replicas{signal="desired"})`, "desired {{namespace}}/{{scaledobject}}"),
			q(`max by (namespace, scaledobject) (headroom_workload_replicas{signal="ready"})`, "ready {{namespace}}/{{scaledobject}}"))).
		WithRow(dashboard.NewRowBuilder("Placeholders")).
		WithPanel(series("Placeholder pods by phase", "Placeholders that exist per zone and phase, against the desired count.", "none",
			q(`sum by (zone, phase) (max by (zone, shape, phase) (headroom_placeholder_pods{`+zone+`}))`, "{{phase}} {{zone}}"),
			q(`sum by (zone) (max by (zone, shape) (headroom_placeholder_pods_desired{`+zone+`}))`, "desired {{zone}}"))).
		WithPanel(series("Preemptions per minute", "Placeholders preempted by inference pods: each one is a replica that started on a warm node.", "none",
			q(`sum by (zone) (rate(headroom_placeholder_preemptions_total{`+zone+`}[$__rate_interval])) * 60`, "{{zone}}"))).
		WithPanel(series("Placeholder writes per second", "Create, scale and delete calls by result.", "ops",
			q(`sum by (action, result) (rate(headroom_placeholder_actions_total{`+zone+`}[$__rate_interval]))`, "{{action}} {{result}}"))).
		WithPanel(series("Scarce zones", "1 while a zone is out of GPUs for a shape; its headroom moved to other zones.", "none",
			q(`max by (zone, shape) (headroom_scarce_zone{`+zone+`})`, "{{zone}} {{shape}}"))).
		WithRow(dashboard.NewRowBuilder("GPU nodes")).
		WithPanel(series("GPU nodes by state", "not_ready includes nodes whose GPUs are not allocatable yet (still provisioning).", "none",
			q(`max by (zone, state) (headroom_gpu_nodes{`+zone+`})`, "{{state}} {{zone}}"))).
		WithPanel(series("GPU node provisioning time (p90)", "Measured p90 from GPU node creation until its GPUs are allocatable, per zone and GPU product; compare with the lead time you plan for (HeadroomGPUProvisioningSlow).", "s",
			q(`max by (zone, gpu_product) (headroom_node_provisioning_seconds{`+zone+`})`, "{{zone}} {{gpu_product}}"))).
		WithPanel(series("Node provisioning in flight", "Placeholders waiting for a node and nodes whose GPUs are not allocatable yet.", "none",
			q(`sum by (zone) (max by (zone, shape) (headroom_placeholder_pods{phase="pending",`+zone+`}))`, "pending placeholders {{zone}}"),
			q(`max by (zone) (headroom_gpu_nodes{state="not_ready",`+zone+`})`, "not ready nodes {{zone}}"))).
		WithPanel(series("Lead time per ScaledObject", "Forecast horizon in force (measured node provisioning plus pod start, else the configured lead time) and the measured pod start p90.", "s",
			q(`max by (namespace, scaledobject) (headroom_lead_time_seconds)`, "lead time {{namespace}}/{{scaledobject}}"),
			q(`max by (namespace, scaledobject) (headroom_pod_startup_seconds)`, "pod start p90 {{namespace}}/{{scaledobject}}"))).
		WithPanel(series("Free, unhealthy and wanted GPUs", "Allocatable GPUs nobody requests, GPUs the node agent reports unhealthy, and unschedulable GPU pods.", "none",
			q(`max by (zone) (headroom_free_gpus{`+zone+`})`, "free {{zone}}"),
			q(`max by (zone) (headroom_unhealthy_gpus{`+zone+`})`, "unhealthy {{zone}}"),
			q(`max by (zone) (headroom_pending_gpu_pods)`, "pending pods {{zone}}"))).
		WithRow(dashboard.NewRowBuilder("Controller health")).
		WithPanel(series("Reconcile duration", "Time per reconcile pass.", "s",
			q(`histogram_quantile(0.5, sum by (le) (rate(headroom_reconcile_duration_seconds_bucket[$__rate_interval])))`, "p50"),
			q(`histogram_quantile(0.99, sum by (le) (rate(headroom_reconcile_duration_seconds_bucket[$__rate_interval])))`, "p99"))).
		WithPanel(series("Reconcile errors per second", "Failed passes by stage (config, snapshot, apply) (HeadroomReconcileFailing).", "ops",
			q(`sum by (stage) (rate(headroom_reconcile_errors_total[$__rate_interval]))`, "{{stage}}"))).
		WithPanel(series("Config and leadership", "Config valid (0 while a bad edit is rejected) and leading replicas.", "none",
			q(`min(headroom_config_valid)`, "config valid"),
			q(`sum(headroom_leader)`, "leaders"),
			q(`sum(rate(headroom_config_errors_total[$__rate_interval]))`, "config errors/s")))
}

// JSON renders the dashboard as indented JSON, ending in a newline.
func JSON() ([]byte, error) {
	d, err := Builder().Build()
	if err != nil {
		return nil, fmt.Errorf("building dashboard: %w", err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding dashboard: %w", err)
	}
	return append(b, '\n'), nil
}
