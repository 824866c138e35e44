//! The systemd notify protocol, spoken to a socket the test owns (as
//! systemd would own it with `Type=notify` and `WatchdogSec=`).

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Datagrams received on `socket` until one contains `needle`; panics after `timeout`.
fn receive_until(socket: &UnixDatagram, needle: &str, timeout: Duration) -> Vec<String> {
    let seen = receive_for(socket, timeout, |m| m.contains(needle));
    if seen.last().is_some_and(|m| m.contains(needle)) {
        return seen;
    }
    panic!("no notification containing {needle:?} within {timeout:?}; got {seen:?}");
}

/// Datagrams received on `socket` for `window`, or until one satisfies `last`.
fn receive_for(socket: &UnixDatagram, window: Duration, last: impl Fn(&str) -> bool) -> Vec<String> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < window {
        if let Ok(n) = socket.recv(&mut buffer) {
            seen.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            if seen.last().is_some_and(|m| last(m)) {
                break;
            }
        }
    }
    seen
}

#[test]
fn the_server_notifies_ready_feeds_the_watchdog_and_says_it_stops() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
    socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
    let group = TestGroup::new();
    let mut args: Vec<String> = SAFETY_ARGS.iter().map(|s| s.to_string()).collect();
    args.extend(group.args());
    args.push("300".into());
    let notify = path.to_str().expect("a UTF-8 path");
    let env = [("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "400000")];
    let mut server = ServerProcess::start_with_env(args, Some(300), &env);

    // READY=1 comes with the outcome of the first election.
    let before_ready = receive_until(&socket, "READY=1", PATIENCE);
    assert!(before_ready.last().is_some_and(|m| m.contains("STATUS=leading the group as 300")), "{before_ready:?}");
    server.wait_for("Election completed. Group Leader: 300", PATIENCE);
    // Fed at twice the rate asked (every 200 ms): in 1.2 s six feeds are due.
    // At least four, so a feed no faster than the 400 ms limit (three) fails,
    // while a busy machine's jitter does not.
    receive_until(&socket, "WATCHDOG=1", PATIENCE);
    let window = Duration::from_millis(1200);
    let feeds = receive_for(&socket, window, |_| false).iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(feeds >= 4, "{feeds} WATCHDOG=1 within {window:?} (every 200 ms expected)\n{}", server.dump());

    server.signal("TERM");
    receive_until(&socket, "STOPPING=1", PATIENCE);
    assert!(server.wait_exit(PATIENCE).success(), "{}", server.dump());
    println!("systemd notify: READY=1 after the first election; {feeds} WATCHDOG=1 within {} ms", window.as_millis());
}
