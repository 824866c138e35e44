//! The protocol's rules. Every decision about who leads, who yields to whom,
//! what may replace what, what is committed and what is another history is
//! one pure function here, of plain values, with the reason it is safe. The
//! handlers only gather the values and act on the answer; `docs/protocol.md`
//! §3 states the same rules and argues the safety properties from them.

use std::time::Duration;

use super::{NodeId, Timing};
use crate::wire::LogPosition;

/// How much of the log a server holds, ordered so that the best source for a
/// new leader compares highest: its commit point first, because a log that
/// lacks a committed entry must never win on a newer term (a server restarted
/// empty may have led a short-lived term of its own), then whether it holds
/// writes (`relation` says why), then its last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Standing {
    /// How far it knows its log to be committed.
    pub(crate) commit: u64,
    /// Its last entry.
    pub(crate) last: LogPosition,
}

impl Ord for Standing {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.commit, self.reach()).cmp(&(other.commit, other.reach()))
    }
}

impl PartialOrd for Standing {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Standing {
    /// Whether the log holds a write: every log starts with a genesis (seq 1),
    /// which is none.
    pub(crate) fn holds_writes(self) -> bool {
        self.last.seq > 1
    }

    /// How far the log reaches, its commit point aside: a log with writes
    /// beyond one without (`relation` says why), then by its last entry.
    fn reach(self) -> (bool, LogPosition) {
        (self.holds_writes(), self.last)
    }
}

/// How another server's log stands to ours, from its last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    /// We hold its last entry: it has nothing we lack.
    Holds,
    /// It holds entries we lack that may be committed: catch up from it
    /// before anyone leads with our log.
    Ahead,
    /// Its last entry sits where we hold a different committed one: the
    /// other side of a partition (in the default mode), to merge, not copy.
    OtherHistory,
    /// Its extra entries are no newer than ours: an uncommitted tail that the
    /// leader's log replaces.
    Behind,
}

/// Rule 5, when a history is another history: an entry that sits where we
/// hold a *committed* one and differs from it (`diverges`) is another
/// history; an entry we hold (`holds`) is ours; otherwise the server is
/// ahead when it knows more committed than we do; else, of two logs of which
/// only one holds writes, that one is ahead; else the server is ahead when
/// its last entry is newer than ours. The last two never count an entry this
/// process wrote as leader and no longer holds (`abandoned`).
///
/// Safe because committed entries never change (rule 3): a different entry
/// at a committed position can only come from a leadership that did not
/// know ours, so copying it would drop confirmed writes; merging keeps both.
/// An abandoned entry of ours was never committed: only our own leadership
/// could commit it before another leader copied it (which would show in the
/// server's commit point), and we drop only uncommitted entries (a server
/// that drops its whole history takes a new incarnation). Catching up to it
/// would prefer our abandoned tail, on its newer term, over a log holding a
/// write an earlier leader confirmed (soak seed 864330). A log that holds
/// no write has nothing anyone was told, so nothing is lost by not copying
/// it: its newer term (a leader that heard nobody and wrote a genesis) must
/// not make it replace an older term's writes that a leader confirmed before
/// their holder heard they were committed (soak seed 571042 lost four so).
/// A higher commit point still comes first: a follower keeps a committed
/// entry against its leader's uncommitted one (`conflict`), and only the
/// leader stepping down for it, here, lets the two logs meet again; when it
/// then fetches, `conflict` keeps its writes in the default mode.
pub(crate) fn relation(holds: bool, diverges: bool, abandoned: bool, ours: Standing, theirs: Standing) -> Relation {
    match (holds, diverges) {
        (true, _) => Relation::Holds,
        (false, true) => Relation::OtherHistory,
        (false, false) if theirs.commit > ours.commit => Relation::Ahead,
        (false, false) if theirs.reach() > ours.reach() && !abandoned => Relation::Ahead,
        (false, false) => Relation::Behind,
    }
}

/// What to do about an entry of another server's that sits where we hold a
/// different one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Ours was never confirmed: take theirs (rule 3 says when).
    Replace,
    /// Their entry is our leader's uncommitted tail: keep our log; the leader
    /// catches up from us once our report shows it what it lacks (rule 2b).
    KeepOurs,
    /// Two histories: ours goes to the leader to merge (a candidate does not
    /// catch up from that source).
    Merge,
}

