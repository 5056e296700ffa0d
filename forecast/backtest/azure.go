package backtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AzureOptions turn the Azure LLM inference trace into a replica series.
type AzureOptions struct {
	// Step is the sampling step (the controller's resync); default 30s.
	Step time.Duration
	// ReplicaRPS is the request rate one replica serves; default 0.25, which
	// puts the code trace at about 10 replicas on average.
	ReplicaRPS float64
	// Span, if > 0, keeps only the first Span of the trace (for tests).
	Span time.Duration
}

func (o *AzureOptions) defaults() {
	if o.Step <= 0 {
		o.Step = 30 * time.Second
	}
	if o.ReplicaRPS <= 0 {
		o.ReplicaRPS = 0.25
	}
}

// azureLayout parses TIMESTAMP values such as "2023-11-16 18:17:03.9799600".
const azureLayout = "2006-01-02 15:04:05.999999999"

// ReadAzure reads AzureLLMInferenceTrace_{code,conv}.csv (columns TIMESTAMP,
// ContextTokens, GeneratedTokens; one row per request) and counts requests
// per step. Token counts are validated but not used: replicas are sized by
// request rate here, as KEDA would with a queue-length trigger.
func ReadAzure(path string, opt AzureOptions) (Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return Series{}, fmt.Errorf("reading trace %s: %w", path, err)
	}
	defer f.Close()
	s, err := ParseAzure(f, strings.TrimSuffix(filepath.Base(path), ".csv"), opt)
	if err != nil {
		return Series{}, fmt.Errorf("reading trace %s: %w", path, err)
	}
	return s, nil
}

// AzureRequest is one row of an Azure LLM inference trace.
type AzureRequest struct {
	At                 time.Time
	Context, Generated int32
}

// ScanAzure reads an Azure LLM inference trace row by row (header TIMESTAMP,
// ContextTokens, GeneratedTokens), checking that timestamps parse, token counts
// are non-negative integers and no row is earlier than the first, and calls fn
// for each request in order until fn returns false. The backtest counts rows;
// the simulator keeps their tokens.
func ScanAzure(r io.Reader, fn func(AzureRequest) bool) error {
	sc := bufio.NewScanner(r)
	var first time.Time
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if line == 1 {
			if !strings.HasPrefix(text, "TIMESTAMP,") {
				return fmt.Errorf("line 1: header %q, want TIMESTAMP,ContextTokens,GeneratedTokens", text)
			}
			continue
		}
		cols := strings.Split(text, ",")
		if len(cols) != 3 {
			return fmt.Errorf("line %d: want 3 columns, got %q", line, text)
		}
		t, err := time.Parse(azureLayout, cols[0])
		if err != nil {
			return fmt.Errorf("line %d: parsing timestamp: %w", line, err)
		}
		c, err1 := strconv.ParseInt(cols[1], 10, 32)
		g, err2 := strconv.ParseInt(cols[2], 10, 32)
		if err1 != nil || err2 != nil || c < 0 || g < 0 {
			return fmt.Errorf("line %d: bad token counts %q", line, text)
		}
		if first.IsZero() {
			first = t.Truncate(time.Second)
		}
		if t.Before(first) {
			return fmt.Errorf("line %d: timestamp %v before the first one %v", line, t, first)
		}
		if !fn(AzureRequest{At: t, Context: int32(c), Generated: int32(g)}) {
			return nil
		}
	}
	return sc.Err()
}

// ParseAzure is ReadAzure on a reader.
func ParseAzure(r io.Reader, name string, opt AzureOptions) (Series, error) {
	opt.defaults()
	var (
		t0     time.Time
		counts []int
	)
	err := ScanAzure(r, func(q AzureRequest) bool {
		if t0.IsZero() {
			t0 = q.At.Truncate(time.Second)
		}
		if opt.Span > 0 && q.At.Sub(t0) >= opt.Span {
			return false
		}
		k := int(q.At.Sub(t0) / opt.Step)
		for len(counts) <= k {
			counts = append(counts, 0)
		}
		counts[k]++
		return true
	})
	if err != nil {
		return Series{}, err
	}
	if len(counts) < 2 {
		return Series{}, fmt.Errorf("trace has %d steps of %v, need at least 2", len(counts), opt.Step)
	}
	// The last step is partial (the trace ends inside it): drop it rather
	// than report a dip that never happened.
	counts = counts[:len(counts)-1]
	s := Series{Name: name, Step: opt.Step, Samples: make([]Sample, len(counts))}
	for k, c := range counts {
		s.Samples[k] = Sample{
			At: t0.Add(time.Duration(k+1) * opt.Step),
			V:  float64(c) / opt.Step.Seconds() / opt.ReplicaRPS,
		}
	}
	return s, nil
}
