package backtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// per step. Token columns are checked for presence only: replicas are sized
// by request rate here, as KEDA would with a queue-length trigger.
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

// ParseAzure is ReadAzure on a reader.
func ParseAzure(r io.Reader, name string, opt AzureOptions) (Series, error) {
	opt.defaults()
	sc := bufio.NewScanner(r)
	var (
		t0     time.Time
		counts []int
		line   int
	)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if line == 1 {
			if !strings.HasPrefix(text, "TIMESTAMP,") {
				return Series{}, fmt.Errorf("line 1: header %q, want TIMESTAMP,ContextTokens,GeneratedTokens", text)
			}
			continue
		}
		ts, _, ok := strings.Cut(text, ",")
		if !ok {
			return Series{}, fmt.Errorf("line %d: want 3 columns, got %q", line, text)
		}
		t, err := time.Parse(azureLayout, ts)
		if err != nil {
			return Series{}, fmt.Errorf("line %d: parsing timestamp: %w", line, err)
		}
		if t0.IsZero() {
			t0 = t.Truncate(time.Second)
		}
		if t.Before(t0) {
			return Series{}, fmt.Errorf("line %d: timestamp %v before the first one %v", line, t, t0)
		}
		if opt.Span > 0 && t.Sub(t0) >= opt.Span {
			break
		}
		k := int(t.Sub(t0) / opt.Step)
		for len(counts) <= k {
			counts = append(counts, 0)
		}
		counts[k]++
	}
	if err := sc.Err(); err != nil {
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
