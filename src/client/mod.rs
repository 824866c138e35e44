//! The client core, sans-IO like [`crate::node`]: it numbers requests, retries
//! them, caches answers and notices when two servers answer one request. It is
//! fed datagrams and timer expiries together with the current time and hands
//! back datagrams (always for the group) and events; [`io`] is the thin loop
//! that connects it to a socket and a terminal.
//!
//! At most one request is in flight. It is retransmitted under the same request
//! number every [`ClientConfig::retry_interval`], so a retried write still runs
//! at most once, until an answer arrives or [`ClientConfig::timeout`] passes.
//! `status` is the exception: every server answers it, so the client collects
//! answers for [`STATUS_WINDOW_RETRIES`] retry intervals and then reports them all.
//!
//! With a key, a [`ClientGuard`] seals each transmission anew and opens the
//! replies; a server's notice that the key is missing or wrong cannot be
//! trusted (anyone can send one), so it only shortens the wait: if no answer
//! comes within [`NOTICE_GRACE_RETRIES`] retry intervals, the client reports it.

mod cache;
pub mod command;
pub mod error;
pub mod io;
pub mod json;
pub mod render;
mod responders;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // simulated time starts at a real instant
mod tests;

use std::fmt;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use crate::auth::frame::Boot;
use crate::auth::{ClientGuard, ClientInput, ClientKey, Notice};
use crate::node::Destination;
use crate::wire::{Answer, Command, Reply, Request, ServerStatus};
use cache::Cache;
use responders::Responders;

/// How patiently the client waits for the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Time between retransmissions of an unanswered request. With keys,
    /// keep it well under 2 s: a reply is taken only if the request datagram
    /// it answers was sent within the last 2 s (docs/security.md §4).
    pub retry_interval: Duration,
    /// Total time to wait for an answer before giving up.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    /// A retry every 250 ms, giving up after 5 s.
    fn default() -> Self {
        ClientConfig { retry_interval: Duration::from_millis(250), timeout: Duration::from_secs(5) }
    }
}

/// A server that replied: its ID and the address its reply came from.
pub type Responder = (u64, SocketAddrV4);

/// `status` listens this many retry intervals (1 s by default), retrying
/// meanwhile, so that a lost answer or a slow server still shows up.
pub const STATUS_WINDOW_RETRIES: u32 = 4;

/// After a server's notice that our key is missing or wrong, the client
/// waits this many retry intervals for a real answer before it reports the
/// notice: a forged notice cannot make it give up on a group that answers.
pub const NOTICE_GRACE_RETRIES: u32 = 2;

/// Where an answer came from, which the user must be able to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A server replied with the data.
    Servers,
    /// The client's cache held it (possibly after the leader confirmed it is current).
    Cache,
}

/// What [`Client::submit`] did with a command.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Answered from the cache; nothing goes on the network.
    FromCache(Answer),
    /// A request for the group is queued in [`Client::poll_transmit`].
    Sent {
        /// Its request number.
        request: u64,
    },
}

/// Something the user should be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The pending request was answered.
    Answered {
        /// The request number the answer belongs to.
        request: u64,
        /// The server that answered.
        from: Responder,
        /// Whether the data came from the servers or the cache.
        source: Source,
        /// The command that was answered (rendering a refusal depends on it).
        command: Command,
        /// The answer.
        answer: Answer,
    },
    /// A second server answered a request: two servers believe they lead.
    DuplicateReply {
        /// The request both answered.
        request: u64,
        /// The server whose reply was taken.
        first: Responder,
        /// The server that answered as well.
        second: Responder,
    },
    /// The answers to `status`, one per server, when its window closed.
    Statuses {
        /// The `status` request.
        request: u64,
        /// Each server that answered and its status (at least one; none
        /// is reported as [`ClientEvent::TimedOut`]).
        servers: Vec<(Responder, ServerStatus)>,
    },
    /// No server answered, and a server said our key is missing or wrong.
    KeyRefused {
        /// The request that went unanswered.
        request: u64,
        /// What the server said.
        notice: Notice,
        /// The server that said it.
        server: SocketAddrV4,
    },
    /// No server answered within [`ClientConfig::timeout`].
    TimedOut {
        /// The request that went unanswered.
        request: u64,
        /// How long the client waited.
        waited: Duration,
    },
}

/// [`Client::submit`] was called while a request is still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// The request still waiting for its answer.
    pub request: u64,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request {} is still waiting for an answer; wait for it or its timeout before sending another",
            self.request
        )
    }
}

