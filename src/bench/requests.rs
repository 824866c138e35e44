//! Part 1, requests: three servers at default timings; reads (`check`, never
//! from a cache) and writes (`reserve`/`cancel`, each client on a room of its
//! own), from one sequential client and from N concurrent ones, first with
//! the servers in memory, then with a `--data-dir` each (fsync per write).
//!
//! The clients are the bench's own [`WireClient`]s, one socket and one
//! thread each, in a closed loop. Each mode measures the floor again just
//! before its own runs (the machine is shared: its load drifts), and its
//! ratios use that floor.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::Settings;
use super::catalog::{self, room};
use super::error::BenchError;
use super::floor::{self, FloorResult};
use super::group::Cluster;
use super::machine;
use super::procs::{Binaries, cpu_time};
use super::stats::{Summary, closed_loop};
use super::wireclient::{SlotCycler, WireClient, write_confirmed};
use crate::auth::file::write_server_keys;
use crate::auth::{ClientKey, Principal, ServerKeys};
use crate::wire::{Answer, Command};

/// How long a request may go unanswered before the run fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// The bench client's retransmission interval under load (the real client's).
const RETRY: Duration = Duration::from_millis(250);

/// Reads and writes with one storage mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// `check`, one sequential client.
    pub reads_one: Summary,
    /// `check`, N concurrent clients.
    pub reads_many: Summary,
    /// `reserve`/`cancel`, one sequential client.
    pub writes_one: Summary,
    /// `reserve`/`cancel`, N concurrent clients.
    pub writes_many: Summary,
    /// Writes refused (should be 0: every client owns its slots).
    pub refused: u64,
    /// The floor, measured just before these (with the servers running
    /// idle), for the ratios of this mode.
    pub floor: FloorResult,
}

/// Part 1's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RequestsResult {
    /// Servers without a data directory.
    pub memory: ModeResult,
    /// Servers with `--data-dir` (in the scratch directory).
    pub durable: ModeResult,
    /// Concurrent clients of the "many" runs.
    pub clients: usize,
    /// The file system the data directories were on (e.g. ext4).
    pub data_dir_filesystem: String,
}

/// The cost of keys: the same reads and writes (in memory) without keys and
/// with them, measured in pairs.
#[derive(Debug, Clone, Serialize)]
pub struct KeysResult {
    /// Per load (reads and writes, by one client and by many), what keys
    /// cost: the group without keys against the one with a server key file
    /// and a client key for every bench client.
    pub cost: Vec<KeyCost>,
    /// Writes refused in either group (should be 0: every client owns its slots).
    pub refused: u64,
    /// Concurrent clients of the "many" runs.
    pub clients: usize,
    /// A control run (`--key-control`): the "keyed" group had no keys either.
    pub control: bool,
}

/// What keys cost one load.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCost {
    /// Which load: `reads, 1 client` and so on.
    pub load: String,
    /// Without keys, the run with the median p50.
    pub plain: Summary,
    /// With keys, the run with the median p50.
    pub keyed: Summary,
    /// Keyed p50 over plain p50 in each pair, in the order they ran.
    pub p50_ratios: Vec<f64>,
    /// Their median: the figure the 10% target is about.
    pub p50_ratio: f64,
    /// The three servers' CPU time per request without keys, µs (all pairs).
    pub plain_server_cpu_us: f64,
    /// The same with keys.
    pub keyed_server_cpu_us: f64,
}

/// A group's keys for the bench: the server key file, and the clients' key.
struct BenchKeys {
    server_file: std::path::PathBuf,
    client: ClientKey,
}

impl BenchKeys {
    /// Fresh keys, the server's written into `dir`.
    fn new(dir: &Path) -> Result<BenchKeys, BenchError> {
        let mut random = [0u8; 64];
        getrandom::fill(&mut random).map_err(|e| BenchError::Unexpected(format!("no random numbers: {e}")))?;
        let keys = ServerKeys::generate(random);
        let server_file = dir.join("server.key");
        write_server_keys(&server_file, &keys).map_err(|e| BenchError::Unexpected(e.to_string()))?;
        let principal = Principal { name: "bench".into(), admin: true };
        let client = ClientKey::issue(&keys.client_masters[0], principal).map_err(BenchError::Unexpected)?;
        Ok(BenchKeys { server_file, client })
    }
}

/// A scratch directory for a part, and a catalog with a room per client in it.
fn scratch_with_catalog(settings: &Settings) -> Result<(tempfile::TempDir, std::path::PathBuf), BenchError> {
    let scratch = tempfile::Builder::new()
        .prefix("roomcast-bench-")
        .tempdir_in(settings.scratch_dir())
        .map_err(BenchError::io("creating a scratch directory"))?;
    let catalog = catalog::with_rooms(settings.clients.max(1) + 1);
    let catalog_file = catalog::write(scratch.path(), &catalog)?;
    Ok((scratch, catalog_file))
}

