// Package backtest replays recorded LLM request traces through the
// estimators of package forecast and scores them the way headroom uses
// them: against the realised PEAK demand within each horizon.
//
// A trace becomes a replica series (requests per second divided by a
// per-replica throughput, averaged over a fixed step). Each sample
// describes the interval that ends at its timestamp, so the realised peak
// for a prediction made at t with horizon h is the largest sample in
// (t, t+h] plus the first sample at or after t+h (it covers t+h). The
// conformal layer in package forecast scores itself online with the same
// rule, so offline and online coverage mean the same thing.
//
// Everything is deterministic: no randomness, no clock, no goroutines.
package backtest
