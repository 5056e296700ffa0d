package forecast

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// leadTimeMagic marks a lead-time checkpoint, kept apart from the forecaster
// blob so either can be lost without the other.
var leadTimeMagic = [4]byte{'G', 'H', 'L', 'T'}

// MarshalBinary encodes the recorded samples (not the config) as
//
//	"GHLT" | version u16 | nodes u32 × (zone | product | ring) | pods u32 × (workload | ring) | CRC-32
//
// where a ring is its sample count u16 and the samples in seconds as
// float32, oldest first. Keys are sorted so equal state gives equal bytes.
func (l *LeadTime) MarshalBinary() ([]byte, error) {
	nodes := make([]NodeKey, 0, len(l.nodes))
	for k := range l.nodes {
		nodes = append(nodes, k)
	}
	slices.SortFunc(nodes, func(a, b NodeKey) int {
		return cmp.Or(cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.GPUProduct, b.GPUProduct))
	})
	pods := make([]string, 0, len(l.pods))
	for k := range l.pods {
		pods = append(pods, k)
	}
	slices.Sort(pods)
	e := newEnvelope(leadTimeMagic, 256*(len(nodes)+len(pods)))
	e.u32(uint32(len(nodes)))
	for _, k := range nodes {
		if len(k.Zone) > 0xffff || len(k.GPUProduct) > 0xffff {
			return nil, fmt.Errorf("marshalling lead times: key %v is too long", k)
		}
		e.str(k.Zone)
		e.str(k.GPUProduct)
		encodeRing(e, l.nodes[k])
	}
	e.u32(uint32(len(pods)))
	for _, k := range pods {
		if len(k) > 0xffff {
			return nil, fmt.Errorf("marshalling lead times: workload key of %d bytes is too long", len(k))
		}
		e.str(k)
		encodeRing(e, l.pods[k])
	}
	return e.seal(), nil
}

func encodeRing(e *encoder, r *ring) {
	vals := r.values()
	e.u16(uint16(len(vals)))
	for _, v := range vals {
		e.f32(float32(v))
	}
}

// UnmarshalLeadTime restores samples written by MarshalBinary into an
// estimator with cfg. A smaller Capacity keeps the newest samples. Bad
// blobs return a *CheckpointError.
func UnmarshalLeadTime(data []byte, cfg LeadTimeConfig) (*LeadTime, error) {
	l, err := NewLeadTime(cfg)
	if err != nil {
		return nil, fmt.Errorf("restoring lead times: %w", err)
	}
	d, err := openEnvelope(data, leadTimeMagic)
	if err != nil {
		return nil, err
	}
	readRing := func() *ring {
		n := int(d.u16())
		if d.err == nil && n > 1024 {
			d.fail(fmt.Errorf("%w: %d samples in a ring", errBadField, n))
			return nil
		}
		r := &ring{v: make([]float64, cfg.Capacity)}
		for range n {
			v := float64(d.f32())
			if v < 0 || math.IsNaN(v) {
				d.fail(fmt.Errorf("%w: duration %v", errBadField, v))
			}
			r.add(v)
		}
		return r
	}
	for range int(d.u32()) {
		if d.err != nil {
			break
		}
		k := NodeKey{Zone: d.str(), GPUProduct: d.str()}
		if r := readRing(); d.err == nil {
			l.nodes[k] = r
		}
	}
	for range int(d.u32()) {
		if d.err != nil {
			break
		}
		w := d.str()
		if r := readRing(); d.err == nil {
			l.pods[w] = r
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(errors.New("trailing bytes"))
	}
	if d.err != nil {
		return nil, decodeErr("", d.err)
	}
	return l, nil
}
