//! `--on-leader` and `--on-follower`: run in order on each real role change,
//! with the role and leader in the environment; a failing hook is logged and
//! the server carries on.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::*;

/// Waits until `path` holds `lines`; panics with what it holds on the deadline.
fn wait_file(path: &std::path::Path, lines: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().collect::<Vec<_>>() == lines {
            return text;
        }
        assert!(started.elapsed() < PATIENCE, "{} holds {text:?}, want {lines:?}", path.display());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn hooks_run_once_per_role_change_in_order() {
    let group = TestGroup::new();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("roles");
    let record = format!("echo \"$ROOMCAST_ROLE $ROOMCAST_LEADER $ROOMCAST_ID\" >> {}", log.display());
    let hooks = ["--on-leader", &record, "--on-follower", &record];
    let first = ServerProcess::start_fast(&group, 100, &hooks);
    first.wait_for("Election completed. Group Leader: 100", PATIENCE);
    wait_file(&log, &["leader 100 100"]);
    let second = ServerProcess::start_fast(&group, 300, &[]);
    wait_for_leader(&[&first, &second], 300, PATIENCE);
    wait_file(&log, &["leader 100 100", "follower 300 100"]);
    first.wait_for("--on-follower hook ran", PATIENCE); // logged once `sh` exits, after the file is written
}

#[test]
fn a_failing_hook_is_logged_and_the_server_carries_on() {
    let group = TestGroup::new();
    let server = ServerProcess::start_fast(&group, 100, &["--on-leader", "exit 3"]);
    server.wait_for("--on-leader hook `exit 3` failed", PATIENCE);
    run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
}
