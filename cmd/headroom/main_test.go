package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "headroom ") {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

func TestDispatchErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"forecast"}, {"forecast", "nope"}, {"forecast", "backtest"}, {"forecast", "backtest", "--format", "x", "--trace", "y"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
}

func TestBacktestCommand(t *testing.T) {
	// A synthetic per-request trace: 40 minutes, a burst every 10 minutes.
	var b strings.Builder
	b.WriteString("TIMESTAMP,ContextTokens,GeneratedTokens\n")
	start := time.Date(2023, 11, 16, 18, 0, 0, 0, time.UTC)
	for s := 0; s < 40*60; s++ {
		n := 1
		if (s/60)%10 == 9 {
			n = 4
		}
		for k := range n {
			fmt.Fprintf(&b, "%s,100,10\n", start.Add(time.Duration(s)*time.Second+time.Duration(k)*time.Millisecond).Format("2006-01-02 15:04:05.0000000"))
		}
	}
	path := filepath.Join(t.TempDir(), "trace.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"forecast", "backtest", "--trace", path, "--format", "azure", "--horizons", "3m,5m", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		Samples int `json:"samples"`
		Results []struct {
			Estimator string   `json:"estimator"`
			Coverage  *float64 `json:"coverage"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if rep.Samples != 79 || len(rep.Results) != 12 {
		t.Errorf("samples %d, results %d; want 79 and 6 estimators x 2 horizons", rep.Samples, len(rep.Results))
	}
	out.Reset()
	if code := run([]string{"forecast", "backtest", "--trace", path}, &out, &errb); code != 0 || !strings.Contains(out.String(), "q-combined") {
		t.Errorf("text output: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"forecast", "backtest", "--trace", path, "--horizons", "3m,-1m"}, &out, &errb); code != 2 {
		t.Errorf("negative horizon: exit %d", code)
	}
	// --repeat replays the trace back to back; every result carries its
	// coverage interval.
	out.Reset()
	if code := run([]string{"forecast", "backtest", "--trace", path, "--horizons", "3m,5m", "--repeat", "3", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--repeat 3: exit %d: %s", code, errb.String())
	}
	var rep3 struct {
		Samples int `json:"samples"`
		Results []struct {
			Coverage   *float64 `json:"coverage"`
			CoverageLo *float64 `json:"coverage_lo"`
			CoverageHi *float64 `json:"coverage_hi"`
			EffectiveN float64  `json:"effective_n"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep3); err != nil {
		t.Fatal(err)
	}
	if rep3.Samples != 3*79 {
		t.Errorf("--repeat 3: %d samples, want %d", rep3.Samples, 3*79)
	}
	for i, r := range rep3.Results {
		if r.Coverage == nil || r.CoverageLo == nil || r.CoverageHi == nil || *r.CoverageLo > *r.Coverage || *r.Coverage > *r.CoverageHi || r.EffectiveN <= 0 {
			t.Errorf("result %d: coverage %v in [%v, %v], effective n %v", i, r.Coverage, r.CoverageLo, r.CoverageHi, r.EffectiveN)
		}
	}
	errb.Reset()
	if code := run([]string{"forecast", "backtest", "--trace", path, "--repeat", "0"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "--repeat") {
		t.Errorf("--repeat 0: exit %d, stderr %q", code, errb.String())
	}
}
