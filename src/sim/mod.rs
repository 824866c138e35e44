//! A deterministic simulation of a roomcast group: real [`Node`] cores and real
//! [`Client`] cores on a simulated network and clock, with faults drawn from
//! one seed. The same seed always produces the same run, so a failure found by
//! a random schedule replays exactly.
//!
//! Datagrams are encoded and decoded with the real wire format. Delivery is a
//! heap ordered by (time, sequence number); loss, duplication and delay come
//! from a seeded xorshift generator. The [`check::Checker`] sees every applied
//! entry, every leadership and every answer a client gets.

pub mod adversary;
pub mod check;
pub mod schedule;

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::auth::frame::Boot;
use crate::auth::{ClientKey, Principal, ServerKeys};
use crate::client::{Client, ClientConfig, ClientEvent, Submitted};
use crate::node::{Destination, Event, LogChanges, Node, NodeConfig, ReplicatedLog, Role, Timing, xorshift};
use crate::rooms::{Applied, Catalog};
use crate::storage::Storage;
use crate::wire::{self, Answer, Command, LogPosition, Message, Reply, Request};
use adversary::{Adversary, Attack, Injection};
use check::Checker;

/// Network behaviour of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability (0..1) that a datagram is lost.
    pub loss: f64,
    /// Probability (0..1) that a datagram is delivered twice.
    pub duplicate: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay (reordering happens when delays differ).
    pub max_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_micros(200),
            max_delay: Duration::from_micros(600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Up,
    Down,
    /// Stopped (SIGSTOP): datagrams wait in its socket buffer until it resumes.
    Paused,
}

struct SimServer {
    node: Node,
    explicit_id: bool,
    liveness: Liveness,
    backlog: Vec<Delivery>,
    /// Datagrams it had queued but not sent when it was paused (the process
    /// stopped before its `sendto`): they leave first when it resumes.
    held: Vec<(Destination, Vec<u8>)>,
    /// Its data directory, written by the real storage code at every flush
    /// ([`FLUSH_ORDER`]) and read back by it when it restarts with its data
    /// (`None` only while it restarts).
    disk: Option<DataDir>,
    /// Crashed by a torn flush: it comes back from its data directory.
    torn: bool,
    /// The last log position seen at a flush: a leader's log grew since means it appended.
    last_flushed: LogPosition,
    /// When it was paused, and whether it led then.
    paused_at: Option<(Instant, bool)>,
    /// When it last resumed.
    resumed_at: Option<Instant>,
    /// Paused by a trap: when it resumes by itself.
    wake_at: Option<Instant>,
    /// It led when its last flush ended.
    led: bool,
    /// It led, stood still past the heartbeat timeout and resumed: until it
    /// leads again (a new term) it must answer no client.
    deposed: bool,
}

/// A server's data directory in a scratch directory (on tmpfs where there is
/// one: fsync is then cheap), with the [`Storage`] that writes it.
struct DataDir {
    /// Removed when dropped.
    dir: tempfile::TempDir,
    storage: Storage,
    /// The last position and commit point it stored, for the durability
    /// invariant's message.
    stored: (LogPosition, u64),
}

impl DataDir {
    /// A new, empty data directory.
    fn empty(catalog: &Catalog) -> DataDir {
        let base = std::path::Path::new("/dev/shm");
        let scratch = if base.is_dir() { tempfile::tempdir_in(base) } else { tempfile::tempdir() };
        let dir = scratch.unwrap_or_else(|e| panic!("a scratch directory for a simulated server: {e}"));
        DataDir::open(dir, catalog).0
    }

    /// Reads the directory back as a restarted server does; the crashed
    /// process's files are closed first.
    fn reopen(self, catalog: &Catalog) -> (DataDir, ReplicatedLog) {
        let DataDir { dir, storage, .. } = self;
        drop(storage);
        DataDir::open(dir, catalog)
    }

    /// Opens `dir` with the storage code, as a restarted server does.
    fn open(dir: tempfile::TempDir, catalog: &Catalog) -> (DataDir, ReplicatedLog) {
        let (storage, log) =
            Storage::open(dir.path(), catalog).unwrap_or_else(|e| panic!("SIM: the storage code refused: {e}"));
        let stored = (log.last(), log.commit());
        (DataDir { dir, storage, stored }, log)
    }

    /// Stores `changes` of `log`, as the driver does before it sends.
    fn save(&mut self, log: &ReplicatedLog, changes: LogChanges) {
        self.storage.save(log, changes).unwrap_or_else(|e| panic!("SIM: the storage code failed: {e}"));
        self.stored = (log.last(), log.commit());
    }
}

impl SimServer {
    fn new(node: Node, explicit_id: bool, disk: DataDir) -> Self {
        let disk = Some(disk);
        let last_flushed = node.log().last();
        SimServer {
            node,
            explicit_id,
            liveness: Liveness::Up,
            backlog: Vec::new(),
            held: Vec::new(),
            disk,
            torn: false,
            last_flushed,
            paused_at: None,
            resumed_at: None,
            wake_at: None,
            led: false,
            deposed: false,
        }
    }
}

