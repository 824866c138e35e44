//! The wire format: every datagram roomcast sends or accepts.
//!
//! A datagram starts with a 4-byte header: magic, protocol version and the
//! frame's kind. A plain frame (a group without keys) carries one
//! bincode-encoded [`Message`]:
//!
//! ```text
//! +-------+---------+-----------+------------------------------------+
//! | "RC"  | version | kind = 0  | bincode(Message), at most 65 503 B |
//! | 2 B   | 1 B     | 1 B       |                                    |
//! +-------+---------+-----------+------------------------------------+
//! ```
//!
//! The sealed kinds (authenticated and encrypted with a key) are laid out in
//! [`crate::auth::frame`]; their plaintext is a [`Message`] encoded as here.
//! The header is checked before bincode sees a byte, and bincode is given a
//! memory limit (`DECODE_LIMIT`, 1 MiB), so a hostile length prefix can
//! never make the decoder allocate more than that.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest UDP payload an IPv4 datagram can carry.
pub const MAX_DATAGRAM: usize = 65_507;

/// Bytes in front of a plain frame's message: magic, version, kind.
pub const HEADER_LEN: usize = 4;

const MAGIC: [u8; 2] = *b"RC";
/// The protocol version; datagrams of any other are refused.
pub const VERSION: u8 = 6;

/// How much memory bincode may claim while decoding one datagram. It counts
/// decoded sizes (a `u64` sent in one varint byte claims 8), so a datagram
/// may decode to several times its length; 16 times the largest datagram
/// bounds every message roomcast sends and every hostile one alike.
const DECODE_LIMIT: usize = 16 * MAX_DATAGRAM.next_power_of_two();

/// What follows a datagram's header (its fourth byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An unauthenticated [`Message`] (a group without keys).
    Plain = 0,
    /// Sealed with a server key: server to server.
    Peer = 1,
    /// Sealed with a client's key: a client's request (or its proof of life).
    Request = 2,
    /// Sealed with a client's key: a server's reply to that client (or a challenge).
    Reply = 3,
    /// An unauthenticated hint that a key is missing or wrong ([`crate::auth::Notice`]).
    Notice = 4,
    /// Sealed with a client's key: a request only the leader acts on (every
    /// command but `status`). The other servers drop it without opening it.
    LeaderRequest = 5,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<FrameKind> {
        [
            FrameKind::Plain,
            FrameKind::Peer,
            FrameKind::Request,
            FrameKind::Reply,
            FrameKind::Notice,
            FrameKind::LeaderRequest,
        ]
        .into_iter()
        .find(|kind| *kind as u8 == byte)
    }
}

/// The header of any roomcast datagram, with the frame's kind.
pub fn header(kind: FrameKind) -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], VERSION, kind as u8]
}

/// Checks a datagram's length, magic and version, and says what kind of
/// frame it is; nothing after the header is read.
pub fn frame_kind(datagram: &[u8]) -> Result<FrameKind, DecodeError> {
    if datagram.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(datagram.len()));
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLong(datagram.len()));
    }
    if datagram[..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if datagram[2] != VERSION {
        return Err(DecodeError::UnsupportedVersion(datagram[2]));
    }
    FrameKind::from_byte(datagram[3]).ok_or(DecodeError::UnknownKind(datagram[3]))
}

/// A position in the replicated log: the sequence number of an entry, and the
/// term and incarnation of the leader that created it. `LogPosition::default()`
/// is the empty log.
///
/// Bully elections have no votes, so after lost datagrams two servers can lead
/// the same term for a moment; the leader's incarnation (random per process
/// start) keeps their entries from ever looking alike.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct LogPosition {
    /// Term of the leader that appended the entry (compared first).
    pub term: u64,
    /// Sequence number of the entry, starting at 1.
    pub seq: u64,
    /// Incarnation of the leader that appended the entry.
    pub leader: u64,
}

impl LogPosition {
    /// A position created by leader incarnation 0 (for tests and examples).
    pub const fn new(term: u64, seq: u64) -> Self {
        LogPosition { term, seq, leader: 0 }
    }
}

/// A reservable slot, named as the user typed it (matched case-insensitively).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Room name, e.g. `ME4326`.
    pub room: String,
    /// Timeslot, e.g. `8:30-9:30`.
    pub timeslot: String,
    /// Day, e.g. `Friday`.
    pub day: String,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.room, self.timeslot, self.day)
    }
}

