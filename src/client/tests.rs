//! The client core driven with a fake clock and hand-built replies.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::*;
use crate::wire::{self, Message, Reservation, RoomVersion, Slot, WriteOutcome};

const CLIENT: u64 = 77;
const CATALOG: u64 = 0xCA7;
const VERSION: RoomVersion = RoomVersion { epoch: 5, seq: 8 };

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addr(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

fn slot() -> Slot {
    Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() }
}

fn check(room: &str) -> Command {
    Command::Check { room: room.into(), cached: None }
}

fn rooms() -> Answer {
    Answer::Rooms(vec!["SA318".into(), "ME4326".into()])
}

fn booked() -> Answer {
    Answer::Reservations { slots: vec![Reservation { slot: slot(), owner: None }], version: VERSION }
}

fn reply(request: u64, server: u64, catalog: u64, answer: Answer) -> Vec<u8> {
    wire::encode(&Message::Reply(Reply { request, server, catalog, answer }))
}

/// The request the client queued, decoded.
fn sent(client: &mut Client) -> Option<Request> {
    let (dst, bytes) = client.poll_transmit()?;
    assert_eq!(dst, Destination::Group, "requests go to the group");
    match wire::decode(&bytes) {
        Ok(Message::Request(request)) => Some(request),
        other => panic!("the client sent {other:?}"),
    }
}

fn request(request: u64, command: Command) -> Option<Request> {
    Some(Request { client: CLIENT, request, command })
}

fn answered(request: u64, source: Source, command: Command, answer: Answer) -> Option<ClientEvent> {
    Some(ClientEvent::Answered { request, from: (1, addr(9001)), source, command, answer })
}

/// A client at time `t0` that has asked for `command` and had it answered by
/// server 1 at port 9001 under [`CATALOG`].
fn after(t0: Instant, command: Command, answer: Answer) -> Client {
    let mut client = Client::new(CLIENT, ClientConfig::default());
    let Ok(Submitted::Sent { request }) = client.submit(t0, command) else { panic!("not sent") };
    assert!(client.handle_datagram(t0, addr(9001), &reply(request, 1, CATALOG, answer)).is_some());
    assert_eq!(client.poll_transmit(), None);
    client
}

#[test]
fn retries_resend_the_same_request_every_interval() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Days), Ok(Submitted::Sent { request: 1 }));
    assert_eq!(sent(&mut client), request(1, Command::Days));
    assert_eq!(client.poll_timeout(), Some(t0 + ms(250)));
    assert_eq!(client.handle_timeout(t0 + ms(249)), None);
    assert_eq!(sent(&mut client), None);
    assert_eq!(client.handle_timeout(t0 + ms(250)), None);
    assert_eq!(sent(&mut client), request(1, Command::Days));
    assert_eq!(client.poll_timeout(), Some(t0 + ms(500)));
}

#[test]
fn gives_up_after_the_timeout_and_numbers_the_next_request_on() {
    let t0 = Instant::now();
    let config = ClientConfig { retry_interval: ms(300), timeout: ms(1000) };
    let mut client = Client::new(CLIENT, config);
    assert_eq!(client.submit(t0, Command::Days), Ok(Submitted::Sent { request: 1 }));
    for at in [300, 600, 900] {
        assert_eq!(client.handle_timeout(t0 + ms(at)), None);
        assert_eq!(sent(&mut client), request(1, Command::Days), "retry at {at} ms");
    }
    assert_eq!(client.poll_timeout(), Some(t0 + ms(1000)));
    let event = client.handle_timeout(t0 + ms(1000));
    assert_eq!(event, Some(ClientEvent::TimedOut { request: 1, waited: ms(1000) }));
    assert_eq!((client.poll_timeout(), sent(&mut client)), (None, None));
    assert_eq!(client.submit(t0 + ms(1001), Command::Days), Ok(Submitted::Sent { request: 2 }));
}

#[test]
fn an_abandoned_request_is_not_retried_and_its_late_answer_is_ignored() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Reserve(slot())), Ok(Submitted::Sent { request: 1 }));
    assert_eq!(client.abandon(), Some(1));
    assert_eq!((client.poll_timeout(), sent(&mut client), client.abandon()), (None, None, None));
    let late = reply(1, 1, CATALOG, Answer::Write(WriteOutcome::Reserved));
    assert_eq!(client.handle_datagram(t0 + ms(10), addr(9001), &late), None);
    assert_eq!(client.submit(t0 + ms(20), Command::Days), Ok(Submitted::Sent { request: 2 }));
}

#[test]
fn one_request_at_a_time() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Days), Ok(Submitted::Sent { request: 1 }));
    assert_eq!(client.submit(t0, Command::Rooms), Err(Busy { request: 1 }));
}