/// Rule 5 for a follower or a candidate catching up, what a conflicting
/// entry means. From the leader we follow: where either side committed its
/// entry, the histories split, except that a leader's *uncommitted* entry
/// against a committed one of ours is its tail. In the default mode
/// (`sides_commit`: both sides of a partition commit) a committed entry of
/// the leader's against one of ours that we do not know committed is another
/// history too; in safe mode it replaces ours. From any other source (a
/// candidate catching up), only our own commit point says we hold another
/// history, and its committed entry replaces ours, unless the source holds
/// no writes at all (`theirs_holds_writes`: a lone genesis), which then
/// merges into ours in the default mode.
///
/// Safe because an entry a follower holds but does not know committed may
/// still have been confirmed: its leader commits once every live in-sync
/// member holds it and tells the followers with its next message, which a
/// crash can stop. When the new leader's *committed* entry differs from it
/// in the default mode, two leaderships that did not know each other wrote
/// at that position, so ours goes to the leader to merge after its history,
/// with the writes we did commit (soak seed 327089 lost a confirmed write
/// when it was replaced instead). Merging a write that was never confirmed
/// only runs it late, once, as the at-most-once table allows for a request
/// whose answer was lost. A candidate has no leader to hand ours to: leading
/// with it would put writes nobody may have been told of before the
/// source's confirmed ones, which then merge after them and lose every
/// conflict (the LAN scenario of leaders killed under loss lost confirmed
/// cancellations so), so the committed history stands. Only a source
/// without writes confirmed nothing, and our writes lead over it (a lone
/// leader commits its own genesis after a heartbeat timeout). In safe mode
/// two sets of `--min-replicas` servers share one, so a committed entry of
/// the leader's proves ours was never confirmed. Against the leader's
/// uncommitted tail ours stands: that leader could not reach the servers
/// that committed ours, and merging would reorder confirmed writes.
pub(crate) fn conflict(
    from_leader: bool,
    sides_commit: bool,
    ours_committed: bool,
    theirs_committed: bool,
    theirs_holds_writes: bool,
) -> Conflict {
    match (from_leader, ours_committed, theirs_committed) {
        (true, true, false) => Conflict::KeepOurs,
        (_, true, _) => Conflict::Merge,
        (true, false, true) if sides_commit => Conflict::Merge,
        (false, false, true) if sides_commit && !theirs_holds_writes => Conflict::Merge,
        (_, false, _) => Conflict::Replace,
    }
}

/// Whether both sides of a partition may commit writes: in the default
/// mode. A server does not know how large its group is, so it takes
/// `--min-replicas` above one as the operator's word that it is above half
/// the group (safe mode), where two sides can never both commit.
pub(crate) fn sides_commit(min_replicas: usize) -> bool {
    min_replicas <= 1
}

/// A server's claim to lead: the term it leads and who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Claim {
    /// The term (compared first).
    pub(crate) term: u64,
    /// The server.
    pub(crate) server: NodeId,
}

/// Rule 2a, who yields to whom between two leaders (or a follower choosing
/// between its leader and another claimant): the higher (term, server)
/// prevails.
///
/// Safe because it is a total order every server computes alike: of two
/// leaders that meet, exactly one yields, and no server keeps following a
/// leader that another claim beats. Bully elections have no votes, so two
/// servers can lead one term after lost datagrams: the server ID breaks the
/// tie, and log positions carry the leader's incarnation, so their entries
/// never look alike (rule 3 then keeps the loser's uncommitted entries from
/// counting as the winner's).
pub(crate) fn prevails(theirs: Claim, ours: Claim) -> bool {
    theirs > ours
}

/// What a candidate does when its answer window closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Members it expected have not answered and it is still patient: ask
    /// them again.
    AskAgain,
    /// A higher server answered: wait for its `Coordinator`.
    AwaitHigher,
    /// A lower server leads: follow it (it hands over once we caught up).
    Follow(NodeId),
    /// A server that answered holds entries we lack: fetch them first.
    CatchUpFrom(NodeId),
    /// Take the next term and lead.
    Lead,
}

