//! Unit tests of the node core, driven through the deterministic simulation
//! with a virtual clock: one behaviour per test, named as the rule it checks.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::node::{Event, FatalError, Role};
use crate::sim::{Faults, Sim};
use crate::wire::{self, Answer, Command, Slot, WriteOutcome};

const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 7000);
const SETTLE: Duration = Duration::from_secs(3);

fn slot(room: &str, timeslot: &str, day: &str) -> Slot {
    Slot { room: room.into(), timeslot: timeslot.into(), day: day.into() }
}

fn leader_id(sim: &Sim) -> Vec<u64> {
    sim.leaders().into_iter().map(|i| sim.node(i).id().id).collect()
}

/// Every running server follows (or is) the expected leader.
fn agreed_on(sim: &Sim, id: u64) -> bool {
    sim.up().iter().all(|&i| sim.node(i).leader().map(|l| l.id) == Some(id))
}

/// Sends a request and retries it like a client until an answer arrives.
fn ask(sim: &mut Sim, client: u64, request: u64, command: Command) -> Answer {
    ask_via(sim, None, client, request, command)
}

/// Like [`ask`], reaching only the server at `only` if given.
fn ask_via(sim: &mut Sim, only: Option<usize>, client: u64, request: u64, command: Command) -> Answer {
    sim.replies.clear();
    for _ in 0..40 {
        match only {
            Some(index) => sim.request_to(index, CLIENT, client, request, command.clone()),
            None => sim.request(CLIENT, client, request, command.clone()),
        }
        let answered = |s: &Sim| s.replies.iter().any(|r| r.reply.request == request);
        if sim.run_until(Duration::from_millis(250), answered) {
            let reply = sim.replies.iter().find(|r| r.reply.request == request).map(|r| r.reply.answer.clone());
            return reply.expect("an answer was just seen");
        }
    }
    panic!("request {request} got no answer within 10 s of simulated time");
}

fn reserve(sim: &mut Sim, request: u64, s: Slot) -> Answer {
    ask(sim, 1, request, Command::Reserve(s))
}

fn reservations_on(sim: &Sim, index: usize) -> Vec<Slot> {
    sim.node(index).log().table().all(sim.node(index).catalog())
}

#[test]
fn lone_server_elects_itself_and_is_ready() {
    let mut sim = Sim::new(1, Faults::default());
    let a = sim.add_server(300, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    assert_eq!(sim.node(a).role(), Role::Leader);
}

#[test]
fn highest_id_wins_among_servers_started_together() {
    let mut sim = Sim::new(2, Faults::default());
    for id in [200, 450, 300] {
        sim.add_server(id, true);
    }
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 450)), "leaders: {:?}", leader_id(&sim));
    sim.run_for(SETTLE);
    assert_eq!(leader_id(&sim), vec![450], "the group stays with one leader");
}

#[test]
fn lower_newcomer_learns_it_is_not_leader() {
    let mut sim = Sim::new(3, Faults::default());
    sim.add_server(300, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    let term = sim.node(0).term();
    sim.add_server(200, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    assert_eq!(sim.node(0).term(), term, "a lower newcomer does not start a new leadership");
}

#[test]
fn higher_newcomer_takes_over_with_every_reservation() {
    let mut sim = Sim::new(4, Faults::default());
    sim.add_server(300, true);
    sim.add_server(200, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    for (i, day) in ["Monday", "Tuesday", "Wednesday"].into_iter().enumerate() {
        let answer = reserve(&mut sim, i as u64 + 1, slot("SA318", "8:30-9:30", day));
        assert_eq!(answer, Answer::Write(WriteOutcome::Reserved));
    }
    let newcomer = sim.add_server(450, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 450)), "leaders: {:?}", leader_id(&sim));
    assert_eq!(reservations_on(&sim, newcomer).len(), 3);
    let answer = ask(&mut sim, 2, 1, Command::Check { room: "SA318".into(), cached: None });
    assert!(matches!(answer, Answer::Reservations { ref slots, .. } if slots.len() == 3), "{answer:?}");
}

#[test]
fn killed_leader_is_replaced_by_the_next_highest_with_every_confirmed_write() {
    let mut sim = Sim::new(5, Faults::default());
    for id in [300, 200, 450] {
        sim.add_server(id, true);
    }
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 450)));
    let answer = reserve(&mut sim, 1, slot("ME4326", "8:30-9:30", "Friday"));
    assert_eq!(answer, Answer::Write(WriteOutcome::Reserved));
    sim.crash(2);
    let killed_at = sim.elapsed();
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)), "leaders: {:?}", leader_id(&sim));
    let failover = sim.elapsed() - killed_at;
    assert!(failover < Duration::from_secs(2), "failover took {failover:?}");
    // Followers apply what the leader reports committed, one heartbeat later.
    sim.run_for(Duration::from_millis(500));
    for i in sim.up() {
        assert_eq!(reservations_on(&sim, i), vec![slot("ME4326", "8:30-9:30", "Friday")], "server #{i}");
    }
}