#[test]
fn rooms_come_from_the_cache_the_second_time() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Rooms), Ok(Submitted::Sent { request: 1 }));
    assert_eq!(sent(&mut client), request(1, Command::Rooms));
    let event = client.handle_datagram(t0, addr(9001), &reply(1, 1, CATALOG, rooms()));
    assert_eq!(event, answered(1, Source::Servers, Command::Rooms, rooms()));
    assert_eq!(client.poll_timeout(), None);
    assert_eq!(client.submit(t0, Command::Rooms), Ok(Submitted::FromCache(rooms())));
    assert_eq!(sent(&mut client), None);
}

#[test]
fn a_cached_check_is_revalidated_and_not_modified_answers_from_the_cache() {
    let t0 = Instant::now();
    let mut client = after(t0, check("ME4326"), booked());
    assert_eq!(client.submit(t0, check("me4326")), Ok(Submitted::Sent { request: 2 }));
    let revalidate = Command::Check { room: "me4326".into(), cached: Some(VERSION) };
    assert_eq!(sent(&mut client), request(2, revalidate.clone()));
    let event = client.handle_datagram(t0, addr(9001), &reply(2, 1, CATALOG, Answer::NotModified));
    assert_eq!(event, answered(2, Source::Cache, revalidate, booked()));
}

#[test]
fn a_newer_list_replaces_the_cached_one() {
    let t0 = Instant::now();
    let mut client = after(t0, check("ME4326"), booked());
    let newer = Answer::Reservations { slots: vec![], version: RoomVersion { epoch: 5, seq: 9 } };
    assert_eq!(client.submit(t0, check("ME4326")), Ok(Submitted::Sent { request: 2 }));
    let event = client.handle_datagram(t0, addr(9001), &reply(2, 1, CATALOG, newer.clone()));
    let revalidate = Command::Check { room: "ME4326".into(), cached: Some(VERSION) };
    assert_eq!(event, answered(2, Source::Servers, revalidate, newer));
    assert_eq!(client.submit(t0, check("ME4326")), Ok(Submitted::Sent { request: 3 }));
    let cached = Some(RoomVersion { epoch: 5, seq: 9 });
    assert_eq!(sent(&mut client), request(3, Command::Check { room: "ME4326".into(), cached }));
}

#[test]
fn a_write_drops_the_rooms_cached_check_whatever_its_outcome() {
    let t0 = Instant::now();
    let mut client = after(t0, check("ME4326"), booked());
    assert_eq!(client.submit(t0, Command::Cancel(slot())), Ok(Submitted::Sent { request: 2 }));
    let refused = Answer::Write(WriteOutcome::Refused(wire::Refusal::UnknownDay("Friday".into())));
    assert!(client.handle_datagram(t0, addr(9001), &reply(2, 1, CATALOG, refused)).is_some());
    assert_eq!(client.submit(t0, check("ME4326")), Ok(Submitted::Sent { request: 3 }));
    assert_eq!(sent(&mut client), request(3, check("ME4326")));
}

#[test]
fn another_catalog_empties_the_cache() {
    let t0 = Instant::now();
    let mut client = after(t0, Command::Rooms, rooms());
    assert_eq!(client.submit(t0, check("ME4326")), Ok(Submitted::Sent { request: 2 }));
    assert!(client.handle_datagram(t0, addr(9001), &reply(2, 1, CATALOG + 1, booked())).is_some());
    assert_eq!(client.submit(t0, Command::Rooms), Ok(Submitted::Sent { request: 3 }));
}

#[test]
fn not_modified_without_a_cached_list_asks_again_in_full() {
    let t0 = Instant::now();
    let mut client = after(t0, check("ME4326"), booked());
    assert_eq!(client.submit(t0, check("ME4326")), Ok(Submitted::Sent { request: 2 }));
    let _ = sent(&mut client);
    // The catalog changed, so the cache holds nothing to confirm.
    let event = client.handle_datagram(t0 + ms(10), addr(9001), &reply(2, 1, CATALOG + 1, Answer::NotModified));
    assert_eq!(event, None);
    assert_eq!(sent(&mut client), request(3, check("ME4326")));
    // The retry keeps the original deadline.
    assert_eq!(client.handle_timeout(t0 + ms(5000)), Some(ClientEvent::TimedOut { request: 3, waited: ms(5000) }));
}

#[test]
fn not_modified_to_a_full_request_is_not_an_answer() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, check("ME4326")), Ok(Submitted::Sent { request: 1 }));
    let _ = sent(&mut client);
    assert_eq!(client.handle_datagram(t0, addr(9001), &reply(1, 1, CATALOG, Answer::NotModified)), None);
    assert_eq!(sent(&mut client), None);
    assert_eq!(client.poll_timeout(), Some(t0 + ms(250)));
}

