//! Message-level tests: one node in a given state, fed exact peer messages,
//! and what it sends in answer. They pin the rules of `rules.rs` where the
//! handlers apply them (openraft's handler tests, quinn's exact transmits).
#![allow(clippy::disallowed_methods)] // the node's time starts at a real instant; no test waits on it

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{Destination, Node, NodeConfig, ReplicatedLog, Role, Timing};
use crate::auth::frame::Boot;
use crate::rooms::Catalog;
use crate::wire::{self, Entry, LogPosition, Message, Op, PeerBody, PeerMessage, Slot};

/// The incarnation of the leader that wrote the shared first entry.
const OLD_LEADER: u64 = 77;

fn addr(id: u64) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, (id / 100) as u8), 5000)
}

fn position(term: u64, seq: u64, leader: u64) -> LogPosition {
    LogPosition { term, seq, leader }
}

fn reserve(at: LogPosition, room: &str) -> Entry {
    let slot = Slot { room: room.into(), timeslot: "8:30-9:30".into(), day: "Monday".into() };
    Entry { position: at, client: 9, request: at.seq, by: None, op: Op::Reserve(slot) }
}

/// A new group's first entry, written at `at`.
fn genesis(at: LogPosition, epoch: u64) -> Entry {
    Entry { position: at, client: 0, request: 0, by: None, op: Op::Genesis { epoch } }
}

/// A log whose genesis at seq 1 is committed, then `tail` uncommitted.
fn log_with(tail: &[Entry]) -> ReplicatedLog {
    let mut log = older_leaders_log(tail);
    log.commit_to(1, &Catalog::default());
    log
}

/// The old leader's genesis and `tail`, none known to be committed.
fn older_leaders_log(tail: &[Entry]) -> ReplicatedLog {
    let mut log = ReplicatedLog::default();
    log.push(genesis(position(1, 1, OLD_LEADER), 5));
    tail.iter().for_each(|e| log.push(e.clone()));
    log
}

/// Server `id`, recovered with `log` and started; what it sent on start is drained.
fn started(id: u64, min_replicas: usize, log: ReplicatedLog, now: Instant) -> Node {
    let config = NodeConfig {
        id,
        explicit_id: true,
        addr: addr(id),
        timing: Timing::default(),
        catalog: Catalog::default(),
        seed: id,
        min_replicas,
        keys: None,
        boot: Boot::default(),
    };
    let mut node = Node::recovered(config, now, log);
    node.start(now);
    sent(&mut node);
    node
}

/// Just after a candidate's answer window, started at `now`, closed.
fn after_election_window(now: Instant) -> Instant {
    now + Timing::default().election_timeout + Duration::from_millis(1)
}

/// Feeds `body` from server `from`, whose envelope says `term`, `last`, `commit`.
fn feed(node: &mut Node, now: Instant, from: u64, incarnation: u64, envelope: (u64, LogPosition, u64), body: PeerBody) {
    let (term, last, commit) = envelope;
    let catalog = node.fingerprint;
    let peer =
        PeerMessage { sender: from, incarnation, explicit_id: true, joining: false, term, last, commit, catalog, body };
    node.handle_datagram(now, addr(from), &wire::encode(&Message::Peer(peer)));
}

/// Every peer message the node queued, with where it goes.
fn sent(node: &mut Node) -> Vec<(Destination, PeerBody)> {
    std::iter::from_fn(|| node.poll_transmit())
        .filter_map(|t| match t.message {
            Message::Peer(peer) => Some((t.dst, peer.body)),
            _ => None,
        })
        .collect()
}

/// Follower 100 holds, uncommitted, `(2, 2)` from an earlier leader; leader
/// 300 of term 3 has committed a different entry there. The follower follows
/// 300 and is sent that entry.
fn follower_meets_a_committed_conflict(min_replicas: usize) -> (Node, Vec<(Destination, PeerBody)>) {
    let now = Instant::now();
    let ours = reserve(position(2, 2, 55), "SA318");
    let mut follower = started(100, min_replicas, log_with(std::slice::from_ref(&ours)), now);
    let theirs = reserve(position(3, 2, 33), "ME4494");
    let leader_says = (3, theirs.position, 2);
    feed(&mut follower, now, 300, 33, leader_says, PeerBody::Coordinator);
    assert_eq!(follower.role(), Role::Follower);
    feed(&mut follower, now, 300, 33, leader_says, PeerBody::HeartbeatAck);
    sent(&mut follower);
    let prev = position(1, 1, OLD_LEADER);
    feed(&mut follower, now, 300, 33, leader_says, PeerBody::Entries { prev, entries: vec![theirs], complete: true });
    let answer = sent(&mut follower);
    (follower, answer)
}

