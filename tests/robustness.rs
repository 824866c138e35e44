//! Failures the user can meet: no server, garbage on the group, and two
//! servers answering one request.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::net::SocketAddrV4;
use std::time::Duration;

use roomcast::wire::{self, Command, Message, Request, Slot};

use common::*;

/// With no server in the group, the client says so and exits 3 soon after its timeout.
#[test]
fn no_server_gives_a_clear_error_and_exit_3() {
    let group = TestGroup::new();
    let out = run_client(&group, &["--timeout", "1000", "rooms"]);
    assert_eq!(out.code(), 3, "{out}");
    assert!(out.stderr.contains("no server answered"), "{out}");
    assert!(out.stderr.contains("error: "), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(out.elapsed >= Duration::from_millis(900), "gave up before its timeout; {out}");
    assert!(out.elapsed < Duration::from_secs(4), "took far longer than its timeout; {out}");
}

/// Malformed datagrams sent to the group are logged as dropped, and the
/// server keeps serving.
#[test]
fn garbage_datagrams_are_dropped_and_serving_continues() {
    let group = TestGroup::new();
    let mut server = ServerProcess::start_fast(&group, 300, &[]);
    server.wait_for("Election completed. Group Leader: 300", PATIENCE);

    let valid = wire::encode(&Message::Request(Request {
        client: 42,
        request: 1,
        command: Command::Reserve(Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: "Monday".into() }),
    }));
    let header = valid[..wire::HEADER_LEN].to_vec();
    let mut random = vec![0u8; 512];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for byte in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    random[0] = 0xFF; // never the magic
    let mut header_then_garbage = header.clone();
    header_then_garbage.extend_from_slice(&random[..100]);
    let truncated = valid[..valid.len() / 2].to_vec();
    let mut huge = header.clone();
    huge.extend_from_slice(&[0xAA; 65_000 - 4]);
    // Request variant, then a string length prefix of u64::MAX.
    let mut huge_length = header.clone();
    huge_length.extend_from_slice(&[0, 7, 1, 3, 0xFF]);
    huge_length.extend_from_slice(&u64::MAX.to_le_bytes());

    let datagrams: [(&str, Vec<u8>); 6] = [
        ("empty", Vec::new()),
        ("random bytes", random),
        ("valid header, garbage body", header_then_garbage),
        ("truncated request", truncated),
        ("65 000 bytes", huge),
        ("huge length prefix", huge_length),
    ];
    let sender = loopback_sender();
    let to = SocketAddrV4::new(group.group, group.port);
    for (what, bytes) in &datagrams {
        sender.send_to(bytes, to).unwrap_or_else(|e| panic!("sending {what}: {e}"));
    }

    // Each is counted as malformed; the log says so once for the sender (at most once per 10 s).
    let counted = |out: &ClientOutput| rejected_by(out, 300).is_some_and(|r| r["malformed"] == datagrams.len());
    status_until(&group, &["--json"], counted);
    server.wait_for("rejected a datagram from 127.0.0.1", PATIENCE);
    run_client(&group, &["rooms"]).assert_success(&answer_lines(FROM_SERVERS, &ROOMS));
    assert!(server.is_running(), "the server died\n{}", server.dump());
    assert!(server.leaders().iter().all(|&l| l == 300), "{}", server.dump());
}

/// A second responder answering the client's request is reported by the client.
#[test]
fn two_servers_replying_is_reported() {
    let group = TestGroup::new();
    let _server = start_leader(&group, 300);

    let responder = FakeServer::answering(&group);
    let out = run_client(&group, &["rooms"]);
    let answered = responder.stop();
    assert!(answered >= 1, "the fake responder saw no request; {out}");
    assert_eq!(out.code(), 3, "{out}");
    assert!(out.stderr.contains("more than one server answered"), "{out}");
}

