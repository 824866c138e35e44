//! The server's protocol core, sans-IO: bully election, heartbeats, replication
//! and client handling as one deterministic state machine.
//!
//! The driver (or a simulation) owns the sockets and the clock and follows this
//! contract:
//!
//! 1. call [`Node::start`] once, then [`Node::handle_datagram`] for every datagram
//!    and [`Node::handle_timeout`] whenever the time from [`Node::poll_timeout`]
//!    is reached (an early or spurious call does no harm);
//! 2. after each call, drain [`Node::poll_transmit`] and [`Node::poll_event`].
//!
//! Every input takes `now`; the node never reads a clock. Roles change only in
//! `become_candidate`, `become_follower` and `become_leader`.

mod clients;
mod election;
#[cfg(test)]
mod handler_tests;
mod heal;
mod leave;
pub mod replicated_log;
mod replication;
mod rules;
mod stats;
#[cfg(test)]
mod tests;
mod timer;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use ::log::{info, trace, warn};

use crate::auth::frame::Boot;
use crate::auth::{Accepted, ServerGuard, ServerKeys};
use crate::rooms::{Applied, Catalog};
use crate::wire::{Entry, LogPosition, Message, PeerBody, PeerMessage, ServerStatus, StatusRole};
use election::Candidacy;
pub use replicated_log::{LogChanges, ReplicatedLog};
use replication::{Catchup, Leadership};
pub use stats::NodeStats;

/// How many servers a node remembers having heard from; garbage from many
/// forged senders cannot grow its memory beyond this.
const MAX_TRACKED_PEERS: usize = 256;

/// A server's identity: its ID, made unique by its address (PIDs repeat across hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// The ID from the command line, or the PID.
    pub id: u64,
    /// The server's unicast address.
    pub addr: SocketAddrV4,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.addr)
    }
}

/// The protocol's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often followers heartbeat the leader and the leader announces itself.
    pub heartbeat_interval: Duration,
    /// A leader silent this long is declared failed (the seed's fixed timeout).
    pub heartbeat_timeout: Duration,
    /// How long a candidate waits for a higher server to answer.
    pub election_timeout: Duration,
    /// Delay before the leader answers a client, modelling load or distance.
    pub service_delay: Duration,
    /// How long a higher server, once started, waits before it takes over from
    /// a lower leader (`--preempt-delay`), so that one restarting in a loop
    /// does not make the group change leaders each time.
    pub preempt_delay: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_millis(1000),
            election_timeout: Duration::from_millis(200),
            service_delay: Duration::ZERO,
            preempt_delay: Duration::ZERO,
        }
    }
}

/// Everything a node needs to know at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Server ID: the PID unless overridden.
    pub id: u64,
    /// True when the ID was given explicitly (a clash is then an error).
    pub explicit_id: bool,
    /// This server's unicast address as other servers see it.
    pub addr: SocketAddrV4,
    /// Timings.
    pub timing: Timing,
    /// The rooms, timeslots and days.
    pub catalog: Catalog,
    /// Seed for the node's random numbers (incarnation, data epoch).
    pub seed: u64,
    /// Servers, the leader included, that must hold a write before it is
    /// confirmed; a leader that cannot reach that many refuses writes. `1`
    /// keeps the primary-backup rule alone (every live member).
    pub min_replicas: usize,
    /// The group's keys; `None` runs without keys, open to anyone on the network.
    pub keys: Option<ServerKeys>,
    /// This process's boot nonce: 128 random bits from the OS, never reused
    /// (with the keys it keeps every sealed datagram's nonce unique).
    pub boot: Boot,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Multicast to the group.
    Group,
    /// Unicast to one process.
    Peer(SocketAddrV4),
}

/// A message the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dst: Destination,
    /// What.
    pub message: Message,
}

/// The role a server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Running an election or catching up to take over.
    Candidate,
    /// Following a leader.
    Follower,
    /// Sequencing writes and answering clients.
    Leader,
}

