package observability

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	promlabels "github.com/prometheus/prometheus/model/labels"
	promql "github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/gpu-headroom/gpu-headroom/tools/observability/dashboard"
)

// repo is the repository root, seen from this module.
const repo = "../.."

var (
	dashboardFile = filepath.Join(repo, "charts/gpu-headroom/dashboards/gpu-headroom.json")
	rulesFile     = filepath.Join(repo, "deploy/prometheus-rules.yaml")
	metricsFile   = filepath.Join(repo, "headroom/controller/metrics.go")
	alertsDoc     = filepath.Join(repo, "docs/alerts.md")
)

// exportedMetrics reads the metric names from the controller's source, not from a
// copy: a renamed or removed metric fails this test instead of leaving a dashboard
// panel empty or an alert silently never firing. Histograms add their series.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), metricsFile, nil, 0)
	if err != nil {
		t.Fatalf("parsing %s: %v", metricsFile, err)
	}
	names := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
			return true
		}
		lit, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			if id, ok := kv.Key.(*ast.Ident); !ok || id.Name != "Name" {
				continue
			}
			bl, ok := kv.Value.(*ast.BasicLit)
			if !ok {
				continue
			}
			name, err := strconv.Unquote(bl.Value)
			if err != nil {
				t.Fatal(err)
			}
			names[name] = true
			if strings.HasPrefix(sel.Sel.Name, "NewHistogram") {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[name+s] = true
				}
			}
		}
		return true
	})
	if len(names) < 15 {
		t.Fatalf("found only %d metrics in %s; the parser above needs updating", len(names), metricsFile)
	}
	return names
}

// grafanaVars replaces dashboard variables with values PromQL accepts.
var grafanaVars = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range|zone|datasource)\}?`)

func substitute(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "zone":
			return ".*"
		case "datasource":
			return "prometheus"
		default:
			return "5m"
		}
	})
}

// dashboardQueries collects every "expr" in the dashboard JSON, and the metric of
// label_values() variable queries.
func dashboardQueries(t *testing.T) (exprs, varMetrics []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	lv := regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				if s, ok := c.(string); ok && k == "String" {
					for _, m := range lv.FindAllStringSubmatch(s, -1) {
						varMetrics = append(varMetrics, m[1])
					}
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return exprs, varMetrics
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return out
}

// metricsIn parses expr as PromQL and returns the metric names it selects.
func metricsIn(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promql.NewParser(promql.Options{}).ParseExpr(substitute(expr))
	if err != nil {
		t.Errorf("query does not parse as PromQL: %v\n%s", err, expr)
		return nil
	}
	var names []string
	promql.Inspect(e, func(n promql.Node, _ []promql.Node) error {
		vs, ok := n.(*promql.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == promlabels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			t.Errorf("selector without a metric name in %q", expr)
		}
		names = append(names, name)
		return nil
	})
	return names
}

func TestDashboardAndAlertsQueryExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	exprs, varMetrics := dashboardQueries(t)
	if len(exprs) < 10 {
		t.Fatalf("dashboard has only %d queries", len(exprs))
	}
	used := map[string]bool{}
	check := func(where string, names []string) {
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s queries %s, which headroomd does not export (%s)", where, n, metricsFile)
			}
		}
	}
	for _, e := range exprs {
		check("dashboard", metricsIn(t, e))
	}
	check("dashboard variable", varMetrics)
	for _, r := range alertRules(t) {
		check("alert "+r.Alert, metricsIn(t, r.Expr))
	}
	// Not a failure: a hint when a new metric is neither charted nor alerted on.
	for n := range exported {
		if !used[n] && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && n != "headroom_reconcile_duration_seconds" {
			t.Logf("metric %s is exported but neither charted nor alerted on", n)
		}
	}
}

// Every alert says how bad it is, links its runbook and has a section in docs.
func TestAlertsHaveRunbooks(t *testing.T) {
	doc, err := os.ReadFile(alertsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range alertRules(t) {
		if r.Alert == "" {
			continue
		}
		if !slices.Contains([]string{"warning", "critical"}, r.Labels["severity"]) {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		anchor := "#" + strings.ToLower(r.Alert)
		if !strings.HasSuffix(r.Annotations["runbook_url"], anchor) {
			t.Errorf("%s: runbook_url %q does not end in %s", r.Alert, r.Annotations["runbook_url"], anchor)
		}
		if !bytes.Contains(doc, []byte("\n## "+r.Alert+"\n")) {
			t.Errorf("%s has no '## %s' runbook section in %s", r.Alert, r.Alert, alertsDoc)
		}
	}
}

// The committed dashboard is what the typed Go builds (make manifests regenerates it).
func TestDashboardFileIsGenerated(t *testing.T) {
	want, err := dashboard.JSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from tools/observability/dashboard; run make manifests", dashboardFile)
	}
}

func TestSubstitute(t *testing.T) {
	got := substitute(`rate(x{zone=~"$zone"}[$__rate_interval]) + y{a="${datasource}"}`)
	want := `rate(x{zone=~".*"}[5m]) + y{a="prometheus"}`
	if got != want {
		t.Errorf("substitute = %s, want %s", got, want)
	}
}
