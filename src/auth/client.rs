//! The client's guard: seals its requests (anew for each retransmission),
//! opens the replies sealed for this process, and answers a server's
//! challenge with a proof of life. A reply needs no proof from the server:
//! it is sealed for this process's own boot, so no other reply opens, and
//! it names the request datagram it answers, which this process knows it
//! sent lately (so a reply it missed cannot be replayed to it later).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::Instant;

use ::log::debug;

use super::Notice;
use super::frame::{self, Boot, Cookie, Frame, FrameKeys, Inner, SealedFrame, SealedHeader, Sealing, Target};
use super::keys::ClientKey;
use super::replay::{ReplayWindow, SentCounter, SentMarks};
use crate::wire::{self, Command, FrameKind, Message, Reply, Request};

/// Server boots a client keeps a replay window for.
const MAX_SERVER_BOOTS: usize = 256;
/// Challenges answered, remembered so that a replayed one has no effect.
const MAX_ANSWERED: usize = 256;

/// What a client makes of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientInput {
    /// An authentic, fresh reply.
    Reply(Reply),
    /// A server's (unauthenticated) hint that our key is missing or wrong.
    Notice(Notice),
    /// Nothing to act on: refused, or a challenge answered.
    Nothing,
}

/// A client's guard; see the module documentation.
#[derive(Debug)]
pub struct ClientGuard {
    key: Option<ClientKey>,
    boot: Boot,
    sent: SentCounter,
    marks: SentMarks,
    servers: BTreeMap<Boot, ReplayWindow>,
    answered: VecDeque<(Boot, Cookie)>,
    outbox: VecDeque<(SocketAddrV4, Vec<u8>)>,
    frame_keys: FrameKeys,
}

impl ClientGuard {
    /// A guard for a client process with boot nonce `boot` (random per run).
    pub fn new(key: Option<ClientKey>, boot: Boot) -> Self {
        ClientGuard {
            key,
            boot,
            sent: SentCounter::default(),
            marks: SentMarks::default(),
            servers: BTreeMap::new(),
            answered: VecDeque::new(),
            outbox: VecDeque::new(),
            frame_keys: FrameKeys::default(),
        }
    }

    /// True when the client has a key.
    pub fn keyed(&self) -> bool {
        self.key.is_some()
    }

    /// Seals a request (anew for every retransmission: a copy would be refused).
    pub fn seal_request(&mut self, now: Instant, request: &Request) -> Vec<u8> {
        self.note_time(now);
        let message = Message::Request(request.clone());
        let kind = match request.command {
            Command::Status => FrameKind::Request, // every server answers it
            _ => FrameKind::LeaderRequest,
        };
        self.seal(kind, &Inner::Message(&message)).unwrap_or_else(|| wire::encode(&message))
    }

    /// Notes the time of an input, before anything it causes is sealed.
    fn note_time(&mut self, now: Instant) {
        self.sent.note_time(now);
        self.marks.note(now, self.sent.last());
    }

    fn seal(&mut self, kind: FrameKind, inner: &Sealing) -> Option<Vec<u8>> {
        let key = self.key.as_ref()?;
        let header = SealedHeader {
            kind,
            key_id: key.master,
            boot: self.boot,
            counter: self.sent.take_next(),
            clock: self.sent.clock(),
            target: Target::Group,
            client: Some(key.principal.clone()),
        };
        Some(self.frame_keys.seal(&header, &key.key, &[], inner))
    }

    /// A proof of life to send to a server that challenged us.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.outbox.pop_front()
    }

    /// Opens what arrived from `from`.
    pub fn open(&mut self, now: Instant, from: SocketAddrV4, datagram: &[u8]) -> ClientInput {
        self.note_time(now);
        let frame = match frame::parse(datagram) {
            Ok(frame) => frame,
            Err(e) => {
                debug!("ignoring a datagram from {from}: {e}");
                return ClientInput::Nothing;
            }
        };
        match (frame, &self.key) {
            (Frame::Notice(reason), _) => Notice::from_byte(reason).map_or(ClientInput::Nothing, ClientInput::Notice),
            (Frame::Plain(body), None) => match wire::decode_body(body) {
                Ok(Message::Reply(reply)) => ClientInput::Reply(reply),
                Ok(_) | Err(_) => ClientInput::Nothing,
            },
            (Frame::Plain(_), Some(_)) => {
                debug!("ignoring an unauthenticated datagram from {from}: this client has a key");
                ClientInput::Nothing
            }
            (Frame::Sealed(_), None) => ClientInput::Nothing,
            (Frame::Sealed(sealed), Some(_)) => self.open_sealed(now, from, &sealed),
        }
    }

    fn open_sealed(&mut self, now: Instant, from: SocketAddrV4, frame: &SealedFrame) -> ClientInput {
        let Some(key) = &self.key else { return ClientInput::Nothing };
        let header = &frame.header;
        let ours = header.kind == FrameKind::Reply
            && header.key_id == key.master
            && header.client.as_ref() == Some(&key.principal);
        if !ours {
            return ClientInput::Nothing;
        }
        let inner = match self.frame_keys.open(frame, &key.key, &self.boot.0) {
            Ok(inner) => inner,
            Err(e) => {
                debug!("ignoring a datagram from {from} that does not open with our key: {e:?}");
                return ClientInput::Nothing;
            }
        };
        match inner {
            // A reply must answer a request datagram sent within the horizon,
            // so that one that was lost cannot be replayed later.
            Inner::Reply { answers, reply }
                if self.marks.sent_within_horizon(answers, self.sent.last(), now) && self.fresh(header, now) =>
            {
                ClientInput::Reply(reply)
            }
            Inner::Challenge { boot, cookie }
                if boot == self.boot && !self.answered.contains(&(header.boot, cookie)) =>
            {
                if self.answered.len() >= MAX_ANSWERED {
                    self.answered.pop_front();
                }
                self.answered.push_back((header.boot, cookie));
                if let Some(bytes) = self.seal(FrameKind::Request, &Inner::Proof { cookie }) {
                    self.outbox.push_back((from, bytes));
                }
                ClientInput::Nothing
            }
            _ => ClientInput::Nothing,
        }
    }

    /// True the first time a server boot's counter is seen (its window; the
    /// age of a reply is bounded by the request it answers, not its clock).
    fn fresh(&mut self, header: &SealedHeader, now: Instant) -> bool {
        if !self.servers.contains_key(&header.boot) && self.servers.len() >= MAX_SERVER_BOOTS {
            self.servers.pop_first();
        }
        let window = self.servers.entry(header.boot).or_default();
        window.accept(header.counter, header.clock, now).is_ok()
    }
}