/// What a candidate knows when its answer window closes (the default: every
/// answer in, nobody higher or leading, nobody ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Answers {
    /// A member we expected (a leader listed it, or we heard it lately) did not answer.
    pub(crate) missing: bool,
    /// We may still wait for missing members.
    pub(crate) patient: bool,
    /// The highest server above us that answered.
    pub(crate) higher: Option<NodeId>,
    /// A server that answered as the current leader (lower than us).
    pub(crate) leader: Option<NodeId>,
    /// The best server that answered and holds entries we lack ([`Relation::Ahead`]).
    pub(crate) ahead: Option<NodeId>,
}

/// Rule 1, who may lead (bully): the highest live server, and only once it
/// holds every entry a live server holds that may be committed. A candidate
/// waits for the members it knows of (their answers may be lost, and they
/// may hold entries it lacks) as long as it is patient; defers to a higher
/// server; follows a lower leader, which hands over once it has caught up;
/// catches up from whoever is ahead; and only then leads.
///
/// Safe because an entry confirmed to a client is held by every live member
/// in sync (rule 4), so whichever of them is alive answers, and the new
/// leader fetches it before it serves: leadership never moves to a log that
/// lacks a confirmed write while a holder of it is reachable.
pub(crate) fn decide(answers: Answers) -> Decision {
    if answers.missing && answers.patient && answers.higher.is_none() {
        return Decision::AskAgain;
    }
    if answers.higher.is_some() {
        return Decision::AwaitHigher;
    }
    if let Some(leader) = answers.leader {
        return Decision::Follow(leader);
    }
    match answers.ahead {
        Some(source) => Decision::CatchUpFrom(source),
        None => Decision::Lead,
    }
}

/// What a leader learns from a member's report (a heartbeat or an ack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// The member outranks us.
    pub(crate) higher: bool,
    /// Its last entry is committed on its side (not an uncommitted tail).
    pub(crate) last_committed: bool,
    /// How its log stands to ours as it was when we were elected.
    pub(crate) relation: Relation,
    /// We know its history differs from ours and it has not copied ours yet.
    pub(crate) diverged: bool,
    /// We have committed nothing yet (a lone genesis of our own at most).
    pub(crate) nothing_committed: bool,
}

/// What a leader must do about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go on leading.
    Lead,
    /// A higher server's committed history differs from ours: it stands;
    /// stop leading so that it leads and merges our writes.
    YieldToHigherHistory,
    /// The member holds entries we did not have when elected: elect again,
    /// hearing it this time.
    ElectAgain,
}

/// Rule 2b, when a leader must give way to a member: to a higher server
/// whose own committed history differs from ours (the highest server's
/// history stands when partitions heal, `heal`); and to a member holding
/// entries we lacked when elected (its answer was lost), unless we already
/// know its history to be another one, which is merged, not adopted; or
/// to any committed history when we have committed nothing of our own.
///
/// Safe because stepping down only ever hands leadership to a log that
/// holds at least as much: the election that follows catches up from the
/// member first (rule 1). A liveness rule, not a safety one: a leader that
/// failed to step down would still commit nothing a member lacks (rule 4).
pub(crate) fn verdict(report: Report) -> Verdict {
    match report.relation {
        Relation::OtherHistory if report.higher && report.last_committed => Verdict::YieldToHigherHistory,
        Relation::OtherHistory if report.nothing_committed => Verdict::ElectAgain,
        Relation::Ahead if !report.diverged => Verdict::ElectAgain,
        _ => Verdict::Lead,
    }
}

/// Rule 3, when a log may replace another's entries: a follower lets its
/// leader replace entries of its own only after that leader has answered a
/// heartbeat that showed them (`leader_saw_ours`), and never a committed one
/// (the log refuses it).
///
/// Safe because a leader that saw entries it lacked, which a higher or older
/// leadership may have confirmed, steps down instead (rule 2b) before it
/// could answer; so the entries it replaces were never confirmed.
pub(crate) fn may_replace(leader_saw_ours: bool, replaces_any: bool) -> bool {
    leader_saw_ours || !replaces_any
}

