package agentreport

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// sample returns a valid two-GPU summary: GPU 0 healthy and idle, GPU 1 with a
// critical XID.
func sample() Summary {
	ready := t0.Add(-10 * time.Minute)
	s := Summary{
		Version:       Version,
		NodeName:      "gpu-node-a",
		AgentVersion:  "v0.1.0",
		ObservedAt:    t0,
		BootID:        "b1",
		NVML:          NVMLStatus{Available: true, DriverVersion: "550.54.15"},
		DriverReadyAt: &ready,
		GPUs: []GPU{
			{Index: 0, UUID: "GPU-0", Product: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30,
				UtilizationRatio: ptr(0.0), Healthy: true, Idle: true},
			{Index: 1, UUID: "GPU-1", Product: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: 80 << 30,
				MemoryUsedBytes: 1 << 30, Healthy: false, Reasons: []string{"critical XID 79: GPU has fallen off the bus"},
				CriticalXIDs: []uint64{79}},
		},
	}
	s.Recount()
	return s
}

func TestRecount(t *testing.T) {
	s := sample()
	if s.UsableGPUs != 1 || s.UnhealthyGPUs != 1 || s.IdleGPUs != 1 {
		t.Fatalf("counts = %d/%d/%d, want 1/1/1", s.UsableGPUs, s.UnhealthyGPUs, s.IdleGPUs)
	}
	s.GPUs[0].MIGEnabled = true
	s.GPUs[0].MIGDevices = []MIGDevice{
		{UUID: "MIG-a", Profile: "1g.10gb", Healthy: true},
		{UUID: "MIG-b", Profile: "1g.10gb", Healthy: true},
		{UUID: "MIG-c", Profile: "3g.40gb", Healthy: false, Reasons: []string{"x"}},
	}
	s.Recount()
	if got := s.UsableMIGDevices; got["1g.10gb"] != 2 || got["3g.40gb"] != 0 {
		t.Fatalf("UsableMIGDevices = %v", got)
	}
	if u := s.Unhealthy(); len(u) != 1 || u[0].UUID != "GPU-1" {
		t.Fatalf("Unhealthy() = %v", u)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Summary)
		recnt  bool
		errIs  error
		errSub string
	}{
		{name: "valid", edit: func(*Summary) {}},
		{name: "no GPUs (no NVML) is valid", edit: func(s *Summary) {
			s.GPUs = nil
			s.NVML = NVMLStatus{Reason: "libnvidia-ml.so.1 not found"}
			s.DriverReadyAt = nil
		}, recnt: true},
		{name: "wrong version", edit: func(s *Summary) { s.Version = 2 }, errIs: ErrVersion},
		{name: "no node", edit: func(s *Summary) { s.NodeName = "" }, errIs: ErrInvalid, errSub: "nodeName"},
		{name: "no time", edit: func(s *Summary) { s.ObservedAt = time.Time{} }, errIs: ErrInvalid, errSub: "observedAt"},
		{name: "no uuid", edit: func(s *Summary) { s.GPUs[0].UUID = "" }, errIs: ErrInvalid, errSub: "no uuid"},
		{name: "duplicate uuid", edit: func(s *Summary) { s.GPUs[1].UUID = "GPU-0" }, errIs: ErrInvalid, errSub: "twice"},
		{name: "negative index", edit: func(s *Summary) { s.GPUs[0].Index = -1 }, errIs: ErrInvalid, errSub: "negative"},
		{name: "memory overflow", edit: func(s *Summary) { s.GPUs[0].MemoryUsedBytes = 81 << 30 }, errIs: ErrInvalid, errSub: "more memory"},
		{name: "utilization above 1", edit: func(s *Summary) { s.GPUs[0].UtilizationRatio = ptr(1.5) }, errIs: ErrInvalid, errSub: "utilization"},
		{name: "healthy with reasons", edit: func(s *Summary) { s.GPUs[0].Reasons = []string{"x"} }, errIs: ErrInvalid, errSub: "healthy but"},
		{name: "unhealthy without reason", edit: func(s *Summary) { s.GPUs[1].Reasons = nil }, errIs: ErrInvalid, errSub: "without a reason"},
		{name: "unhealthy and idle", edit: func(s *Summary) { s.GPUs[1].Idle = true }, errIs: ErrInvalid, errSub: "unhealthy and idle"},
		{name: "counts disagree", edit: func(s *Summary) { s.UsableGPUs = 2 }, errIs: ErrInvalid, errSub: "disagree"},
		{name: "ready after observed", edit: func(s *Summary) { s.DriverReadyAt = ptr(t0.Add(time.Second)) }, errIs: ErrInvalid, errSub: "driverReadyAt"},
		{name: "too many GPUs", edit: func(s *Summary) {
			s.GPUs = nil
			for i := range MaxGPUs + 1 {
				s.GPUs = append(s.GPUs, GPU{Index: i, UUID: "GPU-" + strings.Repeat("x", i+1), Healthy: true})
			}
		}, recnt: true, errIs: ErrInvalid, errSub: "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sample()
			tc.edit(&s)
			if tc.recnt {
				s.Recount()
			}
			err := s.Validate()
			checkErr(t, err, tc.errIs, tc.errSub)
		})
	}
}

