//! A group with keys, attacked for real (issue 11): forged leader claims, a
//! forged reply racing the leader's, replayed and injected datagrams, a
//! server and clients with the wrong key, reservations that belong to
//! someone, and a key rolled through the group while a client writes.
//! Everything runs on loopback (`--interface 127.0.0.1 --ttl 0`).

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::*;
use roomcast::auth::file::read_client_key;
use roomcast::auth::frame::{self, Boot, Inner, SealedHeader, Target};
use roomcast::auth::{ClientKey, ServerKeys};
use roomcast::rooms::Catalog;
use roomcast::wire::{
    self, Answer, Entry, FrameKind, LogPosition, Message, Op, PeerBody, PeerMessage, Reply, Reservation, RoomVersion,
    Slot,
};

/// A server started with the group's key file (and `extra`).
fn keyed(group: &TestGroup, keys: &GroupKeys, id: u64, extra: &[&str]) -> ServerProcess {
    let key = keys.arg("server.key");
    let mut args: Vec<&str> = vec![&key[0], &key[1]];
    args.extend_from_slice(extra);
    ServerProcess::start_fast(group, id, &args)
}

/// Servers 100, 200 and 300 with the group's keys, once they follow 300.
fn keyed_trio(group: &TestGroup, keys: &GroupKeys) -> Vec<ServerProcess> {
    let servers: Vec<ServerProcess> = [100, 200, 300].into_iter().map(|id| keyed(group, keys, id, &[])).collect();
    wait_for_leader(&servers.iter().collect::<Vec<_>>(), 300, PATIENCE);
    servers
}

/// The client run with `key` (a file of `keys`) and `args`.
fn client(group: &TestGroup, keys: &GroupKeys, key: &str, args: &[&str]) -> ClientOutput {
    let key = keys.arg(key);
    let all: Vec<&str> = [key[0].as_str(), key[1].as_str()].into_iter().chain(args.iter().copied()).collect();
    run_client(group, &all)
}

/// `status --json` as alice until `done` holds for it.
fn status_as_alice(group: &TestGroup, keys: &GroupKeys, done: impl Fn(&ClientOutput) -> bool) -> ClientOutput {
    let key = keys.arg("alice.key");
    status_until(group, &["--json", &key[0], &key[1]], done)
}

/// The fields of one server's status in `out` (from `status --json`).
fn status_of(out: &ClientOutput, id: u64) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let servers = value["servers"].as_array().cloned().unwrap_or_default();
    let server = servers.into_iter().find(|s| s["from"]["server"] == id);
    server.unwrap_or_else(|| panic!("server {id} did not answer: {out}"))["status"].clone()
}

fn group_addr(group: &TestGroup) -> SocketAddrV4 {
    SocketAddrV4::new(group.group, group.port)
}

/// A made-up server with a huge ID and term claiming to lead.
fn forged_claim(body: PeerBody) -> Message {
    Message::Peer(PeerMessage {
        sender: 18_446_744_073_709_551_614,
        incarnation: 1,
        explicit_id: true,
        joining: false,
        term: 1_000_000,
        last: LogPosition::new(1_000_000, 1),
        commit: 1,
        catalog: Catalog::default().fingerprint(),
        body,
    })
}

/// `message` sealed as a client's request with `key`: what a host that
/// holds only a client key can make.
fn sealed_as_client(key: &ClientKey, kind: FrameKind, message: &Message) -> Vec<u8> {
    let header = SealedHeader {
        kind,
        key_id: key.master,
        boot: Boot([0x5a; 16]),
        counter: 1,
        clock: 0,
        target: Target::Group,
        client: (kind != FrameKind::Peer).then(|| key.principal.clone()),
    };
    frame::seal(&header, &key.key, &[], &Inner::Message(message))
}