/// Who asked for a write, as the key that sealed the request names it (see
/// [`crate::auth`]); `None` on a group without keys.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// The name the client's key was issued to, e.g. `alice`.
    pub name: String,
    /// An administrator may cancel anyone's reservation.
    pub admin: bool,
}

/// A reserved slot as `check` lists it: the slot and who reserved it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The slot.
    pub slot: Slot,
    /// The name of the key that reserved it; `None` when made without keys.
    pub owner: Option<String>,
}

impl fmt::Display for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(owner) => write!(f, "{} ({owner})", self.slot),
            None => write!(f, "{}", self.slot),
        }
    }
}

/// Identifies the version of one room's reservations: the group's data epoch
/// and the sequence number of the last change to that room.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomVersion {
    /// Random number chosen when the group's data was created; a group restarted
    /// without its data gets a new epoch, so old versions never match by accident.
    pub epoch: u64,
    /// Sequence number of the last change to the room (0: never changed).
    pub seq: u64,
}

/// What a client asks the group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List the rooms.
    Rooms,
    /// List the timeslots.
    Timeslots,
    /// List the days.
    Days,
    /// List a room's reservations; `cached` lets the leader answer
    /// [`Answer::NotModified`] when the client already holds the current list.
    Check {
        /// The room to list.
        room: String,
        /// The version of the list the client has cached, if any.
        cached: Option<RoomVersion>,
    },
    /// Reserve a slot.
    Reserve(Slot),
    /// Cancel a reservation.
    Cancel(Slot),
    /// End the session (answered `bye`).
    Quit,
    /// Every server, not only the leader, answers with its own
    /// [`ServerStatus`]; the client collects the answers for a while.
    Status,
}

impl Command {
    /// True for commands that change the reservation table.
    pub fn is_write(&self) -> bool {
        matches!(self, Command::Reserve(_) | Command::Cancel(_))
    }
}

/// Why a write was refused.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The slot is already reserved.
    AlreadyReserved(Slot),
    /// A cancel named a slot that is not reserved.
    NotReserved(Slot),
    /// The room is not in the catalog.
    UnknownRoom(String),
    /// The timeslot is not in the catalog.
    UnknownTimeslot(String),
    /// The day is not in the catalog.
    UnknownDay(String),
    /// A cancel named a slot that another client reserved.
    NotOwner {
        /// The slot.
        slot: Slot,
        /// Who reserved it.
        owner: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::AlreadyReserved(slot) => write!(f, "{slot} is already reserved"),
            Refusal::NotReserved(slot) => write!(f, "{slot} is not reserved"),
            Refusal::UnknownRoom(room) => {
                write!(f, "unknown room '{room}' (the command 'rooms' lists them)")
            }
            Refusal::UnknownTimeslot(ts) => {
                write!(f, "unknown timeslot '{ts}' (the command 'timeslots' lists them)")
            }
            Refusal::UnknownDay(day) => {
                write!(f, "unknown day '{day}' (the command 'days' lists them)")
            }
            Refusal::NotOwner { slot, owner } => {
                write!(f, "{slot} was reserved by {owner}: only {owner} or an administrator may cancel it")
            }
        }
    }
}

/// The outcome of a write, decided when the write is applied in log order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// `reserve` succeeded.
    Reserved,
    /// `cancel` succeeded.
    Cancelled,
    /// The write was refused; the table is unchanged.
    Refused(Refusal),
}