/// Runs the keys part: part 1's in-memory loads on a group without keys and
/// on one with keys, both running, in pairs (`--key-pairs`). A pair runs the
/// load on one group right after the other, in the order plain, keyed, then
/// keyed, plain, and so on, so that a drift in the machine's load falls on
/// both alike; the median of the pairs' ratios is the figure.
pub fn run_keys(bins: &Binaries, settings: &Settings) -> Result<KeysResult, BenchError> {
    let (scratch, catalog_file) = scratch_with_catalog(settings)?;
    let keys = BenchKeys::new(scratch.path())?;
    let second = (!settings.key_control).then_some(&keys);
    let (plain_group, keyed_group) =
        (start(bins, &catalog_file, None, None)?, start(bins, &catalog_file, None, second)?);
    let run = settings.key_run();
    let (plain, keyed) =
        (Loads::new(&plain_group, settings, None, run), Loads::new(&keyed_group, settings, second, run));
    plain.warm_up()?;
    keyed.warm_up()?;
    let mut cost = Vec::new();
    for load in Load::ALL {
        let mut pairs = Vec::new();
        for pair in 0..settings.key_pairs() {
            pairs.push(match pair % 2 {
                0 => (plain.measure(load)?, keyed.measure(load)?),
                _ => {
                    let keyed_run = keyed.measure(load)?;
                    (plain.measure(load)?, keyed_run)
                }
            });
        }
        cost.push(KeyCost::of(load.describe(settings.clients), pairs));
    }
    let refused = plain.refused() + keyed.refused();
    Ok(KeysResult { cost, refused, clients: settings.clients, control: settings.key_control })
}

impl KeyCost {
    fn of(load: String, pairs: Vec<(Measured, Measured)>) -> KeyCost {
        let p50_ratios: Vec<f64> = pairs.iter().map(|(p, k)| k.summary.p50_us / p.summary.p50_us).collect();
        let p50_ratio = median_of(&mut p50_ratios.clone());
        let (plain, keyed): (Vec<Measured>, Vec<Measured>) = pairs.into_iter().unzip();
        KeyCost {
            load,
            p50_ratios,
            p50_ratio,
            plain_server_cpu_us: server_cpu_per_request(&plain),
            keyed_server_cpu_us: server_cpu_per_request(&keyed),
            plain: median(plain.into_iter().map(|m| m.summary).collect()),
            keyed: median(keyed.into_iter().map(|m| m.summary).collect()),
        }
    }
}