/// Rule 5 (`rules::conflict`), default mode: the follower does not know its
/// entry committed, but its leader may have confirmed it: it hands it over
/// to merge and keeps it until the merge is done.
#[test]
fn a_follower_hands_over_to_merge_an_entry_the_leaders_committed_one_would_replace() {
    let (follower, answer) = follower_meets_a_committed_conflict(1);
    let orphans = answer.iter().find_map(|(dst, body)| match body {
        PeerBody::Orphans { split_at, entries } => Some((*dst, *split_at, entries.clone())),
        _ => None,
    });
    let ours = reserve(position(2, 2, 55), "SA318");
    assert_eq!(orphans, Some((Destination::Peer(addr(300)), 2, vec![ours.clone()])), "sent: {answer:?}");
    assert_eq!(follower.log().last(), ours.position, "kept until merged");
}

/// Rule 5 in safe mode: two sets of `--min-replicas` servers share one, so
/// the leader's committed entry proves ours was never confirmed: it replaces it.
#[test]
fn in_safe_mode_the_leaders_committed_entry_replaces_an_unconfirmed_one() {
    let (follower, answer) = follower_meets_a_committed_conflict(2);
    assert!(!answer.iter().any(|(_, body)| matches!(body, PeerBody::Orphans { .. })), "sent: {answer:?}");
    assert_eq!(follower.log().last(), position(3, 2, 33));
}

/// Rule 5 (`rules::relation`): a voter whose last entry is one this process
/// wrote as leader and dropped is not ahead, however new its term; the
/// candidate catches up from the voter that holds the older leader's entry.
#[test]
fn a_candidate_does_not_catch_up_to_its_own_abandoned_entry() {
    let now = Instant::now();
    let mut candidate = started(300, 1, log_with(&[]), now);
    let abandoned = position(2, 2, candidate.incarnation);
    let confirmed = position(1, 3, OLD_LEADER);
    feed(&mut candidate, now, 200, 22, (2, abandoned, 1), PeerBody::ElectionReply { leading: false });
    feed(&mut candidate, now, 100, 11, (2, confirmed, 1), PeerBody::ElectionReply { leading: false });
    candidate.handle_timeout(after_election_window(now));
    let fetches: Vec<Destination> = sent(&mut candidate)
        .into_iter()
        .filter_map(|(dst, body)| matches!(body, PeerBody::Fetch { .. }).then_some(dst))
        .collect();
    assert_eq!(fetches, vec![Destination::Peer(addr(100))]);
}

/// Rule 5 (`rules::relation`): a voter whose log is a lone genesis holds no
/// write, so however new its term, a candidate holding an older leader's
/// writes (which that leader may have confirmed without telling it) leads
/// with them instead of fetching it (soak seed 571042).
#[test]
fn a_candidate_with_writes_does_not_catch_up_to_a_lone_genesis_of_a_newer_term() {
    let now = Instant::now();
    let log = older_leaders_log(&[reserve(position(1, 2, OLD_LEADER), "SA318")]);
    let mut candidate = started(300, 1, log, now);
    feed(&mut candidate, now, 200, 22, (2, position(2, 1, 22), 0), PeerBody::ElectionReply { leading: false });
    candidate.handle_timeout(after_election_window(now));
    let answer = sent(&mut candidate);
    assert!(!answer.iter().any(|(_, body)| matches!(body, PeerBody::Fetch { .. })), "sent: {answer:?}");
    assert_eq!(candidate.role(), Role::Leader);
    assert_eq!(candidate.log().last(), position(1, 2, OLD_LEADER));
}

