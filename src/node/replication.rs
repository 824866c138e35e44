//! Primary-backup replication over the group.
//!
//! The leader appends each write to its log and multicasts it (`Append`).
//! Followers acknowledge by unicast (`AppendAck`, and every `Heartbeat` carries
//! their position too). An entry is committed, applied and answered once every
//! live member that is in sync holds it. A replica that sees a gap, or lags
//! behind what the leader announces, pulls what it misses (`Fetch` →
//! `Entries`, or a chunked snapshot when the entries were compacted).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;
use std::time::Instant;

use ::log::{info, warn};

use super::replicated_log::{MAX_SNAPSHOT, ReplicatedLog, decode_snapshot};
use super::rules::{self, Replica, Report, Standing, Verdict};
use super::{Node, NodeId, State};
use crate::wire::{Entry, LogPosition, PeerBody, PeerMessage};

/// Bytes of entries or snapshot sent in one datagram, well under the UDP limit.
pub(super) const CHUNK_BUDGET: usize = 48 * 1024;

/// The leader's view of its members and pending answers.
pub(super) struct Leadership {
    /// The term this leadership holds.
    pub(super) term: u64,
    members: BTreeMap<NodeId, Member>,
    /// Commit nothing before this instant: members are still making themselves known.
    collecting_until: Instant,
    /// Clients waiting for a write to commit, by (client, request); ordered,
    /// so that answering them all goes the same way in every simulated run.
    pub(super) waiting: BTreeMap<(u64, u64), SocketAddrV4>,
    /// Handing over to a higher server since this instant: writes pause.
    pub(super) handing_over: Option<(NodeId, Instant)>,
    /// The log's end when this leadership began. Until it is committed, the
    /// table may lack writes a previous leader confirmed, so client requests
    /// are left to their retries; a member holding entries beyond it that we
    /// lack was not heard in the election.
    pub(super) inherited: LogPosition,
}

/// What a leader knows about one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    /// When it was last heard.
    pub(crate) last_heard: Instant,
    /// Highest sequence number it holds that matches the leader's log.
    pub(crate) acked: u64,
    /// It holds everything committed, so commits wait for it.
    pub(crate) in_sync: bool,
    /// The process run it reported from; a new one starts with nothing we know of.
    pub(crate) incarnation: Option<u64>,
    /// It has waited out its `--preempt-delay` (as its last heartbeat said).
    pub(crate) may_take_over: bool,
}

impl Member {
    /// A member just heard from, of which we know nothing yet.
    fn new(now: Instant) -> Self {
        Member { last_heard: now, acked: 0, in_sync: false, incarnation: None, may_take_over: true }
    }
}

impl Leadership {
    /// A new leadership that commits nothing before `collecting_until` (see
    /// `Node::become_leader`).
    pub(super) fn new(
        now: Instant,
        term: u64,
        voters: &BTreeMap<NodeId, LogPosition>,
        log: &ReplicatedLog,
        collecting_until: Instant,
    ) -> Self {
        let members = voters
            .iter()
            .map(|(&id, &last)| {
                let acked = if log.holds(last) { last.seq } else { 0 };
                (id, Member { acked, in_sync: rules::in_sync(last.seq, log.commit(), false), ..Member::new(now) })
            })
            .collect();
        Leadership {
            term,
            members,
            collecting_until,
            waiting: BTreeMap::new(),
            handing_over: None,
            inherited: log.last(),
        }
    }

    /// Stops counting `member` toward commits (its history diverged from ours).
    pub(super) fn set_out_of_sync(&mut self, member: NodeId) {
        if let Some(m) = self.members.get_mut(&member) {
            m.in_sync = false;
        }
    }

    /// The highest in-sync member that holds our log up to `last`: who takes
    /// over when we leave.
    pub(super) fn successor(&self, last: u64) -> Option<NodeId> {
        self.members.iter().rev().find(|(_, m)| m.in_sync && m.acked == last).map(|(id, _)| *id)
    }

