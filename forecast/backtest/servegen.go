package backtest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ServeGenOptions turn ServeGen per-client window files into one series.
type ServeGenOptions struct {
	// ReplicaRPS is the request rate one replica serves; default 20, which
	// puts the m-large aggregate (mean 196 req/s) at about 10 replicas.
	ReplicaRPS float64
	// Clients, if > 0, reads only the first Clients files in name order.
	Clients int
	// Span, if > 0, keeps only the first Span of windows (for tests).
	Span time.Duration
}

// ServeGenWindow is the width of a ServeGen window.
const ServeGenWindow = 600 * time.Second

// ServeGenEpoch is the date given to the trace's t=0. The README says t=0 is
// local midnight but not which day; a Monday is assumed, which only moves
// the labels of the learned weekly profile.
var ServeGenEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ReadServeGen reads a ServeGen m-large folder (every chunk-*-trace.csv in
// it) or one chunk file. Rows are headerless:
// timestamp_s, rate_req_per_s, cv, pattern, shape, scale. The rates of all
// clients are summed per window; the sample is placed at the window's end.
func ReadServeGen(path string, opt ServeGenOptions) (Series, error) {
	if opt.ReplicaRPS <= 0 {
		opt.ReplicaRPS = 20
	}
	files := []string{path}
	if fi, err := os.Stat(path); err != nil {
		return Series{}, fmt.Errorf("reading trace %s: %w", path, err)
	} else if fi.IsDir() {
		files, err = filepath.Glob(filepath.Join(path, "chunk-*-trace.csv"))
		if err != nil {
			return Series{}, fmt.Errorf("listing trace %s: %w", path, err)
		}
		if len(files) == 0 {
			return Series{}, fmt.Errorf("reading trace %s: no chunk-*-trace.csv files", path)
		}
		slices.Sort(files)
	}
	if opt.Clients > 0 && opt.Clients < len(files) {
		files = files[:opt.Clients]
	}
	var rates []float64
	for _, f := range files {
		if err := addServeGen(f, opt.Span, &rates); err != nil {
			return Series{}, fmt.Errorf("reading trace %s: %w", f, err)
		}
	}
	if len(rates) < 2 {
		return Series{}, fmt.Errorf("reading trace %s: %d windows, need at least 2", path, len(rates))
	}
	s := Series{Name: filepath.Base(path), Step: ServeGenWindow, Samples: make([]Sample, len(rates))}
	for i, r := range rates {
		s.Samples[i] = Sample{At: ServeGenEpoch.Add(time.Duration(i+1) * ServeGenWindow), V: r / opt.ReplicaRPS}
	}
	return s, nil
}

// addServeGen adds one client's rates into rates, indexed by window.
func addServeGen(path string, span time.Duration, rates *[]float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		cols := strings.SplitN(text, ",", 3)
		if len(cols) < 3 {
			return fmt.Errorf("line %d: want 6 columns, got %q", line, text)
		}
		ts, err := strconv.ParseFloat(cols[0], 64)
		if err != nil {
			return fmt.Errorf("line %d: parsing timestamp: %w", line, err)
		}
		rate, err := strconv.ParseFloat(cols[1], 64)
		if err != nil || rate < 0 {
			return fmt.Errorf("line %d: bad rate %q", line, cols[1])
		}
		if ts < 0 || ts != float64(int64(ts)) || int64(ts)%int64(ServeGenWindow.Seconds()) != 0 {
			return fmt.Errorf("line %d: timestamp %v is not a multiple of %v", line, ts, ServeGenWindow)
		}
		if span > 0 && time.Duration(ts)*time.Second >= span {
			continue
		}
		k := int(ts / ServeGenWindow.Seconds())
		for len(*rates) <= k {
			*rates = append(*rates, 0)
		}
		(*rates)[k] += rate
	}
	return sc.Err()
}
