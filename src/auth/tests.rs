//! The guards against each other, message by message: what one seals, the
//! other opens, refuses or holds, with the exact datagrams in between.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::frame::{self, Boot, Frame, Inner, SealedHeader, Target};
use super::keys::{ClientKey, Key, Principal, ServerKeys};
use super::replay::{FRESHNESS, REANCHOR};
use super::{Accepted, ClientGuard, ClientInput, Notice, ServerGuard};
use crate::node::Destination;
use crate::wire::{
    self, Answer, Command, FrameKind, LogPosition, Message, PeerBody, PeerMessage, Rejected, Reply, Request,
};

const A: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 1), 5000);
const B: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 2), 5000);
const C: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 3), 5000);
const CLIENT: SocketAddrV4 = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 1, 1), 7000);

/// The instant every test's time starts from: a guard's clock starts when
/// it is made, so the guards and their tests must share one start.
fn epoch() -> Instant {
    static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    *EPOCH
}

fn keys() -> ServerKeys {
    ServerKeys::generate(std::array::from_fn(|i| i as u8))
}

fn boot(byte: u8) -> Boot {
    Boot([byte; 16])
}

fn server(addr: SocketAddrV4, byte: u8) -> ServerGuard {
    ServerGuard::new(Some(keys()), addr, boot(byte), u64::from(byte), epoch())
}

fn alice() -> Principal {
    Principal { name: "alice".into(), admin: false }
}

fn client_key(principal: Principal) -> ClientKey {
    ClientKey::issue(&keys().client_masters[0], principal).expect("a valid name")
}

fn peer(sender: u64, term: u64, body: PeerBody) -> Message {
    Message::Peer(PeerMessage {
        sender,
        incarnation: 1,
        explicit_id: true,
        joining: false,
        term,
        last: LogPosition::default(),
        commit: 0,
        catalog: 0,
        body,
    })
}

fn coordinator() -> Message {
    peer(300, 7, PeerBody::Coordinator)
}

fn request(number: u64) -> Request {
    Request { client: 9, request: number, command: Command::Rooms }
}

fn sealed(guard: &mut ServerGuard, dst: Destination, message: &Message) -> Vec<u8> {
    guard.seal(dst, message).expect("a server message seals")
}

/// Everything `guard` queued of its own (challenges, proofs, notices).
fn drain(guard: &mut ServerGuard) -> Vec<(Destination, Vec<u8>)> {
    std::iter::from_fn(|| guard.poll_transmit()).collect()
}

/// Delivers each of `from`'s queued datagrams to `to` (all unicast here).
fn deliver(now: Instant, from: (&mut ServerGuard, SocketAddrV4), to: &mut ServerGuard) -> Vec<Accepted> {
    let mut accepted = Vec::new();
    for (_, bytes) in drain(from.0) {
        accepted.extend(to.open(now, from.1, &bytes));
        accepted.extend(std::iter::from_fn(|| to.poll_released()));
    }
    accepted
}

/// A (at address A) sends `message` to the group; `b`, at `b_addr`, which
/// has not verified A, holds it, challenges A, and releases it on A's proof.
/// Returns what `b` released.
fn handshake(
    now: Instant,
    (a, a_addr): (&mut ServerGuard, SocketAddrV4),
    (b, b_addr): (&mut ServerGuard, SocketAddrV4),
    message: &Message,
) -> Vec<Accepted> {
    let bytes = sealed(a, Destination::Group, message);
    assert_eq!(b.open(now, a_addr, &bytes), None, "held until the sender proves it is live");
    let challenges = drain(b);
    assert_eq!(challenges.len(), 1, "one challenge");
    assert_eq!(challenges[0].0, Destination::Peer(a_addr), "to where the datagram came from");
    for (_, challenge) in challenges {
        assert_eq!(a.open(now, b_addr, &challenge), None, "a challenge is no message");
    }
    deliver(now, (a, a_addr), b)
}

fn first_contact(now: Instant, a: &mut ServerGuard, b: &mut ServerGuard, message: &Message) -> Vec<Accepted> {
    handshake(now, (a, A), (b, B), message)
}

fn accepted(from: SocketAddrV4, message: Message) -> Accepted {
    Accepted { from, message, client: None }
}