    /// Drops a member that left; true if it was one.
    pub(super) fn remove_member(&mut self, member: NodeId) -> bool {
        self.members.remove(&member).is_some()
    }

    /// Servers that hold (or will hold) each new write: the leader and its
    /// in-sync members. `--min-replicas` is measured against this.
    pub(super) fn replicas(&self) -> usize {
        1 + self.members.values().filter(|m| m.in_sync).count()
    }
}

impl Node {
    /// The leader's members, for status displays and diagnostics; empty when
    /// this server does not lead.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn member_status(&self) -> Vec<(NodeId, Member)> {
        let State::Leader(l) = &self.state else { return Vec::new() };
        l.members.iter().map(|(&id, &m)| (id, m)).collect()
    }

    /// The members a candidate must hear from before it decides: our own when
    /// we lead, else those our leader last listed.
    pub(super) fn known_members(&self) -> BTreeSet<NodeId> {
        match &self.state {
            State::Leader(l) => l.members.keys().copied().collect(),
            _ => self.listed_members.clone(),
        }
    }
}

/// A pull in progress: from whom, when to ask again, and a partial snapshot.
pub(super) struct Catchup {
    source: NodeId,
    pub(super) retry_at: Instant,
    snapshot: Option<Assembly>,
}

struct Assembly {
    last: LogPosition,
    total: u64,
    data: Vec<u8>,
}

impl Node {
    pub(super) fn leader_tick(&mut self, now: Instant) {
        let timeout = self.config.timing.heartbeat_timeout;
        // After our own pause, members get a full timeout to report (or to tell
        // us of a newer term) before we stop waiting for them.
        let resumed = self.recently_resumed(now, timeout);
        let State::Leader(l) = &mut self.state else { return };
        l.members.retain(|id, m| {
            let alive = resumed || now < m.last_heard + timeout;
            if !alive {
                info!("server {id} stopped sending heartbeats; no longer waiting for it");
            }
            alive
        });
        let members = l.members.keys().map(|id| (id.id, id.addr)).collect();
        if l.handing_over.is_some_and(|(_, since)| now >= since + timeout) {
            warn!("hand-over got no answer; taking writes again");
            l.handing_over = None;
        }
        self.multicast(PeerBody::LeaderAlive { members });
        self.try_commit(now);
        self.release_unconfirmable(now);
    }

    /// Stops leading and runs the election again.
    pub(super) fn elect_again(&mut self, now: Instant) {
        let State::Leader(l) = &self.state else { return };
        // What we added since we took over was never confirmed to anyone, and
        // it would make our log look newer than one we missed.
        let inherited = l.inherited.seq;
        self.log.drop_uncommitted_after(inherited);
        self.become_candidate(now, 0);
    }

    /// A higher server's committed history differs from ours (a healed
    /// partition): the highest server's history stands (`heal`), so we stop
    /// leading; once it leads, we hand it our writes to merge.
    pub(super) fn yield_to_higher_history(&mut self, now: Instant, higher: NodeId) {
        warn!(
            "server {higher} has a higher ID and a different committed history, which stands; running the election again"
        );
        self.elect_again(now);
    }

