//! Clean stops (SIGTERM, SIGINT): a leader hands over at once, a follower
//! tells its leader, and the group never waits for a heartbeat timeout.

// Tests run real processes and sockets and wait with the clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// With the default timings (1 s heartbeat timeout), SIGTERM to the leader
/// makes the next server lead without any heartbeat failing, and a write
/// sent right after the new leader took over is confirmed.
#[test]
fn a_leader_stopped_cleanly_hands_over_without_a_timeout() {
    let group = TestGroup::new();
    let first = ServerProcess::start(&group, Some(100), &[]);
    first.wait_for("Election completed. Group Leader: 100", PATIENCE);
    let second = ServerProcess::start(&group, Some(200), &[]);
    let mut leader = ServerProcess::start(&group, Some(300), &[]);
    wait_for_leader(&[&first, &second, &leader], 300, PATIENCE);
    // An interactive client, started beforehand, times the write alone.
    let mut client = ClientSession::start(&group);
    client.read_until(PROMPT, PATIENCE);
    let answer = client.command("reserve SA318 8:30-9:30 Monday");
    assert!(answer.contains("(From servers): Reservation confirmed"), "{answer}");

    let stopped = Instant::now();
    leader.signal("TERM");
    second.wait_for("Election completed. Group Leader: 200", PATIENCE);
    let took_over = stopped.elapsed();
    let answer = client.command("reserve SA318 9:30-10:30 Monday");
    let resumed = stopped.elapsed();
    assert!(answer.contains("(From servers): Reservation confirmed"), "{answer}");

    assert!(leader.wait_exit(PATIENCE).success(), "{}", leader.dump());
    assert!(leader.has_printed("leaving the group: handing over to 200"), "{}", leader.dump());
    for follower in [&first, &second] {
        assert!(!follower.has_printed("Heartbeat to group leader 300 failed"), "{}", follower.dump());
    }
    wait_for_leader(&[&first, &second], 200, PATIENCE);
    run_client(&group, &["check", "SA318"])
        .assert_success(&["(From servers): SA318 8:30-9:30 Monday", "SA318 9:30-10:30 Monday"]);
    println!(
        "clean leader stop: 200 led {:.1} ms after SIGTERM to 300; a write sent then was confirmed {:.1} ms after \
         SIGTERM",
        took_over.as_secs_f64() * 1000.0,
        resumed.as_secs_f64() * 1000.0
    );
}

/// A follower stopped cleanly tells the leader, which stops waiting for its
/// acknowledgements at once instead of a heartbeat timeout later.
#[test]
fn a_follower_stopped_cleanly_is_dropped_at_once() {
    let group = TestGroup::new();
    let leader = ServerProcess::start(&group, Some(300), &[]);
    leader.wait_for("Election completed. Group Leader: 300", PATIENCE);
    let mut follower = ServerProcess::start(&group, Some(100), &[]);
    wait_for_leader(&[&leader, &follower], 300, PATIENCE);
    leader.wait_for("server 100 (", PATIENCE); // joined

    let stopped = Instant::now();
    follower.signal("TERM");
    let left = leader.wait_for("left the group", PATIENCE);
    let dropped = stopped.elapsed();
    assert!(left.contains("server 100 (127.0.0.1"), "{left}");
    assert!(follower.wait_exit(PATIENCE).success(), "{}", follower.dump());
    assert!(follower.has_printed("leaving the group: telling leader 300"), "{}", follower.dump());
    run_client(&group, &["reserve", "SA318", "8:30-9:30", "Monday"])
        .assert_success(&["(From servers): Reservation confirmed"]);
    // Before its heartbeat timeout (1 s): by a message, not by silence.
    assert!(dropped < Duration::from_secs(1), "dropped after {dropped:?}\n{}", leader.dump());
    assert!(!leader.has_printed("stopped sending heartbeats"), "{}", leader.dump());
    println!("clean follower stop: the leader dropped it {} ms after SIGTERM", dropped.as_millis());
}