/// The servers' CPU time per request over `runs`, µs.
fn server_cpu_per_request(runs: &[Measured]) -> f64 {
    let requests: usize = runs.iter().map(|m| m.summary.count).sum();
    let cpu: Duration = runs.iter().map(|m| m.server_cpu).sum();
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

/// The median of `values` (the mean of the middle two for an even count).
fn median_of(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The summary whose p50 is the median of `summaries` (at least one; the
/// upper of the middle two for an even count: it is one real run).
fn median(mut summaries: Vec<Summary>) -> Summary {
    summaries.sort_by(|a, b| a.p50_us.total_cmp(&b.p50_us));
    let middle = summaries.len() / 2;
    summaries.swap_remove(middle)
}

/// Runs part 1.
pub fn run(bins: &Binaries, settings: &Settings) -> Result<RequestsResult, BenchError> {
    let (scratch, catalog_file) = scratch_with_catalog(settings)?;
    let memory = measure_mode(bins, settings, &catalog_file, None, None)?;
    let durable = measure_mode(bins, settings, &catalog_file, Some(scratch.path()), None)?;
    Ok(RequestsResult {
        memory,
        durable,
        clients: settings.clients,
        data_dir_filesystem: machine::filesystem_of(scratch.path()),
    })
}

/// Starts servers 1, 2 and 3 (with data directories under `data`, and
/// `keys`, if given) and runs the four measurements against them.
fn measure_mode(
    bins: &Binaries,
    settings: &Settings,
    catalog_file: &Path,
    data: Option<&Path>,
    keys: Option<&BenchKeys>,
) -> Result<ModeResult, BenchError> {
    let cluster = start(bins, catalog_file, data, keys)?;
    let floor = floor::measure(bins, settings.clients, settings.load_duration())?;
    let loads = Loads::new(&cluster, settings, keys, settings.load_duration());
    loads.warm_up()?;
    let (reads_one, reads_many, writes_one, writes_many) = loads.all()?;
    Ok(ModeResult { reads_one, reads_many, writes_one, writes_many, refused: loads.refused(), floor })
}

/// Servers 1, 2 and 3 with the part's catalog (and data directories under
/// `data`, and `keys`, if given), once they agree.
fn start(
    bins: &Binaries,
    catalog_file: &Path,
    data: Option<&Path>,
    keys: Option<&BenchKeys>,
) -> Result<Cluster, BenchError> {
    let mut options = vec!["--catalog".to_string(), catalog_file.display().to_string()];
    if let Some(keys) = keys {
        options.extend(["--key-file".to_string(), keys.server_file.display().to_string()]);
    }
    let mut cluster = Cluster::new(bins, options)?;
    cluster.start_all(&[1, 2, 3], |id| match data {
        Some(dir) => vec!["--data-dir".into(), dir.join(format!("data-{id}")).display().to_string()],
        None => Vec::new(),
    })?;
    Ok(cluster)
}

/// The four loads against one cluster: reads and writes, one client and many.
struct Loads<'a> {
    group: &'a crate::net::GroupAddr,
    clients: usize,
    duration: Duration,
    client_key: Option<ClientKey>,
    catalog: crate::rooms::Catalog,
    refused: AtomicU64,
    /// The servers' PIDs, for their CPU time.
    pids: Vec<u32>,
}

/// One of the four loads.
#[derive(Debug, Clone, Copy)]
enum Load {
    ReadsOne,
    ReadsMany,
    WritesOne,
    WritesMany,
}

impl Load {
    const ALL: [Load; 4] = [Load::ReadsOne, Load::ReadsMany, Load::WritesOne, Load::WritesMany];

    fn describe(self, clients: usize) -> String {
        match self {
            Load::ReadsOne => "read (check), 1 client".into(),
            Load::ReadsMany => format!("read (check), {clients} clients"),
            Load::WritesOne => "write (reserve/cancel), 1 client".into(),
            Load::WritesMany => format!("write (reserve/cancel), {clients} clients"),
        }
    }
}

/// A load's figures, and the CPU time its servers spent meanwhile.
struct Measured {
    summary: Summary,
    server_cpu: Duration,
}

impl<'a> Loads<'a> {
    fn new(cluster: &'a Cluster, settings: &Settings, keys: Option<&BenchKeys>, duration: Duration) -> Loads<'a> {
        Loads {
            group: &cluster.group.addr,
            clients: settings.clients,
            duration,
            client_key: keys.map(|k| k.client.clone()),
            catalog: catalog::with_rooms(settings.clients.max(1) + 1),
            refused: AtomicU64::new(0),
            pids: cluster.servers().iter().map(|s| s.pid()).collect(),
        }
    }

    /// Runs `load` once, and measures the servers' CPU time meanwhile.
    fn measure(&self, load: Load) -> Result<Measured, BenchError> {
        let before = self.server_cpu()?;
        let summary = match load {
            Load::ReadsOne => self.reads(1, self.duration)?,
            Load::ReadsMany => self.reads(self.clients, self.duration)?,
            Load::WritesOne => self.writes(1, self.duration)?,
            Load::WritesMany => self.writes(self.clients, self.duration)?,
        };
        Ok(Measured { summary, server_cpu: self.server_cpu()?.saturating_sub(before) })
    }

    fn server_cpu(&self) -> Result<Duration, BenchError> {
        self.pids.iter().map(|&pid| cpu_time(pid)).sum()
    }

    /// A `check` load of `clients` for `duration`.
    fn reads(&self, clients: usize, duration: Duration) -> Result<Summary, BenchError> {
        let reader = |i: usize| {
            let mut client = WireClient::open_keyed(self.group, RETRY, self.client_key.clone())?;
            let name = room(i);
            Ok(move || read(&mut client, &name))
        };
        Ok(closed_loop(clients, duration, reader)?.summary())
    }

    /// A `reserve`/`cancel` load of `clients` for `duration`.
    fn writes(&self, clients: usize, duration: Duration) -> Result<Summary, BenchError> {
        let writer = |i: usize| {
            let mut client = WireClient::open_keyed(self.group, RETRY, self.client_key.clone())?;
            let mut cycler = SlotCycler::new(catalog::slots_of(&self.catalog, &room(i)));
            let refused = &self.refused;
            Ok(move || write(&mut client, &mut cycler, refused))
        };
        Ok(closed_loop(clients, duration, writer)?.summary())
    }

    /// A short run of each kind. A new leader's first write waits for its
    /// members to report (hundreds of ms): that belongs to failover, not to
    /// steady writes.
    fn warm_up(&self) -> Result<(), BenchError> {
        self.reads(1, self.duration / 10)?;
        self.writes(1, self.duration / 10).map(drop)
    }

    /// Reads by one client and by many, then writes by one and by many.
    fn all(&self) -> Result<(Summary, Summary, Summary, Summary), BenchError> {
        let [reads_one, reads_many, writes_one, writes_many] = Load::ALL.map(|load| self.measure(load));
        Ok((reads_one?.summary, reads_many?.summary, writes_one?.summary, writes_many?.summary))
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One `check` of `name`, not from a cache; its latency.
fn read(client: &mut WireClient, name: &str) -> Result<Duration, BenchError> {
    let answered = client.call(Command::Check { room: name.to_string(), cached: None }, PATIENCE)?;
    match answered.reply.answer {
        Answer::Reservations { .. } => Ok(answered.latency()),
        other => Err(BenchError::Unexpected(format!("check {name} was answered {other:?}"))),
    }
}

/// The cycler's next write; its latency.
fn write(client: &mut WireClient, cycler: &mut SlotCycler, refused: &AtomicU64) -> Result<Duration, BenchError> {
    let answered = client.call(cycler.next_command(), PATIENCE)?;
    if !write_confirmed(&answered.reply.answer)? {
        refused.fetch_add(1, Ordering::Relaxed);
    }
    Ok(answered.latency())
}