/// The body of a leader's reply to a client.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The rooms, in catalog order.
    Rooms(Vec<String>),
    /// The timeslots, in catalog order.
    Timeslots(Vec<String>),
    /// The days, in catalog order.
    Days(Vec<String>),
    /// A room's reservations, ordered by day then timeslot, and their version.
    Reservations {
        /// The reservations (may be empty).
        slots: Vec<Reservation>,
        /// Version of this list, for the client's cache.
        version: RoomVersion,
    },
    /// The client's cached list for the room is current.
    NotModified,
    /// `check` named a room that is not in the catalog.
    UnknownRoom(String),
    /// The outcome of a reserve or cancel.
    Write(WriteOutcome),
    /// The answer to `quit`.
    Bye,
    /// A write was not made: the leader reaches fewer servers than
    /// `--min-replicas` asks to hold it (a partition, or servers down).
    TooFewReplicas {
        /// Servers the leader reaches, itself included.
        reachable: u32,
        /// Servers that must hold a write.
        required: u32,
    },
    /// A write is in the leader's log but cannot be confirmed: the leader now
    /// reaches fewer servers than `--min-replicas` asks to hold it. It may
    /// still take effect once they are back, or be dropped.
    Unconfirmed {
        /// Servers the leader reaches, itself included.
        reachable: u32,
        /// Servers that must hold a write.
        required: u32,
    },
    /// One server's answer to [`Command::Status`].
    Status(Box<ServerStatus>),
}

/// What a server reports about itself to `status`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// Its role.
    pub role: StatusRole,
    /// The leader it follows (itself when leading; none while electing).
    pub leader: Option<u64>,
    /// The highest term it knows.
    pub term: u64,
    /// Changes applied to its table (the sequence number of the last one).
    pub applied: u64,
    /// Its commit point.
    pub commit: u64,
    /// The sequence number of its last log entry (committed or not).
    pub last: u64,
    /// Reservations in its table.
    pub reservations: u64,
    /// CRC-32 of its reservations: servers that agree report the same.
    pub digest: u32,
    /// Milliseconds since it last heard from its leader (followers only).
    pub leader_heard_ms: Option<u64>,
    /// Configured heartbeat interval, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Configured heartbeat timeout, in milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// Configured `--min-replicas`.
    pub min_replicas: u32,
    /// Writes dropped when partitions healed, in all.
    pub conflicts_total: u64,
    /// The latest of them.
    pub conflicts: Vec<Conflict>,
    /// Whether it checks keys, and the datagrams it refused.
    pub auth: AuthStatus,
}

/// How a server authenticates datagrams, and what it refused.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthStatus {
    /// The ID of the server key it seals with (8 hex digits); `None` when
    /// the group runs without keys, open to anyone on the network.
    pub server_key: Option<String>,
    /// Datagrams refused since it started, by reason.
    pub rejected: Rejected,
}

/// Datagrams a server refused, by reason.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejected {
    /// Without a key, where keys are required.
    pub unauthenticated: u64,
    /// Sealed with a key this server does not hold (or a revoked client's).
    pub unknown_key: u64,
    /// Failed authentication under the key it names: altered, or a different key.
    pub bad_mac: u64,
    /// Older than the replay rules allow, or sealed for another server: replayed.
    pub replay: u64,
    /// A copy of one already taken: networks duplicate datagrams, `--peer`
    /// with working multicast doubles every one (and a replay of a recent
    /// datagram looks the same).
    pub duplicate: u64,
    /// Not a well-formed roomcast datagram.
    pub malformed: u64,
    /// Sealed with a key, at a server that runs without keys.
    pub unexpected_key: u64,
}

impl Rejected {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.unauthenticated
            + self.unknown_key
            + self.bad_mac
            + self.replay
            + self.duplicate
            + self.malformed
            + self.unexpected_key
    }
}

/// A server's role as `status` shows it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatusRole {
    /// It sequences writes and answers clients.
    Leader,
    /// It follows a leader and holds its log.
    Follower,
    /// It follows a leader but is still fetching entries it lacks.
    Syncing,
    /// It runs an election (or catches up before taking over).
    Candidate,
}

impl fmt::Display for StatusRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            StatusRole::Leader => "leader",
            StatusRole::Follower => "follower",
            StatusRole::Syncing => "syncing",
            StatusRole::Candidate => "candidate",
        };
        f.write_str(name)
    }
}

/// A client's request, multicast to the group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Random identifier of the client process.
    pub client: u64,
    /// Request number; retries reuse it, so a write runs at most once.
    pub request: u64,
    /// What the client asks.
    pub command: Command,
}

/// The leader's reply to one request, sent by unicast to the requester.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request this answers.
    pub request: u64,
    /// ID of the server that answered.
    pub server: u64,
    /// Fingerprint of the server's catalog; a change empties the client's cache.
    pub catalog: u64,
    /// The answer.
    pub answer: Answer,
}