/// Something the driver should know about.
// Events are drained as soon as they are made: boxing the applied entry
// would cost an allocation per entry for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first election completed: the server serves.
    Ready,
    /// The server's role or leader changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The leader's ID (this server's when it leads).
        leader: u64,
        /// The term of that leadership.
        term: u64,
    },
    /// A committed entry was applied to the table, with its outcome. Replicas
    /// report the same entries in the same order; the simulation checks it.
    Applied(Entry, Applied),
    /// The server dropped the history it had applied, its writes merged into
    /// its leader's after a partition (`heal`): it applies the leader's
    /// entries from the start now.
    HistoryDropped,
    /// The server installed a snapshot of `source`'s table up to `last`,
    /// replacing its own log.
    SnapshotInstalled {
        /// The ID of the server the snapshot came from.
        source: u64,
        /// The last entry the snapshot holds.
        last: LogPosition,
    },
    /// The server cannot go on and must exit.
    Fatal(FatalError),
}

/// Conditions that stop a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FatalError {
    /// Another server of the group already uses this explicit ID.
    IdInUse {
        /// The ID.
        id: u64,
        /// The other server's address.
        other: SocketAddrV4,
    },
    /// Another server of the group uses a different catalog.
    CatalogMismatch {
        /// The other server's address.
        other: SocketAddrV4,
    },
}

impl fmt::Display for FatalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FatalError::IdInUse { id, other } => write!(
                f,
                "server ID {id} is already in use in the group by the server at {other}; \
                 choose another ID, or leave it out to use the process ID"
            ),
            FatalError::CatalogMismatch { other } => write!(
                f,
                "the server at {other} uses a different list of rooms, timeslots or days; \
                 every server of a group must use the same catalog file"
            ),
        }
    }
}

impl std::error::Error for FatalError {}

enum State {
    Candidate(Candidacy),
    Follower(Following),
    Leader(Leadership),
}

/// What a server last heard from a leader about its leadership and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeaderView {
    tenure: rules::Tenure,
    commit: u64,
    last: LogPosition,
}

impl From<&PeerMessage> for LeaderView {
    fn from(peer: &PeerMessage) -> Self {
        LeaderView { tenure: rules::Tenure::of(peer), commit: peer.commit, last: peer.last }
    }
}

/// What a follower knows about its leader.
struct Following {
    leader: NodeId,
    view: LeaderView,
    /// Our log matches the leader's up to here.
    verified: u64,
    last_heard: Instant,
    /// We are higher than the leader and expect it to hand over once we caught up.
    expect_handover: bool,
    /// The leader answered a heartbeat of ours, which told it our last entry: had
    /// it lacked entries of ours it should hold, it would have stepped down
    /// instead. Until then we do not let it replace any of our entries.
    leader_saw_our_log: bool,
    /// When we sent the heartbeat not yet answered, to time the round trip.
    heartbeat_sent: Option<Instant>,
    /// Our history differs from the leader's committed one at or before
    /// this sequence number: we hand it our writes to merge before we copy
    /// its history (see `heal`).
    split_at: Option<u64>,
}

/// The sans-IO server.
pub struct Node {
    config: NodeConfig,
    me: NodeId,
    incarnation: u64,
    rng: u64,
    term: u64,
    state: State,
    log: ReplicatedLog,
    /// The group's members as our leader last listed them (see [`Node::known_members`]).
    listed_members: BTreeSet<NodeId>,
    /// When each server last sent us a valid message: a candidate waits for
    /// the ones heard lately even if no leader listed them (their answer may be lost).
    last_heard_from: BTreeMap<NodeId, Instant>,
    catchup: Option<Catchup>,
    /// Servers whose committed history we found to differ from ours.
    other_histories: BTreeSet<NodeId>,
    /// When [`Node::start`] ran, for `--preempt-delay`.
    started_at: Instant,
    /// An election round is under way (its start was logged, its end not yet).
    in_round: bool,
    ready: bool,
    next_tick: Option<Instant>,
    /// When our own loop last resumed after running late (paused process,
    /// overloaded host): silence from others before then proves nothing.
    resumed_at: Option<Instant>,
    round_deadline: Option<Instant>,
    /// Replies held back by the service delay, in due order.
    delayed: VecDeque<(Instant, Transmit)>,
    /// An encoded snapshot kept while other servers fetch it.
    snapshot_cache: Option<(LogPosition, Vec<u8>)>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Authenticates what arrives and seals what leaves.
    guard: ServerGuard,
    /// Counters for monitoring; the protocol never reads them.
    stats: NodeStats,
    /// The catalog's fingerprint, in every envelope and reply: computed once
    /// (hashing every name per datagram was the server's top function).
    fingerprint: u64,
}

