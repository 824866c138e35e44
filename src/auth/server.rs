//! The server's guard: what a server does with a datagram before its
//! protocol core sees it, and with a message before it leaves.
//!
//! A server that receives a sealed datagram from a sender boot it has not
//! verified holds it (at most [`MAX_HELD`]) and challenges the boot at the
//! datagram's source address. Only the live process with that boot and a
//! valid key can answer, and its proof anchors the boot's clock
//! (`replay::Anchor`): from then on, each datagram's clock says how old it
//! may be, and what may be older than the horizon is dropped, the held
//! datagrams among them. This is what keeps a captured datagram from working
//! again at a receiver that restarted (and so forgot the sender), or on a
//! sender that is gone, without any clocks having to agree.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use ::log::{debug, warn};

use super::Notice;
use super::frame::{
    self, Boot, Cookie, Frame, FrameKeys, Inner, OpenError, SealedFrame, SealedHeader, Sealing, Target,
};
use super::keys::{Key, KeyId, Principal, ServerKeys, derive_client_key};
use super::limit::PerSender;
use super::replay::{Anchor, FRESHNESS, REANCHOR, ReplayWindow, SentCounter, Stale};
use crate::node::Destination;
use crate::wire::{self, AuthStatus, Command, FrameKind, Message, Rejected};

/// Sender boots a server keeps a replay window for; the least recently
/// heard is forgotten first (it is challenged again if it speaks).
pub const MAX_SENDERS: usize = 1024;
/// Sender boots waiting to prove they are live.
pub const MAX_PENDING: usize = 256;
/// Datagrams held per boot while it proves it is live.
pub const MAX_HELD: usize = 4;
/// Client addresses a server remembers the key of, to seal its replies.
pub const MAX_CLIENT_SESSIONS: usize = 4096;
/// Challenges answered, remembered so that a replayed one has no effect.
const MAX_ANSWERED: usize = 256;
/// How soon a boot that has not proved itself is challenged again.
const RECHALLENGE: Duration = Duration::from_millis(100);
/// Challenges a held server gets on the timer alone, without sending again:
/// enough to outlast a lost challenge or proof or two, few enough that a
/// replayed datagram from a forged address is a small amplifier (at most 4
/// challenges per receiving server, 1 on the datagram and 3 on the timer).
const TIMER_CHALLENGES: u8 = 3;
/// At most one warning per sender per this period.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// At most one key notice per sender per this period ...
const NOTICE_EVERY: Duration = Duration::from_secs(1);
/// ... and at most this many in all per period.
const NOTICE_BUDGET: u32 = 20;

/// A datagram that passed: authentic, fresh, and from a verified sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The address it came from.
    pub from: SocketAddrV4,
    /// The message.
    pub message: Message,
    /// For a client's request under keys: whose key sealed it.
    pub client: Option<Principal>,
}

/// Why a datagram was refused (each is counted in [`Rejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Unauthenticated,
    UnknownKey,
    BadMac,
    Replay,
    Duplicate,
    Malformed,
    UnexpectedKey,
}

/// Whose replay window: any server (they share a key) or one named client,
/// and the boot. A client can therefore not touch another's window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sender {
    client: Option<Principal>,
    boot: Boot,
}

/// A boot that has not proved yet that it is live.
#[derive(Debug)]
struct Unverified {
    from: SocketAddrV4,
    header: SealedHeader,
    /// The cookies of the challenges sent to it and when, newest last: a
    /// proof may answer any of them (the proof of an earlier one may be late).
    cookies: VecDeque<(Cookie, Instant)>,
    first_seen: Instant,
    challenged_at: Option<Instant>,
    /// Challenges sent on the timer rather than on a datagram ([`TIMER_CHALLENGES`]).
    timer_challenges: u8,
    held: Vec<(SealedHeader, Accepted)>,
}

/// Challenges to one boot whose cookies are remembered.
const COOKIES_KEPT: usize = 4;

/// What a server remembers of a client, to seal its replies.
#[derive(Debug, Clone)]
struct Session {
    principal: Principal,
    master: KeyId,
    boot: Boot,
    /// The counter of the latest request datagram taken from that boot: what
    /// a reply names as the datagram it answers (`Inner::Reply`).
    answers: u64,
    last_used: Instant,
}