/// Rule 5 (`rules::conflict`), default mode: a candidate holding an older
/// leader's writes, which it does not know committed, catches up from a
/// server whose lone genesis is committed (it knows more committed). The
/// genesis conflicts with ours: both may have been confirmed, so it does not
/// copy over our writes, and leads with them; that history is merged later.
#[test]
fn a_candidate_does_not_let_a_committed_entry_of_a_peer_replace_writes_it_holds() {
    let now = Instant::now();
    let log = older_leaders_log(&[reserve(position(1, 2, OLD_LEADER), "SA318")]);
    let mut candidate = started(300, 1, log, now);
    let lone_genesis = position(2, 1, 22);
    feed(&mut candidate, now, 200, 22, (2, lone_genesis, 1), PeerBody::ElectionReply { leading: false });
    let later = after_election_window(now);
    candidate.handle_timeout(later);
    let entries = vec![genesis(lone_genesis, 6)];
    let body = PeerBody::Entries { prev: LogPosition::default(), entries, complete: true };
    feed(&mut candidate, later, 200, 22, (2, lone_genesis, 1), body);
    assert_eq!(candidate.role(), Role::Leader);
    assert_eq!(candidate.log().last(), position(1, 2, OLD_LEADER), "our writes stay");
}

/// Rule 5 (`rules::conflict`), default mode: a candidate holding an older
/// leader's writes, which it does not know committed, catches up from a
/// server that committed another write at the same position. The committed
/// history stands: ours, never known committed, would otherwise lead, and
/// the confirmed write would merge after it and lose its slot.
#[test]
fn a_candidate_lets_a_committed_write_of_a_peer_replace_one_it_does_not_know_committed() {
    let now = Instant::now();
    let log = older_leaders_log(&[reserve(position(1, 2, OLD_LEADER), "SA318")]);
    let mut candidate = started(300, 1, log, now);
    let theirs = reserve(position(2, 2, 22), "SA318");
    let envelope = (2, theirs.position, 2);
    feed(&mut candidate, now, 200, 22, envelope, PeerBody::ElectionReply { leading: false });
    let later = after_election_window(now);
    candidate.handle_timeout(later);
    let entries = vec![genesis(position(1, 1, OLD_LEADER), 5), theirs.clone()];
    let body = PeerBody::Entries { prev: LogPosition::default(), entries, complete: true };
    feed(&mut candidate, later, 200, 22, envelope, body);
    assert_eq!(candidate.role(), Role::Leader);
    assert_eq!(candidate.log().last(), theirs.position, "the committed write stands");
}

/// Rule 2b (`rules::verdict`) on `Orphans`: a higher follower whose history
/// splits from ours at or below its commit point holds a committed history,
/// which stands: we stop leading. Where it splits above, the follower only
/// holds writes it does not know committed: we merge them after ours.
#[test]
fn a_leader_yields_only_to_a_higher_follower_whose_history_is_committed() {
    for (follower_commit, yields) in [(2, true), (1, false)] {
        let now = Instant::now();
        let (mut leader, now) = lone_leader(300, log_with(&[]), now);
        let ours = reserve(position(2, 2, 44), "SA318");
        let envelope = (leader.term, ours.position, follower_commit);
        let body = PeerBody::Orphans { split_at: 2, entries: vec![ours] };
        feed(&mut leader, now, 400, 44, envelope, body);
        let merged = leader.log().entries_after(1).iter().any(|e| matches!(e.op, Op::Merged { .. }));
        let want = if yields { (false, false) } else { (true, true) };
        let got = (leader.role() == Role::Leader, merged);
        assert_eq!(got, want, "follower commit {follower_commit}: got (leads, merged) {got:?}, want {want:?}");
    }
}

/// Rule 4a (`rules::first_commit_wait`): a server restarted with an
/// uncommitted entry of its own whose election reached nobody leads, but
/// commits nothing alone for a heartbeat timeout; the group's leader, of a
/// newer term, is heard meanwhile, and the server follows it.
#[test]
fn a_leader_that_heard_nobody_commits_nothing_before_a_heartbeat_timeout() {
    let now = Instant::now();
    let ours = reserve(position(2, 2, 33), "SA318");
    let (mut leader, elected) = lone_leader(300, log_with(&[ours]), now);
    let timing = Timing::default();
    let later = elected + timing.heartbeat_interval * 2;
    assert!(later < elected + timing.heartbeat_timeout, "the test needs two intervals inside the timeout");
    leader.handle_timeout(later);
    assert_eq!(leader.log().commit(), 1, "our own entry stays uncommitted");
    let groups = reserve(position(5, 2, 22), "ME4494");
    let envelope = (5, groups.position, 2);
    feed(&mut leader, later, 200, 22, envelope, PeerBody::LeaderAlive { members: vec![] });
    assert_eq!(leader.role(), Role::Follower);
}