/// `message` sealed as a server's with keys that are not the group's.
fn sealed_with_foreign_keys(message: &Message) -> Vec<u8> {
    let foreign = ServerKeys::generate(std::array::from_fn(|i| i as u8 ^ 0xa5));
    let key = &foreign.server[0];
    let header = SealedHeader {
        kind: FrameKind::Peer,
        key_id: key.id(),
        boot: Boot([0x66; 16]),
        counter: 1,
        clock: 0,
        target: Target::Group,
        client: None,
    };
    frame::seal(&header, key, &[], &Inner::Message(message))
}

/// What took a group without keys over: a `Coordinator` and a `LeaderAlive`
/// from server 18446744073709551614 with term 1,000,000, plain, sealed with
/// other keys, and sealed with a client key.
#[test]
fn forged_leader_claims_take_nothing_over() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    let servers = keyed_trio(&group, &keys);
    let alice = read_client_key(std::path::Path::new(&keys.path("alice.key"))).expect("alice's key");
    let claims = [forged_claim(PeerBody::Coordinator), forged_claim(PeerBody::LeaderAlive { members: Vec::new() })];
    let sender = loopback_sender();
    for _ in 0..5 {
        for claim in &claims {
            let forgeries = [
                wire::encode(claim),
                sealed_with_foreign_keys(claim),
                sealed_as_client(&alice, FrameKind::Request, claim),
                sealed_as_client(&alice, FrameKind::Peer, claim),
            ];
            for bytes in forgeries {
                sender.send_to(&bytes, group_addr(&group)).expect("send");
            }
        }
    }
    // Every server counted each kind of forgery, and none of them changed a thing.
    let counted = |out: &ClientOutput| {
        [100, 200, 300].iter().all(|&id| rejected_by(out, id).is_some_and(|r| r["unauthenticated"] == 10))
    };
    let out = status_as_alice(&group, &keys, counted);
    for id in [100, 200, 300] {
        let status = status_of(&out, id);
        assert_eq!(status["leader"], 300, "server {id}: {out}");
        assert!(status["term"].as_u64().is_some_and(|t| t < 100), "server {id} took the forged term: {out}");
        let r = &status["auth"]["rejected"];
        assert_eq!((r["unknown_key"].as_u64(), r["malformed"].as_u64()), (Some(20), Some(10)), "server {id}: {out}");
    }
    client(&group, &keys, "alice.key", &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    for server in &servers {
        assert!(!server.has_printed("18446744073709551614"), "{}", server.dump());
        assert_eq!(server.last_leader(), Some(300), "{}", server.dump());
    }
}

/// A reply forged for alice's request (plain, sealed with bob's key, and
/// naming alice but sealed with bob's key) reaches her client before the
/// leader's, which waits 100 ms: her client shows the leader's answer only.
#[test]
fn a_forged_reply_racing_the_leaders_is_never_taken() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    let servers: Vec<ServerProcess> =
        [100, 200, 300].into_iter().map(|id| keyed(&group, &keys, id, &["--service-delay", "100"])).collect();
    wait_for_leader(&servers.iter().collect::<Vec<_>>(), 300, PATIENCE);
    let server_addrs: Vec<SocketAddr> = servers.iter().flat_map(|s| s.udp_addrs()).map(SocketAddr::V4).collect();
    let bob = read_client_key(std::path::Path::new(&keys.path("bob.key"))).expect("bob's key");
    let tap = GroupTap::start(&group);
    let key = keys.arg("alice.key");
    let session = ClientSession::start_with(&group, &[&key[0], &key[1], "check", "ME4326"]);
    tap.wait_from(|from| !server_addrs.contains(from), 0, PATIENCE);
    let client_addr = tap.seen().into_iter().map(|(from, _)| from).find(|from| !server_addrs.contains(from));
    let client_addr = client_addr.expect("the client's request was seen");
    let forged_slot = Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() };
    let sender = loopback_sender();
    for request in 1..=3 {
        let reply = Reply {
            request,
            server: 300,
            catalog: Catalog::default().fingerprint(),
            answer: Answer::Reservations {
                slots: vec![Reservation { slot: forged_slot.clone(), owner: Some("mallory".into()) }],
                version: RoomVersion { epoch: 1, seq: 1 },
            },
        };
        // Shaped as a server's reply to alice's first request datagrams.
        let inner = Inner::Reply { answers: request, reply: &reply };
        let mut as_alice = SealedHeader {
            kind: FrameKind::Reply,
            key_id: bob.master,
            boot: Boot([0x77; 16]),
            counter: request,
            clock: 0,
            target: Target::Group,
            client: Some(bob.principal.clone()),
        };
        let as_bob = frame::seal(&as_alice, &bob.key, &[0; 16], &inner);
        as_alice.client = Some(roomcast::auth::Principal { name: "alice".into(), admin: false });
        let naming_alice = frame::seal(&as_alice, &bob.key, &[0; 16], &inner);
        for bytes in [wire::encode(&Message::Reply(reply)), as_bob, naming_alice] {
            sender.send_to(&bytes, client_addr).expect("send");
        }
    }
    let out = session.finish(CLIENT_DEADLINE);
    assert_eq!(out.stdout, "(From servers): No room reservation found\n", "{out}");
    assert_eq!(out.code(), 0, "{out}");
    assert!(!out.stderr.contains("more than one server"), "{out}");
}

