// Package sim is the discrete-event simulator behind `headroom simulate`: it replays
// request traffic through a simulated GPU cluster (KEDA and the HPA, the scheduler
// with placeholder preemption, a cluster-autoscaler stand-in, node provisioning and
// pod start) and scores headroom policies side by side.
//
// It exists so that an operator can see, on their own traffic and before spending
// GPU money, how many replica starts would have waited for a node under each
// policy and what the warm capacity costs; and so that this project can measure
// and tune its own policy. The forecast policy calls the controller's own code:
// headroom.Plan, headroom.ApplyCooldown, headroom.UpdateScarcity,
// headroom.ResolvePolicy over a config parsed by headroom.ParseConfig, and
// forecast.Forecaster. Nothing of the planner is copied here.
//
// The package is pure: simulated time is passed in (a fixed epoch plus ticks),
// randomness comes from a seed, there is no clock read and no Kubernetes client.
// The same inputs and seed always give the same Result.
//
// # Model, and where it simplifies
//
//   - Time advances in fixed ticks (default 1 s); every delay is a whole number of
//     ticks, so replica waits and request queueing delays have that resolution.
//   - Serving is a fluid model of continuous batching: requests that arrive in one
//     tick form a cohort (count and token sums) that queues FIFO. Ready replicas
//     hold at most Concurrency requests each; the in-service pool completes at the
//     rate batch/serviceTime(batch), where the service time is prefill per context
//     token plus decode per generated token at the current per-replica batch, from
//     the Splitwise performance model. Counts are integers, so requests are
//     conserved exactly.
//   - Traffic: Azure per-request traces keep each request's tokens; each ServeGen
//     client's window gets the trace's count of arrivals (rate x scale x window,
//     rounded at random so the mean is exact) placed by n+1 gaps drawn from the
//     window's fitted Gamma or Weibull shape and rescaled to span the window, so
//     high-CV clients arrive in clumps; plain timestamp,rate CSVs are Poisson.
//     Token sizes for rate-only traces are constants (options).
//   - KEDA polls the metric (waiting requests, or waiting plus running) every
//     PollingInterval for activation and scale to zero; the HPA syncs every 15 s
//     with its default tolerance, scale-up policies (100% or 4 pods per 15 s) and
//     a 300 s scale-down stabilisation window.
//   - The scheduler binds a pod to a usable node with free GPUs (spreading a
//     workload's replicas over zones), else preempts placeholders on one node,
//     else leaves it pending. Placeholders never preempt.
//   - The cluster autoscaler is a stand-in: every scan it adds nodes for pending
//     pods at or above the expendable cutoff that upcoming nodes do not cover,
//     per zone node group with a max size, stockout windows and a backoff; it
//     removes nodes unneeded (empty, or under the utilisation threshold with pods
//     that fit elsewhere) for ScaleDownUnneeded.
package sim
