package forecast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// encoder appends little-endian fixed-size fields. The checkpoint format is
// hand-rolled rather than JSON because the seasonal profile and the conformal
// score windows are a few hundred floats each: as JSON text they would not
// fit the 16 KiB per workload budget, as float32 they take 4 bytes each.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) i64(v int64)  { e.b = binary.LittleEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) f64(v float64) {
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v))
}
func (e *encoder) f32(v float32) {
	e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(v))
}
func (e *encoder) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *encoder) str(s string) {
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) clock(c clock) {
	e.boolean(c.has)
	e.i64(c.lastNs)
}

// errShort and errBadField are the causes a decoder reports; both end up
// wrapped in a CheckpointError of kind corrupt.
var (
	errShort    = errors.New("truncated")
	errBadField = errors.New("invalid field")
)

// decoder reads what encoder wrote. It has a sticky error: after the first
// failure every read returns zero, so decode functions need no error plumbing
// and a truncated or hostile blob can never index out of range.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(errShort)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}
func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}
func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}
func (d *decoder) i64() int64 {
	if p := d.take(8); p != nil {
		return int64(binary.LittleEndian.Uint64(p))
	}
	return 0
}

// f64 reads a float and rejects NaN and infinities: a checkpoint that passed
// the CRC but holds them was written by a buggy or foreign writer.
func (d *decoder) f64() float64 {
	p := d.take(8)
	if p == nil {
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(p))
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail(fmt.Errorf("%w: non-finite float", errBadField))
		return 0
	}
	return v
}
func (d *decoder) f32() float32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(p))
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		d.fail(fmt.Errorf("%w: non-finite float", errBadField))
		return 0
	}
	return v
}
func (d *decoder) nonNeg() float64 {
	v := d.f64()
	if v < 0 {
		d.fail(fmt.Errorf("%w: negative value %v", errBadField, v))
		return 0
	}
	return v
}
func (d *decoder) boolean() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(fmt.Errorf("%w: bool", errBadField))
	return false
}
func (d *decoder) str() string {
	n := int(d.u16())
	return string(d.take(n))
}
func (d *decoder) clock() clock {
	return clock{has: d.boolean(), lastNs: d.i64()}
}

// expect checks a structural dimension (slot count, window size) against
// the configured one.
func (d *decoder) expect(what string, got, want int) {
	if d.err == nil && got != want {
		d.fail(fmt.Errorf("%w: %s is %d, configured %d", errMismatch, what, got, want))
	}
}