    /// A follower's `Heartbeat` or `AppendAck`.
    pub(super) fn on_member_report(&mut self, now: Instant, sender: NodeId, peer: &PeerMessage) {
        let State::Leader(l) = &self.state else {
            if peer.term < self.term {
                self.send_to(sender, PeerBody::StaleTerm);
            }
            return;
        };
        let inherited = l.inherited;
        let report = Report {
            higher: sender > self.me,
            // An uncommitted tail, say of a restarted former leader, is no
            // history: it is replaced when it catches up.
            last_committed: peer.last.seq <= peer.commit,
            relation: self.relation_to(Standing::of(peer), inherited),
            diverged: self.still_diverged(sender, peer),
            nothing_committed: self.log.commit() == 0,
        };
        match rules::verdict(report) {
            Verdict::YieldToHigherHistory => return self.yield_to_higher_history(now, sender),
            Verdict::ElectAgain => {
                // Its answer was lost, or it still follows our previous run: this time we hear it.
                warn!(
                    "server {sender} holds a more recent log ({:?}) than ours; running the election again",
                    peer.last
                );
                return self.elect_again(now);
            }
            Verdict::Lead => {}
        }
        let State::Leader(l) = &mut self.state else { return };
        if peer.term != l.term {
            return;
        }
        let member = l.members.entry(sender).or_insert_with(|| {
            info!("server {sender} joined the group");
            Member::new(now)
        });
        if member.incarnation.is_some_and(|known| known != peer.incarnation) {
            // It restarted (same ID and address): what it acknowledged before may be gone.
            *member = Member::new(now);
        }
        member.incarnation = Some(peer.incarnation);
        member.last_heard = now;
        if self.log.holds(peer.last) && peer.last.seq <= self.log.last().seq {
            member.acked = member.acked.max(peer.last.seq);
        }
        // A diverged member holds none of our entries beyond the split until it
        // has copied our history: waiting for its acknowledgement would stall.
        if !member.in_sync && rules::in_sync(peer.last.seq, self.log.commit(), self.other_histories.contains(&sender)) {
            member.in_sync = true;
        }
        if let PeerBody::Heartbeat { may_take_over } = peer.body {
            member.may_take_over = may_take_over;
            self.send_to(sender, PeerBody::HeartbeatAck);
        }
        self.try_commit(now);
        self.maybe_hand_over(now);
    }

    /// Commits what every live in-sync member holds, and answers its clients.
    pub(super) fn try_commit(&mut self, now: Instant) {
        let State::Leader(l) = &self.state else { return };
        let members = l.members.values().map(|m| Replica { in_sync: m.in_sync, acked: m.acked });
        let collecting = now < l.collecting_until;
        let (last, commit) = (self.log.last().seq, self.log.commit());
        let Some(target) = rules::commit_point(last, commit, collecting, self.config.min_replicas, members) else {
            return;
        };
        for (entry, applied) in self.commit_to(target) {
            self.answer_committed(now, &entry, applied);
        }
    }

    /// Hands leadership to the highest live member above us once it holds our
    /// whole log; writes pause meanwhile so that it misses nothing.
    fn maybe_hand_over(&mut self, now: Instant) {
        let last = self.log.last().seq;
        let me = self.me;
        let State::Leader(l) = &mut self.state else { return };
        let target = match l.handing_over {
            Some((target, _)) => target,
            None => {
                let Some((&target, member)) = l.members.iter().next_back() else { return };
                if !rules::hands_over(target > me, member.in_sync, member.acked == last, member.may_take_over) {
                    return;
                }
                info!("handing over to {target}, which has a higher ID and holds the whole log");
                l.handing_over = Some((target, now));
                target
            }
        };
        self.hand_over_to(target, false);
    }

    /// Sends `HandOver` to `target`, listing the members it must keep (and us,
    /// unless we are `leaving`).
    pub(super) fn hand_over_to(&mut self, target: NodeId, leaving: bool) {
        let State::Leader(l) = &self.state else { return };
        let mut members: Vec<_> = l
            .members
            .iter()
            .filter(|(id, _)| **id != target)
            .map(|(id, m)| (id.id, id.addr, self.log.position_at(m.acked).unwrap_or_default()))
            .collect();
        if !leaving {
            members.push((self.me.id, self.me.addr, self.log.last()));
        }
        self.stats.hand_overs += 1;
        self.send_to(target, PeerBody::HandOver { members, leaving });
    }

