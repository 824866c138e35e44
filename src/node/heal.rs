//! Healing a partition in the default mode. While the network was split, each
//! side elected a leader and committed writes that the other side lacks. When
//! it heals, the group elects its highest server as usual, and that server's
//! history stands. A server that finds its committed history different from
//! its leader's (a candidate, from a server it catches up from; a follower,
//! from its leader, which in the default mode includes entries it holds but
//! does not know committed; `rules::conflict`) does not copy over it:
//!
//! 1. the follower sends its latest committed entries (`Orphans`);
//! 2. the leader appends each write it does not hold as [`Op::Merged`], which
//!    replays it after its own history (`ReservationTable::merge`: a write
//!    that cannot be replayed is a conflict, logged by every server and shown
//!    by `status`);
//! 3. once those entries are committed, the leader says so (`OrphansTaken`),
//!    and the follower drops its history, takes a new incarnation (what it
//!    acknowledged before no longer counts) and copies the leader's.
//!
//! A leader does not step down for a member whose history it knows differs
//! from its own (`Node::other_histories`): that member's longer log is merged, not adopted.

use std::time::Instant;

use ::log::{error, info, warn};

use super::clients::Write;
use super::replicated_log::{ReplicatedLog, estimated_size};
use super::replication::CHUNK_BUDGET;
use super::rules::{self, Relation, Report, Verdict};
use super::{Node, NodeId, State, xorshift};
use crate::rooms::Applied;
use crate::wire::{Entry, LogPosition, Op, PeerBody, PeerMessage};

impl Node {
    /// `theirs` (an entry of `source`, which has committed up to
    /// `their_commit`) sits where we hold a different entry. True if
    /// [`rules::conflict`] says our histories split or our log stands, after
    /// acting on it; false when theirs may replace ours.
    pub(super) fn on_divergence(
        &mut self,
        now: Instant,
        source: NodeId,
        theirs: LogPosition,
        their_commit: u64,
    ) -> bool {
        if self.log.position_at(theirs.seq).is_none_or(|held| held == theirs) {
            return false;
        }
        let from_leader = matches!(&self.state, State::Follower(f) if f.leader == source);
        let ours_committed = theirs.seq <= self.log.commit();
        let sides_commit = rules::sides_commit(self.config.min_replicas);
        let theirs_committed = theirs.seq <= their_commit;
        // Only a candidate's source may be a lone genesis; a leader we follow past it holds writes.
        let theirs_holds_writes = !matches!(&self.state, State::Candidate(c) if !c.holds_writes(source));
        match rules::conflict(from_leader, sides_commit, ours_committed, theirs_committed, theirs_holds_writes) {
            rules::Conflict::Replace => return false,
            rules::Conflict::KeepOurs => {
                info!("leader {source} holds an uncommitted entry at seq {} where we committed another", theirs.seq);
                return true;
            }
            rules::Conflict::Merge => {}
        }
        self.other_histories.insert(source);
        match &mut self.state {
            State::Candidate(_) => {
                warn!("{source}'s committed history differs from ours at seq {}: not catching up from it", theirs.seq);
                self.forget_catchup_source(now, source);
            }
            State::Follower(f) if f.leader == source => {
                let first = f.split_at.is_none();
                if first {
                    warn!(
                        "our history differs from leader {source}'s committed one at seq {}: handing our writes \
                         to it to merge",
                        theirs.seq
                    );
                    f.split_at = Some(theirs.seq);
                }
                let oldest = self.send_orphans();
                if first && oldest > theirs.seq {
                    // The writes between the split and `oldest` do not fit one datagram: they are lost.
                    error!(
                        "more writes were committed on this side of the partition than one datagram carries; \
                         those before seq {oldest} cannot be merged into the leader's history"
                    );
                }
            }
            _ => {}
        }
        true
    }

    /// Sends our latest writes that changed the table (refused or repeated
    /// requests must not be replayed), as many as fit a datagram, to our
    /// leader; the sequence number of the oldest sent. Writes we hold beyond
    /// our commit point go too: the leader of our side may have confirmed
    /// them and be gone before telling us.
    pub(super) fn send_orphans(&mut self) -> u64 {
        let State::Follower(f) = &self.state else { return 0 };
        let (leader, split_at) = (f.leader, f.split_at.unwrap_or(u64::MAX));
        let mut budget = CHUNK_BUDGET;
        let uncommitted = self.log.uncommitted_writes(&self.config.catalog);
        let mut entries: Vec<Entry> = self
            .log
            .committed_writes()
            .chain(uncommitted)
            .rev()
            .take_while(|e| {
                budget = budget.saturating_sub(estimated_size(e));
                budget > 0
            })
            .cloned()
            .collect();
        entries.reverse();
        let oldest = entries.first().map_or(0, |e| e.position.seq);
        self.send_to(leader, PeerBody::Orphans { split_at, entries });
        oldest
    }