impl Node {
    /// Creates a node; nothing happens until [`Node::start`].
    pub fn new(config: NodeConfig, now: Instant) -> Self {
        let me = NodeId { id: config.id, addr: config.addr };
        let mut rng = config.seed ^ 0x9E37_79B9_7F4A_7C15;
        let incarnation = xorshift(&mut rng);
        let guard = ServerGuard::new(config.keys.clone(), config.addr, config.boot, config.seed.rotate_left(29), now);
        let fingerprint = config.catalog.fingerprint();
        Node {
            config,
            me,
            incarnation,
            rng,
            term: 0,
            state: State::Candidate(Candidacy::new(now)),
            log: ReplicatedLog::default(),
            listed_members: BTreeSet::new(),
            last_heard_from: BTreeMap::new(),
            catchup: None,
            other_histories: BTreeSet::new(),
            started_at: now,
            in_round: false,
            ready: false,
            next_tick: None,
            resumed_at: None,
            round_deadline: None,
            delayed: VecDeque::new(),
            snapshot_cache: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            guard,
            stats: NodeStats::default(),
            fingerprint,
        }
    }

    /// A node that comes back with the log it stored before (see
    /// [`crate::storage`]): it rejoins as a member holding those entries.
    pub fn recovered(config: NodeConfig, now: Instant, log: ReplicatedLog) -> Self {
        let mut node = Node::new(config, now);
        node.term = log.last().term;
        node.log = log;
        node
    }

    /// What changed in the log since the last call: the I/O shell stores it
    /// durably before sending anything the node queued.
    pub fn take_log_changes(&mut self) -> Option<LogChanges> {
        self.log.take_changes()
    }

    /// Announces the server and runs its start-up election.
    pub fn start(&mut self, now: Instant) {
        self.guard.note_time(now);
        info!("Server {} started", self.me.id);
        if !self.guard.keyed() {
            warn!(
                "this group runs without keys: anyone on the network can take it over or change reservations; \
                 see docs/security.md to give it keys (--key-file)"
            );
        }
        self.started_at = now;
        self.become_candidate(now, 0);
        info!("The server is ready to receive");
    }