    pub(super) fn on_hand_over(
        &mut self,
        now: Instant,
        sender: NodeId,
        peer: &PeerMessage,
        members: &[(u64, SocketAddrV4, LogPosition)],
        leaving: bool,
    ) {
        let State::Follower(f) = &self.state else { return };
        if f.leader != sender || peer.term != self.term {
            return;
        }
        if self.recently_resumed(now, self.config.timing.heartbeat_timeout) {
            // We stood still: this may have waited in our socket past the
            // leader's patience, and the leader may have taken writes again.
            return;
        }
        if self.log.last() == peer.last {
            let members = members.iter().map(|&(id, addr, last)| (NodeId { id, addr }, last)).collect();
            if leaving {
                self.forget_server(sender); // it is gone; an ordinary old leader stays a member
            }
            // A leaving leader listed every member with its position: nobody's report is missing.
            self.become_leader(now, &members, !leaving);
        } else {
            self.follower_catch_up(now);
        }
    }

    pub(super) fn on_append(
        &mut self,
        now: Instant,
        sender: NodeId,
        peer: &PeerMessage,
        prev: LogPosition,
        entries: &[Entry],
    ) {
        if self.on_leader_claim(now, sender, peer) {
            self.accept_entries(now, sender, peer.commit, prev, entries, false);
            self.send_to(sender, PeerBody::AppendAck);
        }
    }

    pub(super) fn on_entries(
        &mut self,
        now: Instant,
        sender: NodeId,
        peer: &PeerMessage,
        prev: LogPosition,
        entries: &[Entry],
        complete: bool,
    ) {
        if self.pull_source() != Some(sender) {
            return;
        }
        if let State::Follower(f) = &self.state
            && !rules::same_tenure(f.view.tenure, rules::Tenure::of(peer))
        {
            return; // another tenure of our leader: its claim comes first (rule 4b)
        }
        let before = self.log.last();
        let matched = self.accept_entries(now, sender, peer.commit, prev, entries, complete);
        if let (State::Candidate(_), Some(matched)) = (&self.state, matched) {
            // Our log matches the source's up to `matched`, and the source knows
            // its own log committed up to `commit`.
            self.commit_to(matched.min(peer.commit));
        }
        if let Some(c) = &mut self.catchup
            && matched.is_some()
            && self.log.last() != before
        {
            c.retry_at = now; // progress: the next pull may go at once
        }
        if let State::Follower(f) = &mut self.state {
            // Not a leader claim: any server answers a fetch, also one that has
            // stopped leading. But its commit point is a fact about its log.
            f.view.commit = f.view.commit.max(peer.commit);
            self.apply_committed();
            self.send_to(sender, PeerBody::AppendAck);
        }
        if matched.is_some() {
            self.after_progress(now);
        }
    }

    /// Where we pull from: our leader, or the server a candidate catches up from.
    fn pull_source(&self) -> Option<NodeId> {
        match &self.state {
            State::Follower(f) => Some(f.leader),
            State::Candidate(c) => c.catchup_source(),
            State::Leader(_) => None,
        }
    }

    /// Merges entries from `source`; returns how far our log now matches its.
    fn accept_entries(
        &mut self,
        now: Instant,
        source: NodeId,
        source_commit: u64,
        prev: LogPosition,
        entries: &[Entry],
        complete: bool,
    ) -> Option<u64> {
        let difference = self.log.first_difference(prev, entries);
        if difference.is_some_and(|theirs| self.on_divergence(now, source, theirs, source_commit)) {
            return None;
        }
        if !self.log.holds(prev) {
            self.pull(now, source);
            return None;
        }
        let leader_saw_ours = !matches!(&self.state, State::Follower(f) if !f.leader_saw_our_log);
        let replaces_any = !leader_saw_ours && (difference.is_some() || self.log.drops_beyond(prev, entries, complete));
        if !rules::may_replace(leader_saw_ours, replaces_any) {
            return None; // wait until the leader has seen our log (see `Following`)
        }
        match self.log.splice_after(prev, entries, complete) {
            Ok(matched) => {
                if let State::Follower(f) = &mut self.state {
                    // From the tenure we follow (rule 4b): a claim, or a fetch checked above.
                    f.verified = f.verified.max(matched);
                    self.apply_committed();
                }
                Some(matched)
            }
            Err(d) => {
                // Its entries conflict with what we committed: our histories
                // split. Where its log ends short of ours, it lacks our
                // committed entries: a leader that does steps down when it
                // sees our report.
                if let Some(theirs) = d.theirs {
                    self.on_divergence(now, source, theirs, source_commit);
                }
                None
            }
        }
    }