/// A reserve captured off the network and replayed after its client
/// cancelled it, and the leader's own datagrams (its `Append` among them)
/// replayed, or rebuilt as a plain `Append` with a huge term: nothing changes.
#[test]
fn a_replayed_reserve_and_an_injected_append_change_nothing() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    let servers = keyed_trio(&group, &keys);
    let server_addrs: Vec<SocketAddr> = servers.iter().flat_map(|s| s.udp_addrs()).map(SocketAddr::V4).collect();
    let leader_addrs: Vec<SocketAddr> = servers[2].udp_addrs().into_iter().map(SocketAddr::V4).collect();
    let tap = GroupTap::start(&group);
    client(&group, &keys, "alice.key", &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    let captured = tap.seen();
    client(&group, &keys, "alice.key", &["cancel", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation cancelled"]);
    let from_client: Vec<Vec<u8>> =
        captured.iter().filter(|(from, _)| !server_addrs.contains(from)).map(|(_, b)| b.clone()).collect();
    let from_leader: Vec<Vec<u8>> =
        captured.iter().filter(|(from, _)| leader_addrs.contains(from)).map(|(_, b)| b.clone()).collect();
    assert!(!from_client.is_empty() && !from_leader.is_empty(), "the tap saw the reserve and the leader's Append");
    let slot = Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: "Monday".into() };
    let entry =
        Entry { position: LogPosition::new(1_000_000, 3), client: 9, request: 1, by: None, op: Op::Reserve(slot) };
    let injected = forged_claim(PeerBody::Append { prev: LogPosition::new(1_000_000, 2), entries: vec![entry] });
    let before = status_as_alice(&group, &keys, |out| out.code() == 0);
    let sender = loopback_sender();
    for _ in 0..20 {
        for bytes in from_client.iter().chain(&from_leader).chain([&wire::encode(&injected)]) {
            sender.send_to(bytes, group_addr(&group)).expect("send");
        }
    }
    // Replays are refused as copies, or as too old once their sender fell silent.
    let counted = |out: &ClientOutput| {
        rejected_by(out, 300).is_some_and(|r| {
            r["duplicate"].as_u64().unwrap_or(0) + r["replay"].as_u64().unwrap_or(0) >= 20 && r["unauthenticated"] == 20
        })
    };
    let after = status_as_alice(&group, &keys, counted);
    for id in [100, 200, 300] {
        let (was, now) = (status_of(&before, id), status_of(&after, id));
        for field in ["role", "leader", "term", "applied", "digest", "reservations"] {
            assert_eq!(was[field], now[field], "server {id}'s {field} changed: {before}\n{after}");
        }
    }
    let check = client(&group, &keys, "alice.key", &["check", "SA318"]);
    assert_eq!(check.stdout, "(From servers): No room reservation found\n", "{check}");
}

/// A server with another group's key file (and the highest ID) cannot join:
/// the group keeps its leader, and both sides say why in their logs.
#[test]
fn a_server_with_the_wrong_key_is_loud_and_takes_nothing_over() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    let servers = keyed_trio(&group, &keys);
    let other = keys.arg("other-server.key");
    let stranger = ServerProcess::start_fast(&group, 400, &[&other[0], &other[1]]);
    stranger.wait_for("refuses our datagrams, it says", PATIENCE);
    servers[2].wait_for("which this server does not hold", PATIENCE);
    let counted = |out: &ClientOutput| rejected_by(out, 300).is_some_and(|r| r["unknown_key"].as_u64() > Some(0));
    let out = status_as_alice(&group, &keys, counted);
    assert!(out.stdout.contains("\"server\":300") && !out.stdout.contains("\"server\":400"), "{out}");
    let write = client(&group, &keys, "alice.key", &["reserve", "SA412", "19:30-21:00", "Friday"]);
    write.assert_success(&["(From servers): Reservation confirmed"]);
    for server in &servers {
        assert_eq!(server.last_leader(), Some(300), "{}", server.dump());
    }
}

