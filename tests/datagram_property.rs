//! 100,000 random and mutated datagrams against a running group with keys
//! (the real `Node` cores in the deterministic simulation): no panic, no
//! growth beyond the guard's documented limits, and no change of any
//! server's role, term, log or table from a datagram without a valid key
//! (the simulation's checker fails the run on any, see `Sim::inject_forged`).

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use roomcast::auth::frame::{self, Boot, Inner, SealedHeader, Target};
use roomcast::auth::{ClientGuard, ClientKey, Principal, ServerGuard, ServerKeys};
use roomcast::node::{Destination, Role};
use roomcast::rooms::Catalog;
use roomcast::sim::{Faults, Sim};
use roomcast::wire::{self, Command, Entry, FrameKind, LogPosition, Message, Op, PeerBody, PeerMessage, Request, Slot};

const DATAGRAMS: usize = 100_000;

/// The guard's limits (`auth::server`): senders, unverified boots, held datagrams, client sessions.
const LIMITS: [usize; 4] = [1024, 256, 256 * 4, 4096];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn peer(body: PeerBody, term: u64) -> Message {
    Message::Peer(PeerMessage {
        sender: u64::MAX - 1,
        incarnation: 7,
        explicit_id: true,
        joining: false,
        term,
        last: LogPosition::new(term, 5),
        commit: 5,
        catalog: Catalog::default().fingerprint(),
        body,
    })
}

/// Valid sealed datagrams (a server's and a client's), to be mutated: never sent as they are.
fn seeds(keys: &ServerKeys) -> Vec<Vec<u8>> {
    let mut server = ServerGuard::new(Some(keys.clone()), addr(9), Boot([3; 16]), 3, std::time::Instant::now());
    let slot = Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: "Monday".into() };
    let entry =
        Entry { position: LogPosition::new(9, 6), client: 1, request: 1, by: None, op: Op::Reserve(slot.clone()) };
    let bodies = [
        PeerBody::Coordinator,
        PeerBody::LeaderAlive { members: vec![(u64::MAX - 1, addr(9))] },
        PeerBody::Append { prev: LogPosition::new(9, 5), entries: vec![entry] },
        PeerBody::HandOver { members: Vec::new(), leaving: true },
        PeerBody::Fetch { from_seq: 1 },
    ];
    let mut seeds: Vec<Vec<u8>> =
        bodies.into_iter().filter_map(|body| server.seal(Destination::Group, &peer(body, 1_000_000))).collect();
    let mallory = Principal { name: "mallory".into(), admin: true };
    let key = ClientKey::issue(&keys.client_masters[0], mallory).expect("a valid name");
    let mut client = ClientGuard::new(Some(key), Boot([4; 16]));
    let now = std::time::Instant::now();
    for command in [Command::Reserve(slot.clone()), Command::Cancel(slot), Command::Status] {
        seeds.push(client.seal_request(now, &Request { client: 5, request: 1, command }));
    }
    seeds
}

fn addr(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 3, last), 4000)
}

/// One datagram without a valid key: random bytes, a mutated valid one, a
/// plain forgery, or one sealed with keys that are not the group's.
fn hostile(rng: &mut Rng, seeds: &[Vec<u8>], foreign: &ServerKeys) -> Vec<u8> {
    match rng.below(5) {
        0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        1 => {
            let mut bytes = wire::header(FrameKind::Peer).to_vec();
            bytes.extend((0..rng.below(120)).map(|_| rng.next() as u8));
            bytes
        }
        2 => {
            let mut bytes = seeds[rng.below(seeds.len())].clone();
            match rng.below(3) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(bytes.len());
                        bytes[at] ^= 1 + (rng.next() % 255) as u8;
                    }
                }
                1 => bytes.truncate(rng.below(bytes.len())),
                _ => bytes.extend((0..1 + rng.below(8)).map(|_| rng.next() as u8)),
            }
            bytes
        }
        3 => wire::encode(&peer(PeerBody::Coordinator, rng.next())),
        _ => {
            let key = &foreign.server[0];
            let header = SealedHeader {
                kind: FrameKind::Peer,
                key_id: key.id(),
                boot: Boot([rng.next() as u8; 16]),
                counter: rng.next(),
                clock: rng.next(),
                target: Target::Group,
                client: None,
            };
            frame::seal(&header, key, &[], &Inner::Message(&peer(PeerBody::Coordinator, 2_000_000)))
        }
    }
}

#[test]
fn a_hundred_thousand_hostile_datagrams_change_nothing_and_grow_nothing() {
    let mut sim = Sim::new(11, Faults::default());
    let keys = sim.with_keys().clone();
    for id in [100, 200, 300] {
        sim.add_server(id, true);
    }
    sim.add_client();
    let settled = |s: &Sim| s.up().iter().all(|&i| s.node(i).leader().is_some_and(|l| l.id == 300));
    assert!(sim.run_until(Duration::from_secs(5), settled), "the group did not settle");
    let seeds = seeds(&keys);
    let foreign = ServerKeys::generate(std::array::from_fn(|i| 200 - i as u8));
    let mut rng = Rng(0x0005_EED0_FBAD_DA7A);
    for n in 0..DATAGRAMS {
        let bytes = hostile(&mut rng, &seeds, &foreign);
        sim.inject_forged(addr(1 + (n % 200) as u8), bytes);
        if n % 100 == 99 {
            sim.run_for(Duration::from_millis(1));
        }
    }
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.checker.violations(), [], "a datagram without a valid key changed a server");
    for index in sim.up() {
        let footprint = sim.node(index).guard_footprint();
        assert!(footprint.iter().zip(LIMITS).all(|(n, limit)| *n <= limit), "server {index}: {footprint:?}");
        assert!(sim.node(index).dropped_datagrams() >= DATAGRAMS as u64, "server {index} refused fewer than it got");
    }
    assert_eq!(sim.leaders().len(), 1);
    assert!(sim.up().iter().any(|&i| sim.node(i).role() == Role::Leader && sim.node(i).id().id == 300));
    assert!(sim.stats.answered > 0, "the client got answers meanwhile");
}
