//! Bully election with terms, and the role transitions.
//!
//! A candidate multicasts `Election`; every server answers with its log
//! position and whether it leads. After the election timeout:
//! - a higher server answered: wait for its `Coordinator`;
//! - a lower server leads: follow it, catch up, and let it hand over to us;
//! - someone holds more of the log: fetch it first (a new leader never serves
//!   with less than a live member has);
//! - otherwise: take the next term and announce `Coordinator`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use ::log::{info, warn};

use super::replication::Leadership;
use super::rules::{self, Answers, Claim, Decision, Relation, Standing};
use super::{Following, LeaderView, Node, NodeId, State};
use crate::wire::{Entry, LogPosition, Op, PeerBody, PeerMessage};

/// What a candidate has learnt so far.
pub(super) struct Candidacy {
    phase: Phase,
    deadline: Instant,
    initiator: u64,
    /// Members a leader listed and servers heard lately: we ask each again
    /// until it answers or `patience` passes.
    expected: BTreeSet<NodeId>,
    patience: Instant,
    /// The highest server above us that answered.
    higher: Option<NodeId>,
    /// A server that answered as the current leader, and its tenure.
    leader: Option<(NodeId, rules::Tenure)>,
    /// Every server that answered, with how much of the log it holds.
    voters: BTreeMap<NodeId, Standing>,
}

impl Standing {
    /// What a server's envelope says it holds.
    pub(super) fn of(peer: &PeerMessage) -> Self {
        Standing { commit: peer.commit, last: peer.last }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for answers to our `Election`.
    Soliciting,
    /// A higher server answered; waiting for its `Coordinator`.
    AwaitingCoordinator,
    /// We are the highest but behind: fetching from `source` up to `target`.
    CatchingUp { source: NodeId, target: LogPosition },
}

impl Candidacy {
    /// Whether `server` answered our election with a log that holds writes
    /// (true when we do not know).
    pub(super) fn holds_writes(&self, server: NodeId) -> bool {
        self.voters.get(&server).is_none_or(|s| s.holds_writes())
    }

    /// Stops waiting for `server`, which left the group.
    pub(super) fn forget(&mut self, server: NodeId) {
        self.expected.remove(&server);
        self.voters.remove(&server);
        if self.higher == Some(server) {
            self.higher = None;
        }
    }

    pub(super) fn new(now: Instant) -> Self {
        Candidacy {
            phase: Phase::Soliciting,
            deadline: now,
            initiator: 0,
            expected: BTreeSet::new(),
            patience: now,
            higher: None,
            leader: None,
            voters: BTreeMap::new(),
        }
    }

    /// `server` says it does not lead (it runs an election, or answered ours
    /// so): a claim of leadership we heard from it before is stale.
    fn forget_leader(&mut self, server: NodeId) {
        if self.leader.is_some_and(|(leader, _)| leader == server) {
            self.leader = None;
        }
    }

