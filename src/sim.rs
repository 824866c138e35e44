//! A deterministic simulation of a roomcast group: real [`Node`] cores on a
//! simulated network and clock, with faults drawn from one seed. The same seed
//! always produces the same run, so a failure found by a random schedule can be
//! replayed exactly.
//!
//! Datagrams are encoded and decoded with the real wire format. Delivery is a
//! heap ordered by (time, sequence number); loss and delay come from a seeded
//! xorshift generator.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::node::{Destination, Event, Node, NodeConfig, Role, Timing};
use crate::rooms::Catalog;
use crate::wire::{self, Command, Message, Reply, Request};

/// Network behaviour of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability (0..1) that a datagram is lost.
    pub loss: f64,
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay (reordering happens when delays differ).
    pub max_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { loss: 0.0, min_delay: Duration::from_micros(200), max_delay: Duration::from_micros(600) }
    }
}

struct SimServer {
    node: Node,
    up: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    to: SocketAddrV4,
    from: SocketAddrV4,
    bytes: Vec<u8>,
}

/// A reply a simulated client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The client's address.
    pub client: SocketAddrV4,
    /// Who sent it.
    pub from: SocketAddrV4,
    /// The reply.
    pub reply: Reply,
}

/// The simulated group.
pub struct Sim {
    start: Instant,
    now: Instant,
    rng: u64,
    seq: u64,
    faults: Faults,
    servers: Vec<SimServer>,
    in_flight: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    /// Every reply delivered to a client address, in order.
    pub replies: Vec<Received>,
    /// Fatal events, by server index.
    pub fatal: Vec<(usize, Event)>,
}

impl Sim {
    /// An empty simulation; `seed` fixes every random choice.
    pub fn new(seed: u64, faults: Faults) -> Self {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            seq: 0,
            faults,
            servers: Vec::new(),
            in_flight: BinaryHeap::new(),
            replies: Vec::new(),
            fatal: Vec::new(),
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The timings simulated servers use: the defaults.
    pub fn timing() -> Timing {
        Timing::default()
    }

    /// Adds and starts a server with this ID; returns its index.
    pub fn add_server(&mut self, id: u64, explicit_id: bool) -> usize {
        let index = self.servers.len();
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, index as u8 + 1), 5000);
        let config = NodeConfig {
            id,
            explicit_id,
            addr,
            timing: Self::timing(),
            catalog: Catalog::default(),
            seed: self.random(),
        };
        let mut node = Node::new(config, self.now);
        node.start(self.now);
        self.servers.push(SimServer { node, up: true });
        self.flush(index);
        index
    }

    /// Stops a server at once, as SIGKILL would: it sends nothing more.
    pub fn crash(&mut self, index: usize) {
        self.servers[index].up = false;
    }

    /// The server at `index`.
    pub fn node(&self, index: usize) -> &Node {
        &self.servers[index].node
    }

    /// Indices of servers that are up.
    pub fn up(&self) -> Vec<usize> {
        (0..self.servers.len()).filter(|&i| self.servers[i].up).collect()
    }

    /// The leaders among running servers.
    pub fn leaders(&self) -> Vec<usize> {
        self.up().into_iter().filter(|&i| self.servers[i].node.role() == Role::Leader).collect()
    }

    /// Sends a client request to the group from a client address.
    pub fn request(&mut self, client_addr: SocketAddrV4, client: u64, request: u64, command: Command) {
        let bytes = wire::encode(&Message::Request(Request { client, request, command }));
        self.multicast(client_addr, bytes);
    }

    /// Delivers raw bytes to the group, as a hostile or broken sender would.
    pub fn inject(&mut self, from: SocketAddrV4, bytes: Vec<u8>) {
        self.multicast(from, bytes);
    }

    /// Runs the simulation for `duration` of simulated time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while let Some(at) = self.next_wakeup().filter(|&at| at <= end) {
            self.now = self.now.max(at);
            self.step();
        }
        self.now = end;
    }

    /// Runs until `done` holds or `limit` passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            match self.next_wakeup().filter(|&at| at <= end) {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.step();
                }
                None => return false,
            }
        }
        true
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let timers = self.servers.iter().filter(|s| s.up).filter_map(|s| s.node.poll_timeout());
        let delivery = self.in_flight.peek().map(|Reverse((at, _, _))| *at);
        timers.chain(delivery).min()
    }

    fn step(&mut self) {
        while self.in_flight.peek().is_some_and(|Reverse((at, _, _))| *at <= self.now) {
            if let Some(Reverse((_, _, delivery))) = self.in_flight.pop() {
                self.deliver(delivery);
            }
        }
        for index in 0..self.servers.len() {
            let server = &mut self.servers[index];
            if server.up && server.node.poll_timeout().is_some_and(|t| t <= self.now) {
                server.node.handle_timeout(self.now);
                self.flush(index);
            }
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        if let Some(index) = self.servers.iter().position(|s| s.node.id().addr == delivery.to) {
            if self.servers[index].up {
                self.servers[index].node.handle_datagram(self.now, delivery.from, &delivery.bytes);
                self.flush(index);
            }
        } else if let Ok(Message::Reply(reply)) = wire::decode(&delivery.bytes) {
            self.replies.push(Received { client: delivery.to, from: delivery.from, reply });
        }
    }

    fn flush(&mut self, index: usize) {
        let from = self.servers[index].node.id().addr;
        while let Some(transmit) = self.servers[index].node.poll_transmit() {
            let bytes = wire::encode(&transmit.message);
            match transmit.dst {
                Destination::Group => self.multicast(from, bytes),
                Destination::Peer(to) => self.send(from, to, bytes),
            }
        }
        while let Some(event) = self.servers[index].node.poll_event() {
            if matches!(event, Event::Fatal(_)) {
                self.fatal.push((index, event));
                self.servers[index].up = false;
            }
        }
    }

    fn multicast(&mut self, from: SocketAddrV4, bytes: Vec<u8>) {
        let targets: Vec<SocketAddrV4> = self.servers.iter().map(|s| s.node.id().addr).collect();
        for to in targets {
            self.send(from, to, bytes.clone());
        }
    }

    fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, bytes: Vec<u8>) {
        if self.chance(self.faults.loss) {
            return;
        }
        let spread = self.faults.max_delay.saturating_sub(self.faults.min_delay).as_nanos() as u64;
        let delay = self.faults.min_delay + Duration::from_nanos(self.random() % spread.max(1));
        self.seq += 1;
        self.in_flight.push(Reverse((self.now + delay, self.seq, Delivery { to, from, bytes })));
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.random() as f64 / u64::MAX as f64) < p
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}
