//go:build !(cgo && linux)

package nvml

import (
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestNoCgoFallsBackToNull(t *testing.T) {
	f := NewFallback(NewLibrary(""), zap.NewNop())
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); st.Available || !strings.Contains(st.Reason, "without cgo") {
		t.Fatalf("Status = %+v", st)
	}
}
