//! Server options a user sets: the service delay, a custom catalog file, and
//! the README's demo command.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

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

/// The README's first command: the demo starts three servers and a client,
/// and leaves no file behind when it ends.
#[test]
fn the_demo_answers_from_its_three_servers() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut demo = Command::new(DEMO_BIN)
        .env("TMPDIR", tmp.path())
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
    assert_no_files_left(tmp.path(), &stdout);
}

/// What the demo is about, in one terminal: `kill 300` stops the leader as a
/// crash would; the others report the failed heartbeat and elect 200 while
/// the client's reservation, sent right after the kill, is answered;
/// `start 300` brings 300 back, caught up, to lead again; `stop 200` lets
/// 200 leave cleanly.
#[test]
fn the_demo_kills_and_starts_servers_while_the_client_carries_on() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut demo = start_demo(&tmp, &[]);
    wait_for_agreement(&mut demo, 300);
    demo.send("kill 300");
    demo.send("reserve SA318 8:30-9:30 Monday");
    demo.read_until("Killed server 300: it sent nothing", PATIENCE);
    let killed = demo.stdout().len();
    demo.read_until("(From servers): Reservation confirmed\n", PATIENCE);
    // Log lines come through a thread of their own: their place among the
    // answers may shift, not their order among themselves.
    demo.wait_stdout("[server 200] Election completed. Group Leader: 200\n", 1, PATIENCE);
    let failover = demo.stdout()[killed..].to_string();
    let heartbeat = failover.find("] Heartbeat to group leader 300 failed\n");
    let elected = failover.find("Group Leader: 200");
    assert!(heartbeat.is_some_and(|at| elected.is_some_and(|elected| at < elected)), "{}", demo.dump());

    demo.send("start 300");
    demo.read_until("Started server 300", PATIENCE);
    // Until 200 follows 300 it answers reads as well (while it hands over),
    // and the client would rightly report two answers.
    wait_for_agreement(&mut demo, 300);
    demo.send("check SA318");
    demo.read_until("(From servers): SA318 8:30-9:30 Monday\n", PATIENCE);
    demo.send("stop 200");
    demo.read_until("Stopped server 200", PATIENCE);
    demo.wait_stdout("[server 300] server 200", 1, PATIENCE);
    demo.send("kill 400");
    demo.send("quit");
    demo.read_until("bye\n", PATIENCE);
    let status = demo.wait_exit(PATIENCE);
    assert!(demo.stderr().contains("error: server 400 is not running (running: 100, 300)"), "{}", demo.dump());
    assert_eq!(status.code(), Some(2), "the demo's worst command was a usage error\n{}", demo.dump());
    assert_no_files_left(tmp.path(), &demo.stdout());
}

/// `demo --help` prints its usage instead of starting; `--keep-log` keeps
/// the servers' log, with each line's time and server.
#[test]
fn the_demo_explains_itself_and_keeps_its_log_when_asked() {
    let help = Command::new(DEMO_BIN).arg("--help").output().expect("the demo runs");
    let text = String::from_utf8_lossy(&help.stdout);
    assert_eq!(help.status.code(), Some(0), "{text}");
    for needle in
        ["Usage: demo [OPTIONS]", "--keep-log", "kill 300", "start 300", "Heartbeat to group leader 300 failed"]
    {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("Servers [100, 200, 300] run"), "--help started the demo:\n{text}");

    let tmp = tempfile::tempdir().expect("a temporary directory");
    let mut demo = start_demo(&tmp, &["--keep-log"]);
    demo.wait_stdout("[server 300] Server 300 started", 1, PATIENCE);
    demo.send("quit");
    demo.read_until("bye\n", PATIENCE);
    assert_eq!(demo.wait_exit(PATIENCE).code(), Some(0), "{}", demo.dump());
    let path = log_path(&demo.stdout());
    demo.read_until(&format!("The servers' log is kept in {}", path.display()), PATIENCE);
    let log = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), demo.dump()));
    let line = log.lines().find(|l| l.ends_with("] Server 300 started")).unwrap_or_else(|| panic!("{log}"));
    assert_log_line(line, "INFO ", "server 300", "Server 300 started");
}

