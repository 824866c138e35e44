//! Figures from samples: percentiles, throughput, and the closed-loop load
//! runner that produces them (N clients, each sending its next request as
//! soon as the previous one is answered).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::BenchError;

/// A latency distribution (microseconds) and, for load runs, the throughput.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest sample, µs.
    pub max_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Operations per second over the run (load runs only).
    pub ops_per_s: Option<f64>,
    /// The distribution: the 0th, 1st, ..., 100th percentile, µs (for charts).
    pub percentiles_us: Vec<f64>,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Nearest-rank percentile `p` (0 to 100) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    micros(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    /// Summarises `samples`; `elapsed` is the run's wall time, for ops/s.
    pub fn of(mut samples: Vec<Duration>, elapsed: Option<Duration>) -> Summary {
        samples.sort_unstable();
        let count = samples.len();
        let total: f64 = samples.iter().map(|d| micros(*d)).sum();
        Summary {
            count,
            p50_us: percentile(&samples, 50.0),
            p90_us: percentile(&samples, 90.0),
            p99_us: percentile(&samples, 99.0),
            max_us: samples.last().map(|d| micros(*d)).unwrap_or(0.0),
            mean_us: if count == 0 { 0.0 } else { total / count as f64 },
            ops_per_s: elapsed.filter(|e| !e.is_zero()).map(|e| count as f64 / e.as_secs_f64()),
            percentiles_us: (0..=100).map(|p| percentile(&samples, f64::from(p))).collect(),
        }
    }

    /// Throughput, 0 when not a load run.
    pub fn ops(&self) -> f64 {
        self.ops_per_s.unwrap_or(0.0)
    }
}

/// The samples of one load run.
pub struct LoadRun {
    /// Every request's latency, all clients together.
    pub latencies: Vec<Duration>,
    /// From the common start to the last client's last answer.
    pub elapsed: Duration,
}

impl LoadRun {
    /// The run's summary.
    pub fn summary(self) -> Summary {
        Summary::of(self.latencies, Some(self.elapsed))
    }
}

/// Runs `clients` threads for `duration`. Each makes its worker with
/// `make(i)` (sockets are opened in the thread), then all start together and
/// call the worker in a loop; each call performs one request and returns its
/// latency.
pub fn closed_loop<W, F>(clients: usize, duration: Duration, make: F) -> Result<LoadRun, BenchError>
where
    F: Fn(usize) -> Result<W, BenchError> + Sync,
    W: FnMut() -> Result<Duration, BenchError>,
{
    let barrier = Barrier::new(clients);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, make) = (&barrier, &make);
                scope.spawn(move || {
                    let worker = make(i);
                    barrier.wait();
                    let mut worker = worker?;
                    // Each thread times its own run, so the span never misses one (a
                    // thread that took the clock late would shorten a shared span).
                    let started = Instant::now();
                    let end = started + duration;
                    let mut samples = Vec::new();
                    while Instant::now() < end {
                        samples.push(worker()?);
                    }
                    Ok::<_, BenchError>((samples, started, Instant::now()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(BenchError::Unexpected("a load thread panicked".into()))))
            .collect()
    });
    let mut latencies = Vec::new();
    let mut span: Option<(Instant, Instant)> = None;
    for result in results {
        let (samples, started, ended) = result?;
        latencies.extend(samples);
        span = Some(span.map_or((started, ended), |(first, last)| (first.min(started), last.max(ended))));
    }
    let (start, last) = span.ok_or_else(|| BenchError::Unexpected("a load run without clients".into()))?;
    Ok(LoadRun { latencies, elapsed: last - start })
}

/// Formats microseconds for a table: µs below 1 ms, ms below 10 s, else s.
pub fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 10_000_000.0 {
        format!("{:.1} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Formats a rate: `64.3k/s`.
pub fn fmt_ops(ops: f64) -> String {
    if ops >= 1_000.0 { format!("{:.1}k/s", ops / 1_000.0) } else { format!("{ops:.0}/s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_micros(*v)).collect()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let summary = Summary::of(us(&[5, 1, 4, 2, 3, 6, 7, 8, 9, 10]), Some(Duration::from_secs(2)));
        assert_eq!(summary.count, 10);
        assert_eq!(summary.p50_us, 5.0);
        assert_eq!(summary.p90_us, 9.0);
        assert_eq!(summary.p99_us, 10.0);
        assert_eq!(summary.max_us, 10.0);
        assert_eq!(summary.mean_us, 5.5);
        assert_eq!(summary.ops_per_s, Some(5.0));
        assert_eq!(summary.percentiles_us.len(), 101);
        assert_eq!(summary.percentiles_us[0], 1.0);
    }

    #[test]
    fn no_samples_make_zeros_not_a_panic() {
        let summary = Summary::of(Vec::new(), None);
        assert_eq!((summary.count, summary.p50_us, summary.ops()), (0, 0.0, 0.0));
    }

    #[test]
    fn figures_are_formatted_by_size() {
        assert_eq!(fmt_us(15.04), "15.0 µs");
        assert_eq!(fmt_us(1_303_000.0), "1303.0 ms");
        assert_eq!(fmt_us(12_000_000.0), "12.00 s");
        assert_eq!(fmt_ops(64_300.0), "64.3k/s");
        assert_eq!(fmt_ops(583.2), "583/s");
    }

    #[test]
    fn a_closed_loop_runs_every_client_and_counts_every_request() {
        let run = closed_loop(3, Duration::from_millis(20), |_| Ok(|| Ok(Duration::from_micros(1)))).expect("a run");
        assert!(!run.latencies.is_empty());
        assert!(run.elapsed >= Duration::from_millis(20));
    }
}
