//! Every server holds every confirmed reservation: a server that joins late
//! catches up before it leads, and a new leader after a crash loses nothing.

mod common;

use common::*;
use roomcast::wire::{self, Command, Message, Request, Slot};

/// Reserves each slot with a one-shot client and asserts it was confirmed.
fn reserve_all(group: &TestGroup, slots: &[[&str; 3]]) {
    for [room, timeslot, day] in slots {
        run_client(group, &["reserve", room, timeslot, day]).assert_success(&["(From servers): Reservation confirmed"]);
    }
}

/// The expected `check` output for reservations of one room, given in the
/// order they are listed (by day, then timeslot).
fn listing(slots: &[[&str; 3]]) -> Vec<String> {
    let items: Vec<String> = slots.iter().map(|s| s.join(" ")).collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    answer_lines(FROM_SERVERS, &items)
}

/// Servers 300 and 200 hold three reservations; 450 joins, becomes the
/// leader, and its answer to `check` lists all three.
#[test]
fn late_joiner_gets_reservations_before_leading() {
    let group = TestGroup::new();
    let a = start_leader(&group, 300);
    let b = ServerProcess::start_fast(&group, 200, &[]);
    wait_for_leader(&[&a, &b], 300, PATIENCE);

    // Listed by day, then timeslot (reserved in another order).
    let slots = [
        ["ME4326", "8:30-9:30", "Monday"],
        ["ME4326", "10:30-11:30", "Wednesday"],
        ["ME4326", "19:30-21:00", "Friday"],
    ];
    reserve_all(&group, &[slots[2], slots[0], slots[1]]);

    let c = ServerProcess::start_fast(&group, 450, &[]);
    wait_for_leader(&[&a, &b, &c], 450, PATIENCE);
    // Only the leader answers (a second answer would make the client exit 3).
    run_client(&group, &["check", "ME4326"]).assert_success(&listing(&slots));

    // 450 holds them itself: with the others gone it still lists all three.
    drop(a);
    drop(b);
    run_client(&group, &["check", "ME4326"]).assert_success(&listing(&slots));
}

/// Every reservation confirmed to a client before the leader is killed is
/// held by the new leader.
#[test]
fn new_leader_after_kill_has_every_confirmed_reservation() {
    let group = TestGroup::new();
    let (a, b, mut c) = start_handout_trio(&group);

    let sa318 =
        [["SA318", "8:30-9:30", "Monday"], ["SA318", "12:30-13:30", "Monday"], ["SA318", "9:30-10:30", "Thursday"]];
    let mc5050 = [["MC5050", "17:30-19:00", "Tuesday"], ["MC5050", "8:30-9:30", "Friday"]];
    reserve_all(&group, &[sa318[1], mc5050[1], sa318[0], mc5050[0], sa318[2]]);
    // Killed right after the last confirmation.
    c.kill();

    wait_for_leader(&[&a, &b], 300, PATIENCE);
    run_client(&group, &["check", "SA318"]).assert_success(&listing(&sa318));
    run_client(&group, &["check", "MC5050"]).assert_success(&listing(&mc5050));
    // The new leader refuses a slot the old leader confirmed.
    let again = run_client(&group, &["reserve", "SA318", "9:30-10:30", "Thursday"]);
    assert_eq!(again.code(), 1, "the slot was reserved before the crash; {again}");
}

/// A leader frozen with SIGSTOP while a write waits in its socket wakes up
/// after the others elected a new leader: it steps down instead of answering
/// that write, and rejoins (then leads again, being the highest).
#[test]
fn a_leader_paused_by_sigstop_steps_down_without_answering() {
    let group = TestGroup::new();
    let (a, b, c) = start_handout_trio(&group);
    run_client(&group, &["days"]).assert_success(&answer_lines(FROM_SERVERS, &DAYS));

    c.signal("STOP");
    let slot = Slot { room: "SA314".into(), timeslot: "14:30-15:30".into(), day: "Thursday".into() };
    let request = Request { client: 0x57_0900, request: 1, command: Command::Reserve(slot.clone()) };
    let socket = loopback_sender();
    socket.send_to(&wire::encode(&Message::Request(request)), (group.group, group.port)).expect("send the request");
    wait_for_leader(&[&a, &b], 300, PATIENCE);

    c.signal("CONT");
    c.wait_for("stepping down", PATIENCE);
    wait_for_leader(&[&a, &b, &c], 450, PATIENCE);

    socket.set_nonblocking(true).expect("non-blocking");
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    if let Ok((n, from)) = socket.recv_from(&mut buf) {
        panic!("the write waiting in the paused leader's socket was answered by {from}: {:?}", wire::decode(&buf[..n]));
    }
    // Nobody executed it: the client never retried, and the stale leader did not act.
    run_client(&group, &["check", "SA314"]).assert_success(&["(From servers): No room reservation found"]);
}
