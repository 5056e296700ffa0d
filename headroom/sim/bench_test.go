package sim

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkServeGen14Days replays the whole 14-day ServeGen m-large trace (1 s
// ticks, 3 zones, rate scaled to ~10 replicas) with the target of under
// 30 s on one core: "forecast" is one policy (plus the zero-wait pass every
// report runs), "all" is the CLI's default set of 10 policies on one core.
func BenchmarkServeGen14Days(b *testing.B) {
	dir := filepath.Join(benchTraces(b), "servegen-language-m-large")
	rs, err := ReadServeGen(dir, 0)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := RateTraffic(rs, TrafficOptions{Scale: 0.1, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	all := []PolicySpec{{Kind: KindReactive}, {Kind: KindStatic, N: 1}, {Kind: KindStatic, N: 2}, {Kind: KindStatic, N: 4},
		{Kind: KindProportional, Fraction: 0.1}, {Kind: KindProportional, Fraction: 0.25}, {Kind: KindProportional, Fraction: 0.5},
		{Kind: KindSchedule, Windows: []Window{{Start: 8 * 60, End: 22 * 60, N: 2}}}, {Kind: KindForecast}, {Kind: KindOracle}}
	for _, c := range []struct {
		name string
		pols []PolicySpec
	}{{"forecast", []PolicySpec{{Kind: KindForecast}}}, {"all", all}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Simulate(tr, cfg, c.pols, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchTraces(b *testing.B) string {
	b.Helper()
	for _, d := range []string{"../../../shared/data/traces", "/work/shared/data/traces"} {
		if _, err := os.Stat(filepath.Join(d, "servegen-language-m-large", "chunk-0-trace.csv")); err == nil {
			return d
		}
	}
	b.Skip("shared traces not found")
	return ""
}
