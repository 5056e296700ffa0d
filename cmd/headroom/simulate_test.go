package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateCLI(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "rate.csv")
	var b strings.Builder
	b.WriteString("timestamp,rate\n")
	for i := range 24 {
		rate := "20"
		if i >= 10 && i < 14 {
			rate = "90"
		}
		b.WriteString(strings.Join([]string{itoa(1700000000 + 300*i), rate}, ",") + "\n")
	}
	if err := os.WriteFile(trace, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "headroom.yaml")
	if err := os.WriteFile(cfg, []byte("leadTime: 8m\nquantile: 0.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "out.svg")
	var out, errb bytes.Buffer
	code := run([]string{"simulate", "--trace", trace, "--config", cfg, "--static", "1,3", "--proportional", "0.2", "--json", "--plot", svg, "--provision", "4m..5m", "--stockout", "zone-c@10m-30m"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		Results []struct {
			Policy       string  `json:"policy"`
			CostVsOracle float64 `json:"costVsOracle"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Policy)
		if r.CostVsOracle <= 0 {
			t.Errorf("%s: no cost relative to the oracle", r.Policy)
		}
	}
	if got := strings.Join(names, ","); got != "reactive,static-1,static-3,proportional-0.2,schedule,forecast,oracle" {
		t.Errorf("policies %s", got)
	}
	if s, err := os.ReadFile(svg); err != nil || !strings.HasPrefix(string(s), "<svg") {
		t.Errorf("plot: %v", err)
	}
	if errb.Len() != 0 {
		t.Errorf("stderr is not a terminal, yet: %q", errb.String())
	}

	out.Reset()
	if code := run([]string{"simulate", "--trace", trace, "--policies", "reactive,oracle"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "cost/oracle") {
		t.Errorf("table: exit %d\n%s", code, out.String())
	}
	// --repeat replays the trace back to back: twice the requests.
	var once, twice struct {
		Requests int64 `json:"requests"`
	}
	for i, n := range []string{"1", "2"} {
		out.Reset()
		if code := run([]string{"simulate", "--trace", trace, "--policies", "reactive", "--repeat", n, "--json"}, &out, &errb); code != 0 {
			t.Fatalf("--repeat %s: exit %d: %s", n, code, errb.String())
		}
		if err := json.Unmarshal(out.Bytes(), []any{&once, &twice}[i]); err != nil {
			t.Fatal(err)
		}
	}
	if once.Requests == 0 || twice.Requests != 2*once.Requests {
		t.Errorf("--repeat 2: %d requests, once %d", twice.Requests, once.Requests)
	}
	for _, c := range []struct {
		args []string
		says string // what the error must name ("" for any error)
	}{
		{[]string{"simulate", "--trace", trace, "--repeat", "0"}, ""},
		{[]string{"simulate"}, ""},
		{[]string{"simulate", "--trace", trace, "--policies", "nope"}, ""},
		{[]string{"simulate", "--trace", trace, "--provision", "soon"}, ""},
		{[]string{"simulate", "--trace", trace, "--config", trace}, ""},
		{[]string{"simulate", "--trace", filepath.Join(dir, "missing.csv")}, ""},
		// Typos are refused with the flag named, not replaced by a default.
		{[]string{"simulate", "--trace", trace, "--scale", "-2"}, "scale"},
		{[]string{"simulate", "--trace", trace, "--span", "-1h"}, "span"},
		{[]string{"simulate", "--trace", trace, "--context-tokens", "-5"}, "context-tokens"},
		{[]string{"simulate", "--trace", trace, "--slo", "0s"}, "slo"},
		{[]string{"simulate", "--trace", trace, "--activation", "-1"}, "activation"},
		{[]string{"simulate", "--trace", trace, "--cooldown-period", "-5m"}, "cooldown period"},
	} {
		errb.Reset()
		if code := run(c.args, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", c.args)
		}
		if !strings.Contains(errb.String(), c.says) {
			t.Errorf("%v: error %q does not name %s", c.args, errb.String(), c.says)
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