func checkErr(t *testing.T, err, is error, sub string) {
	t.Helper()
	if is == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, is) {
		t.Fatalf("error %v, want errors.Is %v", err, is)
	}
	if sub != "" && !strings.Contains(err.Error(), sub) {
		t.Fatalf("error %q does not mention %q", err, sub)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	s := sample()
	b, err := Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeName != s.NodeName || !got.ObservedAt.Equal(s.ObservedAt) || len(got.GPUs) != 2 ||
		got.GPUs[1].CriticalXIDs[0] != 79 || *got.GPUs[0].UtilizationRatio != 0 || !got.DriverReadyAt.Equal(*s.DriverReadyAt) {
		t.Fatalf("round trip lost data: %+v", got)
	}
	if len(b) > 4096 {
		t.Errorf("two-GPU report is %d bytes; expected well under the limit", len(b))
	}
}

func TestDecode(t *testing.T) {
	good, _ := Encode(sample())
	tests := []struct {
		name   string
		in     string
		errIs  error
		errSub string
	}{
		{name: "good", in: string(good)},
		{name: "unknown field ignored", in: strings.Replace(string(good), `{"version":1,`, `{"version":1,"futureField":{"a":1},`, 1)},
		{name: "not json", in: "hello", errIs: ErrInvalid},
		{name: "empty", in: "", errIs: ErrInvalid},
		{name: "no version", in: `{"nodeName":"n"}`, errIs: ErrInvalid, errSub: "no version"},
		{name: "future version", in: `{"version":2,"gpus":"changed shape"}`, errIs: ErrVersion},
		{name: "wrong type", in: `{"version":1,"nodeName":5}`, errIs: ErrInvalid},
		{name: "trailing data", in: string(good) + `{}`, errIs: ErrInvalid, errSub: "after top-level value"},
		{name: "fails validation", in: `{"version":1,"nodeName":"n","observedAt":"2026-03-02T10:00:00Z","usableGPUs":3}`, errIs: ErrInvalid, errSub: "disagree"},
		{name: "too large", in: `{"version":1,"pad":"` + strings.Repeat("x", MaxBytes) + `"}`, errIs: ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			checkErr(t, err, tc.errIs, tc.errSub)
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	s := sample()
	s.GPUs[1].Reasons = []string{strings.Repeat("r", MaxBytes)}
	if _, err := Encode(s); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode of a huge report: %v, want ErrTooLarge", err)
	}
	s.NodeName = ""
	if _, err := Encode(s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode of an invalid report: %v, want ErrInvalid", err)
	}
}

func TestConfigMapName(t *testing.T) {
	if got := ConfigMapName("gpu-node-a"); got != "headroom-agent-gpu-node-a" {
		t.Fatalf("got %q", got)
	}
	long1 := strings.Repeat("a", 240) + ".x"
	long2 := strings.Repeat("a", 240) + ".y"
	n1, n2 := ConfigMapName(long1), ConfigMapName(long2)
	if len(n1) > 253 || len(n2) > 253 {
		t.Fatalf("names too long: %d %d", len(n1), len(n2))
	}
	if n1 == n2 {
		t.Fatalf("two long node names map to the same report name %q", n1)
	}
	if ConfigMapName(long1) != n1 {
		t.Fatal("ConfigMapName is not deterministic")
	}
	// Truncation must not leave a '.' or '-' before the hash suffix.
	dotted := strings.Repeat("b", 220) + "." + strings.Repeat("c", 40)
	n := ConfigMapName(dotted)
	if strings.Contains(n, ".-") || strings.Contains(n, "--") {
		t.Fatalf("bad truncation: %q", n)
	}
}

func TestReadyLatency(t *testing.T) {
	s := sample()
	if d, ok := s.ReadyLatency(t0.Add(-15 * time.Minute)); !ok || d != 5*time.Minute {
		t.Fatalf("ReadyLatency = %v, %v; want 5m, true", d, ok)
	}
	if _, ok := s.ReadyLatency(t0.Add(-5 * time.Minute)); ok {
		t.Fatal("ready before the node was created must not count (earlier node of the same name)")
	}
	s.DriverReadyAt = nil
	if _, ok := s.ReadyLatency(t0); ok {
		t.Fatal("never ready must not count")
	}
}

func TestSummaryFromConfigMap(t *testing.T) {
	mk := func(edit func(*Summary)) *corev1.ConfigMap {
		s := sample()
		if edit != nil {
			edit(&s)
		}
		cm, err := ToConfigMap("gpu-headroom", s)
		if err != nil {
			t.Fatal(err)
		}
		return cm
	}
	tests := []struct {
		name    string
		cm      func() *corev1.ConfigMap
		now     time.Time
		errIs   error
		errSub  string
		usable  int
		keepsOn bool // summary returned alongside the error
	}{
		{name: "fresh", cm: func() *corev1.ConfigMap { return mk(nil) }, now: t0.Add(time.Minute), usable: 1},
		{name: "exactly at the stale limit", cm: func() *corev1.ConfigMap { return mk(nil) }, now: t0.Add(DefaultStaleAfter), usable: 1},
		{name: "stale", cm: func() *corev1.ConfigMap { return mk(nil) }, now: t0.Add(DefaultStaleAfter + time.Second), errIs: ErrStale, keepsOn: true},
		{name: "small skew ok", cm: func() *corev1.ConfigMap { return mk(nil) }, now: t0.Add(-time.Minute), usable: 1},
		{name: "from the future", cm: func() *corev1.ConfigMap { return mk(nil) }, now: t0.Add(-MaxClockSkew - time.Second), errIs: ErrFuture, keepsOn: true},
		{name: "nil", cm: func() *corev1.ConfigMap { return nil }, now: t0, errIs: ErrNotReport},
		{name: "no label", cm: func() *corev1.ConfigMap { c := mk(nil); c.Labels = nil; return c }, now: t0, errIs: ErrNotReport, errSub: "label"},
		{name: "no data key", cm: func() *corev1.ConfigMap { c := mk(nil); c.Data = map[string]string{"x": "y"}; return c }, now: t0, errIs: ErrNotReport, errSub: DataKey},
		{name: "node mismatch", cm: func() *corev1.ConfigMap {
			c := mk(nil)
			c.Name = ConfigMapName("another-node")
			return c
		}, now: t0, errIs: ErrNodeMismatch, errSub: "gpu-node-a"},
		{name: "garbage", cm: func() *corev1.ConfigMap { c := mk(nil); c.Data[DataKey] = "{"; return c }, now: t0, errIs: ErrInvalid},
		{name: "future version", cm: func() *corev1.ConfigMap { c := mk(nil); c.Data[DataKey] = `{"version":7}`; return c }, now: t0, errIs: ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := SummaryFromConfigMap(tc.cm(), tc.now)
			checkErr(t, err, tc.errIs, tc.errSub)
			if tc.errIs == nil && s.UsableGPUs != tc.usable {
				t.Fatalf("usable = %d, want %d", s.UsableGPUs, tc.usable)
			}
			if tc.keepsOn && s.NodeName != "gpu-node-a" {
				t.Fatalf("summary not returned with %v", err)
			}
		})
	}
}

func TestToConfigMap(t *testing.T) {
	cm, err := ToConfigMap("ns", sample())
	if err != nil {
		t.Fatal(err)
	}
	if cm.Name != "headroom-agent-gpu-node-a" || cm.Namespace != "ns" ||
		cm.Labels[LabelComponent] != ComponentValue || cm.Annotations[AnnotationNode] != "gpu-node-a" {
		t.Fatalf("unexpected object meta: %+v", cm.ObjectMeta)
	}
	s := sample()
	s.UsableGPUs = 9
	if _, err := ToConfigMap("ns", s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ToConfigMap of an invalid summary: %v", err)
	}
}