#[test]
fn a_sender_not_yet_verified_proves_it_is_live_and_its_held_datagram_is_released() {
    let now = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    assert_eq!(first_contact(now, &mut a, &mut b, &coordinator()), vec![accepted(A, coordinator())]);
    // From now on A's datagrams are taken at once.
    let heartbeat = peer(300, 7, PeerBody::HeartbeatAck);
    let bytes = sealed(&mut a, Destination::Peer(B), &heartbeat);
    assert_eq!(b.open(now, A, &bytes), Some(accepted(A, heartbeat)));
    assert!(drain(&mut b).is_empty(), "no second challenge");
    assert_eq!(b.status().rejected, Rejected::default());
}

/// Soak seed 414922: a restarted leader's challenge to a member was lost,
/// and the member sent nothing more, so its election answer stayed held and
/// the new leader never heard the member that held a confirmed write.
#[test]
fn a_lost_challenge_is_sent_again_on_the_timer_a_few_times() {
    let start = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    let bytes = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(start, A, &bytes), None, "held");
    assert_eq!(drain(&mut b).len(), 1, "the first challenge, lost");
    let mut now = start;
    for round in 1..=3 {
        now = b.next_rechallenge().expect("a held sender is challenged again");
        assert_eq!(now, start + Duration::from_millis(100) * round, "#{round}");
        b.rechallenge(now);
        assert_eq!(drain(&mut b).len(), 1, "#{round}: a challenge with a new cookie, lost too");
    }
    assert_eq!(b.next_rechallenge(), None, "no more than three on the timer");
    // The sender speaks again: a fourth challenge, which arrives.
    let again = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(now + Duration::from_millis(100), A, &again), None);
    let released = deliver(now + Duration::from_millis(100), (&mut b, B), &mut a);
    assert_eq!(released, vec![], "the challenge is no message for A");
    let released = deliver(now + Duration::from_millis(100), (&mut a, A), &mut b);
    assert_eq!(released.len(), 2, "both held datagrams: {released:?}");
}

#[test]
fn a_copy_is_refused_as_a_duplicate_and_never_acted_on() {
    let now = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    first_contact(now, &mut a, &mut b, &coordinator());
    let bytes = sealed(&mut a, Destination::Group, &coordinator());
    assert!(b.open(now, A, &bytes).is_some());
    for later in [Duration::ZERO, Duration::from_millis(10), FRESHNESS * 3] {
        assert_eq!(b.open(now + later, A, &bytes), None, "a copy {later:?} later");
    }
    let rejected = b.status().rejected;
    assert!(rejected.duplicate >= 1, "the copy that came at once is a duplicate: {rejected:?}");
    assert_eq!(rejected.duplicate + rejected.replay, 3, "{rejected:?}");
}

#[test]
fn a_datagram_captured_before_the_receiver_restarted_is_dropped_once_its_sender_proves() {
    let start = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    first_contact(start, &mut a, &mut b, &coordinator());
    let captured = sealed(&mut a, Destination::Group, &peer(300, 7, PeerBody::Coordinator));
    assert!(b.open(start, A, &captured).is_some());
    // A keeps running and sending; B restarts 5 s later and forgets A.
    let later = start + Duration::from_secs(5);
    a.note_time(later);
    for _ in 0..10 {
        sealed(&mut a, Destination::Group, &peer(300, 7, PeerBody::LeaderAlive { members: Vec::new() }));
    }
    let mut restarted = server(B, 3);
    assert_eq!(restarted.open(later, A, &captured), None, "held, and A is challenged");
    let challenge = drain(&mut restarted);
    a.open(later, B, &challenge[0].1);
    assert!(deliver(later, (&mut a, A), &mut restarted).is_empty(), "A's proof says the captured one is old");
    assert_eq!(restarted.status().rejected.replay, 1, "{:?}", restarted.status());
    // What A sends now is taken.
    let fresh = sealed(&mut a, Destination::Group, &coordinator());
    assert!(restarted.open(later, A, &fresh).is_some());
}

#[test]
fn a_boot_that_is_gone_never_proves_and_a_new_one_does_not_answer_for_it() {
    let now = epoch();
    let (mut old_a, mut b) = (server(A, 1), server(B, 2));
    let captured = sealed(&mut old_a, Destination::Group, &coordinator());
    // A restarted (a new boot at the same address) before B ever heard it.
    let mut new_a = server(A, 9);
    assert_eq!(b.open(now, A, &captured), None);
    let challenge = drain(&mut b);
    assert_eq!(new_a.open(now, B, &challenge[0].1), None);
    assert!(drain(&mut new_a).is_empty(), "the new run does not prove the old boot");
    assert_eq!(b.poll_released(), None);
}