/// Rule 4a, how long a new leader collects reports before its first commit
/// (`collecting`): nothing with a hand-over that listed every member
/// (`collect` false); one heartbeat interval when it heard from anyone, so
/// that members whose answer was lost can report; when it heard from nobody,
/// also until it has listened for a whole heartbeat timeout since it started
/// (`listened`).
///
/// Safe because a leader that heard nobody commits alone, and the failure
/// detector calls a server gone only after a heartbeat timeout of silence:
/// a server that has listened for less may have missed a group that is
/// alive and leading without it (its election datagram lost), and committing
/// its own uncommitted tail alone would make that tail, confirmed to nobody,
/// a history of its own that the merge then puts before the group's
/// confirmed writes (the LAN scenario of leaders killed under loss: a
/// restarted leader heard nobody). Meanwhile it announces itself, and it and
/// the group's leader meet (rule 2a). A server that has listened that long
/// and heard nobody saw its peers fail: it commits after one interval, so
/// failover stays one heartbeat timeout plus an election.
pub(crate) fn first_commit_wait(collect: bool, heard_anyone: bool, listened: Duration, timing: Timing) -> Duration {
    match (collect, heard_anyone) {
        (false, _) => Duration::ZERO,
        (true, true) => timing.heartbeat_interval,
        (true, false) => timing.heartbeat_interval.max(timing.heartbeat_timeout.saturating_sub(listened)),
    }
}

/// Rule 5b, which write of another history a leader merges into its own:
/// none whose request already changed our table (it is done); one its
/// holder knows committed (`theirs_committed`) otherwise, since that side
/// may have confirmed it even where ours refused it; and one it does not
/// know committed only if our side has no answer to the request and its
/// client has sent none since (`answered_here`).
///
/// Safe because a client has one request in flight: where our side holds
/// the request's outcome, or a newer request of the client's, the client
/// was answered here or gave up and moved on, so a write nobody may have
/// confirmed must not take effect now, after its later writes (a restarted
/// leader's stale reservation, refused here on retry, took the slot again
/// after its cancellation in the LAN scenario of leaders killed under loss).
/// A write its side confirmed while its leader crashed before saying so,
/// and that this side answered too, is the one such merge drops.
pub(crate) fn merges(changed_our_table: bool, theirs_committed: bool, answered_here: bool) -> bool {
    !changed_our_table && (theirs_committed || !answered_here)
}

/// A member as the commit rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replica {
    /// It holds everything committed and takes part in commits.
    pub(crate) in_sync: bool,
    /// The highest sequence number it holds that matches our log.
    pub(crate) acked: u64,
}

/// Rule 4, what counts toward commit: an entry commits once the leader and
/// every live member in sync hold it, once the first members have had time
/// to report (`collecting`), and only while at least `min_replicas` servers
/// (the leader included) take part. Returns the new commit point, if any.
///
/// Safe because a confirmed write is then on every live in-sync server, of
/// which the next leader fetches the best log (rule 1); with `min_replicas`
/// above half the group, two such sets always share a server, so a
/// partition's smaller side cannot confirm anything.
pub(crate) fn commit_point(
    own_last: u64,
    commit: u64,
    collecting: bool,
    min_replicas: usize,
    members: impl Iterator<Item = Replica>,
) -> Option<u64> {
    if collecting {
        return None;
    }
    let in_sync: Vec<u64> = members.filter(|m| m.in_sync).map(|m| m.acked).collect();
    if 1 + in_sync.len() < min_replicas {
        return None; // a partition or crashes left too few servers to hold a write
    }
    let target = in_sync.into_iter().fold(own_last, u64::min);
    (target > commit).then_some(target)
}

/// One leadership: a term, as one process of its leader (`incarnation`,
/// drawn at every start) holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tenure {
    pub(crate) term: u64,
    pub(crate) incarnation: u64,
}

impl Tenure {
    /// The tenure a leader's message speaks for.
    pub(crate) fn of(peer: &crate::wire::PeerMessage) -> Self {
        Tenure { term: peer.term, incarnation: peer.incarnation }
    }
}