/// Every server line says when to the millisecond, how grave, and which server.
#[test]
fn log_lines_carry_millisecond_timestamps_and_the_server_id() {
    let group = TestGroup::new();
    let server = start_leader(&group, 300);
    let line = server.wait_for("Election completed. Group Leader: 300", PATIENCE);
    assert_log_line(&line, "INFO ", "server 300", "Election completed. Group Leader: 300");
}

/// The server's command line explains itself: bare `server` prints the
/// usage line and where GROUP and PORT can come from, `--help` the exit
/// statuses and every log level, and a TTL above 255 is refused by the
/// parser (exit 2) instead of by the kernel.
#[test]
fn the_server_explains_its_usage_exit_statuses_and_log_levels() {
    let run = |args: &[&str]| Command::new(SERVER_BIN).args(args).output().expect("the server runs");
    let bare = run(&[]);
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert_eq!(bare.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Usage: server [OPTIONS] [GROUP] [PORT] [ID]"), "{stderr}");
    assert!(stderr.contains("or `--config FILE` with `group` and `port` in it"), "{stderr}");
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["[possible values: off, error, warn, info, debug, trace]", "Exit status:", "  2  a bad command line"]
    {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    // Refused before any socket is opened.
    let ttl = run(&["--interface", "127.0.0.1", "--ttl", "300", "239.255.77.9", "11111"]);
    let stderr = String::from_utf8_lossy(&ttl.stderr);
    assert_eq!(ttl.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value '300' for '--ttl <N>': a multicast TTL is 0 to 255"), "{stderr}");
}

const DEMO_BIN: &str = env!("CARGO_BIN_EXE_demo");

/// Asks the demo's servers for their `status` until all three follow
/// `leader` with identical tables; panics with the output on the deadline.
fn wait_for_agreement(demo: &mut ClientSession, leader: u64) {
    let settled = format!("(From servers): 3 servers answered; leader {leader}; every table identical\n");
    let deadline = std::time::Instant::now() + PATIENCE;
    while std::time::Instant::now() < deadline {
        demo.send("status");
        let summary = demo.read_until("REJECTED\n", PATIENCE);
        if summary.contains(&settled) {
            return;
        }
    }
    panic!("the demo's servers did not agree on leader {leader} within {PATIENCE:?}\n{}", demo.dump());
}

/// Starts the demo with its temporary directory (for its log) in `tmp`.
fn start_demo(tmp: &tempfile::TempDir, args: &[&str]) -> ClientSession {
    let tmpdir = tmp.path().to_str().expect("temporary paths are UTF-8");
    ClientSession::start_program(DEMO_BIN, args.iter().map(|a| a.to_string()).collect(), &[("TMPDIR", tmpdir)], "demo")
}

/// The log file the demo's banner names.
fn log_path(stdout: &str) -> std::path::PathBuf {
    let start = stdout.find("Their log: ").map(|at| at + "Their log: ".len());
    let path = start.and_then(|at| stdout[at..].split(';').next());
    path.unwrap_or_else(|| panic!("no log named in:\n{stdout}")).into()
}

/// The demo removed its log, and left nothing else in its temporary directory.
fn assert_no_files_left(tmp: &std::path::Path, stdout: &str) {
    let log = log_path(stdout);
    assert!(log.starts_with(tmp), "the log {} is not in $TMPDIR {}", log.display(), tmp.display());
    let left: Vec<_> = std::fs::read_dir(tmp).expect("reading the temporary directory").collect();
    assert!(left.is_empty(), "the demo left {left:?} behind\n{stdout}");
}

/// Asserts `line` reads `[2026-03-31T12:00:01.207Z INFO  server 300] message`.
fn assert_log_line(line: &str, level: &str, server: &str, message: &str) {
    let shape = |at: usize, c: char| line.chars().nth(at) == Some(c);
    let stamp = line.get(1..25).unwrap_or_default();
    assert!(shape(0, '[') && shape(5, '-') && shape(11, 'T') && shape(20, '.') && shape(24, 'Z'), "{line}");
    assert!(stamp.chars().filter(char::is_ascii_digit).count() == 17, "timestamp to the millisecond: {line}");
    assert_eq!(&line[25..], format!(" {level} {server}] {message}"), "{line}");
}