#[test]
fn a_replayed_challenge_has_no_effect() {
    let now = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    let bytes = sealed(&mut a, Destination::Group, &coordinator());
    b.open(now, A, &bytes);
    let challenge = drain(&mut b).remove(0).1;
    a.open(now, B, &challenge);
    assert_eq!(drain(&mut a).len(), 1, "one proof");
    a.open(now, B, &challenge);
    assert!(drain(&mut a).is_empty(), "a challenge is answered once");
}

#[test]
fn a_datagram_sealed_for_one_server_is_refused_by_another() {
    let now = epoch();
    let (mut a, mut b, mut c) = (server(A, 1), server(B, 2), server(C, 3));
    handshake(now, (&mut a, A), (&mut c, C), &coordinator());
    let for_b = sealed(&mut a, Destination::Peer(B), &peer(300, 7, PeerBody::HeartbeatAck));
    assert_eq!(c.open(now, A, &for_b), None);
    assert_eq!(c.status().rejected.replay, 1);
    assert!(b.open(now, A, &for_b).is_none(), "B holds it until A proves");
}

#[test]
fn a_client_key_can_seal_requests_and_nothing_else() {
    let now = epoch();
    let key = client_key(alice());
    let mut b = server(B, 2);
    let header = |kind| SealedHeader {
        kind,
        key_id: key.master,
        boot: boot(7),
        counter: 1,
        clock: 0,
        target: Target::Group,
        client: Some(alice()),
    };
    // A server's message inside a client's request frame.
    let inside = frame::seal(&header(FrameKind::Request), &key.key, &[], &Inner::Message(&coordinator()));
    assert_eq!(b.open(now, CLIENT, &inside), None);
    assert_eq!(b.status().rejected.malformed, 1);
    // A server frame sealed with the client's key, under the master key's ID or the client's own.
    for key_id in [key.master, key.key.id()] {
        let as_server = SealedHeader { kind: FrameKind::Peer, key_id, client: None, ..header(FrameKind::Peer) };
        let bytes = frame::seal(&as_server, &key.key, &[], &Inner::Message(&coordinator()));
        assert_eq!(b.open(now, CLIENT, &bytes), None);
    }
    let rejected = b.status().rejected;
    assert_eq!((rejected.unknown_key, rejected.bad_mac), (2, 0), "no server key has those IDs: {rejected:?}");
    // And under the server key's ID, the client's key fails the tag.
    let as_server =
        SealedHeader { kind: FrameKind::Peer, key_id: keys().server[0].id(), client: None, ..header(FrameKind::Peer) };
    let bytes = frame::seal(&as_server, &key.key, &[], &Inner::Message(&coordinator()));
    assert_eq!(b.open(now, CLIENT, &bytes), None);
    assert_eq!(b.status().rejected.bad_mac, 1);
    assert_eq!(b.footprint(), [0, 0, 0, 0], "nothing held or remembered for them");
}

/// Only the leader answers anything but `status`: a server that does not
/// lead drops such a request unopened (no challenge, nothing counted), while
/// it still opens a `status` and still counts a request under an unknown key.
#[test]
fn a_server_that_does_not_lead_opens_only_what_every_server_answers() {
    let now = epoch();
    let mut client = ClientGuard::new(Some(client_key(alice())), boot(20));
    let status = Request { client: 9, request: 2, command: Command::Status };
    let (rooms, status) = (client.seal_request(now, &request(1)), client.seal_request(now, &status));
    let kind = |bytes: &[u8]| wire::frame_kind(bytes).expect("a frame");
    assert_eq!((kind(&rooms), kind(&status)), (FrameKind::LeaderRequest, FrameKind::Request));
    let mut follower = server(B, 2);
    follower.set_leading(false);
    assert_eq!(follower.open(now, CLIENT, &rooms), None);
    assert!(drain(&mut follower).is_empty(), "nothing to challenge: it was never opened");
    assert_eq!((follower.status().rejected, follower.footprint()), (Rejected::default(), [0, 0, 0, 0]));
    assert_eq!(follower.not_for_us(), 1);
    assert_eq!(follower.open(now, CLIENT, &status), None, "held for the client's proof");
    assert_eq!(drain(&mut follower).len(), 1, "a status is opened, and its client challenged");
    let mut stranger_key = client_key(alice());
    stranger_key.master = super::keys::KeyId([9; 4]);
    let mut stranger = ClientGuard::new(Some(stranger_key), boot(21));
    assert_eq!(follower.open(now, CLIENT, &stranger.seal_request(now, &request(1))), None);
    assert_eq!(follower.status().rejected.unknown_key, 1, "an unknown key is counted by every server");
    // The leader opens the same request (and challenges its client).
    let mut leader = server(A, 1);
    assert_eq!(leader.open(now, CLIENT, &rooms), None);
    assert_eq!(drain(&mut leader).len(), 1);
}

