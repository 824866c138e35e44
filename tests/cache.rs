//! Client-side caching: lists come from the cache after the first answer, and
//! `check` is revalidated with the leader so it is never stale.

mod common;

use common::*;

/// Client A has `check SA318` cached; client B reserves SA318; A's next check
/// shows B's reservation, marked as coming from the servers.
#[test]
fn cached_check_sees_another_clients_reservation() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    let mut a = ClientSession::start(&group);
    let mut b = ClientSession::start(&group);
    a.read_until(PROMPT, PATIENCE);
    b.read_until(PROMPT, PATIENCE);

    assert_eq!(a.command("check SA318"), "(From servers): No room reservation found\n", "{}", a.dump());
    assert_eq!(a.command("check SA318"), "(From cache): No room reservation found\n", "{}", a.dump());
    assert_eq!(b.command("reserve SA318 8:30-9:30 Monday"), "(From servers): Reservation confirmed\n", "{}", b.dump());
    assert_eq!(a.command("check SA318"), "(From servers): SA318 8:30-9:30 Monday\n", "{}", a.dump());
    assert_eq!(a.command("check SA318"), "(From cache): SA318 8:30-9:30 Monday\n", "{}", a.dump());

    // B cancels: A sees the room free again.
    assert_eq!(b.command("cancel SA318 8:30-9:30 Monday"), "(From servers): Reservation cancelled\n", "{}", b.dump());
    assert_eq!(a.command("check SA318"), "(From servers): No room reservation found\n", "{}", a.dump());

    for mut client in [a, b] {
        client.send("quit");
        client.read_until("bye\n", PATIENCE);
        let out = client.finish(CLIENT_DEADLINE);
        assert_eq!(out.code(), 0, "{out}");
    }
}

/// Repeating a question whose answer has not changed is answered from the
/// cache: lists always, `check` when the room's reservations are unchanged
/// (a change to another room does not count).
#[test]
fn unchanged_check_is_answered_from_cache() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    let mut a = ClientSession::start(&group);
    a.read_until(PROMPT, PATIENCE);
    assert_eq!(
        a.command("reserve ME4326 9:30-10:30 Tuesday"),
        "(From servers): Reservation confirmed\n",
        "{}",
        a.dump()
    );
    assert_eq!(a.command("check ME4326"), "(From servers): ME4326 9:30-10:30 Tuesday\n", "{}", a.dump());
    assert_eq!(a.command("check ME4326"), "(From cache): ME4326 9:30-10:30 Tuesday\n", "{}", a.dump());

    // Another client changes a different room: ME4326 is still unchanged.
    run_client(&group, &["reserve", "SA412", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    assert_eq!(a.command("check ME4326"), "(From cache): ME4326 9:30-10:30 Tuesday\n", "{}", a.dump());

    assert_eq!(a.command("timeslots"), answer_text(FROM_SERVERS, &TIMESLOTS), "{}", a.dump());
    assert_eq!(a.command("timeslots"), answer_text(FROM_CACHE, &TIMESLOTS), "{}", a.dump());

    a.send("quit");
    a.read_until("bye\n", PATIENCE);
    assert_eq!(a.finish(CLIENT_DEADLINE).code(), 0);
}
