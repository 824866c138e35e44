//! The benchmark suite (`bench`, issue 14): figures anyone can reproduce,
//! each beside the physical floor measured in the same run.
//!
//! It runs the real `server` programs found beside the bench's executable
//! (`target/release/server`), always with `--interface 127.0.0.1 --ttl 0`,
//! and, as root, each part in a private network namespace of its own
//! ([`netns`]). Clients are the bench's own: it speaks the wire protocol
//! directly ([`wireclient`]), or drives the library client core ([`cache`]).
//! It observes the servers through their log lines, stamped as they arrive
//! ([`procs`]), and their `status` answers.
//!
//! Parts ([`Part`]): the [`floor`], [`requests`], [`failover`],
//! [`false_failovers`], [`scale`], [`catch_up`], [`cache`], and the [`peers`]
//! (etcd and keepalived, where installed). [`run`] runs one or all of them and
//! returns a [`Report`]: printed as a table ([`report`]), written as JSON, and
//! drawn as PNG charts ([`charts`]).
//!
//! Benchmarks print figures; nothing here asserts a timing.

// The benchmark drives real processes and sockets and times them (clippy.toml keeps these out of the core).
#![allow(clippy::disallowed_methods)]

pub mod cache;
pub mod catalog;
pub mod catch_up;
pub mod charts;
pub mod error;
pub mod failover;
pub mod false_failovers;
pub mod floor;
pub mod group;
pub mod machine;
pub mod netns;
pub mod peers;
pub mod procs;
pub mod report;
pub mod requests;
pub mod scale;
pub mod settings;
pub mod stats;
pub mod timeline;
pub mod wireclient;
pub mod writer;

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use error::BenchError;
pub use settings::Settings;

use machine::Machine;
use netns::{Isolation, run_isolated};
use procs::Binaries;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// Every part below, the floor first.
    All,
    /// The bare multicast request → unicast reply ping-pong.
    Floor,
    /// Reads and writes, 1 and N clients, in memory and durable.
    Requests,
    /// Kill -9 and clean stop of the leader, and a higher newcomer.
    Failover,
    /// Role changes at fast timings under CPU load.
    FalseFailovers,
    /// Groups of 3 to 64 servers.
    Scale,
    /// A newcomer copying a large state; resident memory.
    CatchUp,
    /// The client's cache hit against a round trip.
    Cache,
    /// Reads and writes without keys and with them, back to back.
    Keys,
    /// etcd and keepalived, where installed.
    Peers,
}

impl Part {
    /// The parts `self` stands for, in running order. Parts whose figures
    /// are ratios to the floor bring the floor along.
    fn expand(self, settings: &Settings) -> Vec<Part> {
        match self {
            Part::All => {
                let mut parts = vec![
                    Part::Floor,
                    Part::Requests,
                    Part::Keys,
                    Part::Cache,
                    Part::Failover,
                    Part::FalseFailovers,
                    Part::Scale,
                    Part::CatchUp,
                ];
                if !settings.no_peers {
                    parts.push(Part::Peers);
                }
                parts
            }
            Part::Requests | Part::Keys | Part::Cache | Part::Scale | Part::Peers => vec![Part::Floor, self],
            other => vec![other],
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Part::All => "all",
            Part::Floor => "floor",
            Part::Requests => "requests",
            Part::Failover => "failover",
            Part::FalseFailovers => "false-failovers",
            Part::Scale => "scale",
            Part::CatchUp => "catch-up",
            Part::Cache => "cache",
            Part::Keys => "keys",
            Part::Peers => "peers",
        }
    }
}

/// A part that failed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PartFailure {
    /// The part.
    pub part: Part,
    /// The error.
    pub error: String,
}