/// A client's request reaches server B; B challenges the client, the client
/// proves, and B releases the request. Returns the client guard.
fn client_contact(now: Instant, b: &mut ServerGuard, client: &mut ClientGuard, number: u64) -> Accepted {
    let bytes = client.seal_request(now, &request(number));
    assert_eq!(b.open(now, CLIENT, &bytes), None, "held until the client proves it is live");
    for (to, challenge) in drain(b) {
        assert_eq!(to, Destination::Peer(CLIENT));
        assert_eq!(client.open(now, B, &challenge), ClientInput::Nothing);
    }
    for (to, proof) in std::iter::from_fn(|| client.poll_transmit()) {
        assert_eq!(to, B, "the proof goes to the server that asked");
        assert_eq!(b.open(now, CLIENT, &proof), None);
    }
    b.poll_released().expect("the request, released by the proof")
}

fn rooms_reply(number: u64) -> Message {
    Message::Reply(Reply { request: number, server: 300, catalog: 1, answer: Answer::Rooms(vec!["SA318".into()]) })
}

#[test]
fn a_reply_is_good_only_for_the_client_process_that_asked() {
    let now = epoch();
    let mut b = server(B, 2);
    let mut first = ClientGuard::new(Some(client_key(alice())), boot(20));
    let request = client_contact(now, &mut b, &mut first, 1);
    assert_eq!(
        request,
        Accepted { from: CLIENT, message: Message::Request(super::tests::request(1)), client: Some(alice()) }
    );
    let reply = sealed(&mut b, Destination::Peer(CLIENT), &rooms_reply(1));
    let Message::Reply(want) = rooms_reply(1) else { unreachable!() };
    assert_eq!(first.open(now, B, &reply), ClientInput::Reply(want));
    assert_eq!(first.open(now, B, &reply), ClientInput::Nothing, "a copy");
    // Another process with the same key (a later run, at the same address) cannot use it.
    let mut later = ClientGuard::new(Some(client_key(alice())), boot(21));
    assert_eq!(later.open(now, B, &reply), ClientInput::Nothing);
    // Nor can another client's key: bob's guard does not even try it.
    let mut bob = ClientGuard::new(Some(client_key(Principal { name: "bob".into(), admin: false })), boot(20));
    assert_eq!(bob.open(now, B, &reply), ClientInput::Nothing);
}

/// The case the simulation's adversary found (seed 723227): the leader's
/// reply was lost while the client kept retrying, and a copy came 3.5 s
/// later. It answered the request, yet it is older than `MAX_AGE`.
#[test]
fn a_reply_the_client_missed_cannot_be_replayed_to_it_after_the_horizon() {
    let start = epoch();
    let mut b = server(B, 2);
    let mut client = ClientGuard::new(Some(client_key(alice())), boot(20));
    client_contact(start, &mut b, &mut client, 1);
    let lost = sealed(&mut b, Destination::Peer(CLIENT), &rooms_reply(1));
    // The client retries, and the server takes each retry, answering as it goes.
    let mut latest = None;
    for step in 1..=10 {
        let now = start + Duration::from_millis(400) * step;
        let retry = client.seal_request(now, &request(1));
        assert!(b.open(now, CLIENT, &retry).is_some(), "retry {step} taken");
        latest = Some((now, sealed(&mut b, Destination::Peer(CLIENT), &rooms_reply(1))));
    }
    let Some((now, fresh)) = latest else { unreachable!() };
    assert_eq!(client.open(now, B, &lost), ClientInput::Nothing, "a reply to a request datagram 4 s old");
    let Message::Reply(want) = rooms_reply(1) else { unreachable!() };
    assert_eq!(client.open(now, B, &fresh), ClientInput::Reply(want), "the reply to the latest retry");
}