    /// Applies what the leader says is committed, as far as our log matches it.
    pub(super) fn apply_committed(&mut self) {
        let State::Follower(f) = &self.state else { return };
        let upto = f.view.commit.min(f.verified);
        self.commit_to(upto);
    }

    fn after_progress(&mut self, now: Instant) {
        match self.state {
            State::Candidate(_) => self.candidate_progress(now),
            State::Follower(_) => self.follower_catch_up(now),
            State::Leader(_) => {}
        }
    }

    /// Pulls from the leader if our log differs from what it last announced.
    pub(super) fn follower_catch_up(&mut self, now: Instant) {
        let State::Follower(f) = &self.state else { return };
        if self.log.last() != f.view.last && self.catchup.as_ref().is_none_or(|c| c.retry_at <= now) {
            let leader = f.leader;
            self.pull(now, leader);
        }
    }

    /// Asks `source` for what we miss: the rest of a snapshot being assembled,
    /// or the log after the part known to match.
    pub(super) fn pull(&mut self, now: Instant, source: NodeId) {
        if self.catchup.as_ref().is_some_and(|c| c.source == source && c.retry_at > now) {
            return; // a request is out; its answer or the retry timer comes next
        }
        let retry_at = now + self.config.timing.heartbeat_interval;
        let snapshot = self.catchup.take().filter(|c| c.source == source).and_then(|c| c.snapshot);
        let body = match &snapshot {
            Some(a) => PeerBody::SnapshotRequest { last: a.last, offset: a.data.len() as u64 },
            None => PeerBody::Fetch { from_seq: self.matched_prefix() + 1 },
        };
        self.catchup = Some(Catchup { source, retry_at, snapshot });
        self.send_to(source, body);
    }

    fn matched_prefix(&self) -> u64 {
        match &self.state {
            State::Follower(f) => f.verified.min(self.log.last().seq),
            _ => self.log.commit(),
        }
    }

    pub(super) fn on_catchup_timer(&mut self, now: Instant) {
        let Some(c) = &self.catchup else { return };
        if c.retry_at > now {
            return;
        }
        let source = c.source;
        if self.pull_source() == Some(source) && self.still_behind() {
            self.pull(now, source);
        } else {
            self.catchup = None;
        }
    }

    /// Whether we still lack what we pull for: a follower, its leader's last
    /// entry as last announced; a candidate, everything its source sends
    /// (it decides when it has enough, `candidate_progress`).
    fn still_behind(&self) -> bool {
        match &self.state {
            State::Follower(f) => self.log.last() < f.view.last,
            _ => true,
        }
    }

    pub(super) fn on_fetch(&mut self, sender: NodeId, from_seq: u64) {
        match self.log.entries_from(from_seq.max(1), CHUNK_BUDGET) {
            Some((prev, entries, complete)) => self.send_to(sender, PeerBody::Entries { prev, entries, complete }),
            None => self.send_snapshot_chunk(sender, None, 0),
        }
    }

    pub(super) fn on_snapshot_request(&mut self, sender: NodeId, last: LogPosition, offset: u64) {
        self.send_snapshot_chunk(sender, Some(last), offset);
    }

