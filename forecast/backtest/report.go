package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"
)

// WriteText prints the report as an aligned table, one row per estimator
// and horizon.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "trace %s: %d samples, step %v, span %v, mean %.2f replicas, q=%.2f, warm-up %v\n",
		r.Trace, r.Samples, r.Step, time.Duration(r.SpanS*1e9).Round(time.Second), r.Mean, r.Q, time.Duration(r.WarmupS*1e9))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "estimator\thorizon\tn\tMAE\tpinball\tvs last\tcoverage\t95% CI\teff n\tbelow\texcess\twarm n\twarm cov\t")
	for _, x := range r.Results {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", x.Estimator, x.Horizon, x.N,
			num(x.MAE, 3), num(x.Pinball, 3), num(x.PinballVsLast, 2), num(x.Coverage, 3), interval(x.CoverageLo, x.CoverageHi),
			num(x.EffectiveN, 1), num(x.Below, 3), num(x.MeanExcess, 3), x.WarmN, num(x.WarmCoverage, 3))
	}
	return tw.Flush()
}

func interval(lo, hi float64) string {
	if math.IsNaN(lo) || math.IsNaN(hi) {
		return "-"
	}
	return fmt.Sprintf("%.2f-%.2f", lo, hi)
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// WriteJSON writes the report as indented JSON. NaN (no "last" baseline,
// no scored prediction) is written as null.
func (r *Report) WriteJSON(w io.Writer) error {
	type out struct {
		Result
		PinballVsLast *float64 `json:"pinball_vs_last"`
		MAE           *float64 `json:"mae"`
		Pinball       *float64 `json:"pinball"`
		Coverage      *float64 `json:"coverage"`
		CoverageLo    *float64 `json:"coverage_lo"`
		CoverageHi    *float64 `json:"coverage_hi"`
		Below         *float64 `json:"below"`
		MeanExcess    *float64 `json:"mean_excess"`
		WarmPinball   *float64 `json:"warm_pinball"`
		WarmCoverage  *float64 `json:"warm_coverage"`
	}
	ptr := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	type report Report
	cp := struct {
		report
		Results []out `json:"results"`
	}{report: report(*r)}
	for _, x := range r.Results {
		cp.Results = append(cp.Results, out{Result: x, PinballVsLast: ptr(x.PinballVsLast), MAE: ptr(x.MAE),
			Pinball: ptr(x.Pinball), Coverage: ptr(x.Coverage), CoverageLo: ptr(x.CoverageLo), CoverageHi: ptr(x.CoverageHi), Below: ptr(x.Below), MeanExcess: ptr(x.MeanExcess),
			WarmPinball: ptr(x.WarmPinball), WarmCoverage: ptr(x.WarmCoverage)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cp); err != nil {
		return fmt.Errorf("writing backtest report: %w", err)
	}
	return nil
}
