// Package forecast predicts the next minutes of GPU demand per workload, with
// error bars that are measured rather than assumed.
//
// Everything here is pure: time is passed in (never read from a clock), there
// is no I/O and no Kubernetes import, so the controller (headroomd) and the
// simulator call exactly the same code, and tests replay synthetic or recorded
// series deterministically.
//
// # Estimators
//
// Every estimator implements [Estimator]: Observe(at, v) feeds one sample,
// Predict(at, h) returns a point forecast of the PEAK value in (at, at+h].
// Peak rather than value-at-h, because headroom must cover the worst moment
// before the next node could arrive, not just the end of the window.
//
//   - [LastValue]: the reactive baseline (what KEDA + HPA + cluster-autoscaler do).
//   - [Holt]: level + damped trend, for irregular intervals and gaps.
//   - [Seasonal]: a time-of-day x day-of-week profile learned online.
//   - [Combined]: Holt on the deseasonalised series, re-seasonalised, never
//     below the current need (reactive floor).
//   - [Quantile]: wraps any estimator and turns its point forecast into the
//     q-quantile (default 0.95) of the peak, calibrated online by conformal
//     residuals of its own past predictions, so that coverage is measured.
//
// All are O(1) per sample (bounded loops only) and hold a few KiB of state.
//
// # Signals and how they are used
//
// [Forecaster] is what the controller keeps per workload. Each pass it gets
// [Signals], all in replicas:
//
//   - Desired: the HPA's desiredReplicas (KEDA owns the HPA). This is what the
//     cluster is being asked for right now, clamped to maxReplicas and held up
//     by the scale-down stabilisation window.
//   - MetricImplied: the HPA metric divided by its per-replica target (for
//     example queue length / listLength), not clamped and not stabilised. It is
//     the leading indicator: it moves one KEDA polling interval and one HPA
//     sync before Desired does, and during a burst it says how far demand
//     overshoots. Use 0 when the metric is unknown.
//   - Pending: pods of the workload that exist but are not scheduled. They are
//     already counted in Desired, so they are not added to it; Ready+Pending is
//     used as a floor so that a rollout surge or a Desired that has not caught
//     up still counts as need.
//   - Ready: replicas that already serve or hold a node (the callers,
//     headroom.ForecastSignals, pass ready plus starting: a replica loading its
//     model has its GPUs). It is not part of the need; it is returned in the
//     prediction so the planner can cover "predicted peak minus what is already
//     in place".
//
// The series the estimators learn is need = max(Desired, MetricImplied,
// Ready+Pending). Max, not a blend, because under-provisioning costs a
// multi-minute node wait while over-provisioning costs one placeholder; the
// planner clamps the result to the workload's maxReplicas.
//
// # Lead time
//
// [LeadTime] turns measured node-provisioning durations (per zone and GPU
// product) and pod creation-to-Ready durations (per workload) into the
// forecast horizon: a high percentile of their sum.
//
// # Checkpoints
//
// [Marshal] and [Unmarshal] encode the state of all forecasters into a compact
// versioned binary blob with a CRC, for a ConfigMap. Bad blobs return a
// [*CheckpointError] and never panic.
package forecast
