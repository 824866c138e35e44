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
use crate::node::{Destination, Event, Node, NodeConfig, ReplicatedLog, Role, Timing, xorshift};
use crate::rooms::Catalog;
use crate::wire::{self, Answer, Command, Message, Reply, Request};
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
            let delivery = Delivery { to, from, bytes: bytes.clone(), attack: Some(Attack::Forged) };
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
        let node = self.new_node(index, id, explicit_id, None);
        self.servers.push(SimServer { node, explicit_id, liveness: Liveness::Up, backlog: Vec::new() });
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
        self.servers[index].liveness = Liveness::Down;
        self.servers[index].backlog.clear();
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
        self.restart_from(index, None);
    }

    /// Starts a crashed server again from its data directory: the log it held
    /// when it crashed (the driver stores every change before sending anything
    /// that depends on it, so nothing acknowledged is only in memory).
    pub fn restart_with_disk(&mut self, index: usize) {
        let disk = self.servers[index].node.log().clone();
        self.restart_from(index, Some(disk));
    }

    fn restart_from(&mut self, index: usize, disk: Option<ReplicatedLog>) {
        let (id, explicit_id) = (self.servers[index].node.id().id, self.servers[index].explicit_id);
        if disk.is_none() {
            self.checker.on_memory_lost(id);
        }
        self.servers[index].node = self.new_node(index, id, explicit_id, disk);
        self.servers[index].liveness = Liveness::Up;
        self.flush(index);
    }

    /// Freezes a server (SIGSTOP): it keeps its state, and what arrives waits.
    pub fn pause(&mut self, index: usize) {
        if self.servers[index].liveness == Liveness::Up {
            self.running(index);
            log::info!("SIM: paused");
            self.servers[index].liveness = Liveness::Paused;
        }
    }

    /// Thaws a paused server (SIGCONT): it reads its backlog, then its timers run.
    pub fn resume(&mut self, index: usize) {
        if self.servers[index].liveness != Liveness::Paused {
            return;
        }
        self.servers[index].liveness = Liveness::Up;
        self.running(index);
        log::info!("SIM: resumed");
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
        servers.chain(clients).chain(delivery).chain(attack).min()
    }

    fn step(&mut self) {
        self.stats.steps += 1;
        if self.stats.steps == STEP_BUDGET {
            let detail = format!("{STEP_BUDGET} steps by {:?}: a message storm or livelock", self.elapsed());
            self.checker.fail("liveness", detail);
        }
        self.attack();
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
            let delivery = Delivery { to, from, bytes, attack: Some(attack) };
            self.in_flight.push(Reverse((self.now + self.faults.min_delay, self.seq, delivery)));
        }
    }

    /// The node at `index`, about to run: log lines name it and the time.
    fn running(&mut self, index: usize) -> &mut Node {
        let node = &mut self.servers[index].node;
        TRACE_CONTEXT.with(|c| c.set((self.now - self.start, node.id().id)));
        node
    }

    fn flush(&mut self, index: usize) {
        let from = self.servers[index].node.id().addr;
        while let Some((dst, bytes)) = self.servers[index].node.poll_datagram() {
            match dst {
                Destination::Group => self.multicast(from, bytes),
                Destination::Peer(to) => self.send(from, to, bytes),
            }
        }
        let id = self.servers[index].node.id().id;
        while let Some(event) = self.servers[index].node.poll_event() {
            match event {
                Event::Applied(entry, applied) => self.checker.on_applied(id, &entry, &applied),
                Event::HistoryDropped => self.checker.on_history_dropped(id),
                Event::SnapshotInstalled { source, last } => self.checker.on_snapshot_installed(id, source, last),
                Event::Fatal(_) => {
                    self.fatal.push((index, event));
                    self.servers[index].liveness = Liveness::Down;
                }
                _ => {}
            }
        }
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
        for _ in 0..copies {
            let spread = self.faults.max_delay.saturating_sub(self.faults.min_delay).as_nanos() as u64;
            let delay = self.faults.min_delay + Duration::from_nanos(self.random() % spread.max(1));
            self.seq += 1;
            let delivery = Delivery { to, from, bytes: bytes.clone(), attack: None };
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
