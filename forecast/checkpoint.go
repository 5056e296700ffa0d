package forecast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// CheckpointVersion is the version written by [Marshal]. Bump it when the
// encoding of any estimator changes; older blobs are then discarded (the
// forecaster relearns within one horizon's worth of samples, plus a day for
// the seasonal profile), which is cheaper and safer than migrations.
const CheckpointVersion = 2

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
	e := newEnvelope(checkpointMagic, 4096*len(keys))
	e.u32(uint32(len(keys)))
	for _, k := range keys {
		f := states[k]
		if f == nil {
			return nil, fmt.Errorf("marshalling forecaster state: workload %q is nil", k)
		}
		e.str(k)
		e.sized(f.encode)
	}
	return e.seal(), nil
}

// newEnvelope starts a blob: magic, then the version.
func newEnvelope(magic [4]byte, size int) *encoder {
	e := &encoder{b: make([]byte, 0, size+16)}
	e.b = append(e.b, magic[:]...)
	e.u16(CheckpointVersion)
	return e
}

// sized writes a u32 length followed by what fn encodes, so a reader can
// bound each entry before decoding it.
func (e *encoder) sized(fn func(*encoder)) {
	at := len(e.b)
	e.u32(0) // patched below
	fn(e)
	binary.LittleEndian.PutUint32(e.b[at:], uint32(len(e.b)-at-4))
}

// seal appends the CRC-32 of everything before it.
func (e *encoder) seal() []byte {
	e.u32(crc32.ChecksumIEEE(e.b))
	return e.b
}

// openEnvelope checks magic, checksum and version and returns a decoder
// positioned after the version.
func openEnvelope(data []byte, magic [4]byte) (*decoder, error) {
	if len(data) < len(magic)+2+4 {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: fmt.Errorf("%d bytes is too short", len(data))}
	}
	if [4]byte(data[:4]) != magic {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: fmt.Errorf("bad magic %q, want %q", data[:4], magic[:])}
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: errors.New("checksum mismatch")}
	}
	d := &decoder{b: body[4:]}
	if v := d.u16(); v != CheckpointVersion {
		return nil, &CheckpointError{Kind: ErrCheckpointVersion, Err: fmt.Errorf("version %d, want %d", v, CheckpointVersion)}
	}
	return d, nil
}

// decodeErr classifies a decoder failure.
func decodeErr(key string, err error) *CheckpointError {
	kind := ErrCheckpointCorrupt
	if errors.Is(err, errMismatch) {
		kind = ErrCheckpointIncompatible
	}
	return &CheckpointError{Kind: kind, Workload: key, Err: err}
}

// Unmarshal decodes a blob written by Marshal into fresh forecasters built
// with cfg. Any problem returns a *CheckpointError and no state: a partial
// restore would mix old and new calibrations silently.
func Unmarshal(data []byte, cfg Config) (map[string]*Forecaster, error) {
	d, err := openEnvelope(data, checkpointMagic)
	if err != nil {
		return nil, err
	}
	count := int(d.u32())
	if count > len(d.b) { // each entry takes at least a byte: reject absurd counts before allocating
		return nil, &CheckpointError{Kind: ErrCheckpointCorrupt, Err: fmt.Errorf("%d workloads in %d bytes", count, len(d.b))}
	}
	out := make(map[string]*Forecaster, count)
	for range count {
		key := d.str()
		raw := d.take(int(d.u32()))
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
			return nil, decodeErr(key, fd.err)
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
