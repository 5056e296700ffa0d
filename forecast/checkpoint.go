package forecast

import (
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// CheckpointVersion is the version written by [Marshal]. Bump it when the
// encoding of any estimator changes; older blobs are then discarded (the
// forecaster relearns within one horizon's worth of samples, plus a day for
// the seasonal profile), which is cheaper and safer than migrations.
const CheckpointVersion = 1

// checkpointMagic starts every blob so a ConfigMap holding something else is
// recognised as foreign, not as a corrupt checkpoint of ours.
var checkpointMagic = [4]byte{'G', 'H', 'F', 'C'}

// Kinds of checkpoint failure, matched with errors.Is. Every one means the
// same to the controller: log it, discard the blob, start empty.
var (
	// ErrCheckpointCorrupt: truncated, bad checksum, bad magic or bad fields.
	ErrCheckpointCorrupt = errors.New("checkpoint corrupt")
	// ErrCheckpointVersion: written by a different encoding version.
	ErrCheckpointVersion = errors.New("checkpoint version not supported")
	// ErrCheckpointIncompatible: valid, but for another configuration
	// (horizons, slot width, window size).
	ErrCheckpointIncompatible = errors.New("checkpoint does not match configuration")
)

// errMismatch is what decoders use for a dimension that differs from config;
// Unmarshal reports it as ErrCheckpointIncompatible.
var errMismatch = errors.New("differs from configuration")

// CheckpointError says why a checkpoint was rejected and, when known, which
// workload's state failed.
type CheckpointError struct {
	Kind     error // one of the ErrCheckpoint* sentinels
	Workload string
	Err      error
}

func (e *CheckpointError) Error() string {
	msg := e.Kind.Error()
	if e.Workload != "" {
		msg += fmt.Sprintf(" (workload %q)", e.Workload)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *CheckpointError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Marshal encodes the state of every forecaster, keyed by workload, as
//
//	"GHFC" | version u16 | count u32 | count × (key | len u32 | state) | CRC-32 (IEEE) u32
//
// in little endian, keys sorted so the same state always gives the same
// bytes (a ConfigMap update is skipped when nothing changed).
func Marshal(states map[string]*Forecaster) ([]byte, error) {
	keys := make([]string, 0, len(states))
	for k := range states {
		if len(k) > 0xffff {
			return nil, fmt.Errorf("marshalling forecaster state: workload key of %d bytes is too long", len(k))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e := &encoder{b: make([]byte, 0, 4096*len(keys)+16)}
	e.b = append(e.b, checkpointMagic[:]...)
	e.u16(CheckpointVersion)
	e.u32(uint32(len(keys)))
	for _, k := range keys {
		f := states[k]
		if f == nil {
			return nil, fmt.Errorf("marshalling forecaster state: workload %q is nil", k)
		}
		e.str(k)
		at := len(e.b)
		e.u32(0) // length, patched below
		f.encode(e)
		n := uint32(len(e.b) - at - 4)
		e.b[at], e.b[at+1], e.b[at+2], e.b[at+3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	}
	e.u32(crc32.ChecksumIEEE(e.b))
	return e.b, nil
}

// Unmarshal decodes a blob written by Marshal into fresh forecasters built
// with cfg. Any problem returns a *CheckpointError and no state: a partial
// restore would mix old and new calibrations silently.
func Unmarshal(data []byte, cfg Config) (map[string]*Forecaster, error) {
	if len(data) < len(checkpointMagic)+2+4+4 {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: fmt.Errorf("%d bytes is too short", len(data))}
	}
	if [4]byte(data[:4]) != checkpointMagic {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: errors.New("bad magic")}
	}
	body, sum := data[:len(data)-4], data[len(data)-4:]
	want := uint32(sum[0]) | uint32(sum[1])<<8 | uint32(sum[2])<<16 | uint32(sum[3])<<24
	if crc32.ChecksumIEEE(body) != want {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: errors.New("checksum mismatch")}
	}
	d := &decoder{b: body[4:]}
	if v := d.u16(); v != CheckpointVersion {
		return nil, &CheckpointError{Kind: ErrCheckpointVersion, Err: fmt.Errorf("version %d, want %d", v, CheckpointVersion)}
	}
	count := int(d.u32())
	if count > len(d.b) { // each entry takes at least a byte: reject absurd counts before allocating
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: fmt.Errorf("%d workloads in %d bytes", count, len(d.b))}
	}
	out := make(map[string]*Forecaster, count)
	for range count {
		key := d.str()
		n := int(d.u32())
		raw := d.take(n)
		if d.err != nil {
			return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Workload: key, Err: d.err}
		}
		f, err := NewForecaster(cfg)
		if err != nil {
			return nil, fmt.Errorf("restoring forecaster state: %w", err)
		}
		fd := &decoder{b: raw}
		f.decode(fd)
		if fd.err == nil && len(fd.b) != 0 {
			fd.fail(fmt.Errorf("%w: %d trailing bytes", errBadField, len(fd.b)))
		}
		if fd.err != nil {
			kind := ErrCheckpointCorrupt
			if errors.Is(fd.err, errMismatch) {
				kind = ErrCheckpointIncompatible
			}
			return nil, &CheckpointError{Kind: kind, Workload: key, Err: fd.err}
		}
		if _, dup := out[key]; dup {
			return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Workload: key, Err: errors.New("duplicate workload")}
		}
		out[key] = f
	}
	if len(d.b) != 0 {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: fmt.Errorf("%d trailing bytes", len(d.b))}
	}
	return out, nil
}