    /// The server to fetch from while catching up, if that is what we do.
    pub(super) fn catchup_source(&self) -> Option<NodeId> {
        match self.phase {
            Phase::CatchingUp { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Node {
    /// Tells our leader we are alive, and whether we may take over yet.
    fn send_heartbeat(&mut self, now: Instant, leader: NodeId) {
        let may_take_over = self.may_take_over(now);
        if let State::Follower(f) = &mut self.state {
            // Timed from the oldest one unanswered: a lost heartbeat reads as a
            // slow round trip, which is what a monitor should see.
            f.heartbeat_sent.get_or_insert(now);
        }
        self.send_to(leader, PeerBody::Heartbeat { may_take_over });
    }

    /// False until `--preempt-delay` has passed since we started.
    fn may_take_over(&self, now: Instant) -> bool {
        now >= self.started_at + self.config.timing.preempt_delay
    }

    /// Starts (or restarts) our own bid for leadership.
    pub(super) fn become_candidate(&mut self, now: Instant, initiator: u64) {
        self.stats.elections += 1;
        self.enter_round(initiator);
        let timing = self.config.timing;
        let mut candidacy = Candidacy::new(now);
        candidacy.deadline = now + timing.election_timeout;
        candidacy.initiator = initiator;
        let heard = self.heard_within(now, timing.heartbeat_timeout);
        candidacy.expected = self.known_members().into_iter().chain(heard).filter(|m| *m != self.me).collect();
        candidacy.patience = now + timing.heartbeat_timeout;
        self.state = State::Candidate(candidacy);
        self.next_tick = None;
        self.catchup = None;
        self.multicast(PeerBody::Election { initiator });
    }

    /// Follows `leader`. When we are the higher server we stay quiet about the
    /// election: the leader hands over to us as soon as we have caught up.
    pub(super) fn become_follower(&mut self, now: Instant, leader: NodeId, view: LeaderView) {
        let changed = self.leader() != Some(leader);
        let expect_handover = self.me > leader;
        self.state = State::Follower(Following {
            leader,
            view,
            verified: self.log.commit(),
            last_heard: now,
            expect_handover,
            leader_saw_our_log: false,
            heartbeat_sent: None,
            split_at: None,
        });
        // What we learned of other servers' histories as a candidate or leader
        // is stale once we follow: the next leader finds out for itself.
        self.other_histories.clear();
        self.catchup = None;
        if expect_handover && !self.may_take_over(now) {
            let delay = self.config.timing.preempt_delay;
            info!("following {leader}; waiting out --preempt-delay ({delay:?} since start) before taking over");
        } else if expect_handover {
            info!("following {leader} while catching up; it hands over to us (higher ID) when we are level");
        } else {
            self.complete_round(leader, changed);
        }
        if changed {
            self.role_changed(leader);
        }
        self.send_heartbeat(now, leader);
        self.next_tick = Some(now + self.config.timing.heartbeat_interval);
        self.follower_catch_up(now);
    }

    /// Takes the next term and announces it. `members` are the servers known to
    /// follow (election voters, or the members a leader handed over), with the
    /// last log position each holds.
    /// Leads with `members`. With `collect` the first commit waits for
    /// members to report ([`rules::first_commit_wait`]); a leaving leader's
    /// hand-over lists every member: no wait.
    pub(super) fn become_leader(&mut self, now: Instant, members: &BTreeMap<NodeId, LogPosition>, collect: bool) {
        let changed = self.leader() != Some(self.me);
        self.term += 1;
        let timing = self.config.timing;
        let listened = now.saturating_duration_since(self.started_at);
        let collecting_for = rules::first_commit_wait(collect, !members.is_empty(), listened, timing);
        let leadership = Leadership::new(now, self.term, members, &self.log, now + collecting_for);
        self.state = State::Leader(leadership);
        self.catchup = None;
        if self.log.last().seq == 0 {
            self.append_genesis();
        }
        self.multicast(PeerBody::Coordinator);
        self.complete_round(self.me, changed);
        if changed {
            self.role_changed(self.me);
        }
        self.next_tick = Some(now + self.config.timing.heartbeat_interval);
        self.try_commit(now);
    }

    /// A rival's claim lost to ours (rule 2a): we lead on in a term above
    /// both, so that every server that took the rival's term takes ours.
    fn reassert_leadership(&mut self, rival_term: u64) {
        self.term = self.term.max(rival_term) + 1;
        if let State::Leader(l) = &mut self.state {
            l.term = self.term;
        }
        self.multicast(PeerBody::Coordinator);
    }

    /// A new group's first entry: the data epoch that keeps cached versions
    /// from different lifetimes of the group apart.
    fn append_genesis(&mut self) {
        let epoch = self.random().max(1);
        let position = LogPosition { term: self.term, seq: 1, leader: self.incarnation };
        self.log.push(Entry { position, client: 0, request: 0, by: None, op: Op::Genesis { epoch } });
    }

    pub(super) fn on_election(&mut self, now: Instant, sender: NodeId, peer: &PeerMessage) {
        if let State::Candidate(c) = &mut self.state {
            // Its envelope says how much of the log it holds: as good as an answer,
            // and it may be the only word we get from it if datagrams are lost.
            c.voters.insert(sender, Standing::of(peer));
            c.forget_leader(sender);
        }
        self.enter_round(sender.id);
        let leading = matches!(self.state, State::Leader(_));
        self.send_to(sender, PeerBody::ElectionReply { leading });
        if let State::Follower(f) = &self.state
            && f.leader == sender
            && sender < self.me
        {
            // Our lower leader stopped leading (our history differs from its
            // own and ours stands, or we hold entries it lacks): as in the
            // bully algorithm, the higher server bids now rather than after a
            // heartbeat timeout.
            return self.become_candidate(now, sender.id);
        }
        if leading && sender < self.me {
            self.multicast(PeerBody::Coordinator);
            self.complete_round(self.me, false);
        } else if !matches!(self.state, State::Candidate(_)) && self.round_deadline.is_none() {
            // A higher newcomer takes over once it has caught up; until then we
            // keep serving. Close the round after a while if nothing changes.
            let timing = self.config.timing;
            self.round_deadline = Some(now + timing.heartbeat_timeout * 2 + timing.election_timeout);
        }
    }

    /// The round stayed open without a new leader: report the one we have.
    pub(super) fn on_round_deadline(&mut self) {
        if let Some(leader) = self.leader()
            && self.in_round
        {
            self.complete_round(leader, false);
        }
    }

    pub(super) fn on_election_reply(&mut self, sender: NodeId, leading: bool, peer: &PeerMessage) {
        let me = self.me;
        let State::Candidate(c) = &mut self.state else { return };
        c.voters.insert(sender, Standing::of(peer));
        if sender > me && c.higher.is_none_or(|h| sender > h) {
            c.higher = Some(sender);
        }
        if leading {
            c.leader = Some((sender, rules::Tenure::of(peer)));
        } else {
            c.forget_leader(sender);
        }
    }

    /// Any message only a leader sends: `Coordinator`, `LeaderAlive`,
    /// `HeartbeatAck`, `Append`. Returns true when the sender is now our leader.
    pub(super) fn on_leader_claim(&mut self, now: Instant, sender: NodeId, peer: &PeerMessage) -> bool {
        if peer.term < self.term {
            self.send_to(sender, PeerBody::StaleTerm);
            return false;
        }
        let announced = matches!(peer.body, PeerBody::Coordinator);
        let view = LeaderView::from(peer);
        match &mut self.state {
            State::Leader(l) => {
                if rules::prevails(Claim { term: peer.term, server: sender }, Claim { term: l.term, server: self.me }) {
                    self.become_follower(now, sender, view);
                    return true;
                }
                warn!("server {sender} also claims to lead (term {}); reasserting with a newer term", peer.term);
                self.reassert_leadership(peer.term);
                false
            }
            State::Follower(f) if f.leader == sender && !rules::same_tenure(f.view.tenure, view.tenure) => {
                // The same server leads a new term, or restarted, possibly with a
                // different log: what we verified against its old tenure no longer holds.
                self.become_follower(now, sender, view);
                true
            }
            State::Follower(f) if f.leader == sender => {
                f.view = LeaderView { commit: f.view.commit.max(peer.commit), ..view };
                f.last_heard = now;
                if matches!(peer.body, PeerBody::HeartbeatAck) {
                    f.leader_saw_our_log = true;
                    if let Some(sent) = f.heartbeat_sent.take() {
                        self.stats.heartbeat_rtt = Some((sender.id, now.saturating_duration_since(sent)));
                    }
                }
                if self.log.holds(view.last) {
                    // Same entry at the same position: the logs match up to it.
                    f.verified = f.verified.max(view.last.seq);
                }
                if announced && self.in_round && !f.expect_handover {
                    self.complete_round(sender, false);
                }
                self.apply_committed();
                true
            }
            State::Follower(f) => {
                let ours = Claim { term: f.view.tenure.term, server: f.leader };
                if rules::prevails(Claim { term: peer.term, server: sender }, ours) {
                    self.become_follower(now, sender, view);
                    return true;
                }
                false
            }
            State::Candidate(c) => {
                if sender > self.me {
                    self.become_follower(now, sender, view);
                    return true;
                }
                // A lower leader: decided when our answer window closes.
                c.leader = Some((sender, rules::Tenure::of(peer)));
                false
            }
        }
    }

    pub(super) fn candidacy_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Candidate(c) => Some(c.deadline),
            _ => None,
        }
    }

    pub(super) fn on_candidacy_timer(&mut self, now: Instant) {
        let State::Candidate(c) = &mut self.state else { return };
        if c.deadline > now {
            return;
        }
        match c.phase {
            Phase::Soliciting => self.close_solicitation(now),
            Phase::AwaitingCoordinator => {
                info!("no coordinator announcement arrived; running the election again");
                self.become_candidate(now, 0);
            }
            Phase::CatchingUp { source, .. } => {
                warn!("catching up from {source} made no progress; running the election again");
                self.become_candidate(now, 0);
            }
        }
    }

    /// Our answer window closed: [`rules::decide`] says what next.
    fn close_solicitation(&mut self, now: Instant) {
        let timing = self.config.timing;
        let ahead = self.best_source();
        let State::Candidate(c) = &mut self.state else { return };
        let missing: Vec<NodeId> = c.expected.iter().filter(|m| !c.voters.contains_key(m)).copied().collect();
        let answers = Answers {
            missing: !missing.is_empty(),
            patient: now < c.patience,
            higher: c.higher,
            leader: c.leader.map(|(leader, _)| leader),
            ahead: ahead.map(|(source, _)| source),
        };
        match rules::decide(answers) {
            Decision::AskAgain => {
                c.deadline = now + timing.election_timeout;
                let initiator = c.initiator;
                for member in missing {
                    self.send_to(member, PeerBody::Election { initiator });
                }
            }
            Decision::AwaitHigher => {
                c.phase = Phase::AwaitingCoordinator;
                c.deadline = now + timing.heartbeat_timeout + timing.election_timeout * 2;
            }
            Decision::Follow(leader) => {
                let tenure = c.leader.map(|(_, tenure)| tenure).unwrap_or_default();
                let last = c.voters.get(&leader).map(|s| s.last).unwrap_or_default();
                self.become_follower(now, leader, LeaderView { tenure, commit: 0, last });
            }
            Decision::CatchUpFrom(_) | Decision::Lead => self.catch_up_from_or_lead(now, ahead),
        }
    }

    /// Fetches from the voter that holds entries we lack, the best first, or
    /// takes over when none does ([`rules::decide`] with every answer in).
    fn catch_up_or_lead(&mut self, now: Instant) {
        self.catch_up_from_or_lead(now, self.best_source());
    }

    /// [`Node::catch_up_or_lead`] with the best source already found.
    fn catch_up_from_or_lead(&mut self, now: Instant, best: Option<(NodeId, LogPosition)>) {
        let timing = self.config.timing;
        let State::Candidate(c) = &mut self.state else { return };
        let settled = Answers { ahead: best.map(|(source, _)| source), ..Answers::default() };
        match (rules::decide(settled), best) {
            (Decision::CatchUpFrom(source), Some((_, target))) => {
                info!("{source} holds more of the log ({target:?}); fetching it before taking over");
                c.phase = Phase::CatchingUp { source, target };
                c.deadline = now + timing.heartbeat_timeout;
                self.pull(now, source);
            }
            _ => {
                let voters = std::mem::take(&mut c.voters).into_iter().map(|(id, s)| (id, s.last)).collect();
                self.become_leader(now, &voters, true);
            }
        }
    }

    /// The voter [`Relation::Ahead`] of us that holds the most, and its last
    /// entry: whom a candidate must catch up from before it leads.
    fn best_source(&self) -> Option<(NodeId, LogPosition)> {
        let State::Candidate(c) = &self.state else { return None };
        let ours = self.log.last();
        c.voters
            .iter()
            .filter(|(_, standing)| self.relation_to(**standing, ours) == Relation::Ahead)
            .max_by_key(|(id, standing)| (**standing, **id))
            .map(|(id, standing)| (*id, standing.last))
    }

    /// How a server standing at `theirs` stands to our log as it ended at
    /// `ours` (for a leader: when it was elected), by [`rules::relation`].
    pub(super) fn relation_to(&self, theirs: Standing, ours: LogPosition) -> Relation {
        let ours = Standing { commit: self.log.commit(), last: ours };
        let holds = self.log.holds(theirs.last);
        let abandoned = !holds && theirs.last.leader == self.incarnation;
        rules::relation(holds, self.log.diverges_at(theirs.last), abandoned, ours, theirs)
    }

    /// Drops `source` from the servers a candidate may catch up from, and
    /// decides again.
    pub(super) fn forget_catchup_source(&mut self, now: Instant, source: NodeId) {
        let State::Candidate(c) = &mut self.state else { return };
        c.voters.remove(&source);
        self.catch_up_or_lead(now);
    }

    /// True when we catch up from `sender` as a candidate and it no longer
    /// holds what we came for, so that fetching on would never reach it: its
    /// last entry is another one at or below the target's sequence number
    /// (it restarted without its data, or dropped the uncommitted tail it
    /// answered with), or one we hold already while we lack the target (its
    /// log went on without it).
    pub(super) fn catchup_source_regressed(&self, sender: NodeId, peer: &PeerMessage) -> bool {
        let State::Candidate(c) = &self.state else { return false };
        let dropped = |target: LogPosition| {
            peer.last != target && !self.log.holds(target) && (peer.last.seq <= target.seq || self.log.holds(peer.last))
        };
        matches!(c.phase, Phase::CatchingUp { source, target } if source == sender && dropped(target))
    }

    /// Called when catch-up made progress while we are a candidate.
    pub(super) fn candidate_progress(&mut self, now: Instant) {
        let held = self.log.last();
        let State::Candidate(c) = &mut self.state else { return };
        let Phase::CatchingUp { source, target } = c.phase else { return };
        if held >= target || self.log.holds(target) {
            return self.catch_up_or_lead(now);
        }
        c.deadline = now + self.config.timing.heartbeat_timeout;
        self.pull(now, source);
    }

    pub(super) fn follower_tick(&mut self, now: Instant) {
        let timing = self.config.timing;
        let resumed = self.recently_resumed(now, timing.heartbeat_interval);
        let State::Follower(f) = &mut self.state else { return };
        let leader = f.leader;
        if now >= f.last_heard + timing.heartbeat_timeout {
            if resumed {
                // Our own loop ran late: the silence may be ours. Give the leader one more interval.
                f.last_heard = now - timing.heartbeat_timeout + timing.heartbeat_interval;
            } else {
                info!("Heartbeat to group leader {} failed", leader.id);
                self.stats.failovers += 1;
                self.listed_members.remove(&leader);
                return self.become_candidate(now, 0);
            }
        }
        let diverged = f.split_at.is_some();
        self.send_heartbeat(now, leader);
        if diverged {
            self.send_orphans(); // until the leader has merged them
            return;
        }
        self.follower_catch_up(now);
    }
}