/// A client's request held for a proof of life that came late: the reply
/// names the newest request datagram the proof released, not the first.
#[test]
fn a_reply_after_a_late_proof_names_the_newest_request_datagram() {
    let start = epoch();
    let mut b = server(B, 2);
    let mut client = ClientGuard::new(Some(client_key(alice())), boot(20));
    let first = client.seal_request(start, &request(1));
    assert_eq!(b.open(start, CLIENT, &first), None, "held");
    assert_eq!(drain(&mut b).len(), 1, "its challenge, lost");
    let later = start + Duration::from_millis(1900);
    let retry = client.seal_request(later, &request(1));
    assert_eq!(b.open(later, CLIENT, &retry), None, "held too, and challenged again");
    for (_, challenge) in drain(&mut b) {
        assert_eq!(client.open(later, B, &challenge), ClientInput::Nothing);
    }
    for (_, proof) in std::iter::from_fn(|| client.poll_transmit()) {
        assert_eq!(b.open(later, CLIENT, &proof), None);
    }
    assert_eq!(std::iter::from_fn(|| b.poll_released()).count(), 2, "both released");
    let answered = start + Duration::from_millis(2100);
    let reply = sealed(&mut b, Destination::Peer(CLIENT), &rooms_reply(1));
    let Message::Reply(want) = rooms_reply(1) else { unreachable!() };
    assert_eq!(client.open(answered, B, &reply), ClientInput::Reply(want), "the first datagram is 2.1 s old");
}

/// The three states of a server while a key rolls (docs/security.md §6).
#[test]
fn a_server_seals_with_its_first_key_and_opens_with_every_key() {
    let now = epoch();
    let (old, new) = (keys(), ServerKeys::generate(std::array::from_fn(|i| 100 + i as u8)));
    let with = |first: &ServerKeys, second: Option<&ServerKeys>| ServerKeys {
        server: std::iter::once(&first.server[0]).chain(second.map(|s| &s.server[0])).cloned().collect(),
        ..old.clone()
    };
    let mut before = ServerGuard::new(Some(with(&old, None)), B, boot(2), 2, now);
    let mut installed = ServerGuard::new(Some(with(&old, Some(&new))), A, boot(1), 1, now);
    let mut using = ServerGuard::new(Some(with(&new, Some(&old))), C, boot(3), 3, now);
    // A server that installed the new key still seals with the old one: both neighbours take it.
    assert_eq!(handshake(now, (&mut installed, A), (&mut before, B), &coordinator()).len(), 1);
    // One that uses the new key is understood by every server that installed it ...
    assert_eq!(handshake(now, (&mut using, C), (&mut installed, A), &coordinator()).len(), 1);
    // ... but not by one that has not: which is why `use` waits until every server installed it.
    let bytes = sealed(&mut using, Destination::Group, &coordinator());
    assert_eq!(before.open(now, C, &bytes), None);
    assert_eq!(before.status().rejected.unknown_key, 1);
    assert_eq!(installed.status().rejected, Rejected::default());
}

#[test]
fn a_missing_or_wrong_key_is_counted_and_answered_with_a_notice() {
    let now = epoch();
    let mut b = server(B, 2);
    let plain = wire::encode(&Message::Request(request(1)));
    assert_eq!(b.open(now, CLIENT, &plain), None);
    let notices = drain(&mut b);
    assert_eq!(notices, vec![(Destination::Peer(CLIENT), Notice::KeyRequired.encode())]);
    assert_eq!(b.open(now, CLIENT, &plain), None);
    assert!(drain(&mut b).is_empty(), "at most one notice per sender per second");
    let mut stranger =
        ClientGuard::new(Some(ClientKey::issue(&Key::from_bytes([1; 32]), alice()).expect("valid")), boot(4));
    assert_eq!(b.open(now, C, &stranger.seal_request(now, &request(1))), None);
    assert_eq!(drain(&mut b), vec![(Destination::Peer(C), Notice::UnknownKey.encode())]);
    let rejected = b.status().rejected;
    assert_eq!((rejected.unauthenticated, rejected.unknown_key), (2, 1), "{rejected:?}");
    // The client takes the notice as a hint, never as an answer.
    let mut unkeyed = ClientGuard::new(None, boot(5));
    assert_eq!(unkeyed.open(now, B, &Notice::KeyRequired.encode()), ClientInput::Notice(Notice::KeyRequired));
}

