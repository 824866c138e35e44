//! Writes the seed inputs of the fuzz targets (`fuzz/README.md`):
//! `cargo run --example fuzz_seeds -- fuzz/seeds`. Each seed is a real
//! input built with roomcast's own encoders, so that the fuzzer starts from
//! datagrams and files that roomcast writes: sealed frames whose tags are
//! right, data files whose checksums are right. Nothing is sent: the guards
//! here are sans-IO and addresses are values.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Instant;

use roomcast::auth::frame::Boot;
use roomcast::auth::keys::{format_client_key, format_server_keys};
use roomcast::auth::{ClientGuard, ClientKey, Key, Notice, Principal, ServerGuard};
use roomcast::fuzzing::{self, CLIENT_BOOT, MASTER_KEY, PEER_BOOT, sealed_step};
use roomcast::node::{Destination, ReplicatedLog};
use roomcast::rooms::Catalog;
use roomcast::storage::Storage;
use roomcast::wire::{
    self, Answer, Command, Entry, LogPosition, Message, Op, PeerBody, PeerMessage, Reply, Request, RoomVersion, Slot,
};

fn slot(day: &str) -> Slot {
    Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: day.into() }
}

fn alice() -> Principal {
    Principal { name: "alice".into(), admin: false }
}

fn entry(seq: u64, op: Op) -> Entry {
    Entry { position: LogPosition { term: 2, seq, leader: 9 }, client: 7, request: seq, by: Some(alice()), op }
}

fn peer(body: PeerBody) -> Message {
    Message::Peer(PeerMessage {
        sender: 41220,
        incarnation: 5,
        explicit_id: false,
        joining: false,
        term: 2,
        last: LogPosition::new(2, 9),
        commit: 8,
        catalog: Catalog::default().fingerprint(),
        body,
    })
}