#[test]
fn a_retried_write_runs_once_and_gets_the_first_answer() {
    let mut sim = Sim::new(6, Faults::default());
    sim.add_server(300, true);
    sim.add_server(200, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    let s = slot("SA412", "9:30-10:30", "Monday");
    assert_eq!(reserve(&mut sim, 1, s.clone()), Answer::Write(WriteOutcome::Reserved));
    sim.replies.clear();
    assert_eq!(reserve(&mut sim, 1, s), Answer::Write(WriteOutcome::Reserved), "replayed, not refused");
    assert_eq!(sim.node(1).log().last().seq, 2, "genesis plus one write: the retry was not sequenced");
}

#[test]
fn only_the_leader_replies() {
    let mut sim = Sim::new(7, Faults::default());
    for id in [300, 200, 100] {
        sim.add_server(id, true);
    }
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    ask(&mut sim, 1, 1, Command::Rooms);
    sim.run_for(Duration::from_millis(500));
    let leader_addr = sim.node(0).id().addr;
    assert!(sim.replies.iter().all(|r| r.from == leader_addr), "{:?}", sim.replies);
    assert_eq!(sim.replies.len(), 1);
}

#[test]
fn garbage_is_dropped_and_serving_continues() {
    let mut sim = Sim::new(8, Faults::default());
    sim.add_server(300, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    let mut truncated =
        wire::encode(&wire::Message::Request(wire::Request { client: 1, request: 1, command: Command::Rooms }));
    truncated.pop();
    for bytes in [vec![], b"hello".to_vec(), b"RC\x02\x00\xff\xff\xff\xff\xff".to_vec(), truncated] {
        sim.inject(CLIENT, bytes);
    }
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.node(0).dropped_datagrams(), 4);
    assert!(matches!(ask(&mut sim, 1, 2, Command::Days), Answer::Days(_)));
}

#[test]
fn duplicate_explicit_id_makes_the_newcomer_leave() {
    let mut sim = Sim::new(9, Faults::default());
    sim.add_server(300, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    sim.add_server(300, true);
    sim.run_for(Duration::from_secs(1));
    let first = sim.node(0).id().addr;
    assert_eq!(sim.fatal, vec![(1, Event::Fatal(FatalError::IdInUse { id: 300, other: first }))]);
    assert_eq!(sim.up(), vec![0]);
    assert_eq!(leader_id(&sim), vec![300]);
}

/// Two servers that share an explicit ID and both serve (they could not hear
/// each other) meet: the one with the higher address leaves, once, with no storm.
#[test]
fn duplicate_explicit_ids_meeting_after_a_partition_leave_one_server() {
    let mut sim = Sim::new(11, Faults { loss: 1.0, ..Faults::default() });
    sim.add_server(300, true);
    sim.add_server(300, true);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.leaders(), vec![0, 1], "each leads alone while nothing gets through");
    sim.faults = Faults::default();
    let before = sim.stats.datagrams;
    sim.run_for(Duration::from_secs(2));
    let kept = sim.node(0).id().addr;
    assert_eq!(sim.fatal, vec![(1, Event::Fatal(FatalError::IdInUse { id: 300, other: kept }))]);
    assert_eq!(sim.up(), vec![0]);
    let sent = sim.stats.datagrams - before;
    assert!(sent < 100, "{sent} datagrams in 2 s: the two kept each other busy");
}

#[test]
fn equal_default_ids_on_two_hosts_are_ordered_by_address() {
    let mut sim = Sim::new(10, Faults::default());
    sim.add_server(4242, false);
    sim.add_server(4242, false);
    assert!(sim.run_until(SETTLE, |s| s.leaders().len() == 1 && agreed_on(s, 4242)));
    assert!(sim.fatal.is_empty());
    assert_eq!(sim.leaders(), vec![1], "the higher address wins the tie");
}

#[test]
fn confirmed_writes_survive_loss_and_a_leader_crash_across_seeds() {
    for seed in 0..20 {
        let faults = Faults { loss: 0.1, ..Faults::default() };
        let mut sim = Sim::new(seed, faults);
        for id in [300, 200, 450] {
            sim.add_server(id, true);
        }
        assert!(sim.run_until(SETTLE, |s| agreed_on(s, 450)), "seed {seed}");
        let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
        for (i, day) in days.into_iter().enumerate() {
            let answer = reserve(&mut sim, i as u64 + 1, slot("MC5050", "8:30-9:30", day));
            assert_eq!(answer, Answer::Write(WriteOutcome::Reserved), "seed {seed}");
        }
        sim.crash(2);
        assert!(sim.run_until(SETTLE * 2, |s| agreed_on(s, 300)), "seed {seed}: {:?}", leader_id(&sim));
        let answer = ask(&mut sim, 3, 1, Command::Check { room: "MC5050".into(), cached: None });
        assert!(
            matches!(answer, Answer::Reservations { ref slots, .. } if slots.len() == 5),
            "seed {seed}: {answer:?}"
        );
    }
}

/// Servers 100, 200 and 300 with `--min-replicas 2`, agreed on 300.
fn safe_mode_trio(seed: u64) -> Sim {
    let mut sim = Sim::new(seed, Faults::default());
    sim.min_replicas = 2;
    for id in [100, 200, 300] {
        sim.add_server(id, true);
    }
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    sim
}

/// What 300 answers, cut off from both members, for a write it sequenced.
const UNCONFIRMED: Answer = Answer::Unconfirmed { reachable: 1, required: 2 };

/// Cuts 300 off from its members once they are in sync (so that it
/// sequences the write) and has it answer a reserve `Unconfirmed`; the slot.
fn strand_a_write_on_300(sim: &mut Sim) -> Slot {
    sim.run_for(SETTLE);
    sim.partition(&[2]);
    let stranded = slot("SA318", "8:30-9:30", "Monday");
    assert_eq!(reserve(sim, 1, stranded.clone()), UNCONFIRMED);
    stranded
}

/// With `--min-replicas 2`, a leader left alone refuses writes (and confirms
/// nothing), and takes them again once a second server is back.
#[test]
fn a_leader_short_of_min_replicas_refuses_writes() {
    let mut sim = safe_mode_trio(12);
    assert_eq!(reserve(&mut sim, 1, slot("SA318", "8:30-9:30", "Monday")), Answer::Write(WriteOutcome::Reserved));

    sim.crash(0);
    sim.crash(1);
    sim.run_for(SETTLE);
    let refused = reserve(&mut sim, 2, slot("SA318", "9:30-10:30", "Monday"));
    assert_eq!(refused, Answer::TooFewReplicas { reachable: 1, required: 2 });
    assert_eq!(reservations_on(&sim, 2).len(), 1, "nothing was written");

    sim.restart(1);
    assert!(sim.run_until(SETTLE, |s| s.node(1).log().commit() == s.node(2).log().commit()));
    let retried = reserve(&mut sim, 3, slot("SA318", "9:30-10:30", "Monday"));
    assert_eq!(retried, Answer::Write(WriteOutcome::Reserved));
}

/// With `--min-replicas 2`, a write the leader sequenced just before it lost
/// its members is answered `Unconfirmed` (not left to time out), retries get
/// the same answer, and after the heal the retry is confirmed exactly once.
#[test]
fn a_write_stranded_by_a_partition_is_reported_unconfirmed() {
    let mut sim = safe_mode_trio(13);
    let stranded = strand_a_write_on_300(&mut sim);
    assert!(sim.node(2).log().has_pending(1, 1), "the entry stays in the leader's log");
    assert_eq!(reserve(&mut sim, 1, stranded.clone()), UNCONFIRMED, "a retry while still short");

    sim.heal_partition();
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)));
    assert_eq!(reserve(&mut sim, 1, stranded.clone()), Answer::Write(WriteOutcome::Reserved));
    assert!(sim.run_until(SETTLE, |s| s.up().iter().all(|&i| reservations_on(s, i) == [stranded.clone()])));
}

