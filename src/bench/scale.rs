//! Part 4, scale: groups of `--sizes` servers (IDs 1..=N) at the default
//! timings. For each size:
//!
//! * the leader's heartbeat load: datagrams to and from its unicast socket
//!   per second while no client writes (followers' heartbeats in; its
//!   answers and its `LeaderAlive` multicast out), counted by nftables in
//!   the part's private network namespace (not measured without one);
//! * write latency from one sequential client;
//! * `--scale-trials` kills of the leader: the time until every remaining
//!   server's log named the new leader, and until the first write was
//!   confirmed. The old leader then restarts and takes over again.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Settings;
use super::catalog;
use super::error::BenchError;
use super::group::{Cluster, PATIENCE};
use super::netns::{Isolation, PortCounters};
use super::procs::{Binaries, tool_available};
use super::stats::{Summary, closed_loop};
use super::timeline::ms_since;
use super::wireclient::{SlotCycler, WireClient, write_confirmed};
use super::writer::Writer;
use crate::rooms::Catalog;
use crate::wire::StatusRole;

/// One group size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    /// Servers in the group.
    pub servers: usize,
    /// Datagrams per second the leader's unicast socket received while idle.
    pub leader_datagrams_in_per_s: Option<f64>,
    /// Datagrams per second it sent while idle.
    pub leader_datagrams_out_per_s: Option<f64>,
    /// Why the heartbeat load was not measured, if it was not.
    pub load_not_measured: Option<String>,
    /// Sequential writes.
    pub writes: Summary,
    /// Kill to every server naming the new leader, each trial (ms).
    pub agreed_ms: Vec<f64>,
    /// Kill to the first confirmed write, each trial (ms).
    pub first_write_ms: Vec<f64>,
    /// Start of the whole group until all followed the highest (ms).
    pub start_ms: f64,
}

/// Part 4's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// One entry per size.
    pub sizes: Vec<SizeResult>,
}

/// Runs part 4.
pub fn run(bins: &Binaries, settings: &Settings, isolation: &Isolation) -> Result<ScaleResult, BenchError> {
    let sizes = settings.group_sizes();
    if sizes.iter().any(|n| *n < 2) {
        return Err(BenchError::Usage("--sizes: every group needs at least 2 servers".into()));
    }
    let sizes = sizes.iter().map(|&n| run_size(bins, settings, isolation, n)).collect::<Result<_, _>>()?;
    Ok(ScaleResult { sizes })
}

fn run_size(bins: &Binaries, settings: &Settings, isolation: &Isolation, n: usize) -> Result<SizeResult, BenchError> {
    let mut cluster = Cluster::new(bins, Vec::new())?;
    let ids: Vec<u64> = (1..=n as u64).collect();
    let started = Instant::now();
    let top = cluster.start_all(&ids, |_| Vec::new())?;
    let start_ms = ms_since(started, Instant::now());
    let (load_in, load_out, not_measured) = match leader_load(&mut cluster, isolation, settings) {
        Ok((rx, tx)) => (Some(rx), Some(tx), None),
        Err(why) => (None, None, Some(why.to_string())),
    };
    let group = cluster.group.addr;
    let writes = closed_loop(1, settings.load_duration(), |_| {
        let mut client = WireClient::open(&group, Duration::from_millis(250))?;
        let mut cycler = SlotCycler::new(catalog::slots_of(&Catalog::default(), "ME4494"));
        Ok(move || {
            let answered = client.call(cycler.next_command(), Duration::from_secs(10))?;
            write_confirmed(&answered.reply.answer)?;
            Ok(answered.latency())
        })
    })?
    .summary();
    let writer = Writer::start(&group, catalog::slots_of(&Catalog::default(), "SA318"), settings.retry())?;
    let mut agreed_ms = Vec::new();
    let mut first_write_ms = Vec::new();
    for _ in 0..settings.scale_kills() {
        writer.clear();
        let mut old = cluster.take(top).ok_or_else(|| BenchError::Unexpected(format!("server {top} is gone")))?;
        let zero = old.kill();
        let agreed = cluster.wait_agreement(top - 1, PATIENCE)?;
        let first = writer.wait(PATIENCE, "a write after the leader's kill", |c| c.at > zero && c.server != top)?;
        agreed_ms.push(ms_since(zero, agreed));
        first_write_ms.push(ms_since(zero, first.at));
        drop(old);
        cluster.spawn(top, &[])?;
        cluster.wait_agreement(top, PATIENCE)?;
    }
    Ok(SizeResult {
        servers: n,
        leader_datagrams_in_per_s: load_in,
        leader_datagrams_out_per_s: load_out,
        load_not_measured: not_measured,
        writes,
        agreed_ms,
        first_write_ms,
        start_ms,
    })
}

/// Datagrams per second in and out of the leader's unicast socket, idle.
fn leader_load(cluster: &mut Cluster, isolation: &Isolation, settings: &Settings) -> Result<(f64, f64), BenchError> {
    if !isolation.is_private() {
        return Err(BenchError::Usage(format!(
            "needs a private network namespace; the part ran in {}",
            isolation.describe()
        )));
    }
    if !tool_available("nft", "--version") {
        return Err(BenchError::Usage("needs the `nft` command (nftables)".into()));
    }
    let mut client = WireClient::open(&cluster.group.addr, Duration::from_millis(100))?;
    let statuses = client.statuses(Duration::from_millis(500))?;
    let (_, leader_addr, _) = statuses
        .iter()
        .find(|(_, _, status)| status.role == StatusRole::Leader)
        .ok_or_else(|| BenchError::Unexpected("no server said it leads".into()))?;
    let counters = PortCounters::install(isolation, leader_addr.port())?;
    let window = if settings.quick { Duration::from_secs(1) } else { Duration::from_secs(3) };
    let before = counters.read()?;
    let from = Instant::now();
    cluster.watch(window)?;
    let after = counters.read()?;
    let seconds = from.elapsed().as_secs_f64();
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
    Ok((rate(after.received, before.received), rate(after.sent, before.sent)))
}
