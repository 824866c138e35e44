//! The bench's options: sizes, durations and trial counts of every part, each
//! with a full and a `--quick` default.

use std::path::PathBuf;
use std::time::Duration;

/// Options shared by every part (`bench PART [OPTIONS]`).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Directory for results.json and the PNG charts.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    pub out: PathBuf,
    /// Small sizes, short runs and few trials: the whole suite in about a
    /// minute, to check that it works (figures are rough).
    #[arg(long)]
    pub quick: bool,
    /// Seconds of each load measurement [default: 3; quick: 0.3].
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Plain and keyed runs of each load in the keys part, back to back
    /// [default: 16; quick: 2]. Many short pairs ride out the machine's
    /// drifting load better than a few long ones.
    #[arg(long, value_name = "N")]
    pub key_pairs: Option<usize>,
    /// Seconds of each run in the keys part [default: 1; quick: 0.2].
    #[arg(long, value_name = "S")]
    pub key_seconds: Option<f64>,
    /// Runs the keys part as a control: the second group and its clients
    /// without keys too, so that its ratios show how far two identical
    /// groups differ on this machine (what a keyed ratio must beat).
    #[arg(long)]
    pub key_control: bool,
    /// Concurrent clients of the load measurements.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub clients: usize,
    /// Leader kills per timing in the failover part [default: 20; quick: 2].
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Clean stops (SIGTERM) per timing in the failover part [default: 10; quick: 1].
    #[arg(long, value_name = "N")]
    pub stop_trials: Option<usize>,
    /// The fast timings: heartbeat interval, ms.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub fast_interval: u64,
    /// The fast timings: heartbeat timeout, ms.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub fast_timeout: u64,
    /// The failover part also runs the fast timings with this
    /// `--election-timeout` (ms); 0 leaves that run out. (The fast timings
    /// themselves keep the server's default election timeout, 200 ms.)
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub fast_election_timeout: u64,
    /// How often the bench's writer retransmits an unanswered write during a
    /// failover, ms (the resolution of the failover figures).
    #[arg(long, value_name = "MS", default_value_t = 2)]
    pub retry_ms: u64,
    /// Seconds of the false-failover watch [default: 60; quick: 3].
    #[arg(long, value_name = "S")]
    pub watch_seconds: Option<f64>,
    /// Busy-loop processes competing for the CPUs during the watch.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub busy: usize,
    /// Group sizes of the scale part [default: 3,8,16,32,64; quick: 3,8].
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Leader kills per group size in the scale part [default: 3; quick: 1].
    #[arg(long, value_name = "N")]
    pub scale_trials: Option<usize>,
    /// Reservations the group holds in the catch-up part [default: 50000; quick: 5000].
    #[arg(long, value_name = "N")]
    pub reservations: Option<usize>,
    /// Newcomers timed in the catch-up part [default: 3; quick: 1].
    #[arg(long, value_name = "N")]
    pub catchup_trials: Option<usize>,
    /// Samples of the cache part [default: 20000; quick: 2000].
    #[arg(long, value_name = "N")]
    pub cache_samples: Option<usize>,
    /// Directory for the servers' data directories (durable writes, catch-up)
    /// [default: the system's temporary directory]. Its file system decides
    /// what an fsync costs.
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// A TrueType font for the charts' text [default: the first of
    /// /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf and a few others].
    #[arg(long, value_name = "FILE")]
    pub font: Option<PathBuf>,
    /// Run in the shared network namespace even as root (by default, as root,
    /// each part runs in a private one with only its loopback).
    #[arg(long)]
    pub no_netns: bool,
    /// `bench all`: leave out the peers (etcd, keepalived) even if installed.
    #[arg(long)]
    pub no_peers: bool,
}

impl Settings {
    fn pick<T: Clone>(&self, given: &Option<T>, full: T, quick: T) -> T {
        given.clone().unwrap_or(if self.quick { quick } else { full })
    }

    /// How long each load measurement runs.
    pub fn load_duration(&self) -> Duration {
        Duration::from_secs_f64(self.pick(&self.seconds, 3.0, 0.3).max(0.01))
    }

    /// Pairs of runs per load in the keys part.
    pub fn key_pairs(&self) -> usize {
        self.pick(&self.key_pairs, 16, 2).max(1)
    }

    /// How long each run of the keys part lasts.
    pub fn key_run(&self) -> Duration {
        Duration::from_secs_f64(self.pick(&self.key_seconds, 1.0, 0.2).max(0.01))
    }

    /// Leader kills per timing.
    pub fn kill_trials(&self) -> usize {
        self.pick(&self.trials, 20, 2)
    }

    /// Clean stops per timing.
    pub fn clean_stop_trials(&self) -> usize {
        self.pick(&self.stop_trials, 10, 1)
    }

    /// Length of the false-failover watch.
    pub fn watch(&self) -> Duration {
        Duration::from_secs_f64(self.pick(&self.watch_seconds, 60.0, 3.0).max(0.1))
    }

    /// Group sizes of the scale part.
    pub fn group_sizes(&self) -> Vec<usize> {
        self.pick(&self.sizes, vec![3, 8, 16, 32, 64], vec![3, 8])
    }

    /// Kills per group size.
    pub fn scale_kills(&self) -> usize {
        self.pick(&self.scale_trials, 3, 1)
    }

    /// Reservations for the catch-up part.
    pub fn catch_up_reservations(&self) -> usize {
        self.pick(&self.reservations, 50_000, 5_000)
    }

    /// Newcomers timed in the catch-up part.
    pub fn catch_up_trials(&self) -> usize {
        self.pick(&self.catchup_trials, 3, 1)
    }

    /// Samples of the cache part.
    pub fn cache_sample_count(&self) -> usize {
        self.pick(&self.cache_samples, 20_000, 2_000)
    }

    /// The writer's retransmission interval during failovers.
    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms.max(1))
    }

    /// The server options of the fast timings.
    pub fn fast_args(&self) -> Vec<String> {
        let args = vec![
            "--heartbeat-interval".to_string(),
            self.fast_interval.to_string(),
            "--heartbeat-timeout".to_string(),
            self.fast_timeout.to_string(),
        ];
        args
    }

    /// The fast timings with `--fast-election-timeout`, unless that is 0.
    pub fn fast_election_args(&self) -> Option<Vec<String>> {
        let ms = self.fast_election_timeout;
        (ms > 0).then(|| {
            let mut args = self.fast_args();
            args.extend(["--election-timeout".to_string(), ms.to_string()]);
            args
        })
    }

    /// Where data directories go.
    pub fn scratch_dir(&self) -> PathBuf {
        self.scratch.clone().unwrap_or_else(std::env::temp_dir)
    }
}
