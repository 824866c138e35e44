//! What authentication costs one datagram, with nothing else around it: a
//! leader's one-entry `Append` sealed and opened by two server guards, and a
//! client's `reserve` with its reply through a client and a server guard,
//! each against plain bincode encoding and decoding of the same messages.
//! Three rounds of 2,000,000 each; `cargo run --release --example guard_cost`.
//! (The end-to-end cost is `bench keys`.)
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use roomcast::auth::frame::Boot;
use roomcast::auth::{ClientGuard, ClientKey, Principal, ServerGuard, ServerKeys};
use roomcast::node::Destination;
use roomcast::wire::{self, *};

/// Rounds of each measurement, and operations per round.
const ROUNDS: u32 = 3;
const OPS: u32 = 2_000_000;

/// Runs `op` [`OPS`] times, each at a simulated instant 300 ns after the
/// last from `start` (continuing over rounds, so that replay windows only
/// move forward); its mean time in µs.
fn per_op_us(start: Instant, round: u32, mut op: impl FnMut(Instant)) -> f64 {
    let timer = Instant::now();
    for i in 0..OPS {
        op(start + Duration::from_nanos(u64::from(i + round * OPS) * 300));
    }
    timer.elapsed().as_secs_f64() * 1e6 / f64::from(OPS)
}

fn main() {
    let keys = ServerKeys::generate(std::array::from_fn(|i| i as u8));
    let a_addr: SocketAddrV4 = "10.0.0.1:5000".parse().expect("an address");
    let b_addr: SocketAddrV4 = "10.0.0.2:5000".parse().expect("an address");
    let c_addr: SocketAddrV4 = "10.0.1.1:7000".parse().expect("an address");
    let now = Instant::now();
    let mut a = ServerGuard::new(Some(keys.clone()), a_addr, Boot([1; 16]), 1, now);
    let mut b = ServerGuard::new(Some(keys.clone()), b_addr, Boot([2; 16]), 2, now);
    let slot = Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() };
    let last = LogPosition { term: 3, seq: 100, leader: 7 };
    let entry = Entry { position: last, client: 9, request: 1, by: None, op: Op::Reserve(slot.clone()) };
    let msg = Message::Peer(PeerMessage {
        sender: 300,
        incarnation: 1,
        explicit_id: true,
        joining: false,
        term: 3,
        last,
        commit: 99,
        catalog: 5,
        body: PeerBody::Append { prev: LogPosition { seq: 99, ..last }, entries: vec![entry] },
    });
    let bytes = a.seal(Destination::Group, &msg).expect("seals");
    assert!(b.open(now, a_addr, &bytes).is_none());
    while let Some((_, ch)) = b.poll_transmit() {
        a.open(now, b_addr, &ch);
    }
    while let Some((_, pr)) = a.poll_transmit() {
        b.open(now, a_addr, &pr);
    }
    assert!(b.poll_released().is_some());
    for round in 0..ROUNDS {
        let keyed = per_op_us(now, round, |now| {
            let bytes = a.seal(Destination::Group, &msg).expect("seals");
            assert!(b.open(now, a_addr, &bytes).is_some());
        });
        let plain = per_op_us(now, round, |_| {
            let _ = std::hint::black_box(wire::decode(&wire::encode(&msg)));
        });
        println!(
            "append: keyed seal+open {keyed:.3} µs, plain encode+decode {plain:.3} µs, extra {:.3} µs",
            keyed - plain
        );
    }
    let ck =
        ClientKey::issue(&keys.client_masters[0], Principal { name: "alice".into(), admin: false }).expect("seals");
    let mut client = ClientGuard::new(Some(ck), Boot([9; 16]));
    let req = Request { client: 9, request: 1, command: Command::Reserve(slot.clone()) };
    let bytes = client.seal_request(now, &req);
    assert!(b.open(now, c_addr, &bytes).is_none());
    while let Some((_, ch)) = b.poll_transmit() {
        client.open(now, b_addr, &ch);
    }
    while let Some((_, pr)) = client.poll_transmit() {
        b.open(now, c_addr, &pr);
    }
    assert!(b.poll_released().is_some());
    let reply =
        Message::Reply(Reply { request: 1, server: 2, catalog: 5, answer: Answer::Write(WriteOutcome::Reserved) });
    let request = Message::Request(req.clone());
    for round in 0..ROUNDS {
        let keyed = per_op_us(now, round, |now| {
            let bytes = client.seal_request(now, &req);
            assert!(b.open(now, c_addr, &bytes).is_some());
            let r = b.seal(Destination::Peer(c_addr), &reply).expect("seals");
            assert!(matches!(client.open(now, b_addr, &r), roomcast::auth::ClientInput::Reply(_)));
        });
        let plain = per_op_us(now, round, |_| {
            let _ = std::hint::black_box(wire::decode(&wire::encode(&request)));
            let _ = std::hint::black_box(wire::decode(&wire::encode(&reply)));
        });
        println!("request+reply: keyed {keyed:.3} µs, plain {plain:.3} µs, extra {:.3} µs", keyed - plain);
    }
}