/// Rule 4b, what a follower takes from its leader: entries and commit
/// points count only when they come from the tenure it follows; a leader's
/// message from another tenure is a new claim (it makes us follow that
/// tenure afresh, forgetting how far our log matched), or is dropped.
///
/// Safe because a commit point is a fact about one tenure's log. The same
/// server in another term, or restarted without its data (possibly taking a
/// term number it held before), may hold a different log: taking its
/// entries under the old tenure's flags could replace entries the old tenure
/// confirmed, and combining their match with the old commit point would
/// apply entries no leader committed (soak seed 725113).
pub(crate) fn same_tenure(followed: Tenure, source: Tenure) -> bool {
    followed == source
}

/// Whether a member takes part in commits: it has reported holding
/// everything committed, and its history is not known to differ (a diverged
/// member holds none of our entries beyond the split until it copies our
/// history: waiting for it would stall every commit).
pub(crate) fn in_sync(reported_last_seq: u64, commit: u64, diverged: bool) -> bool {
    reported_last_seq >= commit && !diverged
}

/// Whether a leader hands over to its highest member: that member outranks
/// it, holds its whole log and is in sync, and has waited out its
/// `--preempt-delay`.
///
/// Safe because writes pause from the hand-over on, so the successor misses
/// nothing; a liveness rule otherwise.
pub(crate) fn hands_over(higher: bool, in_sync: bool, holds_all: bool, may_take_over: bool) -> bool {
    higher && in_sync && holds_all && may_take_over
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId { id: n, addr: std::net::SocketAddrV4::new([10, 0, 0, n as u8].into(), 5000) }
    }

    fn standing(commit: u64, term: u64, seq: u64) -> Standing {
        Standing { commit, last: LogPosition::new(term, seq) }
    }

    #[test]
    fn relation_of_another_log() {
        let ours = standing(5, 2, 6);
        // (holds, diverges, abandoned, theirs, want)
        let cases = [
            (true, false, false, standing(9, 9, 9), Relation::Holds),
            (false, true, false, standing(9, 9, 9), Relation::OtherHistory),
            (false, false, false, standing(6, 2, 6), Relation::Ahead),
            (false, false, false, standing(5, 3, 6), Relation::Ahead),
            (false, false, false, standing(4, 1, 8), Relation::Behind),
            (false, false, false, standing(5, 2, 6), Relation::Behind),
            (false, false, true, standing(5, 3, 7), Relation::Behind),
            (false, false, true, standing(4, 3, 7), Relation::Behind),
            (false, false, true, standing(6, 3, 7), Relation::Ahead),
        ];
        for (i, (holds, diverges, abandoned, theirs, want)) in cases.into_iter().enumerate() {
            let got = relation(holds, diverges, abandoned, ours, theirs);
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_log_with_writes_is_ahead_of_a_lone_genesis_of_any_term_unless_that_knows_more_committed() {
        let older_writes = standing(0, 1, 5);
        let lone_genesis = |commit| standing(commit, 2, 1);
        // (ours, theirs, want)
        let cases = [
            (older_writes, lone_genesis(0), Relation::Behind),
            (older_writes, lone_genesis(1), Relation::Ahead),
            (lone_genesis(0), older_writes, Relation::Ahead),
            (lone_genesis(1), older_writes, Relation::Ahead),
            (Standing::default(), lone_genesis(0), Relation::Ahead),
            (lone_genesis(0), standing(0, 3, 1), Relation::Ahead),
            (lone_genesis(0), standing(0, 1, 1), Relation::Behind),
        ];
        for (i, (ours, theirs, want)) in cases.into_iter().enumerate() {
            let got = relation(false, false, false, ours, theirs);
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn standings_order_by_commit_then_writes_then_last() {
        // (lower, higher)
        let cases = [
            (standing(0, 1, 2), standing(1, 9, 1)),
            (standing(0, 9, 1), standing(0, 1, 2)),
            (standing(1, 1, 5), standing(2, 1, 3)),
            (standing(2, 1, 5), standing(2, 2, 3)),
            (standing(2, 2, 3), standing(2, 2, 4)),
        ];
        for (i, (lower, higher)) in cases.into_iter().enumerate() {
            assert!(lower < higher, "#{i}: got {lower:?} >= {higher:?}, want it lower");
        }
    }

    #[test]
    fn safe_mode_is_min_replicas_above_one() {
        let cases = [(0, true), (1, true), (2, false), (3, false)];
        for (i, (min_replicas, want)) in cases.into_iter().enumerate() {
            let got = sides_commit(min_replicas);
            assert_eq!(got, want, "#{i}: got {got}, want {want}");
        }
    }

    #[test]
    fn first_commit_waits() {
        let timing = Timing::default();
        let (interval, timeout) = (timing.heartbeat_interval, timing.heartbeat_timeout);
        let (just_started, long_up) = (Duration::from_millis(200), timeout * 5);
        // (collect, heard anyone, listened since start, want)
        let cases = [
            (false, false, just_started, Duration::ZERO),
            (false, true, long_up, Duration::ZERO),
            (true, true, just_started, interval),
            (true, true, long_up, interval),
            (true, false, just_started, timeout - just_started),
            (true, false, timeout - interval / 2, interval),
            (true, false, long_up, interval),
        ];
        for (i, (collect, heard, listened, want)) in cases.into_iter().enumerate() {
            let got = first_commit_wait(collect, heard, listened, timing);
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn merged_writes() {
        // (request changed our table, holder knows it committed, answered here, want)
        let cases = [
            (true, true, true, false),
            (true, true, false, false),
            (true, false, true, false),
            (true, false, false, false),
            (false, true, true, true),
            (false, true, false, true),
            (false, false, true, false),
            (false, false, false, true),
        ];
        for (i, (changed, committed, answered, want)) in cases.into_iter().enumerate() {
            let got = merges(changed, committed, answered);
            assert_eq!(got, want, "#{i}: got {got}, want {want}");
        }
    }

    #[test]
    fn conflicting_entries() {
        // (from our leader, both sides commit, ours committed, theirs committed, the source holds writes, want)
        let cases = [
            (true, true, true, true, true, Conflict::Merge),
            (true, true, true, false, true, Conflict::KeepOurs),
            (true, true, false, true, true, Conflict::Merge),
            (true, true, false, false, true, Conflict::Replace),
            (true, false, true, true, true, Conflict::Merge),
            (true, false, true, false, true, Conflict::KeepOurs),
            (true, false, false, true, true, Conflict::Replace),
            (true, false, false, false, true, Conflict::Replace),
            (false, true, true, true, true, Conflict::Merge),
            (false, true, true, false, true, Conflict::Merge),
            (false, true, false, true, true, Conflict::Replace),
            (false, true, false, false, true, Conflict::Replace),
            (false, false, true, true, true, Conflict::Merge),
            (false, false, true, false, true, Conflict::Merge),
            (false, false, false, true, true, Conflict::Replace),
            (false, false, false, false, true, Conflict::Replace),
            // a candidate's source that is a lone genesis confirmed nothing
            (false, true, false, true, false, Conflict::Merge),
            (false, false, false, true, false, Conflict::Replace),
            (false, true, false, false, false, Conflict::Replace),
            (true, true, false, true, false, Conflict::Merge),
            (false, true, true, true, false, Conflict::Merge),
        ];
        for (i, (from_leader, sides_commit, ours, theirs, writes, want)) in cases.into_iter().enumerate() {
            let got = conflict(from_leader, sides_commit, ours, theirs, writes);
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn prevailing_claims() {
        let cases = [
            (Claim { term: 3, server: id(1) }, Claim { term: 2, server: id(9) }, true),
            (Claim { term: 2, server: id(9) }, Claim { term: 2, server: id(1) }, true),
            (Claim { term: 2, server: id(1) }, Claim { term: 2, server: id(9) }, false),
            (Claim { term: 2, server: id(1) }, Claim { term: 2, server: id(1) }, false),
        ];
        for (i, (theirs, ours, want)) in cases.into_iter().enumerate() {
            let got = prevails(theirs, ours);
            assert_eq!(got, want, "#{i}: got {got}, want {want}");
        }
    }

    #[test]
    fn candidate_decisions() {
        let none = Answers { missing: false, patient: false, higher: None, leader: None, ahead: None };
        let cases = [
            (Answers { missing: true, patient: true, ..none }, Decision::AskAgain),
            (Answers { missing: true, patient: false, ..none }, Decision::Lead),
            (Answers { missing: true, patient: true, higher: Some(id(9)), ..none }, Decision::AwaitHigher),
            (Answers { higher: Some(id(9)), leader: Some(id(1)), ..none }, Decision::AwaitHigher),
            (Answers { leader: Some(id(1)), ahead: Some(id(2)), ..none }, Decision::Follow(id(1))),
            (Answers { ahead: Some(id(2)), ..none }, Decision::CatchUpFrom(id(2))),
            (none, Decision::Lead),
        ];
        for (i, (answers, want)) in cases.into_iter().enumerate() {
            let got = decide(answers);
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn leader_verdicts_on_reports() {
        let base = Report {
            higher: false,
            last_committed: true,
            relation: Relation::Holds,
            diverged: false,
            nothing_committed: false,
        };
        let other = Relation::OtherHistory;
        let cases = [
            (base, Verdict::Lead),
            (Report { higher: true, relation: other, ..base }, Verdict::YieldToHigherHistory),
            (Report { higher: true, relation: other, last_committed: false, ..base }, Verdict::Lead),
            (Report { relation: other, ..base }, Verdict::Lead),
            (Report { relation: other, nothing_committed: true, ..base }, Verdict::ElectAgain),
            (Report { relation: Relation::Ahead, ..base }, Verdict::ElectAgain),
            (Report { relation: Relation::Ahead, diverged: true, ..base }, Verdict::Lead),
            (Report { relation: Relation::Behind, higher: true, ..base }, Verdict::Lead),
        ];
        for (i, (report, want)) in cases.into_iter().enumerate() {
            let got = verdict(report);
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn replacing_entries() {
        for (i, (saw, replaces, want)) in
            [(true, true, true), (true, false, true), (false, false, true), (false, true, false)]
                .into_iter()
                .enumerate()
        {
            let got = may_replace(saw, replaces);
            assert_eq!(got, want, "#{i}: got {got}, want {want}");
        }
    }

    #[test]
    fn commit_points() {
        let r = |in_sync, acked| Replica { in_sync, acked };
        // (own last, commit, collecting, min_replicas, members, want)
        type Case = (u64, u64, bool, usize, Vec<Replica>, Option<u64>);
        let cases: [Case; 7] = [
            (9, 4, false, 1, vec![], Some(9)),
            (9, 4, false, 1, vec![r(true, 7), r(true, 8)], Some(7)),
            (9, 4, false, 1, vec![r(true, 7), r(false, 2)], Some(7)),
            (9, 7, false, 1, vec![r(true, 7)], None),
            (9, 4, true, 1, vec![r(true, 9)], None),
            (9, 4, false, 3, vec![r(true, 9), r(false, 9)], None),
            (9, 4, false, 3, vec![r(true, 9), r(true, 6)], Some(6)),
        ];
        for (i, (own, commit, collecting, min, members, want)) in cases.into_iter().enumerate() {
            let got = commit_point(own, commit, collecting, min, members.into_iter());
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn a_follower_takes_entries_only_from_the_tenure_it_follows() {
        let tenure = |term, incarnation| Tenure { term, incarnation };
        let cases = [
            (tenure(9, 1), tenure(9, 1), true),
            (tenure(9, 1), tenure(10, 1), false),
            (tenure(10, 1), tenure(9, 1), false),
            (tenure(9, 1), tenure(9, 2), false), // restarted, and took the same term again
        ];
        for (i, (followed, source, want)) in cases.into_iter().enumerate() {
            assert_eq!(same_tenure(followed, source), want, "#{i}");
        }
    }

    #[test]
    fn members_in_sync_and_hand_overs() {
        for (i, (last, commit, diverged, want)) in
            [(5, 5, false, true), (4, 5, false, false), (9, 5, true, false)].into_iter().enumerate()
        {
            assert_eq!(in_sync(last, commit, diverged), want, "#{i}");
        }
        let cases = [
            ((true, true, true, true), true),
            ((false, true, true, true), false),
            ((true, false, true, true), false),
            ((true, true, false, true), false),
            ((true, true, true, false), false),
        ];
        for (i, ((higher, synced, all, may), want)) in cases.into_iter().enumerate() {
            assert_eq!(hands_over(higher, synced, all, may), want, "#{i}");
        }
    }
}
