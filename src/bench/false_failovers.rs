//! Part 3, false failovers: three servers at the fast timings, left alone for
//! `--watch-seconds` while `--busy` busy-loop processes compete for the CPUs.
//! Every role change in that time is a false failover: nothing failed.

use serde::Serialize;

use super::Settings;
use super::error::BenchError;
use super::group::Cluster;
use super::procs::{Binaries, BusyLoops};
use super::timeline::{RoleEvent, bench_event, events_of, role_changes};

/// Part 3's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FalseFailoverResult {
    /// Length of the watch, s.
    pub seconds: f64,
    /// Busy-loop processes running meanwhile.
    pub busy_loops: usize,
    /// The timing options of the servers.
    pub server_args: Vec<String>,
    /// Role changes during the watch: a server that led or followed became
    /// a candidate, a follower became leader, and so on.
    pub role_changes: usize,
    /// `Heartbeat to group leader N failed` lines during the watch.
    pub heartbeat_failures: usize,
    /// Every event, ms after the watch began.
    pub events: Vec<RoleEvent>,
}

/// Runs part 3.
pub fn run(bins: &Binaries, settings: &Settings) -> Result<FalseFailoverResult, BenchError> {
    let args = settings.fast_args();
    let mut cluster = Cluster::new(bins, args.clone())?;
    cluster.start_all(&[1, 2, 3], |_| Vec::new())?;
    let watch = settings.watch();
    let marks = cluster.marks();
    let initial: Vec<(u64, u64)> =
        cluster.servers().iter().filter_map(|s| s.last_leader().map(|(leader, _)| (s.id(), leader))).collect();
    let _busy = BusyLoops::start(bins, settings.busy, watch.as_secs_f64() + 5.0)?;
    let zero = std::time::Instant::now();
    cluster.watch(watch)?;
    let mut events = Vec::new();
    for (server, (_, mark)) in cluster.servers().iter().zip(&marks) {
        events.extend(events_of(server.id(), &server.lines_since(*mark), zero));
    }
    events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    // Every server follows or leads when the watch begins: any role line
    // is a change, except one repeating the role the server already had.
    let mut seeded: Vec<RoleEvent> = initial
        .iter()
        .map(|&(id, leader)| bench_event(id, 0.0, if id == leader { "leader" } else { "follower" }))
        .collect();
    seeded.extend(events.iter().cloned());
    let role_changes = role_changes(&seeded, false);
    let heartbeat_failures = events.iter().filter(|e| e.what == "detected").count();
    Ok(FalseFailoverResult {
        seconds: watch.as_secs_f64(),
        busy_loops: settings.busy,
        server_args: args,
        role_changes,
        heartbeat_failures,
        events,
    })
}