#[test]
fn a_second_server_answering_is_reported() {
    let t0 = Instant::now();
    let mut client = after(t0, Command::Rooms, rooms());
    let event = client.handle_datagram(t0, addr(9002), &reply(1, 2, CATALOG, rooms()));
    let want = ClientEvent::DuplicateReply { request: 1, first: (1, addr(9001)), second: (2, addr(9002)) };
    assert_eq!(event, Some(want));
}

#[test]
fn a_second_server_is_reported_even_after_the_next_request() {
    let t0 = Instant::now();
    let mut client = after(t0, Command::Rooms, rooms());
    assert_eq!(client.submit(t0, Command::Days), Ok(Submitted::Sent { request: 2 }));
    let event = client.handle_datagram(t0, addr(9002), &reply(1, 2, CATALOG, rooms()));
    let want = ClientEvent::DuplicateReply { request: 1, first: (1, addr(9001)), second: (2, addr(9002)) };
    assert_eq!(event, Some(want));
    // The late reply neither answers nor disturbs the pending request.
    assert_eq!(client.poll_timeout(), Some(t0 + ms(250)));
}

#[test]
fn the_same_server_answering_a_retransmission_is_not_an_error() {
    let t0 = Instant::now();
    let mut client = after(t0, Command::Rooms, rooms());
    assert_eq!(client.handle_datagram(t0, addr(9001), &reply(1, 1, CATALOG, rooms())), None);
    assert_eq!(client.submit(t0, Command::Rooms), Ok(Submitted::FromCache(rooms())));
}

#[test]
fn garbage_and_strangers_are_ignored() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Days), Ok(Submitted::Sent { request: 1 }));
    let _ = sent(&mut client);
    let own_request = wire::encode(&Message::Request(Request { client: CLIENT, request: 1, command: Command::Days }));
    let mut truncated = reply(1, 1, CATALOG, rooms());
    truncated.pop();
    let inputs: [&[u8]; 6] = [b"", b"RC", b"hello world", &[0xFF; 64], &own_request, &truncated];
    for (i, bytes) in inputs.into_iter().enumerate() {
        assert_eq!(client.handle_datagram(t0, addr(9001), bytes), None, "#{i}");
    }
    assert_eq!(client.handle_datagram(t0, addr(9001), &reply(7, 1, CATALOG, rooms())), None);
    assert_eq!(client.poll_timeout(), Some(t0 + ms(250)));
    assert_eq!(sent(&mut client), None);
}

fn server_status(leader: u64) -> crate::wire::ServerStatus {
    crate::wire::ServerStatus {
        role: crate::wire::StatusRole::Follower,
        leader: Some(leader),
        term: 3,
        applied: 9,
        commit: 9,
        last: 9,
        reservations: 4,
        digest: 0xfeed,
        leader_heard_ms: Some(40),
        heartbeat_interval_ms: 200,
        heartbeat_timeout_ms: 1000,
        min_replicas: 1,
        conflicts_total: 0,
        conflicts: Vec::new(),
        auth: Default::default(),
    }
}

#[test]
fn status_collects_every_server_once_until_its_window_closes() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Status), Ok(Submitted::Sent { request: 1 }));
    let answer = |server| reply(1, server, CATALOG, Answer::Status(Box::new(server_status(300))));
    for (server, port) in [(300, 9003), (100, 9001), (300, 9003)] {
        assert_eq!(client.handle_datagram(t0 + ms(10), addr(port), &answer(server)), None, "no duplicate error");
    }
    let window = ClientConfig::default().retry_interval * STATUS_WINDOW_RETRIES;
    assert_eq!(client.handle_timeout(t0 + ms(250)), None);
    assert_eq!(sent(&mut client), request(1, Command::Status), "retried within the window");
    let servers = vec![((300, addr(9003)), server_status(300)), ((100, addr(9001)), server_status(300))];
    assert_eq!(client.handle_timeout(t0 + window), Some(ClientEvent::Statuses { request: 1, servers }));
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn status_that_nobody_answers_times_out_at_the_end_of_its_window() {
    let t0 = Instant::now();
    let mut client = Client::new(CLIENT, ClientConfig::default());
    assert_eq!(client.submit(t0, Command::Status), Ok(Submitted::Sent { request: 1 }));
    let window = ClientConfig::default().retry_interval * STATUS_WINDOW_RETRIES;
    assert_eq!(client.poll_timeout(), Some(t0 + ms(250)));
    assert_eq!(client.handle_timeout(t0 + window), Some(ClientEvent::TimedOut { request: 1, waited: window }));
}