/// The server's keys, with the client keys derived so far.
#[derive(Debug)]
struct Keyring {
    keys: ServerKeys,
    /// By master key, then client (nested, so that a lookup borrows the name).
    derived: BTreeMap<KeyId, BTreeMap<Principal, Key>>,
}

impl Keyring {
    /// The key that opens a frame with this header, or why there is none.
    fn opening_key(&mut self, header: &SealedHeader) -> Result<Key, String> {
        match &header.client {
            None => self.keys.server.iter().find(|k| k.id() == header.key_id).cloned().ok_or_else(|| {
                format!(
                    "sealed with server key {}, which this server does not hold (it holds {}): its key file differs from ours",
                    header.key_id,
                    ids(&self.keys.server)
                )
            }),
            Some(principal) => self.client_key(header.key_id, principal),
        }
    }

    fn client_key(&mut self, master_id: KeyId, principal: &Principal) -> Result<Key, String> {
        if self.keys.revoked.contains(&principal.name) {
            return Err(format!("client '{}' is revoked (`revoked_clients`)", principal.name));
        }
        if let Some(key) = self.derived.get(&master_id).and_then(|of_master| of_master.get(principal)) {
            return Ok(key.clone());
        }
        let master = self.keys.master(master_id).ok_or_else(|| {
            format!(
                "client '{}' has a key from master key {master_id}, which this server does not hold (it holds {})",
                principal.name,
                ids(&self.keys.client_masters)
            )
        })?;
        let key = derive_client_key(master, principal);
        if self.derived.values().map(BTreeMap::len).sum::<usize>() >= MAX_CLIENT_SESSIONS {
            self.derived.clear(); // derivation is cheap; the cache only saves it
        }
        self.derived.entry(master_id).or_default().insert(principal.clone(), key.clone());
        Ok(key)
    }
}

/// When a held sender is next challenged again on the timer: a server, up
/// to [`TIMER_CHALLENGES`] times, [`RECHALLENGE`] after its last challenge;
/// or when what it sent expires unproved, whichever comes first.
fn timer_challenge_at(sender: &Sender, unverified: &Unverified) -> Option<Instant> {
    if sender.client.is_some() || unverified.timer_challenges >= TIMER_CHALLENGES {
        return None;
    }
    let at = unverified.challenged_at?;
    Some((at + RECHALLENGE).min(unverified.first_seen + FRESHNESS))
}

fn ids(keys: &[Key]) -> String {
    keys.iter().map(|k| k.id().to_string()).collect::<Vec<_>>().join(", ")
}

/// A server's guard; see the module documentation.
#[derive(Debug)]
pub struct ServerGuard {
    keyring: Option<Keyring>,
    /// Our own unicast address: where a datagram sealed for us was sent.
    me: SocketAddrV4,
    boot: Boot,
    sent: SentCounter,
    rng: u64,
    senders: BTreeMap<Sender, (ReplayWindow, Instant)>,
    pending: BTreeMap<Sender, Unverified>,
    /// Challenges answered, by the challenger's boot and cookie.
    answered: VecDeque<(Boot, Cookie)>,
    sessions: BTreeMap<SocketAddrV4, Session>,
    outbox: VecDeque<(Destination, Vec<u8>)>,
    released: VecDeque<Accepted>,
    rejected: Rejected,
    warnings: PerSender,
    notices: PerSender,
    frame_keys: FrameKeys,
    /// Whether this server leads, so opens [`FrameKind::LeaderRequest`]s.
    leading: bool,
    /// [`FrameKind::LeaderRequest`]s dropped unopened because we do not lead.
    not_for_us: u64,
}

impl ServerGuard {
    /// A guard for the server at `me` with boot nonce `boot` (random per
    /// process start), created at `now`; `keys` is `None` for a group without
    /// keys. `seed` draws the challenge cookies, which need not be secret.
    pub fn new(keys: Option<ServerKeys>, me: SocketAddrV4, boot: Boot, seed: u64, now: Instant) -> Self {
        let mut sent = SentCounter::default();
        sent.note_time(now);
        ServerGuard {
            keyring: keys.map(|keys| Keyring { keys, derived: BTreeMap::new() }),
            me,
            boot,
            sent,
            rng: seed | 1,
            senders: BTreeMap::new(),
            pending: BTreeMap::new(),
            answered: VecDeque::new(),
            sessions: BTreeMap::new(),
            outbox: VecDeque::new(),
            released: VecDeque::new(),
            rejected: Rejected::default(),
            warnings: PerSender::new(WARN_EVERY, u32::MAX),
            notices: PerSender::new(NOTICE_EVERY, NOTICE_BUDGET),
            frame_keys: FrameKeys::default(),
            leading: true,
            not_for_us: 0,
        }
    }