/// Rule 5b (`rules::merges`): a follower's write that it does not know
/// committed is merged only if the leader's side has not answered the
/// client's request nor seen a newer one from that client.
#[test]
fn a_leader_merges_an_unconfirmed_write_only_for_a_client_it_has_not_answered_since() {
    for (client, merged) in [(9, false), (8, true)] {
        let now = Instant::now();
        let ours = reserve(position(1, 2, OLD_LEADER), "SA318"); // client 9, request 2
        let (mut leader, elected) = lone_leader(300, log_with(&[ours]), now);
        let timing = Timing::default();
        let mut later = elected;
        while later <= elected + timing.heartbeat_timeout {
            later += timing.heartbeat_interval; // ticks on time: no freeze to notice
            leader.handle_timeout(later);
        }
        assert_eq!(leader.log().commit(), 2);
        let mut theirs = reserve(position(2, 3, 44), "ME4494");
        (theirs.client, theirs.request) = (client, 1);
        let body = PeerBody::Orphans { split_at: 3, entries: vec![theirs] };
        let envelope = (leader.term, position(2, 3, 44), 2);
        feed(&mut leader, later, 400, 44, envelope, body);
        let got = leader.log().entries_after(2).iter().any(|e| matches!(e.op, Op::Merged { .. }));
        assert_eq!(got, merged, "client {client}: merged {got}, want {merged}");
    }
}

/// Server `id` alone with `log`, leading once its answer window closed.
fn lone_leader(id: u64, log: ReplicatedLog, now: Instant) -> (Node, Instant) {
    let mut node = started(id, 1, log, now);
    let later = after_election_window(now);
    node.handle_timeout(later);
    assert_eq!(node.role(), Role::Leader);
    sent(&mut node);
    (node, later)
}

/// Bully: a server answers every election with whether it leads, and a
/// leader asked by a lower server also announces itself to the group.
#[test]
fn a_leader_answers_a_lower_candidate_and_announces_itself() {
    let now = Instant::now();
    let (mut leader, now) = lone_leader(300, log_with(&[]), now);
    let term = leader.term;
    feed(&mut leader, now, 100, 11, (term, position(1, 1, OLD_LEADER), 1), PeerBody::Election { initiator: 100 });
    let answer = sent(&mut leader);
    assert_eq!(
        answer,
        vec![
            (Destination::Peer(addr(100)), PeerBody::ElectionReply { leading: true }),
            (Destination::Group, PeerBody::Coordinator),
        ]
    );
}

/// Rule 2a with terms: a leader claim from an older term than ours is
/// answered `StaleTerm` and changes nothing.
#[test]
fn a_claim_from_an_older_term_is_answered_stale_term() {
    let now = Instant::now();
    let (mut leader, now) = lone_leader(300, log_with(&[]), now);
    let term = leader.term;
    feed(&mut leader, now, 900, 99, (term - 1, position(1, 1, OLD_LEADER), 1), PeerBody::Coordinator);
    assert_eq!(sent(&mut leader), vec![(Destination::Peer(addr(900)), PeerBody::StaleTerm)]);
    assert_eq!((leader.role(), leader.term), (Role::Leader, term));
}

/// Rule 2b: a member's report shows entries the leader lacked when elected
/// (its answer was lost): the leader stops leading and elects again.
#[test]
fn a_leader_that_hears_a_longer_log_elects_again() {
    let now = Instant::now();
    let (mut leader, now) = lone_leader(300, log_with(&[]), now);
    let term = leader.term;
    let longer = position(1, 4, OLD_LEADER);
    feed(&mut leader, now, 100, 11, (term, longer, 1), PeerBody::Heartbeat { may_take_over: true });
    assert_eq!(leader.role(), Role::Candidate);
    assert!(
        sent(&mut leader)
            .iter()
            .any(|(dst, body)| *dst == Destination::Group && matches!(body, PeerBody::Election { .. }))
    );
}

/// Follower 100 of leader 300 (term 3, incarnation 33), with `log`.
fn follower_of_300(log: ReplicatedLog, leader_last: LogPosition, now: Instant) -> Node {
    let mut follower = started(100, 1, log, now);
    feed(&mut follower, now, 300, 33, (3, leader_last, 1), PeerBody::Coordinator);
    assert_eq!(follower.leader().map(|l| l.id), Some(300));
    sent(&mut follower);
    follower
}

