//! `--data-dir`: servers come back with what they acknowledged, also when the
//! whole group is killed at once, and refuse to start on a damaged file.

mod common;

use std::path::Path;

use common::*;

fn data_dir_args(dir: &Path) -> [String; 2] {
    ["--data-dir".to_string(), dir.display().to_string()]
}

/// Starts a fast-heartbeat server with `id` keeping its state in `dir`.
fn start_with_data(group: &TestGroup, id: u64, dir: &Path) -> ServerProcess {
    let args = data_dir_args(dir);
    ServerProcess::start_fast(group, id, &[&args[0], &args[1]])
}

/// The reservations this test makes, listed as `check ME4494` shows them.
const SLOTS: [[&str; 3]; 4] = [
    ["ME4494", "8:30-9:30", "Monday"],
    ["ME4494", "13:30-14:30", "Tuesday"],
    ["ME4494", "9:30-10:30", "Thursday"],
    ["ME4494", "17:30-19:00", "Friday"],
];

fn reserve_every_slot(group: &TestGroup) {
    for [room, timeslot, day] in SLOTS {
        run_client(group, &["reserve", room, timeslot, day]).assert_success(&["(From servers): Reservation confirmed"]);
    }
}

fn check_lists_every_slot(group: &TestGroup) {
    let items: Vec<String> = SLOTS.iter().map(|s| s.join(" ")).collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    run_client(group, &["check", "ME4494"]).assert_success(&answer_lines(FROM_SERVERS, &items));
}

/// Four confirmed reservations and one cancelled; every server of a group of
/// `size` is SIGKILLed at once and started again from its directory: the new
/// group lists exactly the confirmed reservations, and still refuses to book
/// one twice.
fn whole_group_killed_at_once_comes_back(size: u64) {
    let group = TestGroup::new();
    let ids: Vec<u64> = (1..=size).map(|i| i * 100).collect();
    let highest = size * 100;
    let dirs: Vec<tempfile::TempDir> = ids.iter().map(|_| tempfile::tempdir().expect("temporary directory")).collect();
    let mut servers: Vec<ServerProcess> =
        ids.iter().zip(&dirs).map(|(&id, dir)| start_with_data(&group, id, dir.path())).collect();
    wait_for_leader(&servers.iter().collect::<Vec<_>>(), highest, PATIENCE);

    reserve_every_slot(&group);
    run_client(&group, &["reserve", "ME4494", "8:30-9:30", "Wednesday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    run_client(&group, &["cancel", "ME4494", "8:30-9:30", "Wednesday"])
        .assert_success(&["(From servers): Reservation cancelled"]);
    for server in &mut servers {
        server.kill();
    }

    let restarted: Vec<ServerProcess> =
        ids.iter().zip(&dirs).map(|(&id, dir)| start_with_data(&group, id, dir.path())).collect();
    wait_for_leader(&restarted.iter().collect::<Vec<_>>(), highest, PATIENCE);
    check_lists_every_slot(&group);
    let twice = run_client(&group, &["reserve", "ME4494", "13:30-14:30", "Tuesday"]);
    assert_eq!(twice.code(), 1, "the slot was confirmed before the restart: {twice}");
}

#[test]
fn two_servers_killed_at_once_come_back_from_their_data_directories() {
    whole_group_killed_at_once_comes_back(2);
}

#[test]
fn four_servers_killed_at_once_come_back_from_their_data_directories() {
    whole_group_killed_at_once_comes_back(4);
}

#[test]
fn seven_servers_killed_at_once_come_back_from_their_data_directories() {
    whole_group_killed_at_once_comes_back(7);
}

/// A server that comes back from its directory alone (the others gone) still
/// has every reservation and serves them.
#[test]
fn a_server_restarted_alone_serves_what_it_stored() {
    let group = TestGroup::new();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut first = start_with_data(&group, 500, dir.path());
    first.wait_for("Election completed. Group Leader: 500", PATIENCE);
    reserve_every_slot(&group);
    first.kill();

    let again = start_with_data(&group, 500, dir.path());
    again.wait_for("Election completed. Group Leader: 500", PATIENCE);
    check_lists_every_slot(&group);
}

/// A damaged log is reported with the file's name and what to do; the
/// server exits instead of starting empty.
#[test]
fn a_damaged_data_file_stops_the_server_with_a_clear_error() {
    let group = TestGroup::new();
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("log"), b"this is not a roomcast log").expect("write");
    let mut server = start_with_data(&group, 600, dir.path());
    let status = server.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(3), "the server must not start on a damaged log\n{}", server.dump());
    let stderr = server.stderr();
    assert!(stderr.contains("damaged") && stderr.contains("log"), "unclear error:\n{}", server.dump());
    assert!(!server.has_printed("Election completed"), "it must not join the group\n{}", server.dump());
}
