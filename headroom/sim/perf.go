package sim

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
)

// Perf is a replica's service-time model: prefill cost per context token and decode
// cost per generated token as a function of the batch a replica runs.
type Perf struct {
	// PrefillPerToken is seconds per context token.
	PrefillPerToken float64
	// Batches and DecodePerToken (seconds per generated token per request at that
	// batch size) are sorted by batch; DecodePerToken never decreases, so a bigger
	// batch is never faster per request.
	Batches        []float64
	DecodePerToken []float64
}

// DefaultPerf is llama2-70b on H100 with tensor parallelism 2, measured from the
// Splitwise performance profile (medians per batch), for tests and for runs without
// the profile file.
func DefaultPerf() Perf {
	return Perf{
		PrefillPerToken: 0.000165,
		Batches:         []float64{1, 2, 4, 8, 16, 32, 64},
		DecodePerToken:  []float64{0.0370, 0.0374, 0.0399, 0.0404, 0.0420, 0.0523, 0.0523},
	}
}

// ServiceTime returns the seconds one request with these token counts takes at a
// per-replica batch of b requests.
func (p Perf) ServiceTime(ctx, gen, b float64) float64 {
	return ctx*p.PrefillPerToken + gen*p.Decode(b)
}

// Decode interpolates the per-token decode time linearly in batch size, clamped to
// the measured range.
func (p Perf) Decode(b float64) float64 {
	n := len(p.Batches)
	if n == 0 {
		return 0
	}
	if b <= p.Batches[0] {
		return p.DecodePerToken[0]
	}
	if b >= p.Batches[n-1] {
		return p.DecodePerToken[n-1]
	}
	i := sort.SearchFloat64s(p.Batches, b)
	x0, x1 := p.Batches[i-1], p.Batches[i]
	y0, y1 := p.DecodePerToken[i-1], p.DecodePerToken[i]
	return y0 + (y1-y0)*(b-x0)/(x1-x0)
}

// ReadPerf reads the Splitwise perf_model.csv and builds the model for one model,
// hardware and tensor-parallel degree.
func ReadPerf(path, model, hardware string, tp int) (Perf, error) {
	f, err := os.Open(path)
	if err != nil {
		return Perf{}, fmt.Errorf("reading perf model: %w", err)
	}
	defer f.Close()
	p, err := ParsePerf(f, model, hardware, tp)
	if err != nil {
		return Perf{}, fmt.Errorf("reading perf model %s: %w", path, err)
	}
	return p, nil
}

// ParsePerf is ReadPerf on a reader. Prefill per token is the median batch-1
// prompt_time divided by prompt_size over all prompt sizes; decode per batch is the
// median token_time of the rows with the most common prompt and output sizes.
// Medians, because the profile has warm-up outliers; a running maximum over batch
// sizes, because a few batch-64 rows are inconsistent (README).
func ParsePerf(r io.Reader, model, hardware string, tp int) (Perf, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return Perf{}, fmt.Errorf("parsing CSV: %w", err)
	}
	if len(rows) < 2 {
		return Perf{}, fmt.Errorf("no rows")
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, need := range []string{"model", "hardware", "prompt_size", "batch_size", "token_size", "prompt_time", "token_time", "tensor_parallel"} {
		if _, ok := col[need]; !ok {
			return Perf{}, fmt.Errorf("missing column %q", need)
		}
	}
	num := func(row []string, name string) (float64, error) {
		v, err := strconv.ParseFloat(row[col[name]], 64)
		if err != nil {
			return 0, fmt.Errorf("column %s: %w", name, err)
		}
		return v, nil
	}
	var prefill []float64
	decode := map[float64][]float64{}
	for i, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			return Perf{}, fmt.Errorf("row %d: %d columns, want %d", i+2, len(row), len(rows[0]))
		}
		if row[col["model"]] != model || row[col["hardware"]] != hardware {
			continue
		}
		vals := map[string]float64{}
		for _, c := range []string{"prompt_size", "batch_size", "token_size", "prompt_time", "token_time", "tensor_parallel"} {
			v, err := num(row, c)
			if err != nil {
				return Perf{}, fmt.Errorf("row %d: %w", i+2, err)
			}
			vals[c] = v
		}
		if int(vals["tensor_parallel"]) != tp {
			continue
		}
		if vals["batch_size"] == 1 && vals["prompt_size"] > 0 {
			prefill = append(prefill, vals["prompt_time"]/1000/vals["prompt_size"])
		}
		if vals["prompt_size"] == 512 && vals["token_size"] == 128 {
			decode[vals["batch_size"]] = append(decode[vals["batch_size"]], vals["token_time"]/1000)
		}
	}
	if len(prefill) == 0 || len(decode) == 0 {
		return Perf{}, fmt.Errorf("no rows for model %s on %s with tensor parallelism %d", model, hardware, tp)
	}
	p := Perf{PrefillPerToken: median(prefill)}
	for b := range decode {
		p.Batches = append(p.Batches, b)
	}
	slices.Sort(p.Batches)
	run := 0.0
	for _, b := range p.Batches {
		run = max(run, median(decode[b]))
		p.DecodePerToken = append(p.DecodePerToken, run)
	}
	return p, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