/// The I/O shell's two steps when it flushes what a node queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushStep {
    /// Write the log's changes to the data directory (and fsync).
    Store,
    /// Send the queued datagrams.
    Send,
}

/// The order in which the shell takes them, as `driver.rs` does: storing
/// first is what makes an acknowledgement durable. A torn flush crashes a
/// server between the two.
pub const FLUSH_ORDER: [FlushStep; 2] = [FlushStep::Store, FlushStep::Send];

/// Faults aimed at the moments that matter, armed by the schedule and sprung
/// by the simulation when the moment comes (each at most once per arming).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traps {
    /// Crash the leader right after it sends a client the answer to a write.
    pub crash_after_answer: bool,
    /// Lose what the leader multicasts when it next appends (its `Append`),
    /// to every follower.
    pub lose_append: bool,
    /// Pause the leader right after it appends, before it commits and before
    /// its datagrams leave (they go out when it resumes).
    pub pause_after_append: bool,
    /// Crash this server between the two steps of its next flush that
    /// changes its log and sends something ([`FLUSH_ORDER`]).
    pub torn_flush: Option<usize>,
}

/// How often each trap sprang.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sprung {
    /// Leaders crashed right after answering a write.
    pub crashed_after_answer: u32,
    /// `Append`s lost to every follower.
    pub appends_lost: u32,
    /// Leaders paused between appending and committing.
    pub paused_after_append: u32,
    /// Servers crashed between storing and sending.
    pub torn_flushes: u32,
}

struct SimClient {
    core: Client,
    addr: SocketAddrV4,
    id: u64,
    /// The write in flight: (request number, is it a write).
    in_flight: Option<(u64, bool)>,
    next_at: Instant,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    to: SocketAddrV4,
    from: SocketAddrV4,
    bytes: Vec<u8>,
    /// Sent by the adversary: what it is, for the checks.
    attack: Option<Attack>,
    /// Sent by a server that stood still as leader past the heartbeat
    /// timeout and has not led anew since: it must not answer a client.
    deposed: bool,
}

/// A reply delivered to an address no simulated client owns (raw requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The address it was sent to.
    pub client: SocketAddrV4,
    /// Who sent it.
    pub from: SocketAddrV4,
    /// The reply.
    pub reply: Reply,
}

/// Counters that show what a run exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent (before loss).
    pub datagrams: u64,
    /// Client requests answered.
    pub answered: u64,
    /// Client requests that timed out.
    pub timed_out: u64,
    /// Replies from a second server to one request.
    pub duplicate_replies: u64,
    /// Simulation steps taken.
    pub steps: u64,
    /// Snapshots installed.
    pub snapshots: u64,
}

/// Steps one run may take: a healthy 60-second run needs well under a tenth of
/// this, so more means a message storm or a livelock.
const STEP_BUDGET: u64 = 3_000_000;

thread_local! {
    static TRACE_CONTEXT: Cell<(Duration, u64)> = const { Cell::new((Duration::ZERO, 0)) };
}

/// The simulated time and the ID of the server whose code runs now, for
/// prefixing log lines when a seed is traced (`tests/sim.rs`, `SIM_TRACE`).
pub fn trace_context() -> (Duration, u64) {
    TRACE_CONTEXT.with(Cell::get)
}

/// The simulated group.
pub struct Sim {
    start: Instant,
    now: Instant,
    rng: u64,
    seq: u64,
    /// The network's current behaviour; change it at any time.
    pub faults: Faults,
    /// `--min-replicas` of servers added from now on.
    pub min_replicas: usize,
    /// Servers cut off from the others (a partition); clients reach everyone.
    isolated: BTreeSet<SocketAddrV4>,
    servers: Vec<SimServer>,
    clients: Vec<SimClient>,
    clients_stopped: bool,
    in_flight: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    /// Replies delivered to addresses of raw [`Sim::request`]s, in order.
    pub replies: Vec<Received>,
    /// Fatal events, by server index.
    pub fatal: Vec<(usize, Event)>,
    /// The invariants, checked as the run goes.
    pub checker: Checker,
    /// What the run exercised.
    pub stats: Stats,
    /// The group's keys, when it runs with them.
    keys: Option<ServerKeys>,
    /// A hostile host on the network (only with keys).
    adversary: Option<Adversary>,
    /// Faults waiting for their moment.
    pub traps: Traps,
    /// Traps sprung so far.
    pub sprung: Sprung,
}