#[test]
fn a_revoked_client_is_refused() {
    let now = epoch();
    let mut revoked = keys();
    revoked.revoked.insert("alice".into());
    let mut b = ServerGuard::new(Some(revoked), B, boot(2), 2, now);
    let mut client = ClientGuard::new(Some(client_key(alice())), boot(20));
    assert_eq!(b.open(now, CLIENT, &client.seal_request(now, &request(1))), None);
    assert_eq!(b.status().rejected.unknown_key, 1);
    assert!(drain(&mut b).iter().all(|(_, bytes)| *bytes == Notice::UnknownKey.encode()), "no challenge");
}

#[test]
fn without_keys_plain_datagrams_pass_and_sealed_ones_are_refused() {
    let now = epoch();
    let mut open = ServerGuard::new(None, B, boot(2), 2, now);
    let plain = wire::encode(&coordinator());
    assert_eq!(open.open(now, A, &plain), Some(accepted(A, coordinator())));
    assert_eq!(open.seal(Destination::Group, &coordinator()), Some(plain));
    let bytes = sealed(&mut server(A, 1), Destination::Group, &coordinator());
    assert_eq!(open.open(now, A, &bytes), None);
    assert_eq!(open.status().rejected.unexpected_key, 1);
    assert_eq!(drain(&mut open), vec![(Destination::Peer(A), Notice::NoKeys.encode())]);
    assert!(matches!(frame::parse(&Notice::NoKeys.encode()), Ok(Frame::Notice(4))));
}

#[test]
fn a_lost_datagram_is_refused_once_its_senders_clock_says_it_is_older_than_the_horizon() {
    // Simulation seed 1035321 (before sender clocks): B heard A often enough,
    // once through a delayed old copy, and took a datagram it had missed 3.3 s
    // after A sealed it.
    let start = epoch();
    let at = |ms| start + Duration::from_millis(ms);
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    first_contact(start, &mut a, &mut b, &coordinator());
    let delayed = sealed(&mut a, Destination::Group, &coordinator());
    a.note_time(at(450));
    let taken = sealed(&mut a, Destination::Group, &coordinator());
    a.note_time(at(579));
    let missed = sealed(&mut a, Destination::Group, &coordinator());
    a.note_time(at(2000));
    let later = sealed(&mut a, Destination::Group, &coordinator());
    assert!(b.open(at(450), A, &taken).is_some());
    assert!(b.open(at(1303), A, &delayed).is_some(), "1.3 s late, still within the horizon");
    assert!(b.open(at(2000), A, &later).is_some());
    assert!(b.open(at(2576), A, &missed).is_some(), "missed, but under 2 s old with the drift margin: taken once");
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    first_contact(start, &mut a, &mut b, &coordinator());
    a.note_time(at(579));
    let missed = sealed(&mut a, Destination::Group, &coordinator());
    a.note_time(at(2000));
    let later = sealed(&mut a, Destination::Group, &coordinator());
    assert!(b.open(at(2000), A, &later).is_some());
    assert_eq!(b.open(at(2579), A, &missed), None, "2.0 s old by A's clock, and 2.6 ms for drift");
    assert_eq!(b.open(at(3926), A, &missed), None);
    assert_eq!(b.status().rejected.replay, 2, "{:?}", b.status());
    assert!(drain(&mut b).is_empty(), "an old one that is not A's newest draws no challenge");
}

#[test]
fn a_verified_sender_is_asked_for_its_clock_again_each_reanchor_while_its_datagrams_pass() {
    let start = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    first_contact(start, &mut a, &mut b, &coordinator());
    let later = start + REANCHOR;
    a.note_time(later);
    let bytes = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(later, A, &bytes), Some(accepted(A, coordinator())), "taken at once");
    let challenge = drain(&mut b);
    assert_eq!(challenge.len(), 1, "and A asked again");
    a.open(later, B, &challenge[0].1);
    assert!(deliver(later, (&mut a, A), &mut b).is_empty(), "the proof is no message");
    let next = later + Duration::from_secs(1);
    a.note_time(next);
    let bytes = sealed(&mut a, Destination::Group, &coordinator());
    assert!(b.open(next, A, &bytes).is_some());
    assert!(drain(&mut b).is_empty(), "anchored anew: no more challenges");
}