    /// Feeds one datagram received from `from`. The guard authenticates it
    /// first; what it refuses is counted and never acted on.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, datagram: &[u8]) {
        self.guard.set_leading(matches!(self.state, State::Leader(_)));
        if let Some(accepted) = self.guard.open(now, from, datagram) {
            self.on_accepted(now, accepted);
        }
        while let Some(accepted) = self.guard.poll_released() {
            self.on_accepted(now, accepted);
        }
    }

    fn on_accepted(&mut self, now: Instant, accepted: Accepted) {
        // Only an authentic datagram may make us act, even on our own stall.
        self.notice_freeze(now);
        self.stats.received(&accepted.message);
        match accepted.message {
            Message::Request(request) => self.on_request(now, accepted.from, request, accepted.client),
            Message::Peer(peer) => self.on_peer(now, accepted.from, peer),
            Message::Reply(_) => {} // the guard refuses replies at a server
        }
    }

    /// Runs the timers that are due; harmless when none is.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.notice_freeze(now);
        self.guard.note_time(now);
        self.run_due_timers(now);
    }

    /// The next message to send, if any, before sealing: for tests that
    /// look at what the protocol says. The I/O shell uses [`Node::poll_datagram`].
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next datagram to send, sealed when the group has keys: first the
    /// guard's own (challenges, proofs, key notices), then the protocol's.
    #[must_use]
    pub fn poll_datagram(&mut self) -> Option<(Destination, Vec<u8>)> {
        if let Some(datagram) = self.guard.poll_transmit() {
            return Some(datagram);
        }
        while let Some(transmit) = self.outbox.pop_front() {
            trace!("sends {:?} to {:?}", transmit.message, transmit.dst);
            if let Some(bytes) = self.guard.seal(transmit.dst, &transmit.message) {
                return Some((transmit.dst, bytes));
            }
        }
        None
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.earliest_timer()
    }

    /// This server's identity.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match self.state {
            State::Candidate(_) => Role::Candidate,
            State::Follower(_) => Role::Follower,
            State::Leader(_) => Role::Leader,
        }
    }

    /// The leader this server follows (itself when leading).
    pub fn leader(&self) -> Option<NodeId> {
        match &self.state {
            State::Candidate(_) => None,
            State::Follower(f) => Some(f.leader),
            State::Leader(_) => Some(self.me),
        }
    }

    /// The highest term this server knows.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// What this server reports to `status`.
    pub fn status(&self, now: Instant) -> ServerStatus {
        let (role, leader_heard) = match &self.state {
            State::Leader(_) => (StatusRole::Leader, None),
            State::Follower(f) if self.catchup.is_some() || f.split_at.is_some() => {
                (StatusRole::Syncing, Some(f.last_heard))
            }
            State::Follower(f) => (StatusRole::Follower, Some(f.last_heard)),
            State::Candidate(_) => (StatusRole::Candidate, None),
        };
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (table, catalog, timing) = (self.log.table(), &self.config.catalog, &self.config.timing);
        let (conflicts_total, latest_conflicts) = table.conflicts();
        ServerStatus {
            role,
            leader: self.leader().map(|l| l.id),
            term: self.term,
            applied: table.applied().seq,
            commit: self.log.commit(),
            last: self.log.last().seq,
            reservations: table.len() as u64,
            digest: table.digest(catalog),
            leader_heard_ms: leader_heard.map(|at| millis(now.saturating_duration_since(at))),
            heartbeat_interval_ms: millis(timing.heartbeat_interval),
            heartbeat_timeout_ms: millis(timing.heartbeat_timeout),
            min_replicas: u32::try_from(self.config.min_replicas).unwrap_or(u32::MAX),
            conflicts_total,
            conflicts: latest_conflicts.rev().take(10).cloned().collect(),
            auth: self.guard.status(),
        }
    }

    /// The replicated log and the reservation table.
    pub fn log(&self) -> &ReplicatedLog {
        &self.log
    }

    /// The catalog this server serves.
    pub fn catalog(&self) -> &Catalog {
        &self.config.catalog
    }

    /// What this server counted since it started, for monitoring.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// How many datagrams the guard dropped: refused for any reason, or
    /// left unopened as requests for the leader while we did not lead.
    pub fn dropped_datagrams(&self) -> u64 {
        self.guard.status().rejected.total() + self.guard.not_for_us()
    }

    /// How much the guard keeps about other senders (see [`ServerGuard::footprint`]).
    pub fn guard_footprint(&self) -> [usize; 4] {
        self.guard.footprint()
    }

    fn on_peer(&mut self, now: Instant, from: SocketAddrV4, peer: PeerMessage) {
        if peer.sender == self.me.id && (peer.incarnation == self.incarnation || from == self.me.addr) {
            return; // our own multicast looped back, or a late datagram from our previous run
        }
        let sender = NodeId { id: peer.sender, addr: from };
        if peer.catalog != self.fingerprint {
            return self.on_catalog_mismatch(sender);
        }
        if sender.id == self.me.id && (peer.explicit_id || self.config.explicit_id) {
            return self.on_id_clash(sender, &peer);
        }
        if peer.term > self.term {
            self.term = peer.term;
            if matches!(self.state, State::Leader(_)) && !is_leader_claim(&peer.body) {
                warn!("server {sender} knows a newer term {}; stepping down", peer.term);
                return self.become_candidate(now, 0);
            }
        }
        self.note_heard(now, sender);
        if self.catchup_source_regressed(sender, &peer) {
            warn!("{sender} no longer holds the log we were fetching from it; running the election again");
            return self.become_candidate(now, 0);
        }
        self.dispatch(now, sender, peer);
    }

    fn note_heard(&mut self, now: Instant, sender: NodeId) {
        if self.last_heard_from.len() >= MAX_TRACKED_PEERS && !self.last_heard_from.contains_key(&sender) {
            let horizon = now.checked_sub(self.config.timing.heartbeat_timeout).unwrap_or(now);
            self.last_heard_from.retain(|_, at| *at >= horizon);
        }
        if self.last_heard_from.len() < MAX_TRACKED_PEERS {
            self.last_heard_from.insert(sender, now);
        }
    }

    /// Servers heard from within `window` before `now`.
    pub(super) fn heard_within(&self, now: Instant, window: Duration) -> impl Iterator<Item = NodeId> + '_ {
        self.last_heard_from.iter().filter(move |(_, at)| now.duration_since(**at) < window).map(|(id, _)| *id)
    }

    fn dispatch(&mut self, now: Instant, sender: NodeId, peer: PeerMessage) {
        match peer.body {
            PeerBody::Election { .. } => self.on_election(now, sender, &peer),
            PeerBody::ElectionReply { leading } => self.on_election_reply(sender, leading, &peer),
            PeerBody::Coordinator | PeerBody::HeartbeatAck => {
                if self.on_leader_claim(now, sender, &peer) {
                    self.follower_catch_up(now);
                }
            }
            PeerBody::LeaderAlive { ref members } => {
                if self.on_leader_claim(now, sender, &peer) {
                    self.listed_members =
                        members.iter().take(MAX_TRACKED_PEERS).map(|&(id, addr)| NodeId { id, addr }).collect();
                    self.listed_members.insert(sender);
                    self.follower_catch_up(now);
                }
            }
            PeerBody::Heartbeat { .. } | PeerBody::AppendAck => self.on_member_report(now, sender, &peer),
            PeerBody::Append { prev, ref entries } => self.on_append(now, sender, &peer, prev, entries),
            PeerBody::Entries { prev, ref entries, complete } => {
                self.on_entries(now, sender, &peer, prev, entries, complete)
            }
            PeerBody::Fetch { from_seq } => self.on_fetch(sender, from_seq),
            PeerBody::SnapshotRequest { last, offset } => self.on_snapshot_request(sender, last, offset),
            PeerBody::SnapshotChunk { last, offset, total, ref data } => {
                self.on_snapshot_chunk(now, sender, last, offset, total, data)
            }
            PeerBody::HandOver { ref members, leaving } => self.on_hand_over(now, sender, &peer, members, leaving),
            PeerBody::Leaving => self.on_leaving(now, sender),
            PeerBody::Orphans { split_at, ref entries } => self.on_orphans(now, sender, &peer, split_at, entries),
            PeerBody::OrphansTaken { upto } => self.on_orphans_taken(now, sender, upto),
            PeerBody::IdInUse => self.fatal(FatalError::IdInUse { id: self.me.id, other: sender.addr }),
            PeerBody::StaleTerm => {} // the envelope's newer term was taken in on_peer
        }
    }

    fn on_catalog_mismatch(&mut self, sender: NodeId) {
        if self.ready {
            warn!("ignoring server {sender}: it uses a different catalog of rooms, timeslots or days");
        } else {
            self.fatal(FatalError::CatalogMismatch { other: sender.addr });
        }
    }

    /// Two servers with one explicit ID: the one still starting up leaves. Of
    /// two starting at once, or two already serving (they met after a
    /// partition), the one with the higher address leaves. The one that stays
    /// answers the other's messages with `IdInUse`, but never its `IdInUse`,
    /// so that the two cannot keep each other busy.
    fn on_id_clash(&mut self, sender: NodeId, peer: &PeerMessage) {
        let tie_break = sender.addr < self.me.addr;
        let we_leave = (!self.ready && !peer.joining) || (self.ready != peer.joining && tie_break);
        if we_leave {
            self.fatal(FatalError::IdInUse { id: self.me.id, other: sender.addr });
        } else if !matches!(peer.body, PeerBody::IdInUse) {
            warn!("server at {} tried to use our ID {}; told it to leave", sender.addr, self.me.id);
            self.send_to(sender, PeerBody::IdInUse);
        }
    }

    fn fatal(&mut self, error: FatalError) {
        if !self.events.iter().any(|e| matches!(e, Event::Fatal(_))) {
            self.events.push_back(Event::Fatal(error));
        }
    }

    /// The envelope every peer message carries.
    fn envelope(&self, body: PeerBody) -> Message {
        Message::Peer(PeerMessage {
            sender: self.me.id,
            incarnation: self.incarnation,
            explicit_id: self.config.explicit_id,
            joining: !self.ready,
            term: self.term,
            last: self.log.last(),
            commit: self.log.commit(),
            catalog: self.fingerprint,
            body,
        })
    }

    fn multicast(&mut self, body: PeerBody) {
        let message = self.envelope(body);
        self.outbox.push_back(Transmit { dst: Destination::Group, message });
    }

    fn send_to(&mut self, to: NodeId, body: PeerBody) {
        let message = self.envelope(body);
        self.outbox.push_back(Transmit { dst: Destination::Peer(to.addr), message });
    }

    fn random(&mut self) -> u64 {
        xorshift(&mut self.rng)
    }

    /// Opens an election round, logging it once per round.
    fn enter_round(&mut self, initiator: u64) {
        if !self.in_round {
            self.in_round = true;
            info!("{} is running an election initiated by {}", self.me.id, initiator);
        }
    }

    /// Closes the round (or reports a new leader outside a round).
    fn complete_round(&mut self, leader: NodeId, changed: bool) {
        if self.in_round || changed {
            info!("Election completed. Group Leader: {}", leader.id);
        }
        self.in_round = false;
        self.round_deadline = None;
        if !self.ready {
            self.ready = true;
            self.events.push_back(Event::Ready);
        }
    }

    /// Notices that our own loop stood still (SIGSTOP, an overloaded host):
    /// our tick is long overdue. Silence from others before now proves
    /// nothing, and a leader that was silent for a heartbeat timeout may
    /// already be replaced, so it steps down before acting on what waited.
    fn notice_freeze(&mut self, now: Instant) {
        let timing = self.config.timing;
        let Some(overdue) = self.next_tick.and_then(|t| now.checked_duration_since(t)) else { return };
        if overdue <= timing.heartbeat_interval || self.recently_resumed(now, timing.heartbeat_interval) {
            return;
        }
        self.resumed_at = Some(now);
        if matches!(self.state, State::Leader(_)) && overdue + timing.heartbeat_interval >= timing.heartbeat_timeout {
            warn!("this server stood still for {overdue:?}: the others may have a new leader by now; stepping down");
            self.become_candidate(now, 0);
        }
    }

    /// True while our loop has been running on time for less than `span`.
    pub(super) fn recently_resumed(&self, now: Instant, span: Duration) -> bool {
        self.resumed_at.is_some_and(|t| now < t + span)
    }

    /// Commits and applies up to `seq`, reporting each applied entry.
    fn commit_to(&mut self, seq: u64) -> Vec<(Entry, Applied)> {
        let applied = self.log.commit_to(seq, &self.config.catalog);
        for (entry, outcome) in &applied {
            self.report_merge(entry, outcome);
        }
        self.events.extend(applied.iter().map(|(entry, outcome)| Event::Applied(entry.clone(), outcome.clone())));
        applied
    }

    fn role_changed(&mut self, leader: NodeId) {
        let event = Event::RoleChanged { role: self.role(), leader: leader.id, term: self.term };
        self.events.push_back(event);
    }

    fn on_tick(&mut self, now: Instant) {
        match &self.state {
            State::Leader(_) => self.leader_tick(now),
            State::Follower(_) => self.follower_tick(now),
            State::Candidate(_) => {}
        }
    }
}

fn is_leader_claim(body: &PeerBody) -> bool {
    matches!(
        body,
        PeerBody::Coordinator | PeerBody::LeaderAlive { .. } | PeerBody::HeartbeatAck | PeerBody::Append { .. }
    )
}

/// Marsaglia's xorshift64: enough randomness for nonces, with no dependency
/// and a fixed sequence per seed, which keeps simulations replayable.
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    let mut x = (*state).max(1);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}
