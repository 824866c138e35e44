//! Groups of other sizes than the handout's three: a reservation confirmed
//! just before the leader is SIGKILLed is still there under the next leader,
//! with 2, 4 and 7 servers. And the at-most-once rule seen from the wire: the
//! same request sent twice is executed once and its answer replayed.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::ErrorKind;
use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use roomcast::wire::{self, Answer, Command, Message, Refusal, Reply, Request, Slot, WriteOutcome};

use common::*;

/// Starts `size` fast-heartbeat servers with IDs 100, 200, ... all at once,
/// and waits until they all name the highest one as leader.
fn start_group(group: &TestGroup, size: usize) -> Vec<ServerProcess> {
    let servers: Vec<ServerProcess> =
        (1..=size as u64).map(|i| ServerProcess::start_fast(group, 100 * i, &[])).collect();
    let highest = 100 * size as u64;
    wait_for_leader(&servers.iter().collect::<Vec<_>>(), highest, PATIENCE);
    servers
}

/// A group of `size` servers confirms a reservation; its leader is SIGKILLed
/// right after the confirmation; the survivors elect the highest remaining
/// server, and `check` through it lists the reservation.
fn reservation_survives_leader_kill(size: usize) {
    assert!(size >= 2, "a failover needs a survivor");
    let group = TestGroup::new();
    let mut servers = start_group(&group, size);

    // A different slot per size, so a failure message says which test it is.
    let (room, timeslot, day) = (ROOMS[size % ROOMS.len()], TIMESLOTS[size % TIMESLOTS.len()], DAYS[size % DAYS.len()]);
    run_client(&group, &["reserve", room, timeslot, day]).assert_success(&["(From servers): Reservation confirmed"]);

    // The leader is the last one started (highest ID).
    let mut leader = servers.pop().expect("the group has servers");
    leader.kill();
    let survivors: Vec<&ServerProcess> = servers.iter().collect();
    let next = survivors.iter().map(|s| s.id()).max().expect("at least one survivor");
    wait_for_leader(&survivors, next, PATIENCE);

    let out = run_client(&group, &["check", room]);
    assert_eq!(
        out.stdout_lines(),
        [format!("{FROM_SERVERS}{room} {timeslot} {day}")],
        "after the failover from {} to {next}, check {room} should list the confirmed reservation; {out}\n{}{}",
        leader.id(),
        leader.dump(),
        survivors.iter().map(|s| s.dump()).collect::<String>()
    );
    assert_eq!(out.code(), 0, "{out}");
}

#[test]
fn two_servers_reservation_survives_leader_kill() {
    reservation_survives_leader_kill(2);
}

#[test]
fn four_servers_reservation_survives_leader_kill() {
    reservation_survives_leader_kill(4);
}

#[test]
fn seven_servers_reservation_survives_leader_kill() {
    reservation_survives_leader_kill(7);
}

/// Multicasts `datagram` to the group once (no retry) and returns the first
/// reply to request `request`. Panics with every server's output if none
/// comes within [`PATIENCE`].
fn exchange(socket: &UdpSocket, group: &TestGroup, datagram: &[u8], request: u64, servers: &[&ServerProcess]) -> Reply {
    let to = SocketAddrV4::new(group.group, group.port);
    socket.send_to(datagram, to).unwrap_or_else(|e| panic!("sending request {request} to {to}: {e}"));
    let deadline = Instant::now() + PATIENCE;
    let mut others = Vec::new();
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "no reply to request {request} within {PATIENCE:?}; other datagrams received: {others:?}\n{}",
                servers.iter().map(|s| s.dump()).collect::<String>()
            );
        }
        socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).expect("read timeout");
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => match wire::decode(&buf[..n]) {
                Ok(Message::Reply(reply)) if reply.request == request => return reply,
                other => others.push(format!("{from}: {other:?}")),
            },
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => panic!("receiving the reply to request {request}: {e}"),
        }
    }
}

/// The same request datagram (client ID and request number) sent twice is
/// executed once: the second copy gets the first answer again, not "already
/// reserved". A new request number for the same slot is refused, and `check`
/// lists the slot once.
#[test]
fn same_request_id_twice_executes_once() {
    let group = TestGroup::new();
    let servers = start_group(&group, 3);
    let refs: Vec<&ServerProcess> = servers.iter().collect();
    // The new leader ignores requests until it has committed what it inherited;
    // a client's answer shows it serves, so the single sends below are answered.
    run_client(&group, &["days"]).assert_success(&answer_lines(FROM_SERVERS, &DAYS));

    const CLIENT: u64 = 0x5EED_0000_0000_0001;
    let slot = Slot { room: ROOMS[1].into(), timeslot: TIMESLOTS[3].into(), day: DAYS[2].into() };
    let reserve = |request| {
        wire::encode(&Message::Request(Request { client: CLIENT, request, command: Command::Reserve(slot.clone()) }))
    };
    let socket = loopback_sender();

    let first_datagram = reserve(1);
    let first = exchange(&socket, &group, &first_datagram, 1, &refs);
    assert_eq!(first.answer, Answer::Write(WriteOutcome::Reserved), "first reserve: {first:?}");
    assert_eq!(first.server, 300, "the leader should answer: {first:?}");

    let replayed = exchange(&socket, &group, &first_datagram, 1, &refs);
    assert_eq!(replayed, first, "the same request again should get the original answer");

    let second = exchange(&socket, &group, &reserve(2), 2, &refs);
    assert_eq!(
        second.answer,
        Answer::Write(WriteOutcome::Refused(Refusal::AlreadyReserved(slot.clone()))),
        "a new request for the reserved slot: {second:?}"
    );

    // Reserved exactly once (and only one server answers, or the client exits 3).
    run_client(&group, &["check", &slot.room]).assert_success(&[format!("{FROM_SERVERS}{slot}")]);
}