    /// Sends part of our snapshot. The encoded snapshot is kept while a transfer
    /// runs, so that writes meanwhile do not restart it.
    fn send_snapshot_chunk(&mut self, to: NodeId, wanted: Option<LogPosition>, offset: u64) {
        let current = self.log.table().applied();
        let reuse = self.snapshot_cache.as_ref().is_some_and(|(last, _)| Some(*last) == wanted);
        if !reuse && self.snapshot_cache.as_ref().is_none_or(|(last, _)| *last != current) {
            self.snapshot_cache = Some((current, self.log.encode_snapshot()));
        }
        let Some((last, bytes)) = &self.snapshot_cache else { return };
        let offset = if Some(*last) == wanted { offset.min(bytes.len() as u64) } else { 0 };
        let start = offset as usize;
        let end = (start + CHUNK_BUDGET).min(bytes.len());
        let body = PeerBody::SnapshotChunk {
            last: *last,
            offset,
            total: bytes.len() as u64,
            data: bytes[start..end].to_vec(),
        };
        self.send_to(to, body);
    }

    pub(super) fn on_snapshot_chunk(
        &mut self,
        now: Instant,
        sender: NodeId,
        last: LogPosition,
        offset: u64,
        total: u64,
        data: &[u8],
    ) {
        if self.pull_source() != Some(sender) || total > MAX_SNAPSHOT as u64 {
            return;
        }
        let Some(c) = &mut self.catchup else { return };
        let assembly = c.snapshot.get_or_insert_with(|| Assembly { last, total, data: Vec::new() });
        if assembly.last != last || assembly.total != total {
            *assembly = Assembly { last, total, data: Vec::new() };
        }
        if offset != assembly.data.len() as u64 || data.is_empty() && total > 0 {
            return; // a stale or duplicated chunk; the retry asks for the right one
        }
        assembly.data.extend_from_slice(data);
        if (assembly.data.len() as u64) < total {
            c.retry_at = now; // progress: ask for the next chunk at once
        } else {
            let bytes = std::mem::take(&mut assembly.data);
            c.snapshot = None;
            match self.install_snapshot(sender, last, &bytes) {
                Ok(()) => {
                    if let Some(c) = &mut self.catchup {
                        c.retry_at = now;
                    }
                }
                Err(SnapshotRefused::OtherHistory(theirs)) => {
                    // It lacks our committed entries (the other side of a
                    // healed partition): merge, do not copy.
                    self.on_divergence(now, sender, theirs, last.seq);
                    return;
                }
                Err(SnapshotRefused::Unusable) if self.log.diverges_at(last) => {
                    // Its whole log is older than our committed one and differs
                    // from it: pulling again would fetch the same snapshot forever.
                    self.on_divergence(now, sender, last, last.seq);
                    return;
                }
                Err(SnapshotRefused::Unusable) if matches!(self.state, State::Candidate(_)) => {
                    info!("{sender} has nothing newer than our table to fetch; deciding without it");
                    return self.forget_catchup_source(now, sender);
                }
                Err(SnapshotRefused::Unusable) => {}
            }
        }
        self.after_progress(now);
    }

    /// Installs a received snapshot if it is newer than our table and holds
    /// our committed entries.
    fn install_snapshot(&mut self, sender: NodeId, last: LogPosition, bytes: &[u8]) -> Result<(), SnapshotRefused> {
        let table = decode_snapshot(bytes).map_err(|e| {
            warn!("snapshot from {sender} could not be decoded: {e}");
            SnapshotRefused::Unusable
        })?;
        if table.applied() != last || last.seq <= self.log.table().applied().seq {
            return Err(SnapshotRefused::Unusable);
        }
        if let Some(theirs) = table.applied_at(self.log.commit()).filter(|theirs| self.log.diverges_at(*theirs)) {
            return Err(SnapshotRefused::OtherHistory(theirs));
        }
        info!("installed a snapshot from {sender} ({} bytes, {} reservations)", bytes.len(), table.len());
        self.log.install(table);
        self.events.push_back(super::Event::SnapshotInstalled { source: sender.id, last });
        if let State::Follower(f) = &mut self.state {
            f.verified = f.verified.max(last.seq);
        }
        Ok(())
    }
}

/// Why a received snapshot was not installed.
enum SnapshotRefused {
    /// It could not be decoded (logged), or is no newer than our table.
    Unusable,
    /// Its history holds another entry (this one) where we hold a committed one.
    OtherHistory(LogPosition),
}