    /// True when the group runs with keys.
    pub fn keyed(&self) -> bool {
        self.keyring.is_some()
    }

    /// What `status` shows.
    pub fn status(&self) -> AuthStatus {
        let server_key = self.keyring.as_ref().map(|k| k.keys.server[0].id().to_string());
        AuthStatus { server_key, rejected: self.rejected }
    }

    /// Notes the time of an input before anything it causes is sealed: the
    /// clock those datagrams carry.
    pub fn note_time(&mut self, now: Instant) {
        self.sent.note_time(now);
    }

    /// How many sender boots, unverified boots, held datagrams and client
    /// sessions the guard keeps: bounded by the `MAX_*` constants.
    pub fn footprint(&self) -> [usize; 4] {
        let held = self.pending.values().map(|u| u.held.len()).sum();
        [self.senders.len(), self.pending.len(), held, self.sessions.len()]
    }

    /// Says whether this server leads (a guard starts out leading). Only a
    /// leader opens a [`FrameKind::LeaderRequest`]: the others would drop the
    /// request anyway, so they drop it before they decrypt it, once its key
    /// is known (an unknown key is still counted and noticed by every server).
    pub fn set_leading(&mut self, leading: bool) {
        self.leading = leading;
    }

    /// How many requests for the leader were dropped unopened while we did
    /// not lead (not refused: nothing was wrong with them that we know of).
    pub fn not_for_us(&self) -> u64 {
        self.not_for_us
    }

    /// Opens a datagram from `from`: the message if it may be acted on now.
    /// Datagrams a proof releases come out of [`ServerGuard::poll_released`].
    pub fn open(&mut self, now: Instant, from: SocketAddrV4, datagram: &[u8]) -> Option<Accepted> {
        self.note_time(now);
        let frame = match frame::parse(datagram) {
            Ok(frame) => frame,
            Err(e) => return self.refuse(now, from, Reason::Malformed, e),
        };
        match (frame, self.keyed()) {
            (Frame::Notice(reason), _) => self.heard_notice(now, from, reason),
            (Frame::Plain(body), false) => match wire::decode_body(body) {
                Ok(Message::Reply(_)) => {
                    let why = "a client reply arrived at a server (another program on this port?)";
                    self.refuse(now, from, Reason::Malformed, why)
                }
                Ok(message) => Some(Accepted { from, message, client: None }),
                Err(e) => self.refuse(now, from, Reason::Malformed, e),
            },
            (Frame::Plain(_), true) => {
                self.notify(now, from, Notice::KeyRequired);
                let why = "it has no key, and this group requires one: give that host's server or client a key \
                           file (--key-file; docs/security.md)";
                self.refuse(now, from, Reason::Unauthenticated, why)
            }
            (Frame::Sealed(_), false) => {
                self.notify(now, from, Notice::NoKeys);
                let why = "it is sealed with a key, and this server runs without keys: give every server of the \
                           group the same key file, or run that host without one";
                self.refuse(now, from, Reason::UnexpectedKey, why)
            }
            (Frame::Sealed(sealed), true) => self.open_sealed(now, from, &sealed),
        }
    }

    /// A datagram held until its sender proved it is live, now released.
    #[must_use]
    pub fn poll_released(&mut self) -> Option<Accepted> {
        self.released.pop_front()
    }

