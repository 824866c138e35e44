//! A real LAN on one machine: hosts are network namespaces cabled to one Linux
//! bridge, the servers and clients run inside them with the kernel's own
//! interface choice and `--ttl 1`. Needs root (skipped otherwise, a failure
//! when `CI` is set); see `tests/lan/mod.rs`.

mod common;
#[path = "lan/mod.rs"]
mod lan;

use std::time::{Duration, Instant};

use common::{DAYS, FROM_SERVERS, PATIENCE, ROOMS, TIMESLOTS, answer_lines};
use lan::{Lan, LanServer, dump_all, wait_agreement};

/// Ten servers, two on each of five hosts, started at once with their PIDs as
/// IDs: within 2 s of the last start every server names the highest PID as
/// the leader.
#[test]
fn ten_servers_on_five_hosts_agree_on_one_leader() {
    let Some(lan) = Lan::new_or_skip("ten_servers_on_five_hosts_agree_on_one_leader", 5, false) else {
        return;
    };
    let servers: Vec<LanServer> = (0..10).map(|i| lan.start_server(i % lan.hosts(), None, &[])).collect();
    let last_start = Instant::now();

    // `ip netns exec` execs the server, so the child's PID is the server's ID.
    for server in &servers {
        server.wait_for(&format!("Server {} started", server.pid()), PATIENCE);
    }
    let highest = servers.iter().map(LanServer::id).max().expect("ten servers");

    let limit = Duration::from_secs(2);
    // Waits past the limit so that a failure says how late (or never) agreement came.
    let agreed = wait_agreement(&servers, highest, last_start, PATIENCE);
    let views: Vec<(usize, u64, Option<u64>)> = servers.iter().map(|s| (s.host(), s.id(), s.last_leader())).collect();
    match agreed {
        None => panic!(
            "no agreement on leader {highest} (the highest PID) within {PATIENCE:?} of the last start; \
             (host, id, last leader): {views:?}\n{}",
            dump_all(&servers)
        ),
        Some(took) => assert!(
            took <= limit,
            "agreement on leader {highest} took {took:?} after the last start (limit {limit:?})\n{}",
            dump_all(&servers)
        ),
    }
    let took = agreed.expect("checked above");
    let elections: usize = servers.iter().map(|s| s.leaders().len()).sum();
    println!(
        "LAN election: {} servers on {} hosts agreed on leader {highest} (highest PID) {} ms after the last start \
         ({elections} `Election completed` lines in all)",
        servers.len(),
        lan.hosts(),
        took.as_millis()
    );
}

/// Three hosts, one server each, 10% packet loss each way on every host's
/// `eth0`: a client on host 0 still gets five reservations confirmed, each by
/// exactly one server, and `check` lists them all.
#[test]
fn lan_loss_still_serves_reservations() {
    let Some(lan) = Lan::new_or_skip("lan_loss_still_serves_reservations", 3, true) else {
        return;
    };
    let servers: Vec<LanServer> =
        [100, 200, 300].iter().enumerate().map(|(host, &id)| lan.start_server(host, Some(id), &[])).collect();
    if wait_agreement(&servers, 300, Instant::now(), PATIENCE).is_none() {
        panic!("servers 100, 200, 300 did not agree on leader 300 before any loss\n{}", dump_all(&servers));
    }
    let marks: Vec<usize> = servers.iter().map(|s| s.lines().len()).collect();

    for host in 0..lan.hosts() {
        lan.set_loss(host, 10);
    }

    // Five slots of one room, in the order `check` lists them (day, then timeslot).
    let room = ROOMS[3];
    let slots: Vec<[&str; 3]> = (0..5).map(|i| [room, TIMESLOTS[2 * i], DAYS[i]]).collect();
    let mut times = Vec::new();
    for [room, timeslot, day] in &slots {
        let out = lan.run_client(0, &["reserve", room, timeslot, day]);
        out.assert_success(&["(From servers): Reservation confirmed"]);
        times.push(out.elapsed);
    }
    let items: Vec<String> = slots.iter().map(|s| s.join(" ")).collect();
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    let check = lan.run_client(0, &["check", room]);
    check.assert_success(&answer_lines(FROM_SERVERS, &items));

    let elections_under_loss: usize = servers
        .iter()
        .zip(&marks)
        .map(|(s, &m)| s.lines()[m..].iter().filter(|l| l.contains("Election completed")).count())
        .sum();
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    println!(
        "LAN loss: 3 servers on 3 hosts, 10% loss each way per host: 5 reservations confirmed in {ms:?} ms \
         (total {} ms), check in {} ms; {elections_under_loss} `Election completed` lines during the loss",
        ms.iter().sum::<u128>(),
        check.elapsed.as_millis()
    );
}

/// `--min-replicas 3` on five hosts, then a partition {0, 1, 2} | {3, 4} with
/// the leader (500) on the small side: that side refuses a write with a clear
/// message, the large side elects 300 and confirms the same slot, and after
/// the heal one leader lists each reservation once.
#[test]
fn min_replicas_keeps_a_partition_from_confirming_conflicting_writes() {
    let Some(lan) = Lan::new_or_skip("min_replicas_keeps_a_partition_from_confirming_conflicting_writes", 5, true)
    else {
        return;
    };
    let args = ["--heartbeat-interval", "100", "--heartbeat-timeout", "500", "--min-replicas", "3"];
    let servers: Vec<LanServer> =
        (0..5).map(|host| lan.start_server(host, Some(100 * (host as u64 + 1)), &args)).collect();
    if wait_agreement(&servers, 500, Instant::now(), PATIENCE).is_none() {
        panic!("the five servers did not agree on leader 500\n{}", dump_all(&servers));
    }
    let room = ROOMS[4];
    let before = [room, TIMESLOTS[0], DAYS[0]];
    let contested = [room, TIMESLOTS[1], DAYS[1]];
    lan.run_client(0, &["reserve", before[0], before[1], before[2]])
        .assert_success(&["(From servers): Reservation confirmed"]);

    let mark = servers[4].lines().len();
    lan.partition(&[0, 1, 2], &[3, 4]);
    servers[2].wait_for("Election completed. Group Leader: 300", PATIENCE);
    // A write that reaches 500 before it stops counting the far side is
    // sequenced and then answered `Not confirmed`; this test is about refusal.
    for far in [100, 200, 300] {
        servers[4].wait_for_since(mark, &format!("server {far} ("), PATIENCE);
    }
    let small_side = lan.run_client(4, &["reserve", contested[0], contested[1], contested[2]]);
    assert_eq!(small_side.code(), 1, "the side with 2 of 5 servers must refuse: {small_side}\n{}", dump_all(&servers));
    assert!(small_side.stdout.contains("2 of the 3 servers"), "unclear refusal: {small_side}");
    lan.run_client(0, &["reserve", contested[0], contested[1], contested[2]])
        .assert_success(&["(From servers): Reservation confirmed"]);

    let heal_started = Instant::now();
    lan.heal();
    let Some(healed) = wait_agreement(&servers, 500, heal_started, PATIENCE) else {
        panic!("no single leader after the heal\n{}", dump_all(&servers));
    };
    let items = [before.join(" "), contested.join(" ")];
    let items: Vec<&str> = items.iter().map(String::as_str).collect();
    lan.run_client(3, &["check", room]).assert_success(&answer_lines(FROM_SERVERS, &items));
    println!(
        "LAN partition with --min-replicas 3: the 2-server side refused, the 3-server side confirmed; \
         all five agreed on leader 500 {} ms after the heal",
        healed.as_millis()
    );
}