/// One replicated state change, in the order the leader assigned.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the entry sits in the log.
    pub position: LogPosition,
    /// The client that asked for the change (0 for internal entries).
    pub client: u64,
    /// The client's request number.
    pub request: u64,
    /// Who asked for it, as the request's key says (`None` without keys):
    /// the owner of a reservation, and whether a cancel may remove it.
    pub by: Option<Principal>,
    /// The change itself.
    pub op: Op,
}

/// A state change in the replicated log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// First entry of a new group's data: fixes the data epoch for all replicas.
    Genesis {
        /// The new data epoch.
        epoch: u64,
    },
    /// Reserve a slot.
    Reserve(Slot),
    /// Cancel a slot.
    Cancel(Slot),
    /// A write committed on the other side of a healed partition, replayed
    /// after this side's history (docs/protocol.md, "Partitions").
    Merged {
        /// Where the write sat in the other side's log; a merge runs once.
        origin: LogPosition,
        /// The first sequence number at which the two histories differ: a
        /// reservation held from before it was known to both sides.
        since: u64,
        /// The reserve or cancel.
        write: Box<Op>,
    },
}

/// A write confirmed on one side of a partition that could not be merged
/// into the other side's history.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The slot both sides changed.
    pub slot: Slot,
    /// True for a reservation, false for a cancellation.
    pub reserve: bool,
    /// The client it was confirmed to, and its request number.
    pub client: u64,
    /// The request number.
    pub request: u64,
}

impl Conflict {
    /// What a retry of the dropped request is told where the merge ran.
    pub fn outcome(&self) -> WriteOutcome {
        match self.reserve {
            true => WriteOutcome::Refused(Refusal::AlreadyReserved(self.slot.clone())),
            false => WriteOutcome::Refused(Refusal::NotReserved(self.slot.clone())),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, why) = match self.reserve {
            true => ("reservation", "the slot was reserved on this side"),
            false => ("cancellation", "the slot was reserved again on this side"),
        };
        write!(
            f,
            "the {what} of {} confirmed to client {:x} (request {}) on the other side of a partition was dropped: {why}",
            self.slot, self.client, self.request
        )
    }
}

/// What a server says to another server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PeerBody {
    /// Multicast by a server that runs an election (bully: "is anyone higher?").
    Election {
        /// ID of the server whose action started this election; 0 when the
        /// candidate started it itself (start-up or a failed leader).
        initiator: u64,
    },
    /// Unicast answer to an `Election`; with the envelope it tells the candidate
    /// who is higher and who holds more of the log.
    ElectionReply {
        /// The responder is the group's leader.
        leading: bool,
    },
    /// Multicast by a server that won an election, or by the leader in answer to
    /// an election started by a lower server: "the election is over, I lead".
    Coordinator,
    /// Multicast by the leader every heartbeat interval, so that newcomers and
    /// a second leader after a partition learn about it. It lists the members,
    /// so that a later candidate knows whom it must hear from.
    LeaderAlive {
        /// (server ID, address) of each member the leader replicates to.
        members: Vec<(u64, std::net::SocketAddrV4)>,
    },
    /// Unicast from a follower to its leader.
    Heartbeat {
        /// False while a higher follower waits out its `--preempt-delay`:
        /// the leader does not hand over to it yet.
        may_take_over: bool,
    },
    /// The leader's unicast answer to a heartbeat.
    HeartbeatAck,
    /// New log entries, multicast by the leader for each write.
    Append {
        /// The entry just before `entries[0]` (the follower must hold it).
        prev: LogPosition,
        /// Consecutive entries.
        entries: Vec<Entry>,
    },
    /// Unicast answer to `Fetch`: a piece of the sender's log.
    Entries {
        /// The entry just before `entries[0]`.
        prev: LogPosition,
        /// Consecutive entries.
        entries: Vec<Entry>,
        /// The sender's log ends with these entries.
        complete: bool,
    },
    /// A follower whose committed history differs from its leader's (a healed
    /// partition) hands over its latest committed entries, to be merged.
    Orphans {
        /// The follower saw the histories differ at this sequence number (or
        /// before): where the split is at the latest.
        split_at: u64,
        /// Committed entries that changed its table, oldest first.
        entries: Vec<Entry>,
    },
    /// The leader's answer to [`PeerBody::Orphans`]: every entry up to `upto`
    /// is merged and committed (or was already held), so the follower may
    /// drop its history and copy the leader's.
    OrphansTaken {
        /// The follower's commit point when it sent them (its envelope's):
        /// every write it had committed up to there is covered.
        upto: u64,
    },
    /// Unicast from a replica: send me the log from `from_seq` on.
    Fetch {
        /// First sequence number wanted.
        from_seq: u64,
    },
    /// Unicast: a piece of a snapshot of the committed state.
    SnapshotChunk {
        /// The last entry the snapshot includes.
        last: LogPosition,
        /// Offset of `data` in the encoded snapshot.
        offset: u64,
        /// Length of the whole encoded snapshot.
        total: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Unicast from a follower: it holds the log up to the envelope's `last`.
    AppendAck,
    /// Unicast: send the snapshot ending at `last` from `offset` on.
    SnapshotRequest {
        /// The snapshot being transferred.
        last: LogPosition,
        /// First byte wanted.
        offset: u64,
    },
    /// Unicast from the leader to a higher server that has caught up: the leader
    /// has stopped taking writes, take over. It lists the members the new leader
    /// must keep replicating to (the old leader among them), with their positions.
    HandOver {
        /// (server ID, address, last log position held) of each member.
        members: Vec<(u64, std::net::SocketAddrV4, LogPosition)>,
        /// The old leader is stopping: it is not among `members`, and the new
        /// leader serves at once instead of waiting for members to report.
        leaving: bool,
    },
    /// A server stopping cleanly (SIGINT, SIGTERM) says so: unicast to its
    /// leader, which stops waiting for it, or multicast by a leader that had
    /// no member to hand over to, so that the others elect at once.
    Leaving,
    /// Unicast to a starting server whose explicit ID is already taken.
    IdInUse,
    /// Unicast answer to a message from an older term: the envelope's term is newer.
    StaleTerm,
}