    /// A challenge, proof or key notice of the guard's own to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(Destination, Vec<u8>)> {
        self.outbox.pop_front()
    }

    /// Seals `message` for `dst`; `None` if it cannot be (a reply to a
    /// client whose key the guard no longer remembers: its retry comes).
    pub fn seal(&mut self, dst: Destination, message: &Message) -> Option<Vec<u8>> {
        if !self.keyed() {
            return Some(wire::encode(message));
        }
        match (message, dst) {
            (Message::Peer(_), dst) => self.seal_for_servers(dst, &Inner::Message(message)),
            (Message::Reply(reply), Destination::Peer(to)) => {
                self.seal_for_client(to, |session| Inner::Reply { answers: session.answers, reply })
            }
            (Message::Reply(_) | Message::Request(_), _) => None,
        }
    }

    fn seal_for_servers(&mut self, dst: Destination, inner: &Sealing) -> Option<Vec<u8>> {
        let target = match dst {
            Destination::Group => Target::Group,
            Destination::Peer(addr) => Target::Peer(addr),
        };
        let key = self.keyring.as_ref()?.keys.server[0].clone();
        let header = SealedHeader {
            kind: FrameKind::Peer,
            key_id: key.id(),
            boot: self.boot,
            counter: self.sent.take_next(),
            clock: self.sent.clock(),
            target,
            client: None,
        };
        Some(self.frame_keys.seal(&header, &key, &[], inner))
    }

    /// Seals what `inner` makes of the session of the client at `to` (its
    /// key, its boot, the request datagram it last sent).
    fn seal_for_client<'a>(
        &mut self,
        to: SocketAddrV4,
        inner: impl FnOnce(&Session) -> Sealing<'a>,
    ) -> Option<Vec<u8>> {
        let Some(session) = self.sessions.get(&to) else {
            debug!("no key known for client {to}; its retry gets the answer");
            return None;
        };
        let (master, principal, boot, inner) =
            (session.master, session.principal.clone(), session.boot, inner(session));
        self.seal_for_process(master, principal, boot, &inner)
    }

    /// Seals `inner` for one client process: under the key `master` derives
    /// for `principal`, for that process's `boot`.
    fn seal_for_process(
        &mut self,
        master: KeyId,
        principal: Principal,
        boot: Boot,
        inner: &Sealing,
    ) -> Option<Vec<u8>> {
        let key = self.keyring.as_mut()?.client_key(master, &principal).ok()?;
        let header = SealedHeader {
            kind: FrameKind::Reply,
            key_id: master,
            boot: self.boot,
            counter: self.sent.take_next(),
            clock: self.sent.clock(),
            target: Target::Group,
            client: Some(principal),
        };
        Some(self.frame_keys.seal(&header, &key, &boot.0, inner))
    }

    fn open_sealed(&mut self, now: Instant, from: SocketAddrV4, frame: &SealedFrame) -> Option<Accepted> {
        let header = &frame.header;
        if header.boot == self.boot {
            // Our own multicast looped back (or a copy of it): nothing to open.
            return None;
        }
        if header.kind == FrameKind::Reply {
            return self.refuse(now, from, Reason::Malformed, "a reply to a client arrived at a server");
        }
        let key = match self.keyring.as_mut().map(|k| k.opening_key(header)) {
            Some(Ok(key)) => key,
            Some(Err(why)) => {
                self.notify(now, from, Notice::UnknownKey);
                return self.refuse(now, from, Reason::UnknownKey, &why);
            }
            None => return None,
        };
        if header.kind == FrameKind::LeaderRequest && !self.leading {
            self.not_for_us += 1;
            return None;
        }
        let sender = Sender { client: header.client.clone(), boot: header.boot };
        // A stale datagram is refused before it costs a decryption (it is marked only once
        // authentic), except a late one newer than anything taken, which may be held (`take`).
        let stale = self.senders.get(&sender).and_then(|(window, _)| {
            window
                .check(header.counter, header.clock, now)
                .err()
                .filter(|&stale| !window.may_hold(header.counter, stale))
        });
        if let Some(stale) = stale {
            return self.refuse_stale(now, from, stale);
        }
        let inner = match self.frame_keys.open(frame, &key, &[]) {
            Ok(inner) => inner,
            Err(OpenError::BadMac) => {
                self.notify(now, from, Notice::BadKey);
                let why = format_args!(
                    "it fails authentication under key {}: altered, or that host's key file has a key with the same ID but other bytes",
                    header.key_id
                );
                return self.refuse(now, from, Reason::BadMac, why);
            }
            Err(OpenError::Malformed(e)) => return self.refuse(now, from, Reason::Malformed, e),
        };
        if let Target::Peer(to) = header.target
            && to != self.me
        {
            return self.refuse(
                now,
                from,
                Reason::Replay,
                format_args!("it was sealed for the server at {to}: replayed to us"),
            );
        }
        match inner {
            Inner::Challenge { boot, cookie } if header.kind == FrameKind::Peer => {
                self.answer_challenge(from, header.boot, boot, cookie);
                None
            }
            Inner::Proof { cookie } => {
                self.take_proof(now, from, &sender, header, cookie);
                None
            }
            Inner::Message(message) if kind_carries(header.kind, &message) => {
                let accepted = Accepted { from, message, client: header.client.clone() };
                self.take(now, sender, header, accepted)
            }
            _ => self.refuse(
                now,
                from,
                Reason::Malformed,
                format_args!("a {:?} frame carrying the wrong message", header.kind),
            ),
        }
    }

    /// An authentic message: acted on if its sender is verified and it is
    /// fresh, held (and the sender challenged) if the sender is not verified,
    /// or if it is newer than anything taken from it but looks late (the
    /// anchor may be out of date: a new proof tells).
    fn take(&mut self, now: Instant, sender: Sender, header: &SealedHeader, accepted: Accepted) -> Option<Accepted> {
        let Some((window, heard)) = self.senders.get_mut(&sender) else {
            self.hold(now, sender, header, accepted);
            return None;
        };
        match window.accept(header.counter, header.clock, now) {
            Ok(()) => {
                *heard = now;
                // Clocks drift apart: measure this one against a new proof now and then.
                if window.anchored_at().is_none_or(|at| now >= at + REANCHOR) {
                    self.pend(now, &sender, header, accepted.from);
                }
                self.note_session(now, header, accepted.from);
                Some(accepted)
            }
            Err(stale) if window.may_hold(header.counter, stale) => {
                self.hold(now, sender, header, accepted);
                None
            }
            Err(stale) => self.refuse_stale(now, accepted.from, stale),
        }
    }

    fn hold(&mut self, now: Instant, sender: Sender, header: &SealedHeader, accepted: Accepted) {
        self.pend(now, &sender, header, accepted.from);
        if let Some(unverified) = self.pending.get_mut(&sender)
            && unverified.held.len() < MAX_HELD
        {
            unverified.held.push((header.clone(), accepted));
        }
    }

    /// Notes that `sender` is to prove it is live, and challenges it unless
    /// it was challenged within [`RECHALLENGE`] (a challenge or its proof may
    /// be lost: each new one has a new cookie).
    fn pend(&mut self, now: Instant, sender: &Sender, header: &SealedHeader, from: SocketAddrV4) {
        // What was held longer than the horizon is too old by any proof: start over.
        if self.pending.get(sender).is_some_and(|u| now >= u.first_seen + FRESHNESS) {
            self.pending.remove(sender);
        }
        if !self.pending.contains_key(sender) {
            self.make_room_for_pending(now);
            let unverified = Unverified {
                from,
                header: header.clone(),
                cookies: VecDeque::new(),
                first_seen: now,
                challenged_at: None,
                timer_challenges: 0,
                held: Vec::new(),
            };
            self.pending.insert(sender.clone(), unverified);
        }
        let Some(unverified) = self.pending.get_mut(sender) else { return };
        if unverified.challenged_at.is_none_or(|at| now >= at + RECHALLENGE) {
            unverified.challenged_at = Some(now);
            self.challenge(now, sender);
        }
    }

    /// When a held server that has not proved is next challenged again.
    pub fn next_rechallenge(&self) -> Option<Instant> {
        self.pending.iter().filter_map(|(sender, u)| timer_challenge_at(sender, u)).min()
    }

    /// Challenges again every held server whose proof has not come within
    /// [`RECHALLENGE`] (a challenge or its proof may be lost: without this, a
    /// server that sends nothing more, say an election answer, stays unheard),
    /// and forgets what was held past the horizon. Clients are challenged
    /// again only when they retry, which they do every 250 ms anyway.
    pub fn rechallenge(&mut self, now: Instant) {
        self.pending.retain(|_, u| now < u.first_seen + FRESHNESS);
        let due: Vec<Sender> = self
            .pending
            .iter()
            .filter(|(sender, u)| timer_challenge_at(sender, u).is_some_and(|at| at <= now))
            .map(|(sender, _)| sender.clone())
            .collect();
        for sender in due {
            if let Some(unverified) = self.pending.get_mut(&sender) {
                unverified.challenged_at = Some(now);
                unverified.timer_challenges += 1;
                self.challenge(now, &sender);
            }
        }
    }

    fn make_room_for_pending(&mut self, now: Instant) {
        self.pending.retain(|_, u| now < u.first_seen + FRESHNESS);
        if self.pending.len() >= MAX_PENDING
            && let Some(oldest) = self.pending.iter().min_by_key(|(_, u)| u.first_seen).map(|(s, _)| s.clone())
        {
            self.pending.remove(&oldest);
        }
    }

    /// Asks a boot to prove that it is live, at the address it sent from.
    fn challenge(&mut self, now: Instant, sender: &Sender) {
        let cookie = self.cookie();
        let Some(unverified) = self.pending.get_mut(sender) else { return };
        if unverified.cookies.len() >= COOKIES_KEPT {
            unverified.cookies.pop_front();
        }
        unverified.cookies.push_back((cookie, now));
        let (to, master) = (unverified.from, unverified.header.key_id);
        let inner = Inner::Challenge { boot: sender.boot, cookie };
        let bytes = match &sender.client {
            None => self.seal_for_servers(Destination::Peer(to), &inner),
            // Sealed for the boot asked, but not remembered as the client's session: a
            // boot that has not proved itself (a dead one replayed, say) must not take
            // the replies of the live process at that address.
            Some(principal) => self.seal_for_process(master, principal.clone(), sender.boot, &inner),
        };
        if let Some(bytes) = bytes {
            self.outbox.push_back((Destination::Peer(to), bytes));
        }
    }

    fn answer_challenge(&mut self, from: SocketAddrV4, challenger: Boot, boot: Boot, cookie: Cookie) {
        if boot != self.boot || self.answered.contains(&(challenger, cookie)) {
            return; // for an earlier run of ours, or answered already
        }
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back((challenger, cookie));
        if let Some(bytes) = self.seal_for_servers(Destination::Peer(from), &Inner::Proof { cookie }) {
            self.outbox.push_back((Destination::Peer(from), bytes));
        }
    }

    /// A proof of life: if it answers one of our challenges, the boot is
    /// verified, its clock anchored to that challenge, and what it held that
    /// is fresh by the anchor released.
    fn take_proof(&mut self, now: Instant, from: SocketAddrV4, sender: &Sender, proof: &SealedHeader, cookie: Cookie) {
        let asked = self.pending.get(sender).map(|u| u.cookies.iter().find(|(c, _)| *c == cookie).map(|(_, at)| *at));
        let challenged_at = match asked {
            Some(Some(at)) => at,
            Some(None) => {
                self.refuse(now, from, Reason::Replay, "a proof of life that answers no challenge of ours");
                return;
            }
            None => return, // a second proof for a boot verified already
        };
        let Some(unverified) = self.pending.remove(sender) else { return };
        let anchor = Anchor { challenged_at, clock: proof.clock };
        // A boot verified before keeps what it accepted then.
        let mut window = match self.senders.remove(sender) {
            Some((mut window, _)) => {
                window.reanchor(anchor);
                window
            }
            None => ReplayWindow::anchored(anchor),
        };
        let _ = window.accept(proof.counter, proof.clock, now);
        let mut held = unverified.held;
        held.sort_by_key(|(header, _)| header.counter);
        for (header, accepted) in held {
            match window.accept(header.counter, header.clock, now) {
                Ok(()) => {
                    self.note_session(now, &header, accepted.from);
                    self.released.push_back(accepted);
                }
                Err(stale) => {
                    self.refuse_stale(now, accepted.from, stale);
                }
            }
        }
        self.insert_sender(sender.clone(), window, now);
    }

    fn insert_sender(&mut self, sender: Sender, window: ReplayWindow, now: Instant) {
        if self.senders.len() >= MAX_SENDERS
            && let Some(oldest) = self.senders.iter().min_by_key(|(_, (_, heard))| *heard).map(|(s, _)| s.clone())
        {
            self.senders.remove(&oldest);
        }
        self.senders.insert(sender, (window, now));
    }

    /// Remembers which key a client at `from` uses, to seal replies to it.
    fn note_session(&mut self, now: Instant, header: &SealedHeader, from: SocketAddrV4) {
        let Some(principal) = &header.client else { return };
        if let Some(known) = self.sessions.get_mut(&from)
            && (known.boot, known.master, &known.principal) == (header.boot, header.key_id, principal)
        {
            // Held datagrams are released oldest first; a reply names the newest.
            known.answers = known.answers.max(header.counter);
            known.last_used = now;
            return;
        }
        let session = Session {
            principal: principal.clone(),
            master: header.key_id,
            boot: header.boot,
            answers: header.counter,
            last_used: now,
        };
        self.remember_session(from, session);
    }

    fn remember_session(&mut self, addr: SocketAddrV4, session: Session) {
        if self.sessions.len() >= MAX_CLIENT_SESSIONS && !self.sessions.contains_key(&addr) {
            let oldest = self.sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                self.sessions.remove(&oldest);
            }
        }
        self.sessions.insert(addr, session);
    }

    fn cookie(&mut self) -> Cookie {
        let mut cookie = [0u8; 16];
        for half in cookie.chunks_mut(8) {
            half.copy_from_slice(&crate::node::xorshift(&mut self.rng).to_le_bytes());
        }
        cookie
    }

    fn refuse_stale(&mut self, now: Instant, from: SocketAddrV4, stale: Stale) -> Option<Accepted> {
        match stale {
            // Networks duplicate datagrams, and with --peer every group datagram comes twice.
            Stale::Seen => self.refuse(now, from, Reason::Duplicate, "a copy of a datagram already taken"),
            Stale::TooOld => self.refuse(
                now,
                from,
                Reason::Replay,
                "it is older than the replay window: replayed, or held up very long",
            ),
            Stale::Late => self.refuse(
                now,
                from,
                Reason::Replay,
                format_args!(
                    "its sender's clock says it is older than the freshness horizon ({} s): replayed, or held up very long",
                    FRESHNESS.as_secs_f64()
                ),
            ),
        }
    }

    /// Counts a refused datagram and warns about it (rate-limited per sender).
    /// `why` is formatted only when it is logged: a flood of refusals costs no allocation each.
    fn refuse(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        reason: Reason,
        why: impl std::fmt::Display,
    ) -> Option<Accepted> {
        let r = &mut self.rejected;
        let counter = match reason {
            Reason::Unauthenticated => &mut r.unauthenticated,
            Reason::UnknownKey => &mut r.unknown_key,
            Reason::BadMac => &mut r.bad_mac,
            Reason::Replay => &mut r.replay,
            Reason::Duplicate => &mut r.duplicate,
            Reason::Malformed => &mut r.malformed,
            Reason::UnexpectedKey => &mut r.unexpected_key,
        };
        *counter += 1;
        if reason == Reason::Duplicate {
            debug!("dropped a datagram from {from}: {why}");
        } else if self.warnings.allow(from, now) {
            warn!(
                "rejected a datagram from {from}: {why} (status shows the counts; at most one such line per sender per {} s)",
                WARN_EVERY.as_secs()
            );
        }
        None
    }

    /// Sends a key notice to `to`, rate-limited.
    fn notify(&mut self, now: Instant, to: SocketAddrV4, notice: Notice) {
        if self.notices.allow(to, now) {
            self.outbox.push_back((Destination::Peer(to), notice.encode()));
        }
    }

    fn heard_notice(&mut self, now: Instant, from: SocketAddrV4, reason: u8) -> Option<Accepted> {
        match Notice::from_byte(reason) {
            Some(notice) if self.warnings.allow(from, now) => {
                warn!(
                    "the host at {from} refuses our datagrams, it says: {notice}; compare the key files (docs/security.md)"
                );
            }
            Some(_) => {}
            None => return self.refuse(now, from, Reason::Malformed, "a key notice with an unknown reason"),
        }
        None
    }
}

/// True when a frame of `kind` may carry `message`: servers speak in peer
/// frames, clients in requests. A client's key can therefore never carry a
/// server's message, whatever it says inside. A request for the leader only
/// is never a `status`, which every server must see.
fn kind_carries(kind: FrameKind, message: &Message) -> bool {
    match (kind, message) {
        (FrameKind::Peer, Message::Peer(_)) | (FrameKind::Request, Message::Request(_)) => true,
        (FrameKind::LeaderRequest, Message::Request(request)) => request.command != Command::Status,
        _ => false,
    }
}
