//! Server options a user sets: the service delay, a custom catalog file, and
//! the README's demo command.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `--service-delay` holds every answer back, but never heartbeats: a follower
/// with a timeout shorter than the delay keeps its leader.
#[test]
fn service_delay_slows_answers_but_not_heartbeats() {
    let group = TestGroup::new();
    let leader = ServerProcess::start_fast(&group, 300, &["--service-delay", "800"]);
    leader.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let follower = ServerProcess::start_fast(&group, 200, &[]);
    wait_for_leader(&[&leader, &follower], 300, PATIENCE);

    let out = run_client(&group, &["reserve", "SA314", "8:30-9:30", "Monday"]);
    out.assert_success(&["(From servers): Reservation confirmed"]);
    assert!(out.elapsed >= Duration::from_millis(800), "answered after {:?}, before the delay", out.elapsed);
    assert!(
        !follower.has_printed("Heartbeat to group leader 300 failed"),
        "heartbeats were held back by the service delay\n{}",
        follower.dump()
    );
}

fn write_catalog(rooms: &str) -> TempToml {
    let text = format!("rooms = [{rooms}]\ntimeslots = [\"9-10\", \"10-11\"]\ndays = [\"Sat\", \"Sun\"]\n");
    TempToml::with_contents(&text)
}

/// `--catalog FILE` replaces the built-in rooms, timeslots and days.
#[test]
fn a_catalog_file_sets_rooms_timeslots_and_days() {
    let group = TestGroup::new();
    let catalog = write_catalog("\"LAB1\", \"LAB2\"");
    let server = ServerProcess::start_fast(&group, 300, &["--catalog", catalog.path()]);
    server.wait_for("Election completed. Group Leader: 300", PATIENCE);
    run_client(&group, &["rooms"]).assert_success(&["(From servers): LAB1", "LAB2"]);
    run_client(&group, &["reserve", "lab2", "10-11", "sun"]).assert_success(&["(From servers): Reservation confirmed"]);
    run_client(&group, &["check", "LAB2"]).assert_success(&["(From servers): LAB2 10-11 Sun"]);
}

/// A server whose catalog differs from the group's leaves with an error
/// instead of joining with tables that cannot agree.
#[test]
fn a_server_with_a_different_catalog_is_refused() {
    let group = TestGroup::new();
    let _first = start_leader(&group, 300);
    let catalog = write_catalog("\"LAB1\"");
    let mut second = ServerProcess::start_fast(&group, 200, &["--catalog", catalog.path()]);
    let status = second.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(3), "{}", second.dump());
    assert!(second.stderr().contains("different list of rooms, timeslots or days"), "{}", second.dump());
}

/// The README's first command: the demo starts three servers and a client.
#[test]
fn the_demo_answers_from_its_three_servers() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_demo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo binary starts");
    if let Some(mut stdin) = demo.stdin.take() {
        stdin.write_all(b"reserve SA318 8:30-9:30 Monday\ncheck SA318\nquit\n").expect("write to the demo");
    }
    let out = demo.wait_with_output().expect("the demo ends after quit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in ["Servers [100, 200, 300] run on group", "(From servers): Reservation confirmed", "\nbye\n"] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("(From servers): SA318 8:30-9:30 Monday"), "{stdout}");
}
