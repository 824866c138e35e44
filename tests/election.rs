//! Leader election (bully algorithm, highest ID wins), failure detection, and
//! server IDs: the handout's scenarios a, b and c, as the servers report them.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Scenario a: a server that starts with a lower ID than the leader runs its
/// start-up election and learns that it is not the leader; the leader stays.
#[test]
fn lower_id_newcomer_learns_it_is_not_leader() {
    let group = TestGroup::new();
    let a = start_leader(&group, 300);

    let b = ServerProcess::start_fast(&group, 200, &[]);
    b.wait_for("Election completed. Group Leader: 300", PATIENCE);
    a.wait_for("300 is running an election initiated by 200", PATIENCE);
    wait_for_leader(&[&a, &b], 300, PATIENCE);

    // The newcomer reports its start-up election, then the outcome.
    assert_in_order(
        &b.lines(),
        &["Server 200 started", "200 is running an election initiated by 0", "Election completed. Group Leader: 300"],
        "the newcomer's log",
    );
    assert!(b.has_printed("The server is ready to receive"), "newcomer never became ready\n{}", b.dump());
    // The leader never handed over leadership.
    assert!(a.leaders().iter().all(|&l| l == 300), "the leader named another leader: {:?}\n{}", a.leaders(), a.dump());
    assert!(
        b.leaders().iter().all(|&l| l == 300),
        "the newcomer named another leader: {:?}\n{}",
        b.leaders(),
        b.dump()
    );

    // And the group serves: exactly one answer (from the leader).
    run_client(&group, &["days"]).assert_success(&answer_lines(FROM_SERVERS, &DAYS));
}

/// Scenario b: a newcomer with the highest ID takes over the leadership.
#[test]
fn higher_id_newcomer_takes_over() {
    let group = TestGroup::new();
    let a = start_leader(&group, 300);
    let b = ServerProcess::start_fast(&group, 200, &[]);
    wait_for_leader(&[&a, &b], 300, PATIENCE);

    let c = ServerProcess::start_fast(&group, 450, &[]);
    wait_for_leader(&[&a, &b, &c], 450, PATIENCE);
    a.wait_for("300 is running an election initiated by 450", PATIENCE);
    b.wait_for("200 is running an election initiated by 450", PATIENCE);
    assert_in_order(
        &c.lines(),
        &["Server 450 started", "450 is running an election initiated by 0", "Election completed. Group Leader: 450"],
        "the newcomer's log",
    );
    assert!(c.leaders().iter().all(|&l| l == 450), "the highest server named another leader\n{}", c.dump());

    run_client(&group, &["rooms"]).assert_success(&answer_lines(FROM_SERVERS, &ROOMS));
}

/// Scenario c: SIGKILL the leader; a follower's heartbeat fails, and the next
/// highest server is elected and serves writes.
#[test]
fn killed_leader_is_replaced_by_next_highest() {
    let group = TestGroup::new();
    let (a, b, mut c) = start_handout_trio(&group);

    let marks = [a.mark(), b.mark()];
    c.kill();
    let (who, line) = wait_for_any(&[&a, &b], "Heartbeat to group leader 450 failed", PATIENCE);
    println!("server {} noticed first: {line}", [300, 200][who]);
    // Noticing the failure triggers a new election, started by a survivor itself.
    wait_for_any_after(&[&a, &b], &marks, "is running an election initiated by 0", PATIENCE);
    wait_for_leader(&[&a, &b], 300, PATIENCE);

    run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    run_client(&group, &["check", "SA318"]).assert_success(&["(From servers): SA318 8:30-9:30 Monday"]);
}

/// With the default heartbeat settings, a client write succeeds less than two
/// seconds after the leader is killed.
#[test]
fn failover_completes_within_two_seconds_with_defaults() {
    let group = TestGroup::new();
    let a = ServerProcess::start(&group, Some(300), &[]);
    a.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let mut b = ServerProcess::start(&group, Some(450), &[]);
    wait_for_leader(&[&a, &b], 450, PATIENCE);

    b.kill();
    let killed_at = Instant::now();
    let mut client = ClientSession::start_with(&group, &["reserve", "MC5050", "13:30-14:30", "Thursday"]);
    client.read_until("Reservation confirmed", PATIENCE);
    let failover = killed_at.elapsed();
    println!("failover: reservation confirmed {} ms after SIGKILL of the leader", failover.as_millis());
    let out = client.finish(CLIENT_DEADLINE);
    out.assert_success(&["(From servers): Reservation confirmed"]);
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?} (limit 2 s)\n{out}\n{}{}",
        a.dump(),
        b.dump()
    );
    wait_for_leader(&[&a], 300, PATIENCE);
}

/// Without an ID argument a server uses its process ID.
#[test]
fn pid_is_the_default_id() {
    let group = TestGroup::new();
    let server = ServerProcess::start(&group, None, &FAST_HEARTBEAT);
    let pid = server.pid();
    server.wait_for(&format!("Server {pid} started"), PATIENCE);
    server.wait_for(&format!("Election completed. Group Leader: {pid}"), PATIENCE);
    assert_eq!(server.id(), u64::from(pid));
}

/// A second server with an explicit ID already in use leaves with an error
/// naming the other server's address; the first one goes on serving.
#[test]
fn duplicate_explicit_id_is_refused() {
    let group = TestGroup::new();
    let first = start_leader(&group, 300);

    let mut second = ServerProcess::start_fast(&group, 300, &[]);
    let status = second.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(3), "the duplicate should exit with 3, got {status}\n{}", second.dump());
    let stderr = second.stderr();
    assert!(stderr.contains("already in use"), "stderr should say the ID is already in use\n{}", second.dump());
    let first_addrs = first.udp_addrs();
    assert!(
        first_addrs.iter().any(|addr| *addr.ip() == LOOPBACK && stderr.contains(&addr.to_string())),
        "stderr should name the first server's address (one of its sockets: {first_addrs:?})\n{}",
        second.dump()
    );

    run_client(&group, &["timeslots"]).assert_success(&answer_lines(FROM_SERVERS, &TIMESLOTS));
    assert!(
        first.leaders().iter().all(|&l| l == 300),
        "the first server elected someone else: {:?}\n{}",
        first.leaders(),
        first.dump()
    );
}

/// `--preempt-delay`: a higher newcomer follows the leader, which keeps
/// serving, and takes over only once the delay since its start has passed.
#[test]
fn a_higher_newcomer_waits_out_its_preempt_delay() {
    let group = TestGroup::new();
    let low = start_leader(&group, 100);
    let delay = std::time::Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let high = ServerProcess::start_fast(&group, 300, &["--preempt-delay", "1500"]);
    high.wait_for("waiting out --preempt-delay", PATIENCE);
    run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    high.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let took_over = started.elapsed();
    assert!(took_over >= delay, "300 took over {took_over:?} after starting, before its {delay:?} delay");
    wait_for_leader(&[&low, &high], 300, PATIENCE);
    run_client(&group, &["check", "SA318"]).assert_success(&["(From servers): SA318 8:30-9:30 Monday"]);
    println!("--preempt-delay 1500: 300 took over {} ms after it started", took_over.as_millis());
}