/// Clients whose key is missing, another group's, or not theirs to hold, and
/// key files others may read: each is told what is wrong and what to do,
/// without waiting out its timeout.
#[test]
fn a_client_with_no_key_or_a_wrong_key_is_told_why_at_once() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    let _servers = keyed_trio(&group, &keys);
    let patient = ["--timeout", "20000"];
    let no_key = run_client(&group, &[&patient[..], &["rooms"]].concat());
    let foreign = client(&group, &keys, "other-alice.key", &[&patient[..], &["rooms"]].concat());
    for (out, want) in [
        (&no_key, "the group requires a key and this client has none; run it with --key-file FILE"),
        (&foreign, "it does not accept this client's key"),
    ] {
        assert_eq!(out.code(), 2, "{out}");
        assert!(out.stderr.contains(want), "{out}");
        assert!(out.elapsed < Duration::from_secs(10), "waited out the timeout: {out}");
    }
    let servers_file = client(&group, &keys, "server.key", &["rooms"]);
    assert_eq!(servers_file.code(), 2, "{servers_file}");
    assert!(servers_file.stderr.contains("which a client must not hold"), "{servers_file}");
    std::fs::set_permissions(keys.path("bob.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let exposed = client(&group, &keys, "bob.key", &["rooms"]);
    assert_eq!(exposed.code(), 2, "{exposed}");
    assert!(exposed.stderr.contains(&format!("run `chmod 600 {}`", keys.path("bob.key"))), "{exposed}");
}

/// A server whose key file others may read refuses to start (exit 2, with
/// the fix); a client with a key is told when the servers run without one.
#[test]
fn key_files_others_may_read_and_a_key_where_there_is_none_are_refused() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    std::fs::set_permissions(keys.path("server.key"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut exposed = keyed(&group, &keys, 100, &[]);
    let status = exposed.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(2), "{}", exposed.dump());
    assert!(
        exposed.has_printed(&format!("(mode 640): run `chmod 600 {}`", keys.path("server.key"))),
        "{}",
        exposed.dump()
    );
    let open_group = start_leader(&group, 300);
    open_group.wait_for("this group runs without keys: anyone on the network can take it over", PATIENCE);
    let keyed_client = client(&group, &keys, "alice.key", &["--timeout", "20000", "rooms"]);
    assert_eq!(keyed_client.code(), 2, "{keyed_client}");
    assert!(keyed_client.stderr.contains("the servers run without keys and this client has one"), "{keyed_client}");
}

/// With keys, a reservation records its key's name: `check` shows it,
/// another user's cancel is refused with its own message and exit 1, and an
/// administrator's goes through.
#[test]
fn reservations_belong_to_the_key_that_made_them() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    let _servers = keyed_trio(&group, &keys);
    let slot = ["ME4326", "8:30-9:30", "Friday"];
    client(&group, &keys, "alice.key", &[&["reserve"][..], &slot].concat())
        .assert_success(&["(From servers): Reservation confirmed"]);
    client(&group, &keys, "bob.key", &["check", "ME4326"])
        .assert_success(&["(From servers): ME4326 8:30-9:30 Friday (alice)"]);
    let refused = client(&group, &keys, "bob.key", &[&["cancel"][..], &slot].concat());
    assert_eq!(refused.code(), 1, "{refused}");
    assert_eq!(
        refused.stdout,
        "(From servers): Cancellation refused: ME4326 8:30-9:30 Friday was reserved by alice: only alice or an \
         administrator may cancel it\n",
        "{refused}"
    );
    client(&group, &keys, "ops.key", &[&["cancel"][..], &slot].concat())
        .assert_success(&["(From servers): Reservation cancelled"]);
}

