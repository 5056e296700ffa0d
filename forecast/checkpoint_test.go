package forecast

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"
)

// trained returns a forecaster fed n noisy diurnal samples every step.
func trained(t testing.TB, n int, step time.Duration, seed uint64) (*Forecaster, time.Time) {
	t.Helper()
	f, err := NewForecaster(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := lcg(seed)
	at := epoch
	for i := range n {
		at = epoch.Add(time.Duration(i) * step)
		level := 20 + 10*math.Sin(2*math.Pi*at.Sub(epoch).Hours()/24)
		v := math.Max(0, level*(1+0.2*r.normal()))
		if err := f.Observe(at, Signals{Desired: math.Ceil(v), MetricImplied: v, Ready: math.Ceil(v) - 1}); err != nil {
			t.Fatal(err)
		}
	}
	return f, at
}

func TestCheckpointRoundTrip(t *testing.T) {
	a, at := trained(t, 14*24*60, time.Minute, 1) // 14 days at 1-minute passes
	b, _ := trained(t, 14*24*60, time.Minute, 1)
	blob, err := Marshal(map[string]*Forecaster{"ns/llama": a, "ns/empty": mustForecaster(t)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(blob, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["ns/llama"] == nil || got["ns/empty"] == nil {
		t.Fatalf("restored %d forecasters: %v", len(got), got)
	}
	c := got["ns/llama"]
	// Restored and original behave identically from here on.
	r := lcg(99)
	for i := range 500 {
		at = at.Add(time.Minute)
		s := Signals{Desired: 10 + 10*r.float(), Ready: 9}
		if err := b.Observe(at, s); err != nil {
			t.Fatal(err)
		}
		if err := c.Observe(at, s); err != nil {
			t.Fatal(err)
		}
		for _, h := range []time.Duration{3 * time.Minute, 15 * time.Minute} {
			if pb, pc := b.Predict(at, h), c.Predict(at, h); pb != pc {
				t.Fatalf("step %d h=%v: original %+v, restored %+v", i, h, pb, pc)
			}
		}
	}
	// Same state, same bytes (a ConfigMap update can be skipped).
	again, _ := Marshal(map[string]*Forecaster{"ns/llama": a, "ns/empty": mustForecaster(t)})
	if string(again) != string(blob) {
		t.Error("Marshal is not deterministic")
	}
}

func TestCheckpointSize(t *testing.T) {
	f, _ := trained(t, 14*24*60, time.Minute, 2)
	blob, err := Marshal(map[string]*Forecaster{"default/llama-70b": f})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checkpoint of one fully trained workload: %d bytes", len(blob))
	if len(blob) > 16*1024 {
		t.Errorf("checkpoint is %d bytes, budget 16 KiB per workload", len(blob))
	}
}

func mustForecaster(t testing.TB) *Forecaster {
	t.Helper()
	f, err := NewForecaster(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// reseal fixes the CRC after a deliberate edit, to reach the checks behind it.
func reseal(b []byte) []byte {
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
	return b
}

func TestCheckpointCorruption(t *testing.T) {
	f, _ := trained(t, 3000, 30*time.Second, 3)
	blob, err := Marshal(map[string]*Forecaster{"w": f})
	if err != nil {
		t.Fatal(err)
	}
	expectKind := func(name string, data []byte, cfg Config, kind error) {
		t.Helper()
		got, err := Unmarshal(data, cfg)
		var ce *CheckpointError
		if !errors.As(err, &ce) || !errors.Is(err, kind) || got != nil {
			t.Errorf("%s: Unmarshal = %v, %v; want *CheckpointError of kind %v and no state", name, got, err, kind)
		}
	}
	// Every single-bit flip is caught (by the CRC or the magic), never a panic.
	for i := range blob {
		b := append([]byte(nil), blob...)
		b[i] ^= 0x10
		expectKind("flip", b, DefaultConfig(), ErrCheckpointCorrupt)
	}
	// Every truncation is caught.
	for n := range len(blob) {
		expectKind("truncate", blob[:n], DefaultConfig(), ErrCheckpointCorrupt)
	}
	expectKind("empty", nil, DefaultConfig(), ErrCheckpointCorrupt)
	expectKind("json", []byte(`{"version":1,"state":"..."}`), DefaultConfig(), ErrCheckpointCorrupt)

	v2 := append([]byte(nil), blob...)
	binary.LittleEndian.PutUint16(v2[4:], CheckpointVersion+1)
	expectKind("future version", reseal(v2), DefaultConfig(), ErrCheckpointVersion)

	other := DefaultConfig()
	other.Quantile.Horizons = []time.Duration{5 * time.Minute, 20 * time.Minute}
	expectKind("other horizons", blob, other, ErrCheckpointIncompatible)
	other = DefaultConfig()
	other.Combined.Seasonal.SlotWidth = time.Hour
	expectKind("other slot width", blob, other, ErrCheckpointIncompatible)
	other = DefaultConfig()
	other.Combined.Seasonal.Weekly = false
	expectKind("no weekly profile", blob, other, ErrCheckpointIncompatible)

	// A NaN smuggled in with a valid CRC is still rejected.
	nan := append([]byte(nil), blob...)
	off := len(nan) - 4 - 8 // the last field before the CRC is a float64
	binary.LittleEndian.PutUint64(nan[off:], math.Float64bits(math.NaN()))
	expectKind("NaN field", reseal(nan), DefaultConfig(), ErrCheckpointCorrupt)

	// Trailing garbage with a valid CRC.
	expectKind("trailing bytes", reseal(append(append([]byte(nil), blob[:len(blob)-4]...), 0, 0, 0, 0, 0)), DefaultConfig(), ErrCheckpointCorrupt)
}

// FuzzUnmarshal checks that no input makes Unmarshal panic; `go test` runs
// the seeds, `go test -fuzz=FuzzUnmarshal` explores.
func FuzzUnmarshal(f *testing.F) {
	fc, _ := trained(f, 500, 30*time.Second, 4)
	blob, _ := Marshal(map[string]*Forecaster{"w": fc})
	f.Add(blob)
	f.Add(reseal(blob[:len(blob)/2]))
	f.Add([]byte("GHFC"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Unmarshal(data, DefaultConfig())
		if err != nil && got != nil {
			t.Fatal("error with state")
		}
		if err == nil {
			for _, fc := range got {
				if p := fc.Predict(epoch, time.Minute); math.IsNaN(p.Peak) || p.Peak < 0 {
					t.Fatalf("restored forecaster predicts %v", p.Peak)
				}
			}
		}
		if err != nil && !errors.Is(err, ErrCheckpointCorrupt) && !errors.Is(err, ErrCheckpointVersion) && !errors.Is(err, ErrCheckpointIncompatible) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
