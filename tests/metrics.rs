//! `--metrics`: a real server serves Prometheus text over HTTP, and what it
//! says follows what the group does.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// The port from the server's "metrics at http://127.0.0.1:PORT/metrics" line.
fn metrics_port(server: &ServerProcess) -> u16 {
    let line = server.wait_for("metrics at http://127.0.0.1:", PATIENCE);
    let after = line.split("http://127.0.0.1:").nth(1).unwrap_or_default();
    after.split('/').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// `GET path` on 127.0.0.1:`port`: the status line and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect :{port}: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap_or_else(|e| panic!("read the answer from :{port}: {e}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `ready` holds for the body, within [`PATIENCE`].
fn scrape_until(port: u16, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(port, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        if ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "metrics on :{port} never showed {what}:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_scrape_shows_roles_writes_datagrams_storage_and_heartbeat_round_trips() {
    let group = TestGroup::new();
    let data = tempfile::tempdir().expect("temporary directory");
    let data_dir = data.path().to_string_lossy().to_string();
    let leader = ServerProcess::start_fast(&group, 300, &["--metrics", "0", "--data-dir", &data_dir]);
    leader.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let follower = ServerProcess::start_fast(&group, 200, &["--metrics", "127.0.0.1:0"]);
    follower.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let (leader_port, follower_port) = (metrics_port(&leader), metrics_port(&follower));

    run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    let taken = run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"]);
    assert_eq!(taken.code(), 1, "the slot is taken: {taken}");

    let body = scrape_until(leader_port, "both writes", |b| {
        sample(b, "roomcast_writes_total{outcome=\"already_reserved\"}") == Some(1.0)
    });
    let expected = [
        ("roomcast_server_id", 300.0),
        ("roomcast_role{role=\"leader\"}", 1.0),
        ("roomcast_role{role=\"follower\"}", 0.0),
        ("roomcast_leader_id", 300.0),
        ("roomcast_reservations", 1.0),
        ("roomcast_writes_total{outcome=\"reserved\"}", 1.0),
        ("roomcast_keyed", 0.0),
        ("roomcast_datagrams_dropped_total{reason=\"bad_mac\"}", 0.0),
    ];
    for (series, want) in expected {
        assert_eq!(sample(&body, series), Some(want), "{series}:\n{body}");
    }
    // The log also holds the group's own entries, and a client may retry.
    let (commit, last) = (sample(&body, "roomcast_commit"), sample(&body, "roomcast_last"));
    assert!(commit >= Some(2.0) && commit == last, "both writes committed:\n{body}");
    assert!(sample(&body, "roomcast_requests_total{command=\"reserve\"}") >= Some(2.0), "{body}");
    let heartbeats = sample(&body, "roomcast_datagrams_total{kind=\"heartbeat\"}").unwrap_or(0.0);
    assert!(heartbeats >= 1.0, "the leader counts its follower's heartbeats:\n{body}");
    let saves = sample(&body, "roomcast_storage_save_seconds_count").unwrap_or(0.0);
    assert!(saves >= 1.0, "the leader with a data directory times its saves:\n{body}");

    let body = scrape_until(follower_port, "a heartbeat round trip", |b| {
        b.contains("roomcast_heartbeat_rtt_seconds{member=\"300\"}")
    });
    assert_eq!(sample(&body, "roomcast_role{role=\"follower\"}"), Some(1.0), "{body}");
    assert_eq!(sample(&body, "roomcast_leader_id"), Some(300.0), "{body}");
    let rtt = sample(&body, "roomcast_heartbeat_rtt_seconds{member=\"300\"}").unwrap_or(f64::MAX);
    let timeout = sample(&body, "roomcast_heartbeat_timeout_seconds").unwrap_or(0.0);
    assert!(rtt < timeout / 2.0, "a loopback round trip ({rtt} s) is far below half the timeout ({timeout} s)");
    assert!(sample(&body, "roomcast_datagrams_total{kind=\"append\"}").unwrap_or(0.0) >= 1.0, "{body}");
    assert!(!body.contains("roomcast_storage_save_seconds"), "no data directory, no save times:\n{body}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF:\n{body}");

    let (status, _) = get(follower_port, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn a_failover_shows_in_the_survivors_metrics() {
    let group = TestGroup::new();
    let mut leader = ServerProcess::start_fast(&group, 300, &[]);
    leader.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let follower = ServerProcess::start_fast(&group, 200, &["--metrics", "0"]);
    follower.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let port = metrics_port(&follower);
    leader.kill();
    let body = scrape_until(port, "200 leading", |b| sample(b, "roomcast_role{role=\"leader\"}") == Some(1.0));
    assert_eq!(sample(&body, "roomcast_failovers_total"), Some(1.0), "{body}");
    assert_eq!(sample(&body, "roomcast_leader_id"), Some(200.0), "{body}");
    assert!(sample(&body, "roomcast_elections_total").unwrap_or(0.0) >= 2.0, "start-up and failover:\n{body}");
}

#[test]
fn a_metrics_address_of_another_kind_is_refused_at_start() {
    let group = TestGroup::new();
    let mut server = ServerProcess::start(&group, Some(100), &["--metrics", "224.1.1.1:9464"]);
    let status = server.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(2), "{}", server.dump());
    assert!(
        server.stderr().contains("--metrics: '224.1.1.1:9464': metrics need an address of this host"),
        "{}",
        server.dump()
    );
}