/// A message between servers, with the sender's view of the group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PeerMessage {
    /// The sender's server ID (its address comes from the datagram).
    pub sender: u64,
    /// Random number drawn at the sender's start: tells a server its own
    /// looped-back multicast from another server that has the same ID.
    pub incarnation: u64,
    /// True when the ID was given on the command line rather than the PID.
    pub explicit_id: bool,
    /// True while the sender is starting up (has not finished its first election).
    pub joining: bool,
    /// The highest term the sender knows.
    pub term: u64,
    /// The last entry of the sender's log.
    pub last: LogPosition,
    /// How much of the log the sender knows to be committed.
    pub commit: u64,
    /// Fingerprint of the sender's catalog; servers with different catalogs
    /// cannot share a reservation table.
    pub catalog: u64,
    /// What the message says.
    pub body: PeerBody,
}

/// Everything that travels in a roomcast datagram.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client to group.
    Request(Request),
    /// Leader to client.
    Reply(Reply),
    /// Server to server.
    Peer(PeerMessage),
}

/// Why a datagram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header.
    TooShort(usize),
    /// Longer than any UDP datagram.
    TooLong(usize),
    /// The first bytes are not roomcast's magic.
    BadMagic,
    /// A different protocol version.
    UnsupportedVersion(u8),
    /// The fourth byte names no kind of frame.
    UnknownKind(u8),
    /// A sealed frame or a notice where a plain message was expected.
    NotPlain(FrameKind),
    /// The body is not a valid message.
    Malformed(String),
    /// Valid message followed by extra bytes.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort(n) => write!(f, "datagram of {n} bytes is shorter than the header"),
            DecodeError::TooLong(n) => write!(f, "datagram of {n} bytes exceeds the UDP maximum"),
            DecodeError::BadMagic => write!(f, "not a roomcast datagram (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "protocol version {v} is not supported (this build speaks {VERSION}); upgrade all servers and clients together"
            ),
            DecodeError::UnknownKind(kind) => write!(f, "unknown frame kind {kind}"),
            DecodeError::NotPlain(kind) => {
                write!(f, "a {kind:?} frame (sealed with a key, or a key notice), not a plain message")
            }
            DecodeError::Malformed(why) => write!(f, "malformed message: {why}"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the message"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn decode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a message into a plain datagram.
///
/// Messages roomcast builds are bounded well below [`MAX_DATAGRAM`]; a message
/// that would not fit is a bug in the caller, reported by `debug_assert`.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&header(FrameKind::Plain));
    encode_body_into(message, &mut out);
    debug_assert!(out.len() <= MAX_DATAGRAM, "message of {} bytes does not fit a datagram", out.len());
    out
}