/// Everything one run measured (the JSON file holds exactly this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// Seconds since the Unix epoch at the start.
    pub started_unix_s: u64,
    /// Wall time of the whole run, s.
    pub duration_s: f64,
    /// Load averages (1, 5, 15 min) when the run started, and when it ended.
    pub load_average: (String, String),
    /// Where each part ran (private namespace or not).
    pub isolation: Vec<(Part, Isolation)>,
    /// Part results; absent when not run (or failed).
    pub floor: Option<floor::FloorResult>,
    /// Part 1.
    pub requests: Option<requests::RequestsResult>,
    /// Part 2.
    pub failover: Option<failover::FailoverResult>,
    /// Part 3.
    pub false_failovers: Option<false_failovers::FalseFailoverResult>,
    /// Part 4.
    pub scale: Option<scale::ScaleResult>,
    /// Part 5.
    pub catch_up: Option<catch_up::CatchUpResult>,
    /// Part 6.
    pub cache: Option<cache::CacheResult>,
    /// The cost of keys.
    pub keys: Option<requests::KeysResult>,
    /// etcd and keepalived.
    pub peers: Option<peers::PeersResult>,
    /// Parts that failed.
    pub failures: Vec<PartFailure>,
    /// Warnings (stale binaries, charts not drawn, ...).
    pub warnings: Vec<String>,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// Runs `part` (or all) and writes the results under `settings.out`; prints
/// progress on stderr. Fails only when nothing could run; failed parts are
/// listed in [`Report::failures`].
pub fn run(part: Part, settings: &Settings) -> Result<Report, BenchError> {
    let (bins, warnings) = Binaries::locate()?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    let started = Instant::now();
    let mut report = Report {
        machine: Machine::describe(),
        quick: settings.quick,
        started_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        duration_s: 0.0,
        load_average: (machine::load_average(), String::new()),
        isolation: Vec::new(),
        floor: None,
        requests: None,
        failover: None,
        false_failovers: None,
        scale: None,
        catch_up: None,
        cache: None,
        keys: None,
        peers: None,
        failures: Vec::new(),
        warnings,
        files: Vec::new(),
    };
    for part in part.expand(settings) {
        let part_started = Instant::now();
        eprintln!("== bench {} ...", part.name());
        let outcome = run_isolated(!settings.no_netns, |isolation| {
            run_part(part, &bins, settings, isolation, &mut report).map(|()| isolation.clone())
        });
        match outcome {
            Ok(isolation) => {
                eprintln!("   done in {:.1} s ({})", part_started.elapsed().as_secs_f64(), isolation.describe());
                report.isolation.push((part, isolation));
            }
            Err(error) => {
                eprintln!("   FAILED after {:.1} s: {error}", part_started.elapsed().as_secs_f64());
                report.failures.push(PartFailure { part, error: error.to_string() });
            }
        }
    }
    report.duration_s = started.elapsed().as_secs_f64();
    report.load_average.1 = machine::load_average();
    report::write_outputs(&mut report, settings)?;
    Ok(report)
}

/// Runs one part and stores its result in `report`.
fn run_part(
    part: Part,
    bins: &Binaries,
    settings: &Settings,
    isolation: &Isolation,
    report: &mut Report,
) -> Result<(), BenchError> {
    match part {
        Part::All => return Err(BenchError::Usage("`all` is not a part of its own".into())),
        Part::Floor => report.floor = Some(floor::run(bins, settings)?),
        Part::Requests => report.requests = Some(requests::run(bins, settings)?),
        Part::Failover => report.failover = Some(failover::run(bins, settings)?),
        Part::FalseFailovers => report.false_failovers = Some(false_failovers::run(bins, settings)?),
        Part::Scale => report.scale = Some(scale::run(bins, settings, isolation)?),
        Part::CatchUp => report.catch_up = Some(catch_up::run(bins, settings)?),
        Part::Cache => report.cache = Some(cache::run(bins, settings)?),
        Part::Keys => report.keys = Some(requests::run_keys(bins, settings)?),
        Part::Peers => report.peers = Some(peers::run(settings, isolation)?),
    }
    Ok(())
}