/// The three rounds of docs/security.md §6 (install, use, remove a new server
/// key), each a restart of one server at a time, while alice keeps writing:
/// no request fails.
#[test]
fn a_new_server_key_rolls_through_the_group_while_a_client_writes() {
    let (group, keys) = (TestGroup::new(), GroupKeys::new());
    keys.server_command(&["--generate-key", &keys.path("new.key")]);
    let old = std::fs::read_to_string(keys.path("server.key")).expect("old keys");
    let new = std::fs::read_to_string(keys.path("new.key")).expect("new keys");
    let server_keys = |text: &str| {
        let line = text.lines().find(|l| l.starts_with("server_keys = ")).expect("a server_keys line");
        line.trim_start_matches("server_keys = [").trim_end_matches(']').to_string()
    };
    let (old_key, new_key) = (server_keys(&old), server_keys(&new));
    let rounds = [format!("{old_key}, {new_key}"), format!("{new_key}, {old_key}"), new_key.clone()];
    let round_files: Vec<String> = rounds
        .iter()
        .enumerate()
        .map(|(i, keys_line)| {
            let path = keys.path(&format!("round-{i}.key"));
            let text = old.replace(&format!("server_keys = [{old_key}]"), &format!("server_keys = [{keys_line}]"));
            std::fs::write(&path, text).expect("write a key file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            path
        })
        .collect();
    let mut servers = keyed_trio(&group, &keys);
    let (stop, results) = (AtomicBool::new(false), Mutex::new(Vec::new()));
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let slot = [ROOMS[n % ROOMS.len()], TIMESLOTS[(n / ROOMS.len()) % TIMESLOTS.len()], "Monday"];
                for word in ["reserve", "cancel"] {
                    let out = client(&group, &keys, "alice.key", &[&[word][..], &slot].concat());
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((word, out));
                }
                n += 1;
            }
        });
        for file in &round_files {
            for server in servers.iter_mut() {
                let id = server.id();
                server.signal("TERM");
                server.wait_exit(PATIENCE);
                *server = ServerProcess::start_fast(&group, id, &["--key-file", file]);
                let settled = |out: &ClientOutput| {
                    out.stdout.contains("3 servers answered; leader 300; every table identical")
                        && !out.stdout.contains("syncing")
                };
                let key = keys.arg("alice.key");
                status_until(&group, &[&key[0], &key[1]], settled);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let failed: Vec<String> =
        results.iter().filter(|(_, out)| out.code() != 0).map(|(w, out)| format!("{w}: {out}")).collect();
    assert!(results.len() >= 10, "the client wrote only {} times", results.len());
    assert!(
        failed.is_empty(),
        "{} of {} writes failed while the key rolled:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
    println!(
        "rolled a new server key through 3 servers (9 restarts) while alice made {} writes; none failed",
        results.len()
    );
}
