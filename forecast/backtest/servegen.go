package backtest

import (
	"bufio"
	"fmt"
	"io"
	"math"
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

// ServeGenFiles lists the client files of a ServeGen trace: every
// chunk-*-trace.csv of a folder in name order (the first clients of them when
// clients > 0), or the one file given.
func ServeGenFiles(path string, clients int) ([]string, error) {
	files := []string{path}
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("reading trace %s: %w", path, err)
	} else if fi.IsDir() {
		files, err = filepath.Glob(filepath.Join(path, "chunk-*-trace.csv"))
		if err != nil {
			return nil, fmt.Errorf("listing trace %s: %w", path, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("reading trace %s: no chunk-*-trace.csv files", path)
		}
		slices.Sort(files)
	}
	if clients > 0 && clients < len(files) {
		files = files[:clients]
	}
	return files, nil
}

// ServeGenRow is one window of one ServeGen client.
type ServeGenRow struct {
	// Window is the window's index (timestamp / ServeGenWindow).
	Window int
	// Rate is the client's mean request rate in the window, requests/s.
	Rate float64
	// Pattern is the fitted inter-arrival distribution, "Gamma" or
	// "Weibull" with Shape, or "" (an idle window, or none given).
	Pattern string
	Shape   float64
}

// ScanServeGen reads one ServeGen client file row by row (headerless:
// timestamp_s, rate_req_per_s, cv, pattern, shape, scale), checking that the
// timestamp is a whole window, the rate a finite non-negative number and a busy
// window's pattern Gamma or Weibull with a positive shape, and calls fn for
// each row until fn returns false. The backtest sums the rates; the simulator
// also draws arrivals from the pattern.
func ScanServeGen(r io.Reader, fn func(ServeGenRow) bool) error {
	sc := bufio.NewScanner(r)
	line := 0
	win := int64(ServeGenWindow.Seconds())
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		cols := strings.Split(text, ",")
		if len(cols) < 3 {
			return fmt.Errorf("line %d: want 6 columns, got %q", line, text)
		}
		ts, err := strconv.ParseFloat(cols[0], 64)
		if err != nil {
			return fmt.Errorf("line %d: parsing timestamp: %w", line, err)
		}
		if ts < 0 || ts != float64(int64(ts)) || int64(ts)%win != 0 {
			return fmt.Errorf("line %d: timestamp %v is not a multiple of %v", line, ts, ServeGenWindow)
		}
		rate, err := strconv.ParseFloat(cols[1], 64)
		if err != nil || rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
			return fmt.Errorf("line %d: bad rate %q", line, cols[1])
		}
		row := ServeGenRow{Window: int(int64(ts) / win), Rate: rate}
		if len(cols) >= 5 && rate > 0 {
			switch p := strings.TrimSpace(cols[3]); p {
			case "":
			case "Gamma", "Weibull":
				shape, err := strconv.ParseFloat(strings.TrimSpace(cols[4]), 64)
				if err != nil || !(shape > 0) || math.IsInf(shape, 0) {
					return fmt.Errorf("line %d: bad %s shape %q", line, p, cols[4])
				}
				row.Pattern, row.Shape = p, shape
			default:
				return fmt.Errorf("line %d: unknown inter-arrival pattern %q (want Gamma or Weibull)", line, p)
			}
		}
		if !fn(row) {
			return nil
		}
	}
	return sc.Err()
}

// ReadServeGen reads a ServeGen m-large folder (every chunk-*-trace.csv in
// it) or one chunk file (see ScanServeGen). The rates of all clients are
// summed per window; the sample is placed at the window's end.
func ReadServeGen(path string, opt ServeGenOptions) (Series, error) {
	if opt.ReplicaRPS <= 0 {
		opt.ReplicaRPS = 20
	}
	files, err := ServeGenFiles(path, opt.Clients)
	if err != nil {
		return Series{}, err
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
	return ScanServeGen(f, func(r ServeGenRow) bool {
		if span > 0 && time.Duration(r.Window)*ServeGenWindow >= span {
			return true
		}
		for len(*rates) <= r.Window {
			*rates = append(*rates, 0)
		}
		(*rates)[r.Window] += r.Rate
		return true
	})
}
