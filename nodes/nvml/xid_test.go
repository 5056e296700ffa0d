package nvml

import (
	"strings"
	"testing"
)

func TestXIDPolicy(t *testing.T) {
	def := XIDPolicy{}
	for _, x := range []uint64{13, 31, 43, 45, 68, 109} {
		if def.IsCritical(x) {
			t.Errorf("XID %d is an application error, not critical", x)
		}
	}
	for _, x := range []uint64{48, 63, 64, 74, 79, 92, 94, 95, 119, 999} {
		if !def.IsCritical(x) {
			t.Errorf("XID %d must be critical by default", x)
		}
	}
	p := XIDPolicy{Ignore: []uint64{74, 31}, Critical: []uint64{31}}
	if p.IsCritical(74) {
		t.Error("ignored XID 74 is critical")
	}
	if !p.IsCritical(31) {
		t.Error("Critical must win over Ignore and the application list")
	}
	if d := DescribeXID(79); !strings.Contains(d, "fallen off the bus") {
		t.Errorf("DescribeXID(79) = %q", d)
	}
	if d := DescribeXID(13); !strings.Contains(d, "graphics engine") {
		t.Errorf("DescribeXID(13) = %q", d)
	}
	if d := DescribeXID(1234); d != "XID 1234" {
		t.Errorf("DescribeXID(1234) = %q", d)
	}
}

func ptr[T any](v T) *T { return &v }

func TestReasonsAndIdle(t *testing.T) {
	tests := []struct {
		name    string
		g       GPU
		reasons []string
		idle    bool
	}{
		{name: "idle", g: GPU{ComputeProcesses: ptr(0), Utilization: ptr(0.0)}, idle: true},
		{name: "unknown is not idle", g: GPU{}},
		{name: "busy by process", g: GPU{ComputeProcesses: ptr(2), Utilization: ptr(0.0)}},
		{name: "busy by utilisation", g: GPU{Utilization: ptr(0.3)}},
		{name: "lost", g: GPU{NotAnswering: true, Err: "x: GPU is lost", ComputeProcesses: ptr(0)}, reasons: []string{"not answering: x: GPU is lost"}},
		{name: "pages pending", g: GPU{RetiredPagesPending: true}, reasons: []string{"page retirement pending (reset needed)"}},
		{name: "remap failed wins over pending", g: GPU{RowRemapFailed: true, RowRemapPending: true}, reasons: []string{"row remapping failed (no spare rows)"}},
		{name: "ecc", g: GPU{UncorrectedECCErrors: 3}, reasons: []string{"3 uncorrected ECC errors since driver load"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Reasons(tc.g)
			if strings.Join(r, "|") != strings.Join(tc.reasons, "|") {
				t.Errorf("Reasons = %q, want %q", r, tc.reasons)
			}
			if Idle(tc.g) != tc.idle {
				t.Errorf("Idle = %v, want %v", !tc.idle, tc.idle)
			}
		})
	}
}

func TestNull(t *testing.T) {
	var n Reader = Null{}
	if err := n.Init(); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.Available || st.Reason != "no NVML" {
		t.Fatalf("Status = %+v", st)
	}
	if st := (Null{Reason: "why"}).Status(); st.Reason != "why" {
		t.Fatalf("Status = %+v", st)
	}
	if g, err := n.GPUs(); g != nil || err != nil {
		t.Fatal(g, err)
	}
}