fn messages() -> Vec<(&'static str, Message)> {
    let request = |command| Message::Request(Request { client: 7, request: 1, command });
    let reply = |answer| Message::Reply(Reply { request: 1, server: 45000, catalog: 99, answer });
    let member = "127.0.0.9:11111".parse::<SocketAddrV4>().expect("an address");
    let merged = Op::Merged { origin: LogPosition::new(1, 3), since: 2, write: Box::new(Op::Reserve(slot("Friday"))) };
    vec![
        ("request_rooms", request(Command::Rooms)),
        ("request_check", request(Command::Check { room: "ME4326".into(), cached: None })),
        ("request_reserve", request(Command::Reserve(slot("Friday")))),
        ("request_cancel", request(Command::Cancel(slot("Monday")))),
        ("request_status", request(Command::Status)),
        ("reply_rooms", reply(Answer::Rooms(Catalog::default().rooms))),
        (
            "reply_reservations",
            reply(Answer::Reservations {
                slots: vec![wire::Reservation { slot: slot("Friday"), owner: Some("alice".into()) }],
                version: RoomVersion { epoch: 3, seq: 4 },
            }),
        ),
        ("peer_election", peer(PeerBody::Election { initiator: 0 })),
        ("peer_coordinator", peer(PeerBody::Coordinator)),
        ("peer_leader_alive", peer(PeerBody::LeaderAlive { members: vec![(45000, member)] })),
        (
            "peer_append",
            peer(PeerBody::Append {
                prev: LogPosition::new(2, 8),
                entries: vec![entry(9, Op::Reserve(slot("Friday"))), entry(10, merged)],
            }),
        ),
        (
            "peer_snapshot_chunk",
            peer(PeerBody::SnapshotChunk { last: LogPosition::new(2, 9), offset: 0, total: 4, data: vec![1, 2, 3, 4] }),
        ),
        (
            "peer_hand_over",
            peer(PeerBody::HandOver { members: vec![(45000, member, LogPosition::new(2, 9))], leaving: true }),
        ),
    ]
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let folder = dir.join(target);
    fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    fs::write(folder.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn wire_seeds(dir: &Path) {
    for (name, message) in messages() {
        write(dir, "wire_decode", name, &wire::encode(&message));
    }
    write(dir, "wire_decode", "notice", &Notice::KeyRequired.encode());
}

/// The harness client's requests, and replies to it from a second server.
fn sealed_seeds(dir: &Path) {
    let now = Instant::now();
    let mut client = ClientGuard::new(Some(fuzzing::client_key()), CLIENT_BOOT);
    let request = Request { client: 7, request: 1, command: Command::Reserve(slot("Friday")) };
    // The harness's client has sealed counters 1 to
    // `fuzzing::CLIENT_REQUESTS_SENT` when an input starts, and proves its boot
    // with counters after those: the seeds' requests use counters 5 and up,
    // within that range, so that replies to them open.
    for _ in 0..4 {
        let _ = client.seal_request(now, &request);
    }
    let sealed_request = client.seal_request(now, &request);
    // A request from the client: held, challenged, proved, released.
    write(dir, "sealed", "request", &sealed_step(0, &sealed_request));
    let mut other = ServerGuard::new(Some(fuzzing::server_keys()), fuzzing::sender(1), PEER_BOOT, 1, now);
    for _ in 0..4 {
        let _ = other.seal(Destination::Group, &peer(PeerBody::Coordinator));
    }
    let client_addr = fuzzing::sender(0);
    let _ = other.open(now, client_addr, &sealed_request); // remembers the client's key, to seal replies
    let reply = Message::Reply(Reply { request: 1, server: 45000, catalog: 1, answer: Answer::NotModified });
    let sealed_reply = other.seal(Destination::Peer(client_addr), &reply).expect("the client's key is known");
    write(dir, "sealed", "reply", &sealed_step(1, &sealed_reply));
    let tagless = |bytes: &[u8]| fuzzing::unseal(bytes).expect("sealed with the harness's keys");
    write(dir, "sealed", "request_resealed", &sealed_step(2, &tagless(&sealed_request)));
    write(dir, "sealed", "reply_resealed", &sealed_step(3, &tagless(&sealed_reply)));
    let again = client.seal_request(now, &request);
    let sequence =
        [sealed_step(0, &sealed_request), sealed_step(1, &sealed_reply), sealed_step(0, &sealed_request)].concat();
    write(dir, "sealed", "request_reply_copy", &[sequence, sealed_step(0b0110_0000, &again)].concat());
    for (name, message) in messages().into_iter().filter(|(name, _)| name.starts_with("peer")) {
        let sealed = other.seal(Destination::Group, &message).expect("keyed");
        write(dir, "sealed", name, &sealed_step(1 << 2, &sealed));
        write(dir, "sealed", &format!("{name}_resealed"), &sealed_step(2 | 1 << 2, &tagless(&sealed)));
        if name == "peer_coordinator" {
            write(dir, "sealed", "plain_coordinator", &sealed_step(1 << 2, &wire::encode(&message)));
        }
    }
    let mallory = ClientKey::issue(&Key::from_bytes(MASTER_KEY), Principal { name: "mallory".into(), admin: true });
    let mut mallory = ClientGuard::new(Some(mallory.expect("a valid name")), Boot([0x77; 16]));
    write(dir, "sealed", "revoked_request", &sealed_step(3 << 2, &mallory.seal_request(now, &request)));
    write(dir, "sealed", "notice", &sealed_step(0, &Notice::BadKey.encode()));
}

/// A data directory written by Storage: a log, then a snapshot and a log after it.
fn storage_seeds(dir: &Path) {
    let data = std::env::temp_dir().join(format!("roomcast-fuzz-seeds-{}", std::process::id()));
    let catalog = Catalog::default();
    let (mut storage, mut log) = Storage::open(&data, &catalog).expect("a fresh data directory");
    log.push(Entry { position: LogPosition::new(2, 1), client: 0, request: 0, by: None, op: Op::Genesis { epoch: 5 } });
    log.push(entry(2, Op::Reserve(slot("Friday"))));
    log.push(entry(3, Op::Cancel(slot("Friday"))));
    log.push(entry(4, Op::Reserve(slot("Monday"))));
    log.commit_to(3, &catalog);
    storage.save(&log, log.clone().take_changes().expect("changes")).expect("save");
    let merged = Op::Merged { origin: LogPosition::new(1, 3), since: 2, write: Box::new(Op::Reserve(slot("Tuesday"))) };
    log.push(entry(5, merged));
    log.commit_to(5, &catalog);
    storage.save(&log, log.clone().take_changes().expect("changes")).expect("save");
    let log_file = fs::read(data.join("log")).expect("the log");
    write(dir, "log", "log", &[&[0][..], &log_file].concat());
    write(dir, "log", "log_checksummed", &[&[1][..], &log_file].concat());
    let mut snapshotted = ReplicatedLog::default();
    snapshotted.install(log.table().clone());
    storage.save(&snapshotted, snapshotted.clone().take_changes().expect("a snapshot")).expect("save");
    let snapshot = fs::read(data.join("snapshot")).expect("the snapshot");
    write(dir, "snapshot", "snapshot", &[&[0][..], &snapshot].concat());
    write(dir, "snapshot", "snapshot_body", &[&[1][..], &snapshot[20..]].concat());
    write(dir, "log", "log_after_snapshot", &[&[1][..], &fs::read(data.join("log")).expect("the log")].concat());
    fs::remove_dir_all(&data).expect("remove the temporary data directory");
}

fn text_seeds(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["roomcast.toml", "catalog.toml"] {
        write(dir, "config", name, &fs::read(root.join("config").join(name)).expect("a shipped file"));
    }
    let inline = "group = \"224.1.1.1\"\nport = 11111\nid = 45000\npeers = [\"127.0.0.3:11111\"]\n\
                  heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 500\nmin_replicas = 2\n\
                  rooms = [\"LAB\"]\ntimeslots = [\"9-10\"]\ndays = [\"Sat\"]\nkey_file = \"server.key\"\n\
                  data_dir = \"state\"\nlog_level = \"debug\"\non_leader = \"true\"\n";
    write(dir, "config", "inline.toml", inline.as_bytes());
    let mut keys = fuzzing::server_keys();
    keys.revoked.insert("bob".into());
    keys.server.push(Key::from_bytes([9; 32]));
    write(dir, "key_file", "server.key", format_server_keys(&keys).as_bytes());
    let admin = ClientKey::issue(&keys.client_masters[0], Principal { name: "ops".into(), admin: true });
    write(dir, "key_file", "admin.key", format_client_key(&admin.expect("a valid name")).as_bytes());
    write(dir, "key_file", "alice.key", format_client_key(&fuzzing::client_key()).as_bytes());
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/seeds".into()));
    wire_seeds(&dir);
    sealed_seeds(&dir);
    storage_seeds(&dir);
    text_seeds(&dir);
    println!("seeds written to {}", dir.display());
}
