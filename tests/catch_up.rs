//! Catch-up of a state far larger than a datagram: 50,000 reservations over a
//! configured list of 1,000 rooms reach a server that joins empty.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use roomcast::config::parse_catalog;
use roomcast::rooms::Catalog;
use roomcast::storage::Storage;
use roomcast::wire::{Entry, LogPosition, Op, Slot};

const ROOM_COUNT: usize = 1_000;
const RESERVATIONS: usize = 50_000;

fn room(index: usize) -> String {
    format!("R{index:04}")
}

/// A catalog file with [`ROOM_COUNT`] rooms and the usual timeslots and days.
fn large_catalog_toml() -> String {
    let rooms: Vec<String> = (0..ROOM_COUNT).map(|i| format!("\"{}\"", room(i))).collect();
    let quoted = |items: &[&str]| items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    format!("rooms = [{}]\ntimeslots = [{}]\ndays = [{}]\n", rooms.join(", "), quoted(&TIMESLOTS), quoted(&DAYS))
}

/// Every (room, timeslot, day) in catalog order, rooms first.
fn slots() -> impl Iterator<Item = Slot> {
    (0..ROOM_COUNT).flat_map(|r| {
        DAYS.iter().flat_map(move |day| {
            TIMESLOTS.iter().map(move |timeslot| Slot {
                room: room(r),
                timeslot: timeslot.to_string(),
                day: day.to_string(),
            })
        })
    })
}

/// Writes a data directory holding [`RESERVATIONS`] committed reservations, the
/// way a server that confirmed them would have stored them.
fn write_data_dir(dir: &Path, catalog: &Catalog) {
    let (mut storage, mut log) = Storage::open(dir, catalog).expect("open the data directory");
    let entry = |seq: u64, request: u64, op: Op| Entry {
        position: LogPosition::new(1, seq),
        client: 42,
        request,
        by: None,
        op,
    };
    log.push(entry(1, 0, Op::Genesis { epoch: 7 }));
    for (n, slot) in slots().take(RESERVATIONS).enumerate() {
        let seq = n as u64 + 2;
        log.push(entry(seq, seq, Op::Reserve(slot)));
    }
    log.commit_to(log.last().seq, catalog);
    assert_eq!(log.table().len(), RESERVATIONS);
    let changes = log.take_changes().expect("new entries");
    storage.save(&log, changes).expect("store the reservations");
}

/// Server 100 starts from a directory with 50,000 reservations; server 200
/// joins empty, fetches them (a snapshot in many datagrams), takes over, and
/// answers from its own copy once 100 is gone.
#[test]
fn a_joining_server_catches_up_fifty_thousand_reservations() {
    let group = TestGroup::new();
    let scratch = tempfile::tempdir().expect("temporary directory");
    let catalog_path = scratch.path().join("catalog.toml");
    let toml = large_catalog_toml();
    std::fs::write(&catalog_path, &toml).expect("write the catalog");
    let catalog = parse_catalog(&toml).expect("the generated catalog parses");
    let data = scratch.path().join("data-100");
    write_data_dir(&data, &catalog);

    let catalog_arg = catalog_path.display().to_string();
    let data_arg = data.display().to_string();
    let mut old = ServerProcess::start_fast(&group, 100, &["--catalog", &catalog_arg, "--data-dir", &data_arg]);
    old.wait_for("Election completed. Group Leader: 100", PATIENCE);

    let joined = Instant::now();
    let new = ServerProcess::start_fast(&group, 200, &["--catalog", &catalog_arg]);
    wait_for_leader(&[&old, &new], 200, PATIENCE * 6);
    println!("server 200 caught up {RESERVATIONS} reservations and took over in {:?}", joined.elapsed());
    println!("{}", new.wait_for(&format!("{RESERVATIONS} reservations"), PATIENCE));

    old.kill();
    // The last room reserved is half full: check it, and one fully booked slot.
    let last = room((RESERVATIONS - 1) / (TIMESLOTS.len() * DAYS.len()));
    let expected: Vec<String> = slots()
        .take(RESERVATIONS)
        .filter(|s| s.room == last)
        .map(|s| format!("{} {} {}", s.room, s.timeslot, s.day))
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    run_client(&group, &["check", &last]).assert_success(&answer_lines(FROM_SERVERS, &expected));
    let taken = run_client(&group, &["reserve", &room(0), TIMESLOTS[0], DAYS[0]]);
    assert_eq!(taken.code(), 1, "room {} was reserved in the stored state: {taken}", room(0));
}