impl std::error::Error for Busy {}

/// The request in flight.
#[derive(Debug)]
struct Pending {
    /// Kept to seal each retransmission anew (with a key, a copy would be refused).
    request: Request,
    started: Instant,
    next_retry: Instant,
    /// Answers to `status` gathered so far.
    statuses: Vec<(Responder, ServerStatus)>,
    /// The first notice that our key is missing or wrong, and when the wait for a real answer ends.
    notice: Option<(Notice, SocketAddrV4, Instant)>,
}

impl Pending {
    /// When the client stops waiting: the timeout, the end of a `status`
    /// window, or the end of the grace after a key notice.
    fn deadline(&self, config: &ClientConfig) -> Instant {
        let end = match self.request.command {
            Command::Status => self.started + (config.retry_interval * STATUS_WINDOW_RETRIES).min(config.timeout),
            _ => self.started + config.timeout,
        };
        self.notice.map_or(end, |(_, _, grace_end)| end.min(grace_end))
    }
}

/// The client's protocol state; see the module documentation.
#[derive(Debug)]
pub struct Client {
    id: u64,
    config: ClientConfig,
    last_request: u64,
    cache: Cache,
    pending: Option<Pending>,
    outbox: std::collections::VecDeque<(Destination, Vec<u8>)>,
    responders: Responders,
    guard: ClientGuard,
}

impl Client {
    /// The identifier this client gives the group.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A client without a key that identifies itself to the group as
    /// `client_id`, which should be random so that two clients never share
    /// request numbers.
    pub fn new(client_id: u64, config: ClientConfig) -> Self {
        Client::with_key(client_id, config, None, Boot::default())
    }

    /// A client that seals its requests with `key` (`None`: without keys);
    /// `boot` must be random per process (it makes replies good only for it).
    pub fn with_key(client_id: u64, config: ClientConfig, key: Option<ClientKey>, boot: Boot) -> Self {
        Client {
            id: client_id,
            config,
            last_request: 0,
            cache: Cache::default(),
            pending: None,
            outbox: std::collections::VecDeque::new(),
            responders: Responders::default(),
            guard: ClientGuard::new(key, boot),
        }
    }

    /// Answers `command` from the cache or queues a request for the group.
    ///
    /// The `cached` version of a `Check` is filled in from the cache, whatever
    /// the caller put there. A reserve or cancel forgets the room's cached
    /// `check` before it is sent, since it may change the room even if its
    /// answer is lost.
    pub fn submit(&mut self, now: Instant, command: Command) -> Result<Submitted, Busy> {
        if let Some(pending) = &self.pending {
            return Err(Busy { request: pending.request.request });
        }
        if let Some(answer) = self.cache.listing(&command) {
            return Ok(Submitted::FromCache(answer));
        }
        let command = match command {
            Command::Check { room, .. } => {
                let cached = self.cache.version(&room);
                Command::Check { room, cached }
            }
            other => other,
        };
        if let Command::Reserve(slot) | Command::Cancel(slot) = &command {
            self.cache.forget_room(&slot.room);
        }
        Ok(Submitted::Sent { request: self.send(now, now, command) })
    }