/// A client whose requests cannot leave the host (here: a network namespace
/// of its own with no interface up) keeps retrying like for lost datagrams,
/// then says both that nobody answered and why sending failed. Needs root
/// for `unshare -n`; skipped with a reason otherwise, except in CI.
#[test]
fn a_client_that_cannot_send_says_why() {
    let started = std::time::Instant::now();
    let Some(output) = run_in_own_network(&format!("exec {CLIENT_BIN} --timeout 700 239.255.77.9 11111 rooms")) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no server answered within 0.7 s"), "{stderr}");
    assert!(stderr.contains("sending the request failed: Network is unreachable"), "{stderr}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(700), "gave up before its timeout: {stderr}");
}

/// A server on a host whose only multicast route (on `lo`) has no source
/// address cannot tell which address the others see it at: it refuses to
/// start and says how to fix it, instead of taking its own datagrams for a
/// second member's. Needs root for `unshare -n`, like the test above.
#[test]
fn a_server_whose_route_has_no_source_address_says_how_to_fix_it() {
    let script = format!(
        "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && \
         exec timeout 10 {SERVER_BIN} 239.255.77.9 11111 5"
    );
    let Some(output) = run_in_own_network(&script) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("finding this server's address on the route to group 239.255.77.9"), "{stderr}");
    assert!(stderr.contains("pass --interface ADDR"), "{stderr}");
}

/// An `--interface` address this host lacks is a mistake in the options, not
/// a network failure: the client and the server say so and exit 2 at once
/// (the client used to wait out its timeout and exit 3). 192.0.2.1
/// (TEST-NET-1) is no host's address; the namespace holds only a `lo`.
#[test]
fn an_interface_this_host_lacks_is_refused_with_exit_2() {
    for (program, args, action) in [
        (CLIENT_BIN, "--timeout 3000 239.255.77.9 11111 rooms", "binding the unicast socket to 192.0.2.1:0"),
        (SERVER_BIN, "239.255.77.9 11111 5", "joining multicast group 239.255.77.9 on interface 192.0.2.1"),
    ] {
        let script = format!("ip link set lo up && exec timeout 10 {program} --interface 192.0.2.1 --ttl 0 {args}");
        let started = std::time::Instant::now();
        let Some(output) = run_in_own_network(&script) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{program}: {stderr}");
        assert!(stderr.contains(action), "{program}: {stderr}");
        assert!(stderr.contains("192.0.2.1 is not an address of this host"), "{program}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(2), "{program} waited: {stderr}");
    }
}

/// A server on a host without a multicast route (here a namespace with only
/// `lo` up) says what is missing and exits 2, which systemd does not restart
/// into: a restart cannot cure the configuration.
#[test]
fn a_server_without_a_multicast_route_says_what_is_missing_and_exits_2() {
    let Some(output) =
        run_in_own_network(&format!("ip link set lo up && exec timeout 10 {SERVER_BIN} 239.255.77.9 11111 5"))
    else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for needle in
        ["on the interface chosen by the kernel", "no route to 224.0.0.0/4", "add one", "pass --interface ADDR"]
    {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
}

/// Runs `script` with `sh` in a network namespace of its own (only a `lo`,
/// down until the script brings it up), or `None` after saying why it cannot
/// (a failure in CI).
fn run_in_own_network(script: &str) -> Option<std::process::Output> {
    match std::process::Command::new("unshare").args(["-n", "sh", "-c", script]).output() {
        Ok(output) if !String::from_utf8_lossy(&output.stderr).contains("unshare failed") => Some(output),
        other => skip_or_fail(script, "a network namespace", &format!("unshare -n failed (needs root): {other:?}")),
    }
}

/// A server that hears nothing at all from its group, not even its own
/// announcements (here a firewall rule on its host drops multicast input),
/// says so after three heartbeat timeouts, naming the likely causes and
/// `--peer`. Needs root for `unshare -n` and `nft`.
#[test]
fn a_server_that_hears_nothing_from_its_group_says_why() {
    if !is_root() || !tool_available("nft", "--version") {
        skip_or_fail::<()>("a_server_that_hears_nothing_from_its_group_says_why", "its network", "needs root and nft");
        return;
    }
    let setup = "ip link set lo up && ip link set lo multicast on \
                 && ip route add 224.0.0.0/4 dev lo src 127.0.0.1 \
                 && nft add table ip firewall \
                 && nft add chain ip firewall input '{ type filter hook input priority 0; }' \
                 && nft add rule ip firewall input ip daddr 224.0.0.0/4 drop";
    let args = ["--heartbeat-interval", "100", "--heartbeat-timeout", "300", "239.255.77.9", "11111", "5"];
    let server = ServerProcess::start_in_own_network(setup, &args, Some(5));
    let warning = server.wait_for("heard nothing on group 239.255.77.9:11111 for 0.9 s", PATIENCE);
    for cause in ["not even this server's own datagrams", "firewall", "ip route get 239.255.77.9", "--peer ADDR:PORT"] {
        assert!(warning.contains(cause), "{cause:?} missing from: {warning}");
    }
}