impl Sim {
    /// An empty simulation; `seed` fixes every random choice.
    pub fn new(seed: u64, faults: Faults) -> Self {
        // Simulated time needs some instant to count from; nothing reads the clock after.
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            seq: 0,
            faults,
            min_replicas: 1,
            isolated: BTreeSet::new(),
            servers: Vec::new(),
            clients: Vec::new(),
            clients_stopped: false,
            in_flight: BinaryHeap::new(),
            replies: Vec::new(),
            fatal: Vec::new(),
            checker: Checker::default(),
            stats: Stats::default(),
            keys: None,
            adversary: None,
            traps: Traps::default(),
            sprung: Sprung::default(),
        }
    }

    /// Gives the group keys: servers and clients added from now on use them.
    pub fn with_keys(&mut self) -> &ServerKeys {
        let keys = ServerKeys::generate(std::array::from_fn(|_| self.random() as u8));
        self.keys.insert(keys)
    }

    /// Gives the group keys, and puts a hostile host on the network that
    /// replays, mutates and forges datagrams (see [`adversary`]).
    pub fn with_keys_and_adversary(&mut self) {
        let seed = self.random();
        let now = self.now;
        let adversary = Adversary::new(seed, self.with_keys(), now);
        self.adversary = Some(adversary);
    }

    /// Delivers `bytes` to every server as a datagram from `from` that must
    /// change nothing: the run fails if it changes a server's role, term,
    /// log or table (as for the adversary's forgeries).
    pub fn inject_forged(&mut self, from: SocketAddrV4, bytes: Vec<u8>) {
        let targets: Vec<SocketAddrV4> = self.servers.iter().map(|s| s.node.id().addr).collect();
        for to in targets {
            self.seq += 1;
            let delivery = Delivery { to, from, bytes: bytes.clone(), attack: Some(Attack::Forged), deposed: false };
            self.in_flight.push(Reverse((self.now + self.faults.min_delay, self.seq, delivery)));
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Adds and starts a server with this ID; returns its index.
    pub fn add_server(&mut self, id: u64, explicit_id: bool) -> usize {
        let index = self.servers.len();
        let disk = DataDir::empty(&Catalog::default());
        let node = self.new_node(index, id, explicit_id, None);
        self.servers.push(SimServer::new(node, explicit_id, disk));
        self.flush(index);
        index
    }

    fn new_node(&mut self, index: usize, id: u64, explicit_id: bool, disk: Option<ReplicatedLog>) -> Node {
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, index as u8 + 1), 5000);
        let config = NodeConfig {
            id,
            explicit_id,
            addr,
            timing: Timing::default(),
            catalog: Catalog::default(),
            seed: self.random(),
            min_replicas: self.min_replicas,
            keys: self.keys.clone(),
            boot: Boot::default(),
        };
        // Derived from the node's seed rather than drawn: the run's random
        // sequence stays what it was before boots existed.
        let config = NodeConfig { boot: sim_boot(config.seed), ..config };
        let mut node = match disk {
            Some(log) => Node::recovered(config, self.now, log),
            None => Node::new(config, self.now),
        };
        TRACE_CONTEXT.with(|c| c.set((self.now - self.start, id)));
        node.start(self.now);
        node
    }

    /// Stops a server at once, as SIGKILL would: it sends nothing more.
    pub fn crash(&mut self, index: usize) {
        self.running(index);
        log::info!("SIM: crashed");
        let server = &mut self.servers[index];
        server.liveness = Liveness::Down;
        server.backlog.clear();
        server.held.clear();
        server.deposed = false;
    }

    /// Stops a server as SIGTERM does: it leaves the group (hands over, or
    /// tells its leader), sends that, and is gone.
    pub fn stop_cleanly(&mut self, index: usize) {
        let now = self.now;
        self.running(index).leave(now);
        self.flush(index);
        self.crash(index);
    }

    /// Starts a crashed server again, with the same ID and address but none of
    /// its state (no data directory).
    pub fn restart(&mut self, index: usize) {
        self.restart_from(index, false);
    }

    /// Starts a crashed server again from its data directory, through the
    /// real recovery path: `Storage::open` reads back what every flush stored.
    pub fn restart_with_disk(&mut self, index: usize) {
        self.restart_from(index, true);
    }

    /// True when a trap paused the server at `index`: it resumes by itself.
    pub fn wakes_itself(&self, index: usize) -> bool {
        self.servers[index].wake_at.is_some()
    }

    /// True when a torn flush crashed the server at `index`: it must come back
    /// from its data directory.
    pub fn torn(&self, index: usize) -> bool {
        self.servers[index].torn
    }

    /// Starts the crashed server at `index` again: `with_data`, from what the
    /// storage code reads back from its data directory, else from an empty one.
    fn restart_from(&mut self, index: usize, with_data: bool) {
        self.running(index); // storage's log lines name this server
        let (id, explicit_id) = (self.servers[index].node.id().id, self.servers[index].explicit_id);
        let catalog = Catalog::default();
        let (disk, log) = match self.servers[index].disk.take().filter(|_| with_data) {
            Some(old) => {
                let (disk, log) = old.reopen(&catalog);
                (disk, Some(log))
            }
            None => {
                self.checker.on_memory_lost(id);
                (DataDir::empty(&catalog), None)
            }
        };
        let node = self.new_node(index, id, explicit_id, log);
        self.servers[index] = SimServer::new(node, explicit_id, disk);
        self.flush(index);
    }

    /// Freezes a server (SIGSTOP): it keeps its state, and what arrives waits.
    pub fn pause(&mut self, index: usize) {
        if self.servers[index].liveness == Liveness::Up {
            self.running(index);
            log::info!("SIM: paused");
            let server = &mut self.servers[index];
            server.liveness = Liveness::Paused;
            server.paused_at = Some((self.now, server.node.role() == Role::Leader));
        }
    }

    /// Thaws a paused server (SIGCONT): it reads its backlog, then its timers run.
    pub fn resume(&mut self, index: usize) {
        if self.servers[index].liveness != Liveness::Paused {
            return;
        }
        self.servers[index].liveness = Liveness::Up;
        self.servers[index].wake_at = None;
        self.running(index);
        log::info!("SIM: resumed");
        // What it had queued before it stopped leaves first, as the process
        // carries on where it stood; then it reads what waited.
        let from = self.servers[index].node.id().addr;
        for (dst, bytes) in std::mem::take(&mut self.servers[index].held) {
            self.route(from, dst, bytes);
        }
        let timing = Timing::default();
        let server = &mut self.servers[index];
        if let Some((at, true)) = server.paused_at.take() {
            // It stood still long enough to be replaced: it notices on its
            // first step and must step down before answering anyone.
            server.deposed = self.now >= at + timing.heartbeat_timeout + timing.heartbeat_interval;
        }
        server.resumed_at = Some(self.now);
        for delivery in std::mem::take(&mut self.servers[index].backlog) {
            self.deliver_to_server(index, &delivery);
        }
        let now = self.now;
        self.running(index).handle_timeout(now);
        self.flush(index);
    }

    /// The server at `index`.
    pub fn node(&self, index: usize) -> &Node {
        &self.servers[index].node
    }

    /// "up", "down" or "paused".
    pub fn liveness(&self, index: usize) -> &'static str {
        match self.servers[index].liveness {
            Liveness::Up => "up",
            Liveness::Down => "down",
            Liveness::Paused => "paused",
        }
    }

    /// Number of servers ever added.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Indices of servers that are up (not crashed, not paused).
    pub fn up(&self) -> Vec<usize> {
        (0..self.servers.len()).filter(|&i| self.servers[i].liveness == Liveness::Up).collect()
    }

    /// Indices of crashed servers.
    pub fn down(&self) -> Vec<usize> {
        (0..self.servers.len()).filter(|&i| self.servers[i].liveness == Liveness::Down).collect()
    }

    /// Indices of paused servers.
    pub fn paused(&self) -> Vec<usize> {
        (0..self.servers.len()).filter(|&i| self.servers[i].liveness == Liveness::Paused).collect()
    }

    /// The leaders among running servers.
    pub fn leaders(&self) -> Vec<usize> {
        self.up().into_iter().filter(|&i| self.servers[i].node.role() == Role::Leader).collect()
    }

    /// Adds a client that sends random reserve, cancel and check commands.
    pub fn add_client(&mut self) {
        let index = self.clients.len();
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, index as u8 + 1), 7000);
        let id = self.random();
        let core = match &self.keys {
            Some(keys) => {
                let principal = Principal { name: format!("client-{index}"), admin: false };
                let key = ClientKey::issue(&keys.client_masters[0], principal).ok();
                Client::with_key(id, ClientConfig::default(), key, sim_boot(id))
            }
            None => Client::new(id, ClientConfig::default()),
        };
        let next_at = self.now;
        self.clients.push(SimClient { core, addr, id, in_flight: None, next_at });
    }

    /// Stops the clients from starting new requests.
    pub fn stop_clients(&mut self) {
        self.clients_stopped = true;
    }

    /// True when no client waits for an answer.
    pub fn clients_idle(&self) -> bool {
        self.clients.iter().all(|c| c.in_flight.is_none())
    }

    /// Sends a raw request to the group from an address no simulated client owns.
    pub fn request(&mut self, client_addr: SocketAddrV4, client: u64, request: u64, command: Command) {
        let bytes = wire::encode(&Message::Request(Request { client, request, command }));
        self.multicast(client_addr, bytes);
    }

    /// Sends a raw request that reaches only the server at `index`, as from a
    /// client on that server's side of a partition.
    pub fn request_to(&mut self, index: usize, client_addr: SocketAddrV4, client: u64, request: u64, command: Command) {
        let bytes = wire::encode(&Message::Request(Request { client, request, command }));
        let to = self.servers[index].node.id().addr;
        self.send(client_addr, to, bytes);
    }

    /// Delivers raw bytes to the group, as a hostile or broken sender would.
    pub fn inject(&mut self, from: SocketAddrV4, bytes: Vec<u8>) {
        self.multicast(from, bytes);
    }

    /// Runs the simulation for `duration` of simulated time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        self.run_until(duration, |s| s.now >= end);
        self.now = self.now.max(end);
    }

    /// Runs until `done` holds or `limit` passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        let mut stalled = 0u32;
        while !done(self) && self.stats.steps < STEP_BUDGET {
            match self.next_wakeup().filter(|&at| at <= end) {
                Some(at) => {
                    stalled = if at > self.now { 0 } else { stalled + 1 };
                    // A timer that stays due without effect would spin forever.
                    if stalled == 100_000 {
                        let detail = format!("stuck at {:?}: a timer stays due without effect", self.elapsed());
                        self.checker.fail("liveness", detail);
                        return false;
                    }
                    self.now = self.now.max(at);
                    self.step();
                }
                None => {
                    self.now = end;
                    return done(self);
                }
            }
        }
        done(self)
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let servers = self.servers.iter().filter(|s| s.liveness == Liveness::Up).filter_map(|s| s.node.poll_timeout());
        let clients = self
            .clients
            .iter()
            .flat_map(|c| {
                [c.core.poll_timeout(), (c.in_flight.is_none() && !self.clients_stopped).then_some(c.next_at)]
            })
            .flatten();
        let delivery = self.in_flight.peek().map(|Reverse((at, _, _))| *at);
        let attack = self.adversary.as_ref().map(Adversary::next_at);
        let wake = self.servers.iter().filter_map(|s| s.wake_at).min();
        servers.chain(clients).chain(delivery).chain(attack).chain(wake).min()
    }

    fn step(&mut self) {
        self.stats.steps += 1;
        if self.stats.steps == STEP_BUDGET {
            let detail = format!("{STEP_BUDGET} steps by {:?}: a message storm or livelock", self.elapsed());
            self.checker.fail("liveness", detail);
        }
        self.attack();
        for index in 0..self.servers.len() {
            if self.servers[index].wake_at.is_some_and(|at| at <= self.now) {
                self.resume(index);
            }
        }
        while self.in_flight.peek().is_some_and(|Reverse((at, _, _))| *at <= self.now) {
            if let Some(Reverse((_, _, delivery))) = self.in_flight.pop() {
                self.deliver(delivery);
            }
        }
        for index in 0..self.servers.len() {
            let server = &self.servers[index];
            if server.liveness == Liveness::Up && server.node.poll_timeout().is_some_and(|t| t <= self.now) {
                let now = self.now;
                self.running(index).handle_timeout(now);
                self.flush(index);
            }
        }
        for index in 0..self.clients.len() {
            self.client_step(index);
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        if let Some(index) = self.servers.iter().position(|s| s.node.id().addr == delivery.to) {
            match self.servers[index].liveness {
                Liveness::Up => self.deliver_to_server(index, &delivery),
                Liveness::Paused => self.servers[index].backlog.push(delivery),
                Liveness::Down => {}
            }
        } else if let Some(index) = self.clients.iter().position(|c| c.addr == delivery.to) {
            let event = self.clients[index].core.handle_datagram(self.now, delivery.from, &delivery.bytes);
            if let (Some(attack), Some(ClientEvent::Answered { request, .. })) = (delivery.attack, &event)
                && !self.may_take_effect(attack)
            {
                let detail = format!(
                    "at {:?}, {} from {} gave client {} an answer to request {request}",
                    self.elapsed(),
                    self.describe_attack(attack),
                    delivery.from,
                    self.clients[index].id
                );
                self.checker.fail("adversary", detail);
            }
            if let (true, Some(ClientEvent::Answered { request, .. })) = (delivery.deposed, &event) {
                // Its table may lack writes the group's new leader confirmed meanwhile.
                let detail = format!(
                    "at {:?}, client {} took an answer to request {request} from {}, which stood still as leader past the heartbeat timeout and has not led anew since",
                    self.elapsed(),
                    self.clients[index].id,
                    delivery.from
                );
                self.checker.fail("deposed-reply", detail);
            }
            self.client_event(index, event);
        } else if let Ok(Message::Reply(reply)) = wire::decode(&delivery.bytes) {
            self.replies.push(Received { client: delivery.to, from: delivery.from, reply });
        }
    }

    /// Hands a datagram to a running server; one from the adversary must
    /// not change its role, term, log or table (see [`Sim::may_take_effect`]).
    fn deliver_to_server(&mut self, index: usize, delivery: &Delivery) {
        let before = delivery.attack.map(|_| adversary::state_of(&self.servers[index].node));
        let now = self.now;
        self.running(index).handle_datagram(now, delivery.from, &delivery.bytes);
        if let (Some(attack), Some(before)) = (delivery.attack, before) {
            let after = adversary::state_of(&self.servers[index].node);
            if before != after && !self.may_take_effect(attack) {
                let id = self.servers[index].node.id().id;
                let detail = format!(
                    "at {:?}, {} from {} changed server {id}: {before:?} -> {after:?}",
                    self.elapsed(),
                    self.describe_attack(attack),
                    delivery.from
                );
                self.checker.fail("adversary", detail);
            }
        }
        self.flush(index);
    }

    /// Whether an injected datagram may change anything: only a copy of one
    /// younger than `replay::MAX_AGE` (plus the network's delay), which is no
    /// more than a late copy of what its sender sent. Nothing mutated or
    /// forged ever may.
    fn may_take_effect(&self, attack: Attack) -> bool {
        let delay = self.faults.max_delay.max(Duration::from_millis(10));
        match attack {
            Attack::Replay { sent_at } => self.now < sent_at + crate::auth::replay::MAX_AGE + delay,
            Attack::Mutated | Attack::Forged => false,
        }
    }

    fn describe_attack(&self, attack: Attack) -> String {
        match attack {
            Attack::Replay { sent_at } => format!("a replay of a datagram sent {:?} before", self.now - sent_at),
            other => format!("{other:?}"),
        }
    }

    /// Sends the adversary's next datagrams when their time has come.
    fn attack(&mut self) {
        let Some(adversary) = self.adversary.as_mut().filter(|a| a.next_at() <= self.now) else { return };
        let servers: Vec<SocketAddrV4> = self.servers.iter().map(|s| s.node.id().addr).collect();
        let clients: Vec<SocketAddrV4> = self.clients.iter().map(|c| c.addr).collect();
        for Injection { from, to, bytes, attack } in adversary.attack(self.now, &servers, &clients) {
            self.seq += 1;
            let delivery = Delivery { to, from, bytes, attack: Some(attack), deposed: false };
            self.in_flight.push(Reverse((self.now + self.faults.min_delay, self.seq, delivery)));
        }
    }

    /// The node at `index`, about to run: log lines name it and the time.
    fn running(&mut self, index: usize) -> &mut Node {
        let node = &mut self.servers[index].node;
        TRACE_CONTEXT.with(|c| c.set((self.now - self.start, node.id().id)));
        node
    }

    /// Sends what the server at `index` queued and takes its events, as the
    /// driver does after every call; springs the traps whose moment came.
    fn flush(&mut self, index: usize) {
        let server = &mut self.servers[index];
        let (from, id) = (server.node.id().addr, server.node.id().id);
        let mut datagrams = Vec::new();
        while let Some(datagram) = server.node.poll_datagram() {
            datagrams.push(datagram);
        }
        let mut events = Vec::new();
        while let Some(event) = server.node.poll_event() {
            events.push(event);
        }
        let leads = server.node.role() == Role::Leader;
        // It led when this step began or leads now: only then may it commit.
        let committer = leads || server.led;
        server.led = leads;
        let last = server.node.log().last();
        let appended = leads && last.seq > server.last_flushed.seq;
        server.last_flushed = last;
        let changes = self.servers[index].node.take_log_changes();
        if self.traps.torn_flush == Some(index)
            && !datagrams.is_empty()
            && changes.is_some()
            && self.others_running(index)
        {
            self.traps.torn_flush = None;
            self.sprung.torn_flushes += 1;
            return self.tear(index, datagrams, events, changes);
        }
        self.store(index, changes);
        let answered = leads
            && self.traps.crash_after_answer
            && events.iter().any(|e| matches!(e, Event::Applied(_, Applied::Executed(_) | Applied::Replayed(_))))
            && datagrams.iter().any(|(dst, _)| self.is_client(*dst));
        // Judged before this step's entries reach the checker.
        let crash = answered && self.may_crash_after_answer(index, &events);
        self.take_events(index, id, events, committer);
        if appended && self.traps.lose_append {
            self.traps.lose_append = false;
            self.sprung.appends_lost += 1;
            self.running(index);
            log::info!("SIM: its multicast (the Append) is lost to every follower");
            datagrams.retain(|(dst, _)| *dst != Destination::Group);
        }
        if appended
            && self.traps.pause_after_append
            && self.others_running(index)
            && self.another_holds_everything(index)
        {
            self.traps.pause_after_append = false;
            self.sprung.paused_after_append += 1;
            self.pause(index);
            // About as long as the others take to notice and replace it,
            // give or take: 0.6 to 2 s.
            let pause = Duration::from_millis(600 + self.random() % 1400);
            self.servers[index].wake_at = Some(self.now + pause);
            self.servers[index].held = datagrams;
            return;
        }
        for (dst, bytes) in datagrams {
            self.route(from, dst, bytes);
        }
        if crash {
            self.traps.crash_after_answer = false;
            self.sprung.crashed_after_answer += 1;
            self.crash(index);
        }
    }

    /// Takes a flush's events; `committer` says whether the server led in
    /// this step (a leader is the first to apply what it commits).
    fn take_events(&mut self, index: usize, id: u64, events: Vec<Event>, committer: bool) {
        for event in events {
            match event {
                Event::Applied(entry, applied) => {
                    if !committer {
                        self.checker.check_committed(id, &entry, self.now - self.start);
                    }
                    self.checker.on_applied(id, &entry, &applied)
                }
                Event::HistoryDropped => self.checker.on_history_dropped(id),
                Event::SnapshotInstalled { source, last } => {
                    self.stats.snapshots += 1;
                    self.checker.on_snapshot_installed(id, source, last)
                }
                Event::RoleChanged { role: Role::Leader, .. } => self.servers[index].deposed = false,
                Event::Fatal(_) => {
                    self.fatal.push((index, event));
                    self.servers[index].liveness = Liveness::Down;
                }
                _ => {}
            }
        }
    }

    fn route(&mut self, from: SocketAddrV4, dst: Destination, bytes: Vec<u8>) {
        match dst {
            Destination::Group => self.multicast(from, bytes),
            Destination::Peer(to) => self.send(from, to, bytes),
        }
    }

    fn is_client(&self, dst: Destination) -> bool {
        matches!(dst, Destination::Peer(to) if self.clients.iter().any(|c| c.addr == to))
    }

    /// Crashes the server at `index` between the two steps of this flush
    /// ([`FLUSH_ORDER`]); it comes back from its data directory.
    fn tear(
        &mut self,
        index: usize,
        datagrams: Vec<(Destination, Vec<u8>)>,
        events: Vec<Event>,
        changes: Option<LogChanges>,
    ) {
        let (from, id) = (self.servers[index].node.id().addr, self.servers[index].node.id().id);
        let order = FLUSH_ORDER;
        self.running(index);
        log::info!("SIM: crashed between {:?} and {:?}", order[0], order[1]);
        match order[0] {
            FlushStep::Store => self.store(index, changes),
            FlushStep::Send => {
                for (dst, bytes) in datagrams {
                    self.route(from, dst, bytes);
                }
                let log = self.servers[index].node.log();
                let (stored_last, stored_commit) =
                    self.servers[index].disk.as_ref().map(|d| d.stored).unwrap_or_default();
                let detail = format!(
                    "at {:?}, server {id} sent what it held at {:?} (commit {}) and crashed before storing it: its data directory holds {stored_last:?} (commit {stored_commit})",
                    self.elapsed(),
                    log.last(),
                    log.commit(),
                );
                self.checker.fail("durability", detail);
            }
        }
        let committer = self.servers[index].led || self.servers[index].node.role() == Role::Leader;
        self.take_events(index, id, events, committer);
        self.crash(index);
        self.servers[index].torn = true;
    }

    /// Stores the server's log `changes` in its data directory, as the
    /// driver does before it sends.
    fn store(&mut self, index: usize, changes: Option<LogChanges>) {
        let server = &mut self.servers[index];
        if let (Some(changes), Some(disk)) = (changes, &mut server.disk) {
            disk.save(server.node.log(), changes);
        }
    }

    /// True when every server but `index` runs (neither crashed nor paused).
    fn others_running(&self, index: usize) -> bool {
        self.servers.iter().enumerate().all(|(i, s)| i == index || s.liveness == Liveness::Up)
    }

    /// Whether the leader at `index`, which has just answered a write, may
    /// crash within the failure model: no other server is down or paused, no
    /// partition, and another running server holds every entry committed
    /// before this step. The entries committed in this step are not asked
    /// about: a leader only commits what its in-sync members hold, so one of
    /// them that runs must be there (a leader with none commits alone, and
    /// crashing it would lose them by the model's own terms).
    fn may_crash_after_answer(&self, index: usize, events: &[Event]) -> bool {
        let timing = Timing::default();
        let server = &self.servers[index];
        if !self.others_running(index)
            || self.partitioned()
            || server.resumed_at.is_some_and(|at| self.now < at + timing.heartbeat_timeout)
        {
            return false;
        }
        let node = &server.node;
        let in_sync_running = node.member_status().iter().any(|(member, m)| {
            m.in_sync && self.servers.iter().any(|s| s.node.id() == *member && s.liveness == Liveness::Up)
        });
        if !in_sync_running {
            return false;
        }
        let first_new = events
            .iter()
            .filter_map(|e| match e {
                Event::Applied(entry, _) => Some(entry.position.seq),
                _ => None,
            })
            .min();
        let own = first_new.and_then(|seq| node.log().position_at(seq - 1)).unwrap_or_default();
        let committed = self.checker.newest_applied().unwrap_or_default();
        self.held_by_another(index, committed) && self.held_by_another(index, own)
    }

    fn held_by_another(&self, victim: usize, position: LogPosition) -> bool {
        self.up().into_iter().any(|i| i != victim && self.servers[i].node.log().holds(position))
    }

    /// True when a running server other than `victim` holds every entry ever
    /// committed (as the checker saw it applied, also by servers since
    /// restarted), and one holds `victim`'s own committed entries: after a
    /// partition these may be a history of their own, which a restart without
    /// data would lose.
    pub fn another_holds_everything(&self, victim: usize) -> bool {
        let committed = self.checker.newest_applied().unwrap_or_default();
        let log = self.servers[victim].node.log();
        let own = log.position_at(log.commit()).unwrap_or_default();
        self.held_by_another(victim, committed) && self.held_by_another(victim, own)
    }

    /// Arms a torn flush on the server at `index` (see [`Traps::torn_flush`]).
    pub fn arm_torn_flush(&mut self, index: usize) {
        self.traps.torn_flush = Some(index);
    }

    /// Disarms every trap that has not sprung.
    pub fn disarm(&mut self) {
        self.traps = Traps::default();
    }

    fn client_step(&mut self, index: usize) {
        if self.clients[index].core.poll_timeout().is_some_and(|t| t <= self.now) {
            let event = self.clients[index].core.handle_timeout(self.now);
            self.client_event(index, event);
        }
        let idle = self.clients[index].in_flight.is_none() && !self.clients_stopped;
        if idle && self.clients[index].next_at <= self.now {
            let command = self.random_command();
            let write = command.is_write();
            match self.clients[index].core.submit(self.now, command) {
                Ok(Submitted::Sent { request }) => self.clients[index].in_flight = Some((request, write)),
                Ok(Submitted::FromCache(_)) | Err(_) => {}
            }
        }
        let from = self.clients[index].addr;
        while let Some((dst, bytes)) = self.clients[index].core.poll_transmit() {
            match dst {
                Destination::Group => self.multicast(from, bytes),
                Destination::Peer(to) => self.send(from, to, bytes),
            }
        }
    }

    fn client_event(&mut self, index: usize, event: Option<ClientEvent>) {
        let think = Duration::from_millis(self.random() % 50);
        let client = &mut self.clients[index];
        match event {
            Some(ClientEvent::Answered { request, answer, .. }) => {
                if let (Some((_, true)), Answer::Write(outcome)) = (client.in_flight, answer) {
                    self.checker.on_write_answer(client.id, request, outcome);
                }
                client.in_flight = None;
                client.next_at = self.now + think;
                self.stats.answered += 1;
            }
            Some(ClientEvent::TimedOut { .. } | ClientEvent::KeyRefused { .. }) => {
                client.in_flight = None;
                client.next_at = self.now + think;
                self.stats.timed_out += 1;
            }
            Some(ClientEvent::DuplicateReply { .. }) => self.stats.duplicate_replies += 1,
            Some(ClientEvent::Statuses { .. }) => {} // the simulated clients never ask for it
            None => {}
        }
    }

    /// Mostly writes on a few slots, so that clients compete for them.
    fn random_command(&mut self) -> Command {
        let catalog = Catalog::default();
        let room = catalog.rooms[(self.random() % 2) as usize].clone();
        let slot = wire::Slot {
            room: room.clone(),
            timeslot: catalog.timeslots[(self.random() % 2) as usize].clone(),
            day: catalog.days[(self.random() % 2) as usize].clone(),
        };
        match self.random() % 10 {
            0..=4 => Command::Reserve(slot),
            5..=7 => Command::Cancel(slot),
            _ => Command::Check { room, cached: None },
        }
    }

    fn multicast(&mut self, from: SocketAddrV4, bytes: Vec<u8>) {
        let targets: Vec<SocketAddrV4> = self.servers.iter().map(|s| s.node.id().addr).collect();
        for to in targets {
            self.send(from, to, bytes.clone());
        }
    }

    /// Cuts the servers at `indices` off from the other servers until
    /// [`Sim::heal_partition`]; clients still reach both sides.
    pub fn partition(&mut self, indices: &[usize]) {
        self.isolated = indices.iter().map(|&i| self.servers[i].node.id().addr).collect();
    }

    /// True while a partition is in force.
    pub fn partitioned(&self) -> bool {
        !self.isolated.is_empty()
    }

    /// Ends a partition.
    pub fn heal_partition(&mut self) {
        self.isolated.clear();
    }

    fn across_partition(&self, from: SocketAddrV4, to: SocketAddrV4) -> bool {
        let is_server = |a: SocketAddrV4| self.servers.iter().any(|s| s.node.id().addr == a);
        is_server(from) && is_server(to) && self.isolated.contains(&from) != self.isolated.contains(&to)
    }

    fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, bytes: Vec<u8>) {
        self.stats.datagrams += 1;
        if let Some(adversary) = &mut self.adversary {
            adversary.observe(self.now, from, &bytes);
        }
        if self.chance(self.faults.loss) || self.across_partition(from, to) {
            return;
        }
        let copies = if self.chance(self.faults.duplicate) { 2 } else { 1 };
        let deposed = self.servers.iter().any(|s| s.deposed && s.node.id().addr == from);
        for _ in 0..copies {
            let spread = self.faults.max_delay.saturating_sub(self.faults.min_delay).as_nanos() as u64;
            let delay = self.faults.min_delay + Duration::from_nanos(self.random() % spread.max(1));
            self.seq += 1;
            let delivery = Delivery { to, from, bytes: bytes.clone(), attack: None, deposed };
            self.in_flight.push(Reverse((self.now + delay, self.seq, delivery)));
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.random() as f64 / u64::MAX as f64) < p
    }

    /// The next number of the run's random sequence.
    pub fn random(&mut self) -> u64 {
        xorshift(&mut self.rng)
    }
}

/// A simulated process's boot nonce, from its seed.
fn sim_boot(seed: u64) -> Boot {
    let mut state = seed ^ 0xB007_B007_B007_B007;
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        half.copy_from_slice(&xorshift(&mut state).to_le_bytes());
    }
    Boot(bytes)
}
