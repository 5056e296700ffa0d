package agent

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics, /healthz and /readyz.
//
//   - /healthz is 200 while the sampling loop is alive (a sample within three
//     intervals, or still starting up) and 503 when it has stalled, so the
//     kubelet restarts a hung agent (an NVML call can hang on a broken GPU).
//   - /readyz is 200 once the first sample is done, with or without NVML: an
//     agent without NVML is doing its job (reporting "no NVML" to the
//     controller) and must not block a DaemonSet rollout.
//
// Both bodies say what the agent sees, including "no NVML" and why.
func Handler(m *Monitor, g prometheus.Gatherer, interval time.Duration, started time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		s, at, ok := m.Last()
		now := m.cfg.Now()
		switch {
		case !ok && now.Sub(started) < 3*interval:
			fmt.Fprintln(w, "ok: starting")
		case !ok || now.Sub(at) > 3*interval:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "stalled: last GPU sample at %s\n", at.Format(time.RFC3339))
		default:
			fmt.Fprintf(w, "ok: %s\n", Describe(s))
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		s, _, ok := m.Last()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: no GPU sample yet")
			return
		}
		fmt.Fprintf(w, "ready: %s\n", Describe(s))
	})
	return mux
}