/// After a partition in safe mode, the higher server that led its side alone
/// holds an entry the lower side's leader lacks. When that leader finds out
/// and stops leading, the higher server bids at once, as the bully algorithm
/// has it: waiting for its heartbeats to the lower server to fail (while that
/// one waited for its announcement) left the group without a leader for over
/// a second (simulation seed 4415).
#[test]
fn a_higher_follower_bids_when_its_lower_leader_stops_leading() {
    let mut sim = safe_mode_trio(15);
    strand_a_write_on_300(&mut sim);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 200) || s.leaders().len() == 2));
    assert!(sim.run_until(SETTLE, |s| s.node(0).leader().map(|l| l.id) == Some(200)));

    sim.heal_partition();
    let healed_at = sim.elapsed();
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 300)), "leaders: {:?}", leader_id(&sim));
    let leaderless = sim.elapsed() - healed_at;
    assert!(leaderless < Duration::from_secs(1), "the group agreed on 300 only {leaderless:?} after the heal");
}

/// With `--min-replicas 3`, a lower leader whose entries cannot commit yet
/// still hands over to a higher server that holds them all. Waiting for the
/// commit first deadlocked a group started together: the servers between
/// them waited for the higher one to announce itself, so none joined the
/// lower leader to make the commit possible.
#[test]
fn a_leader_short_of_min_replicas_still_hands_over_to_a_higher_server() {
    let mut sim = Sim::new(14, Faults::default());
    sim.min_replicas = 3;
    sim.add_server(100, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 100)));
    sim.add_server(500, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 500)), "leaders: {:?}", leader_id(&sim));

    sim.add_server(300, true);
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 500)));
    sim.run_for(SETTLE);
    assert_eq!(reserve(&mut sim, 1, slot("SA318", "8:30-9:30", "Monday")), Answer::Write(WriteOutcome::Reserved));
}

