//! A hostile host on the simulated network, for the seeds that run with keys.
//! It sees every datagram (a LAN is a shared medium), keeps a sample of them,
//! and every few tens of milliseconds sends, to servers and clients:
//!
//! - **replays**: a datagram it saw, again, from its sender's address or another;
//! - **mutations**: a datagram it saw with bytes flipped, cut or appended;
//! - **forgeries**: a `Coordinator`, `LeaderAlive`, `Append` or `HandOver` from a
//!   made-up server with a huge ID and term, plain, sealed with keys of its own,
//!   and sealed with the client key it holds (a client's key may seal requests
//!   and nothing else), and forged replies to clients.
//!
//! The simulation checks that none of it changes a server's role, term, log or
//! table, nor gives a client an answer, except a replay younger than the
//! freshness horizon, which is no more than a late copy of what its sender
//! sent (`auth::replay`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::auth::frame::{self, Boot, Inner, SealedHeader, Sealing, Target};
use crate::auth::{ClientKey, Key, Principal, ServerKeys};
use crate::node::{Node, Role, xorshift};
use crate::wire::{
    self, Answer, Entry, FrameKind, LogPosition, Message, Op, PeerBody, PeerMessage, Reply, Slot, WriteOutcome,
};

/// Where the adversary sends from when it does not pose as another host.
pub const ADDRESS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 66), 6666);

/// Datagrams kept to replay and mutate.
const SAMPLE: usize = 128;

/// What an injected datagram is, for the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    /// A copy of a datagram first sent at this time.
    Replay {
        /// When its sender sent it.
        sent_at: Instant,
    },
    /// A datagram it saw, altered.
    Mutated,
    /// Made up: without a valid key for what it claims.
    Forged,
}

/// A datagram the adversary sends.
#[derive(Debug, Clone)]
pub struct Injection {
    /// The address it claims to come from.
    pub from: SocketAddrV4,
    /// Where it goes.
    pub to: SocketAddrV4,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What it is.
    pub attack: Attack,
}

/// A datagram seen on the network.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    from: SocketAddrV4,
    bytes: Vec<u8>,
}

/// The hostile host.
#[derive(Debug)]
pub struct Adversary {
    rng: u64,
    sample: Vec<Seen>,
    seen: u64,
    next_at: Instant,
    own_keys: ServerKeys,
    client_key: ClientKey,
    counter: u64,
}

impl Adversary {
    /// An adversary holding a client key issued by the group's `keys` (as
    /// any user of the group may) and keys of its own.
    pub fn new(seed: u64, keys: &ServerKeys, now: Instant) -> Self {
        let mut rng = seed ^ 0xBAD_C0DE;
        let own_keys = ServerKeys::generate(std::array::from_fn(|_| xorshift(&mut rng) as u8));
        let mallory = Principal { name: "mallory".into(), admin: true };
        let client_key = match ClientKey::issue(&keys.client_masters[0], mallory) {
            Ok(key) => key,
            Err(e) => unreachable!("a fixed valid name: {e}"),
        };
        Adversary { rng, sample: Vec::new(), seen: 0, next_at: now, own_keys, client_key, counter: 0 }
    }

    fn random(&mut self) -> u64 {
        xorshift(&mut self.rng)
    }

    /// Sees a datagram go by (reservoir sampling keeps a fair sample).
    pub fn observe(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) {
        self.seen += 1;
        let seen = Seen { at: now, from, bytes: bytes.to_vec() };
        if self.sample.len() < SAMPLE {
            self.sample.push(seen);
        } else {
            let slot = self.random() % self.seen;
            if let Some(kept) = self.sample.get_mut(slot as usize) {
                *kept = seen;
            }
        }
    }

    /// When it next attacks.
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// The datagrams of its next attack, to `servers` and `clients`.
    pub fn attack(&mut self, now: Instant, servers: &[SocketAddrV4], clients: &[SocketAddrV4]) -> Vec<Injection> {
        self.next_at = now + Duration::from_millis(10 + self.random() % 60);
        let mut injections = Vec::new();
        for _ in 0..1 + self.random() % 4 {
            let targets = if self.random().is_multiple_of(4) && !clients.is_empty() { clients } else { servers };
            let Some(&to) = targets.get((self.random() % targets.len().max(1) as u64) as usize) else { continue };
            let injection = match self.random() % 3 {
                0 => self.replay(to, servers),
                1 => self.mutate(to),
                _ => Some(self.forge(to, servers.contains(&to))),
            };
            injections.extend(injection);
        }
        injections
    }

    fn replay(&mut self, to: SocketAddrV4, servers: &[SocketAddrV4]) -> Option<Injection> {
        let index = (self.random() % self.sample.len().max(1) as u64) as usize;
        let seen = self.sample.get(index)?.clone();
        // From the sender's address, or posing as another server.
        let from = match self.random() % 3 {
            0 => *servers.get((self.random() % servers.len().max(1) as u64) as usize)?,
            _ => seen.from,
        };
        Some(Injection { from, to, bytes: seen.bytes, attack: Attack::Replay { sent_at: seen.at } })
    }