/// Rule 4b: entries from another tenure of our leader (it restarted and
/// took the same term) are not taken.
#[test]
fn a_follower_drops_entries_from_another_tenure_of_its_leader() {
    let now = Instant::now();
    let theirs = reserve(position(3, 2, 34), "ME4494");
    let mut follower = follower_of_300(log_with(&[]), theirs.position, now);
    let prev = position(1, 1, OLD_LEADER);
    let entries = vec![theirs.clone()];
    feed(&mut follower, now, 300, 34, (3, theirs.position, 2), PeerBody::Entries { prev, entries, complete: true });
    assert_eq!(follower.log().last(), prev);
    assert!(sent(&mut follower).is_empty());
}

/// Rule 5, `KeepOurs`: the leader's *uncommitted* entry against one we
/// committed is its tail: we keep our log and send no orphans; the leader
/// catches up from us once our report shows it (rule 2b).
#[test]
fn a_follower_keeps_a_committed_entry_against_the_leaders_uncommitted_one() {
    let now = Instant::now();
    let ours = reserve(position(2, 2, 55), "SA318");
    let mut log = log_with(std::slice::from_ref(&ours));
    log.commit_to(2, &Catalog::default());
    let theirs = reserve(position(3, 2, 33), "ME4494");
    let mut follower = follower_of_300(log, theirs.position, now);
    let prev = position(1, 1, OLD_LEADER);
    let entries = vec![theirs.clone()];
    feed(&mut follower, now, 300, 33, (3, theirs.position, 1), PeerBody::Entries { prev, entries, complete: true });
    assert_eq!(follower.log().last(), ours.position);
    assert!(!sent(&mut follower).iter().any(|(_, body)| matches!(body, PeerBody::Orphans { .. })));
}

/// A candidate catching up from a voter that has since dropped the entry it
/// answered with (another entry now sits at that sequence number) elects
/// again, rather than fetching forever toward an entry nobody holds (soak
/// seed 1005778 left the group leaderless so).
#[test]
fn a_candidate_whose_source_dropped_its_target_elects_again() {
    let now = Instant::now();
    let mut candidate = started(300, 1, log_with(&[]), now);
    let answered = position(2, 2, 22);
    feed(&mut candidate, now, 200, 22, (2, answered, 1), PeerBody::ElectionReply { leading: false });
    let later = after_election_window(now);
    candidate.handle_timeout(later);
    assert!(sent(&mut candidate).contains(&(Destination::Peer(addr(200)), PeerBody::Fetch { from_seq: 2 })));

    let replaced = reserve(position(1, 2, OLD_LEADER), "SA318");
    let (prev, entries) = (position(1, 1, OLD_LEADER), vec![replaced.clone()]);
    let body = PeerBody::Entries { prev, entries, complete: true };
    feed(&mut candidate, later, 200, 22, (2, replaced.position, 1), body);
    let answer = sent(&mut candidate);
    assert!(answer.iter().any(|(dst, body)| *dst == Destination::Group && matches!(body, PeerBody::Election { .. })));
    assert_eq!(candidate.role(), Role::Candidate);
}

/// As above, where the source's log went on past the target without it:
/// once we hold the source's last entry and still lack the target, there is
/// nothing left to fetch (soak seed 835436 left the group leaderless so).
#[test]
fn a_candidate_level_with_a_source_that_lacks_its_target_elects_again() {
    let now = Instant::now();
    let mut candidate = started(300, 1, log_with(&[]), now);
    feed(&mut candidate, now, 200, 22, (2, position(2, 2, 22), 1), PeerBody::ElectionReply { leading: false });
    let later = after_election_window(now);
    candidate.handle_timeout(later);
    sent(&mut candidate);

    let went_on = vec![reserve(position(1, 2, OLD_LEADER), "SA318"), reserve(position(1, 3, OLD_LEADER), "ME4494")];
    let last = position(1, 3, OLD_LEADER);
    let body = PeerBody::Entries { prev: position(1, 1, OLD_LEADER), entries: went_on, complete: true };
    feed(&mut candidate, later, 200, 22, (2, last, 1), body);
    assert_eq!(candidate.log().last(), last);
    sent(&mut candidate);

    let body = PeerBody::Entries { prev: last, entries: Vec::new(), complete: true };
    feed(&mut candidate, later, 200, 22, (2, last, 1), body);
    let answer = sent(&mut candidate);
    assert!(answer.iter().any(|(dst, body)| *dst == Destination::Group && matches!(body, PeerBody::Election { .. })));
}