/// Default mode, five servers split {100, 200, 300} | {400, 500} with a
/// client on each side: both sides confirm writes, including the same slot.
/// After the heal the highest server's history stands, the other side's
/// writes are merged after it, the contested slot stays with 500's side and
/// the dropped reservation is a conflict every server reports; all tables
/// agree. A request that reached both sides is not taken for a conflict.
#[test]
fn a_healed_partition_merges_both_sides_and_reports_the_conflict() {
    let mut sim = Sim::new(21, Faults::default());
    for id in [100, 200, 300, 400, 500] {
        sim.add_server(id, true);
    }
    assert!(sim.run_until(SETTLE, |s| agreed_on(s, 500)));
    sim.run_for(SETTLE);
    sim.partition(&[3, 4]);
    sim.run_for(SETTLE);
    let (small, large) = (Some(4), Some(2));
    let contested = slot("SA318", "8:30-9:30", "Monday");
    let (kept, merged) = (slot("SA318", "9:30-10:30", "Monday"), slot("ME4326", "8:30-9:30", "Monday"));
    let reserved = Answer::Write(WriteOutcome::Reserved);
    assert_eq!(ask_via(&mut sim, small, 1, 1, Command::Reserve(contested.clone())), reserved);
    assert_eq!(ask_via(&mut sim, small, 1, 2, Command::Reserve(kept.clone())), reserved);
    assert_eq!(ask_via(&mut sim, large, 2, 1, Command::Reserve(contested.clone())), reserved);
    assert_eq!(ask_via(&mut sim, large, 2, 2, Command::Reserve(merged.clone())), reserved);
    // A client that reaches both sides has its request run on each: no conflict.
    let both = slot("MC5050", "8:30-9:30", "Monday");
    assert_eq!(ask(&mut sim, 3, 1, Command::Reserve(both.clone())), reserved);

    sim.heal_partition();
    let converged = |s: &Sim| {
        agreed_on(s, 500)
            && (0..5).all(|i| s.node(i).log().table() == s.node(4).log().table() && s.node(i).role() != Role::Candidate)
    };
    assert!(sim.run_until(SETTLE * 4, converged), "leaders {:?}", leader_id(&sim));
    let mut want = vec![contested.clone(), kept, merged, both];
    want.sort_by_key(|s| (s.room.clone(), s.day.clone(), s.timeslot.clone()));
    let mut got = reservations_on(&sim, 0);
    got.sort_by_key(|s| (s.room.clone(), s.day.clone(), s.timeslot.clone()));
    assert_eq!(got, want);
    for i in 0..5 {
        let (total, conflicts) = sim.node(i).log().table().conflicts();
        let conflicts: Vec<_> = conflicts.collect();
        assert_eq!(total, 1, "server {i}");
        assert_eq!(
            (conflicts[0].slot.clone(), conflicts[0].client, conflicts[0].reserve),
            (contested.clone(), 2, true)
        );
    }
}