/// Appends the bincode encoding of `value` (a message, or a sealed frame's plaintext).
pub(crate) fn encode_body_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    // Encoding into a Vec only fails for types serde cannot describe; ours are plain data.
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .expect("roomcast messages are always encodable");
}

/// Decodes a plain datagram; never panics and never allocates beyond the datagram's size.
pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
    match frame_kind(datagram)? {
        FrameKind::Plain => decode_body(&datagram[HEADER_LEN..]),
        other => Err(DecodeError::NotPlain(other)),
    }
}

/// Decodes a whole body (all of `body`, no more, no less) with the size limit.
pub(crate) fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, used) =
        bincode::serde::decode_from_slice(body, decode_config()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(DecodeError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Slot {
        Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() }
    }

    fn samples() -> Vec<Message> {
        vec![
            Message::Request(Request { client: 7, request: 1, command: Command::Reserve(slot()) }),
            Message::Reply(Reply {
                request: 1,
                server: 45000,
                catalog: 99,
                answer: Answer::Reservations {
                    slots: vec![Reservation { slot: slot(), owner: Some("alice".into()) }],
                    version: RoomVersion { epoch: 3, seq: 4 },
                },
            }),
            Message::Peer(PeerMessage {
                sender: 41220,
                incarnation: 5,
                explicit_id: false,
                joining: false,
                term: 2,
                last: LogPosition::new(2, 9),
                commit: 8,
                catalog: 1,
                body: PeerBody::Append {
                    prev: LogPosition::new(2, 8),
                    entries: vec![Entry {
                        position: LogPosition::new(2, 9),
                        client: 7,
                        request: 1,
                        by: Some(Principal { name: "alice".into(), admin: false }),
                        op: Op::Cancel(slot()),
                    }],
                },
            }),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            assert_eq!(decode(&encode(&message)), Ok(message));
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for message in samples() {
            let bytes = encode(&message);
            for len in 0..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
            }
        }
    }

    #[test]
    fn header_is_checked_before_the_body() {
        assert_eq!(decode(b"RC"), Err(DecodeError::TooShort(2)));
        assert_eq!(decode(b"XX\x01\x00\x00"), Err(DecodeError::BadMagic));
        assert_eq!(decode(b"RC\x09\x00\x00"), Err(DecodeError::UnsupportedVersion(9)));
        assert_eq!(decode(&[b'R', b'C', VERSION, 9, 0]), Err(DecodeError::UnknownKind(9)));
        assert_eq!(decode(&[b'R', b'C', VERSION, 1, 0]), Err(DecodeError::NotPlain(FrameKind::Peer)));
        assert_eq!(decode(&vec![0u8; MAX_DATAGRAM + 1]), Err(DecodeError::TooLong(MAX_DATAGRAM + 1)));
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating_it() {
        // Request variant, then a string length of u64::MAX (varint 0xFF + 8 bytes).
        let mut bytes = vec![b'R', b'C', VERSION, 0, 0, 7, 1, 3, 0xFF];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn a_full_chunk_of_entries_decodes() {
        // Decoded sizes outgrow the datagram: each small varint becomes 8 bytes.
        let slot = Slot { room: "ME4326".into(), timeslot: "8:30-9:30".into(), day: "Friday".into() };
        let by = Some(Principal { name: "client-1".into(), admin: false });
        let entries: Vec<Entry> = (1..=1_000)
            .map(|seq| Entry {
                position: LogPosition { term: 3, seq, leader: u64::MAX / 3 },
                client: u64::MAX / 5,
                request: seq,
                by: by.clone(),
                op: Op::Reserve(slot.clone()),
            })
            .collect();
        let Message::Peer(mut peer) = samples().remove(2) else { unreachable!() };
        peer.body = PeerBody::Entries { prev: LogPosition::default(), entries, complete: true };
        let bytes = encode(&Message::Peer(peer.clone()));
        assert!(bytes.len() < MAX_DATAGRAM, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes), Ok(Message::Peer(peer)));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&samples()[0]);
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    }
}