    /// Takes a datagram that arrived on the client's socket from `from`.
    /// Anything that is not a reply to one of this client's requests is ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, bytes: &[u8]) -> Option<ClientEvent> {
        let reply = match self.guard.open(now, from, bytes) {
            ClientInput::Reply(reply) => reply,
            ClientInput::Notice(notice) => {
                self.on_notice(now, from, notice);
                return None;
            }
            ClientInput::Nothing => {
                self.take_guard_transmits();
                return None;
            }
        };
        let responder = (reply.server, from);
        if let Some(pending) = self.pending.as_mut().filter(|p| p.request.request == reply.request) {
            if let Answer::Status(status) = reply.answer {
                // Retries make a server answer again; keep its first answer.
                if !pending.statuses.iter().any(|(r, _)| *r == responder) {
                    pending.statuses.push((responder, *status));
                }
                return None;
            }
            return self.on_answer(now, responder, reply);
        }
        let first = self.responders.another(reply.request, responder)?;
        Some(ClientEvent::DuplicateReply { request: reply.request, first, second: responder })
    }

    /// Retransmits or gives up on the pending request when its time has come;
    /// an early or spurious call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ClientEvent> {
        let pending = self.pending.as_mut()?;
        if now < pending.deadline(&self.config) {
            if now >= pending.next_retry {
                pending.next_retry = now + self.config.retry_interval;
                let datagram = self.guard.seal_request(now, &pending.request);
                self.outbox.push_back((Destination::Group, datagram));
            }
            return None;
        }
        let pending = self.pending.take()?;
        self.outbox.clear();
        let request = pending.request.request;
        if pending.request.command == Command::Status && !pending.statuses.is_empty() {
            return Some(ClientEvent::Statuses { request, servers: pending.statuses });
        }
        if let Some((notice, server, _)) = pending.notice {
            return Some(ClientEvent::KeyRefused { request, notice, server });
        }
        Some(ClientEvent::TimedOut { request, waited: now.duration_since(pending.started) })
    }

    /// Gives up on the request in flight (the user pressed Ctrl-C): nothing
    /// more is sent for it and a late answer is ignored, as after a timeout.
    /// A write may still take effect. Returns the request's number.
    pub fn abandon(&mut self) -> Option<u64> {
        self.outbox.clear();
        self.pending.take().map(|pending| pending.request.request)
    }

    /// The next datagram to send, if any: requests go to the group, proofs
    /// of life to the server that asked for one.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(Destination, Vec<u8>)> {
        self.take_guard_transmits();
        self.outbox.pop_front()
    }

    fn take_guard_transmits(&mut self) {
        while let Some((to, bytes)) = self.guard.poll_transmit() {
            self.outbox.push_back((Destination::Peer(to), bytes));
        }
    }

    /// A server says our key is missing or wrong: wait a little longer for
    /// a real answer, then report it.
    fn on_notice(&mut self, now: Instant, from: SocketAddrV4, notice: Notice) {
        let grace = self.config.retry_interval * NOTICE_GRACE_RETRIES;
        if let Some(pending) = self.pending.as_mut().filter(|p| p.notice.is_none()) {
            log::debug!("the server at {from} says: {notice}");
            pending.notice = Some((notice, from, now + grace));
        }
    }

    /// When [`Client::handle_timeout`] should next be called; `None` while idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.as_ref()?;
        Some(pending.next_retry.min(pending.deadline(&self.config)))
    }

    /// Queues `command` under a new request number; `started` is when the
    /// user asked, from which the timeout counts.
    fn send(&mut self, now: Instant, started: Instant, command: Command) -> u64 {
        self.last_request += 1;
        let number = self.last_request;
        let request = Request { client: self.id, request: number, command };
        self.outbox.retain(|(dst, _)| *dst != Destination::Group); // an older request's retry
        self.outbox.push_back((Destination::Group, self.guard.seal_request(now, &request)));
        let next_retry = now + self.config.retry_interval;
        self.pending = Some(Pending { request, started, next_retry, statuses: Vec::new(), notice: None });
        number
    }

    fn on_answer(&mut self, now: Instant, responder: Responder, reply: Reply) -> Option<ClientEvent> {
        let pending = self.pending.take()?;
        self.cache.observe_catalog(reply.catalog);
        let (source, answer) = match reply.answer {
            Answer::NotModified => match self.cache.reservations(&pending.request.command) {
                Some(answer) => (Source::Cache, answer),
                None => return self.refetch(now, pending, responder),
            },
            answer => {
                self.cache.store(&pending.request.command, &answer);
                (Source::Servers, answer)
            }
        };
        self.outbox.retain(|(dst, _)| *dst != Destination::Group);
        self.responders.answered(reply.request, responder);
        Some(ClientEvent::Answered {
            request: reply.request,
            from: responder,
            source,
            command: pending.request.command,
            answer,
        })
    }

    /// The leader says our cached list is current, but the cache no longer has
    /// it (a catalog change emptied it): ask again for the full list. The new
    /// request number keeps the full answer apart from the same server's
    /// answers to retransmissions of the old request.
    fn refetch(&mut self, now: Instant, pending: Pending, responder: Responder) -> Option<ClientEvent> {
        let room = match &pending.request.command {
            Command::Check { room, cached: Some(_) } => room.clone(),
            // Not an answer to anything we asked: keep retrying until a real one.
            _ => {
                self.pending = Some(pending);
                return None;
            }
        };
        self.responders.answered(pending.request.request, responder);
        self.send(now, pending.started, Command::Check { room, cached: None });
        None
    }
}