#[test]
fn a_fresh_datagram_that_a_late_challenge_makes_look_late_is_held_until_a_new_proof() {
    let start = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    let first = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(start, A, &first), None);
    let challenge = drain(&mut b);
    // The challenge takes 2.5 s to reach A (B was paused before it left, say).
    let slow = start + Duration::from_millis(2500);
    a.open(slow, B, &challenge[0].1);
    assert!(deliver(slow, (&mut a, A), &mut b).is_empty(), "the first datagram looks 2.5 s old");
    // By that anchor everything A sends looks 2.5 s old: held, and A asked again.
    let fresh = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(slow, A, &fresh), None);
    let again = drain(&mut b);
    assert_eq!(again.len(), 1);
    a.open(slow, B, &again[0].1);
    assert_eq!(deliver(slow, (&mut a, A), &mut b), vec![accepted(A, coordinator())], "released by the new proof");
    assert!(b.open(slow, A, &sealed(&mut a, Destination::Group, &coordinator())).is_some());
}

#[test]
fn a_proof_anchors_the_clock_to_the_challenge_it_answers_not_to_a_later_one() {
    let start = epoch();
    let at = |ms| start + Duration::from_millis(ms);
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    let first = sealed(&mut a, Destination::Group, &coordinator());
    let lost = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(start, A, &first), None);
    let challenge = drain(&mut b);
    a.open(start, B, &challenge[0].1); // A proves at once; the proof is slow to reach B
    let proof = drain(&mut a);
    a.note_time(at(1500));
    let second = sealed(&mut a, Destination::Group, &coordinator());
    assert_eq!(b.open(at(1500), A, &second), None);
    assert_eq!(drain(&mut b).len(), 1, "B asks again, 1.5 s after the first challenge");
    assert_eq!(b.open(at(1500), A, &proof[0].1), None, "the proof of the first challenge");
    assert_eq!(std::iter::from_fn(|| b.poll_released()).count(), 2, "both held datagrams");
    // Sealed at A's clock 0, so 2.5 s old at 2.5 s: anchored to the second
    // challenge, B would take it for 1 s old.
    assert_eq!(b.open(at(2500), A, &lost), None);
    assert_eq!(b.status().rejected.replay, 1, "{:?}", b.status());
}

#[test]
fn a_clients_proof_carries_its_clock_when_it_answers() {
    let start = epoch();
    let at = |ms| start + Duration::from_millis(ms);
    let mut client = ClientGuard::new(Some(client_key(alice())), boot(20));
    let mut b = server(B, 2);
    let first = client.seal_request(start, &request(1));
    // The request reaches B a second late; B challenges, the client proves at once.
    assert_eq!(b.open(at(1000), CLIENT, &first), None);
    let challenge = drain(&mut b);
    assert_eq!(client.open(at(1000), B, &challenge[0].1), ClientInput::Nothing);
    let proof = client.poll_transmit().expect("a proof");
    let lost = client.seal_request(at(1000), &request(2));
    let next = client.seal_request(at(1000), &request(3));
    assert!(b.open(at(1000), CLIENT, &proof.1).is_none());
    assert_eq!(std::iter::from_fn(|| b.poll_released()).count(), 1, "the first request");
    assert!(b.open(at(1000), CLIENT, &next).is_some());
    // Sealed at the client's clock 1000, 2.5 s before: a proof sealed with the
    // clock of the request before it (0) would make it look 1.5 s old.
    assert!(b.open(at(3500), CLIENT, &lost).is_none());
    assert_eq!(b.status().rejected.replay, 1, "{:?}", b.status());
}

#[test]
fn a_datagram_that_was_lost_is_held_once_its_clock_says_it_is_late_and_dropped_by_the_next_proof() {
    let start = epoch();
    let (mut a, mut b) = (server(A, 1), server(B, 2));
    first_contact(start, &mut a, &mut b, &coordinator());
    let lost = sealed(&mut a, Destination::Group, &coordinator());
    // It reaches B later than the horizon: late by A's clock, but newer than
    // anything B took from A (B's anchor might be loose): held, A asked again.
    let later = start + FRESHNESS + Duration::from_millis(1);
    assert_eq!(b.open(later, A, &lost), None, "held");
    let challenge = drain(&mut b);
    assert_eq!(challenge.len(), 1);
    // If A is alive, its new proof says `lost` is older than the horizon.
    a.open(later, B, &challenge[0].1);
    assert!(deliver(later, (&mut a, A), &mut b).is_empty());
    assert_eq!(b.status().rejected.replay, 1);
    let fresh = sealed(&mut a, Destination::Group, &coordinator());
    assert!(b.open(later, A, &fresh).is_some(), "A is verified again");
}