    fn mutate(&mut self, to: SocketAddrV4) -> Option<Injection> {
        let index = (self.random() % self.sample.len().max(1) as u64) as usize;
        let seen = self.sample.get(index)?.clone();
        let mut bytes = seen.bytes;
        match self.random() % 3 {
            0 => {
                for _ in 0..1 + self.random() % 3 {
                    let at = (self.random() % bytes.len().max(1) as u64) as usize;
                    let flip = 1 + (self.random() % 255) as u8;
                    if let Some(byte) = bytes.get_mut(at) {
                        *byte ^= flip;
                    }
                }
            }
            1 => bytes.truncate((self.random() % bytes.len().max(1) as u64) as usize),
            _ => bytes.extend((0..1 + self.random() % 16).map(|_| self.random() as u8)),
        }
        Some(Injection { from: seen.from, to, bytes, attack: Attack::Mutated })
    }

    fn forge(&mut self, to: SocketAddrV4, to_server: bool) -> Injection {
        let message = match to_server {
            true => Message::Peer(self.forged_peer()),
            false => Message::Reply(forged_reply(self.random() % 8)),
        };
        let bytes = match self.random() % 4 {
            0 => wire::encode(&message),
            1 => self.sealed_with_own_key(to, &message),
            2 => self.sealed_as_client(FrameKind::Request, &message),
            _ => self.sealed_as_client(FrameKind::Peer, &message),
        };
        Injection { from: ADDRESS, to, bytes, attack: Attack::Forged }
    }

    /// What took one group over when it had no keys: a made-up server with a
    /// huge ID and term that claims to lead, appends, or hands over.
    fn forged_peer(&mut self) -> PeerMessage {
        let term = 1_000_000 + self.random() % 1000;
        let last = LogPosition { term, seq: 1 + self.random() % 50, leader: 7 };
        let slot = Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: "Monday".into() };
        let entry = Entry { position: last, client: 9, request: 1, by: None, op: Op::Reserve(slot) };
        let body = match self.random() % 4 {
            0 => PeerBody::Coordinator,
            1 => PeerBody::LeaderAlive { members: Vec::new() },
            2 => PeerBody::Append { prev: LogPosition { seq: last.seq - 1, ..last }, entries: vec![entry] },
            _ => PeerBody::HandOver { members: Vec::new(), leaving: true },
        };
        PeerMessage {
            sender: u64::MAX - 1,
            incarnation: self.random(),
            explicit_id: true,
            joining: false,
            term,
            last,
            commit: last.seq,
            catalog: crate::rooms::Catalog::default().fingerprint(),
            body,
        }
    }

    fn header(&mut self, kind: FrameKind, key_id: crate::auth::KeyId, client: Option<Principal>) -> SealedHeader {
        self.counter += 1;
        let boot = Boot(std::array::from_fn(|_| self.rng as u8));
        SealedHeader {
            kind,
            key_id,
            boot,
            counter: self.counter,
            clock: self.rng % 100_000,
            target: Target::Group,
            client,
        }
    }

    /// Sealed with a server key the group does not hold.
    fn sealed_with_own_key(&mut self, to: SocketAddrV4, message: &Message) -> Vec<u8> {
        let key: Key = self.own_keys.server[0].clone();
        let mut header = self.header(FrameKind::Peer, key.id(), None);
        header.target = Target::Peer(to);
        frame::seal(&header, &key, &[], &as_inner(message, header.counter))
    }

    /// Sealed with the client key it was issued, in a request frame or posing as a server frame.
    fn sealed_as_client(&mut self, kind: FrameKind, message: &Message) -> Vec<u8> {
        let key = self.client_key.clone();
        let client = (kind != FrameKind::Peer).then(|| key.principal.clone());
        let header = self.header(kind, key.master, client);
        frame::seal(&header, &key.key, &[], &as_inner(message, header.counter))
    }
}

/// What a sealed frame carries for `message`: a reply in the shape servers
/// send, naming request datagram `answers`, so that only the key refuses it.
fn as_inner(message: &Message, answers: u64) -> Sealing<'_> {
    match message {
        Message::Reply(reply) => Inner::Reply { answers, reply },
        other => Inner::Message(other),
    }
}

/// A reply a client did not ask for, claiming a write went through.
fn forged_reply(request: u64) -> Reply {
    Reply { request, server: u64::MAX - 1, catalog: 0, answer: Answer::Write(WriteOutcome::Reserved) }
}

/// What an injected datagram must not change in a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    role: Role,
    term: u64,
    leader: Option<u64>,
    last: LogPosition,
    commit: u64,
    applied: LogPosition,
    reservations: usize,
}

/// The parts of `node` an injected datagram must not change.
pub fn state_of(node: &Node) -> State {
    let log = node.log();
    State {
        role: node.role(),
        term: node.term(),
        leader: node.leader().map(|l| l.id),
        last: log.last(),
        commit: log.commit(),
        applied: log.table().applied(),
        reservations: log.table().len(),
    }
}