    /// A diverged follower's committed entries: merges the writes we do not
    /// hold, and says when all of them are merged and committed. What
    /// `OrphansTaken` covers is the follower's commit point when it sent them
    /// (its envelope's).
    pub(super) fn on_orphans(
        &mut self,
        now: Instant,
        sender: NodeId,
        peer: &PeerMessage,
        split_at: u64,
        entries: &[Entry],
    ) {
        let report = Report {
            higher: sender > self.me,
            // Where the sender's history splits from ours above its commit
            // point, it holds no history of its own, only writes it does not
            // know committed: ours stands and they merge after it.
            last_committed: split_at <= peer.commit,
            relation: Relation::OtherHistory,
            diverged: true,
            nothing_committed: self.log.commit() == 0 && matches!(self.state, State::Leader(_)),
        };
        match rules::verdict(report) {
            Verdict::YieldToHigherHistory => return self.yield_to_higher_history(now, sender),
            Verdict::ElectAgain => {
                // We never committed anything (a leader that heard nobody and
                // wrote a genesis of its own): there is no history of ours to
                // merge into. Its history stands; catch up from it.
                warn!("server {sender} holds a committed history and we hold none; running the election again");
                return self.elect_again(now);
            }
            Verdict::Lead => {}
        }
        let State::Leader(l) = &mut self.state else { return };
        l.set_out_of_sync(sender);
        self.other_histories.insert(sender);
        let upto = peer.commit;
        let foreign: Vec<&Entry> = entries.iter().filter(|e| !self.log.holds(e.position)).collect();
        let Some(first_foreign) = foreign.first().map(|e| e.position.seq) else {
            return self.send_to(sender, PeerBody::OrphansTaken { upto });
        };
        // The batch may start after the split (cut to fit a datagram).
        let since = first_foreign.min(split_at);
        let mut merged_all = true;
        let mut fresh = Vec::new();
        for entry in foreign {
            let Some((origin, write)) = merged_write(entry) else { continue };
            if self.log.table().has_merged(origin) {
                continue;
            }
            let changed = self.log.request_changed_table(entry.client, entry.request);
            let answered_here = self.log.table().has_reached(entry.client, entry.request);
            if !rules::merges(changed, entry.position.seq <= peer.commit, answered_here) {
                continue;
            }
            merged_all = false;
            if !self.log.has_pending_merge(origin) {
                let op = Op::Merged { origin, since, write: Box::new(write) };
                fresh.push(Write { client: entry.client, request: entry.request, by: entry.by.clone(), op });
            }
        }
        if merged_all {
            return self.send_to(sender, PeerBody::OrphansTaken { upto });
        }
        if fresh.is_empty() {
            return; // merges are under way; the follower asks again
        }
        info!("merging {} writes committed by {sender} while the group was split", fresh.len());
        self.sequence(now, fresh);
    }

    /// Our leader merged our committed writes: drop our history and copy its.
    pub(super) fn on_orphans_taken(&mut self, now: Instant, sender: NodeId, upto: u64) {
        let State::Follower(f) = &mut self.state else { return };
        if f.leader != sender || f.split_at.is_none() || upto < self.log.commit() {
            return;
        }
        warn!("leader {sender} merged our committed writes; dropping our history to copy the leader's");
        f.split_at = None;
        f.verified = 0;
        f.leader_saw_our_log = false;
        self.log = ReplicatedLog::emptied();
        // Whose history differed from the one we drop is no longer known: a
        // stale entry would have us, leading later, ignore a longer log.
        self.other_histories.clear();
        self.incarnation = xorshift(&mut self.rng);
        self.catchup = None;
        self.snapshot_cache = None;
        self.events.push_back(super::Event::HistoryDropped);
        self.follower_catch_up(now);
    }

    /// A member we know diverged reports again: true while it still does
    /// (its longer log must not make us step down), and forgets it once it
    /// has copied our history.
    pub(super) fn still_diverged(&mut self, sender: NodeId, peer: &PeerMessage) -> bool {
        if !self.other_histories.contains(&sender) {
            return false;
        }
        if self.log.holds(peer.last) {
            self.other_histories.remove(&sender);
            return false;
        }
        true
    }

    /// Logs what a merge had to drop; every server does, so that the operator
    /// finds it in any server's log.
    pub(super) fn report_merge(&self, entry: &Entry, applied: &Applied) {
        if let Applied::Merged(Some(conflict)) = applied {
            error!("partition conflict at seq {}: {conflict}", entry.position.seq);
        }
    }
}

/// The origin and the write of a committed entry to merge; `None` for an
/// entry that is not a client's write.
fn merged_write(entry: &Entry) -> Option<(LogPosition, Op)> {
    match &entry.op {
        Op::Genesis { .. } => None,
        Op::Merged { origin, write, .. } => Some((*origin, write.as_ref().clone())),
        write => Some((entry.position, write.clone())),
    }
}
