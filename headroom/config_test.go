package headroom

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigBad(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // exact error text
	}{
		{"unknown top-level key", "mni: 1",
			`parsing config: error unmarshaling JSON: while decoding JSON: json: unknown field "mni"`},
		{"unknown zone key", "zones: {a: {floor: 1}}",
			`parsing config: error unmarshaling JSON: while decoding JSON: json: unknown field "floor"`},
		{"wrong type", "zones: {a: {min: x}}",
			`parsing config: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field ZoneConfig.zones.min of type int64`},
		{"fractional GPUs", "budgetGPUs: 1.5",
			`parsing config: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal number 1.5 into Go struct field Config.budgetGPUs of type int64`},
		{"bad duration", "cooldown: 5 minutes",
			`parsing config: error unmarshaling JSON: while decoding JSON: time: unknown unit " minutes" in duration "5 minutes"`},
		{"not YAML", "{",
			`parsing config: error converting YAML to JSON: yaml: line 1: did not find expected node content`},
		{"negative min", "zones: {a: {min: -1}}",
			`validating config: zones[a].min: must not be negative (got -1)`},
		{"negative max", "defaults: {max: -2}",
			`validating config: defaults.max: must not be negative (got -2)`},
		{"min above max", "zones: {a: {min: 5, max: 4}}",
			`validating config: zones[a]: min 5 is greater than max 4`},
		{"min above default max", "defaults: {max: 4}\nzones: {a: {min: 5}}",
			`validating config: zones[a]: min 5 is greater than defaults.max 4`},
		{"absurd size", "zones: {a: {max: 10001}}",
			`validating config: zones[a].max: 10001 is over the limit of 10000`},
		{"absurd budget", "budgetGPUs: 100001",
			`validating config: budgetGPUs: 100001 is over the limit of 100000`},
		{"negative budget", "budgetGPUs: -1",
			`validating config: budgetGPUs: must not be negative (got -1)`},
		{"negative cooldown", "cooldown: -1m",
			`validating config: cooldown: must not be negative (got -1m0s)`},
		{"absurd lead time", "leadTime: 48h",
			`validating config: leadTime: 48h0m0s is over the limit of 24h0m0s`},
		{"quantile 1", "quantile: 1",
			`validating config: quantile: must be between 0 and 1, exclusive (got 1)`},
		{"keepUtilization above 1", "keepUtilization: 1.5",
			`validating config: keepUtilization: must be between 0 and 1 (got 1.5)`},
		{"schedule without time zone", "schedules: [{start: '20:00', end: '08:00'}]",
			`validating config: schedules[0].timeZone: required (an IANA name such as Europe/Paris, or UTC)`},
		{"schedule with unknown time zone", "schedules: [{timeZone: Mars/Olympus, start: '20:00', end: '08:00'}]",
			`validating config: schedules[0].timeZone: unknown time zone "Mars/Olympus"`},
		{"schedule bad day", "schedules: [{timeZone: UTC, days: [Monday], start: '20:00', end: '08:00'}]",
			`validating config: schedules[0].days: unknown day "Monday" (use Mon, Tue, Wed, Thu, Fri, Sat, Sun)`},
		{"schedule bad start", "schedules: [{timeZone: UTC, start: '8pm', end: '08:00'}]",
			`validating config: schedules[0].start: "8pm" is not HH:MM`},
		{"schedule 25 o'clock", "schedules: [{timeZone: UTC, start: '25:00', end: '08:00'}]",
			`validating config: schedules[0].start: "25:00" is not a time of day`},
		{"schedule 24:00 start", "schedules: [{timeZone: UTC, start: '24:00', end: '08:00'}]",
			`validating config: schedules[0].start: "24:00" is not a time of day`},
		{"schedule empty window", "schedules: [{timeZone: UTC, start: '08:00', end: '08:00'}]",
			`validating config: schedules[0].end: equals start "08:00"; use 00:00 to 24:00 for a whole day`},
		{"schedule negative min", "schedules: [{timeZone: UTC, start: '20:00', end: '08:00', min: -1}]",
			`validating config: schedules[0].min: must not be negative (got -1)`},
		{"schedule zone min missing", "schedules: [{timeZone: UTC, start: '20:00', end: '08:00', zones: {a: {}}}]",
			`validating config: schedules[0].zones[a].min: required`},
		{"schedule zone min above max", "zones: {a: {max: 2}}\nschedules: [{timeZone: UTC, start: '20:00', end: '08:00', zones: {a: {min: 3}}}]",
			`validating config: schedules[0].zones[a].min: 3 is greater than the zone's max 2`},
		{"duplicate schedule names", "schedules: [{name: x, timeZone: UTC, start: '20:00', end: '08:00'}, {name: x, timeZone: UTC, start: '01:00', end: '02:00'}]",
			`validating config: schedules[1]: duplicate name "x"`},
		{"backoff inverted", "scarcity: {initialBackoff: 40m}",
			`validating config: scarcity: initialBackoff 40m0s is greater than maxBackoff 30m0s`},
		{"bad selector", "coverage: {selector: {matchExpressions: [{key: team, operator: Near}]}}",
			`validating config: coverage.selector: "Near" is not a valid label selector operator`},
		{"workload without name", "workloads: [{namespace: llm}]",
			`validating config: workloads[0]: namespace and name are required`},
		{"duplicate workload", "workloads: [{namespace: llm, name: a}, {namespace: llm, name: a}]",
			`validating config: workloads[1]: duplicate entry for llm/a`},
		{"workload bad values", "workloads: [{namespace: llm, name: a, quantile: 0, maxGPUs: -3, leadTime: -1s}]",
			`validating config: workloads[0].leadTime: must not be negative (got -1s); workloads[0].maxGPUs: must not be negative (got -3); workloads[0].quantile: must be between 0 and 1, exclusive (got 0)`},
		{"several problems, sorted", "zones: {b: {min: -1}, a: {max: 20000}}",
			`validating config: zones[a].max: 20000 is over the limit of 10000; zones[b].min: must not be negative (got -1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("ParseConfig succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseConfigTooBig(t *testing.T) {
	_, err := ParseConfig([]byte(strings.Repeat("#", MaxConfigBytes+1)))
	if err == nil || err.Error() != "parsing config: 1048577 bytes is over the 1048576 byte limit" {
		t.Fatalf("err = %v", err)
	}
}

const exampleConfig = `
budgetGPUs: 64
cooldown: 15m
keepUtilization: 0.4
leadTime: 8m
quantile: 0.8
defaults: {min: 1, max: 16}
zones:
  us-east-1a: {min: 8, max: 32}
  us-east-1b: {max: 4}
schedules:
  - name: nights
    timeZone: Europe/Paris
    days: [Mon, Tue, Wed, Thu, Fri]
    start: "20:00"
    end: "08:00"
    min: 0
    zones: {us-east-1a: {min: 2}}
scarcity: {pendingThreshold: 7m}
coverage:
  selector: {matchLabels: {team: inference}}
workloads:
  - {namespace: llm, name: chat, leadTime: 5m, quantile: 0.95, maxGPUs: 16}
`

func TestParseConfigExample(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.LeadTimeFor("llm/chat") != 5*time.Minute || c.LeadTimeFor("llm/other") != 8*time.Minute {
		t.Errorf("lead times %s %s", c.LeadTimeFor("llm/chat"), c.LeadTimeFor("llm/other"))
	}
	if c.QuantileFor("llm/chat") != 0.95 || c.QuantileFor("x/y") != 0.8 {
		t.Error("quantiles")
	}
	if sc := c.ScarcityConfig(); sc.PendingThreshold != 7*time.Minute || sc.MaxBackoff != 30*time.Minute {
		t.Errorf("scarcity %+v", sc)
	}
	empty, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if empty.LeadTimeFor("a/b") != DefaultLeadTime || empty.Covers(nil, nil) {
		t.Error("empty config defaults")
	}
	if w := UnknownZones(c, []string{"us-east-1a"}); len(w) != 1 || w[0] != `zones: zone "us-east-1b" has no nodes in the cluster` {
		t.Errorf("UnknownZones = %q", w)
	}
}

func TestCovers(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	team := map[string]string{"team": "inference"}
	tests := []struct {
		name        string
		labels, ann map[string]string
		want        bool
	}{
		{"selector match", team, nil, true},
		{"selector miss", map[string]string{"team": "batch"}, nil, false},
		{"opt in by annotation", nil, map[string]string{AnnotationEnabled: "true"}, true},
		{"opt out beats selector", team, map[string]string{AnnotationEnabled: "false"}, false},
		{"annotation garbage is opt out", team, map[string]string{AnnotationEnabled: "yes"}, false},
	}
	for _, tt := range tests {
		if got := c.Covers(tt.labels, tt.ann); got != tt.want {
			t.Errorf("%s: Covers = %v", tt.name, got)
		}
	}
}

func TestScheduleActive(t *testing.T) {
	c, err := ParseConfig([]byte(`schedules:
  - {name: night, timeZone: Europe/Paris, days: [Fri], start: "20:00", end: "08:00"}
  - {name: day, timeZone: UTC, start: "09:00", end: "17:00"}
  - {name: all, timeZone: UTC, days: [Sun], start: "00:00", end: "24:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	at := func(loc *time.Location, y int, mo time.Month, d, h, m int) time.Time {
		return time.Date(y, mo, d, h, m, 0, 0, loc)
	}
	// 2026-06-05 is a Friday.
	tests := []struct {
		sched int
		t     time.Time
		want  bool
	}{
		{0, at(paris, 2026, 6, 5, 19, 59), false},
		{0, at(paris, 2026, 6, 5, 20, 0), true},
		{0, at(paris, 2026, 6, 6, 7, 59), true}, // Saturday morning, window started Friday
		{0, at(paris, 2026, 6, 6, 8, 0), false},
		{0, at(paris, 2026, 6, 6, 21, 0), false},    // Saturday evening: not a start day
		{0, at(paris, 2026, 6, 4, 21, 0), false},    // Thursday evening
		{0, at(time.UTC, 2026, 6, 5, 18, 30), true}, // 20:30 in Paris (UTC+2)
		{1, at(time.UTC, 2026, 6, 3, 9, 0), true},
		{1, at(time.UTC, 2026, 6, 3, 17, 0), false},
		{2, at(time.UTC, 2026, 6, 7, 23, 59), true}, // Sunday
		{2, at(time.UTC, 2026, 6, 8, 0, 0), false},
	}
	for i, tt := range tests {
		if got := c.Schedules[tt.sched].Active(tt.t); got != tt.want {
			t.Errorf("case %d: %s Active(%s) = %v, want %v", i, c.Schedules[tt.sched].Name, tt.t, got, tt.want)
		}
	}
}

func TestResolvePolicy(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	day := time.Date(2026, 6, 3, 12, 0, 0, 0, paris)   // Wednesday noon
	night := time.Date(2026, 6, 3, 23, 0, 0, 0, paris) // Wednesday night

	p := ResolvePolicy(c, day, 100)
	if p.BudgetGPUs != 64 || p.Cooldown != 15*time.Minute || p.KeepUtilization != 0.4 {
		t.Errorf("day policy %+v", p)
	}
	if got := p.Limits("us-east-1a"); got != (ZoneLimits{FloorGPUs: 8, MaxGPUs: 32}) {
		t.Errorf("us-east-1a %+v", got)
	}
	// Zone b keeps the default floor of 1 under its own max of 4.
	if got := p.Limits("us-east-1b"); got != (ZoneLimits{FloorGPUs: 1, MaxGPUs: 4}) {
		t.Errorf("us-east-1b %+v", got)
	}
	if got := p.Limits("elsewhere"); got != (ZoneLimits{FloorGPUs: 1, MaxGPUs: 16}) {
		t.Errorf("default %+v", got)
	}
	if p.WorkloadMaxGPUs["llm/chat"] != 16 {
		t.Error("workload max")
	}

	n := ResolvePolicy(c, night, 100)
	if got := n.Limits("us-east-1a"); got.FloorGPUs != 2 {
		t.Errorf("night us-east-1a floor %d, want 2", got.FloorGPUs)
	}
	if n.Limits("us-east-1b").FloorGPUs != 0 || n.Limits("elsewhere").FloorGPUs != 0 {
		t.Error("night floors should be 0")
	}
	if len(n.Notes) != 2 || n.Notes[1] != "schedule nights active" {
		t.Errorf("notes %q", n.Notes)
	}

	// The config cannot raise the flag's budget.
	low := ResolvePolicy(c, day, 10)
	if low.BudgetGPUs != 10 || low.Notes[0] != "config budgetGPUs 64 ignored: the config cannot raise the flag's budget of 10 GPUs" {
		t.Errorf("budget %d notes %q", low.BudgetGPUs, low.Notes)
	}
}
