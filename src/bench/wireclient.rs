//! The bench's own client: it speaks the wire protocol directly
//! ([`crate::wire`] encode and decode over a [`crate::net::unicast_socket`]
//! with interface 127.0.0.1 and TTL 0) instead of starting a `client` process
//! per request, so that throughput measures the servers, not process start-up.
//!
//! Like the real client it numbers requests, multicasts each to the group,
//! retransmits it under the same number until an answer comes, and ignores
//! late answers to earlier requests. With a key it seals through the same
//! [`ClientGuard`] as the real client, and answers the servers' challenges.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::ErrorKind;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use super::error::BenchError;
use crate::auth::frame::Boot;
use crate::auth::{ClientGuard, ClientInput, ClientKey};
use crate::net::{self, GroupAddr};
use crate::wire::{self, Answer, Command, MAX_DATAGRAM, Reply, Request, ServerStatus, Slot};

/// A random client ID, as the real client draws one.
pub fn random_id() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

/// A reply and when it came.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The reply.
    pub reply: Reply,
    /// The address it came from (the server's unicast socket).
    pub from: SocketAddrV4,
    /// When the request was first sent.
    pub sent: Instant,
    /// When the reply arrived.
    pub received: Instant,
}

impl Answered {
    /// Time from the first send to the reply.
    pub fn latency(&self) -> Duration {
        self.received - self.sent
    }
}

/// A client of one group on one socket; see the module documentation.
pub struct WireClient {
    socket: UdpSocket,
    group: SocketAddrV4,
    id: u64,
    last_request: u64,
    retry: Duration,
    buf: Vec<u8>,
    guard: ClientGuard,
}

impl WireClient {
    /// Opens a socket for `group` that retransmits every `retry`.
    pub fn open(group: &GroupAddr, retry: Duration) -> Result<WireClient, BenchError> {
        WireClient::open_keyed(group, retry, None)
    }

    /// [`WireClient::open`], sealing with `key` (`None`: without keys).
    pub fn open_keyed(group: &GroupAddr, retry: Duration, key: Option<ClientKey>) -> Result<WireClient, BenchError> {
        let mut boot = [0u8; crate::auth::frame::BOOT_LEN];
        getrandom::fill(&mut boot).map_err(|e| BenchError::Unexpected(format!("no random numbers: {e}")))?;
        let socket = net::unicast_socket(group)?;
        socket.set_nonblocking(false).map_err(BenchError::io("making the bench's socket blocking"))?;
        socket.set_read_timeout(Some(retry)).map_err(BenchError::io("setting the bench's socket timeout"))?;
        Ok(WireClient {
            socket,
            group: group.socket_addr(),
            id: random_id(),
            last_request: 0,
            retry,
            buf: vec![0; MAX_DATAGRAM],
            guard: ClientGuard::new(key, Boot(boot)),
        })
    }

    /// Sends `command` and waits for its reply, retransmitting every retry
    /// interval, for at most `patience`.
    pub fn call(&mut self, command: Command, patience: Duration) -> Result<Answered, BenchError> {
        self.call_while(command, patience, || true)
    }

    /// [`WireClient::call`] that also gives up (with a timeout error) as soon
    /// as `keep_going` says so, checked every retry interval.
    pub fn call_while(
        &mut self,
        command: Command,
        patience: Duration,
        keep_going: impl Fn() -> bool,
    ) -> Result<Answered, BenchError> {
        self.last_request += 1;
        let request = self.last_request;
        let message = Request { client: self.id, request, command };
        let sent = Instant::now();
        let give_up = sent + patience;
        let mut next_send = sent;
        loop {
            let now = Instant::now();
            if now >= next_send {
                let datagram = self.guard.seal_request(now, &message);
                self.send(&datagram)?;
                next_send = now + self.retry;
            }
            if now >= give_up || !keep_going() {
                return Err(BenchError::Timeout {
                    what: format!("an answer to request {request}"),
                    waited: patience,
                    context: String::new(),
                });
            }
            if let Some((reply, from)) = self.receive()?
                && reply.request == request
                && !matches!(reply.answer, Answer::Status(_))
            {
                return Ok(Answered { reply, from, sent, received: Instant::now() });
            }
        }
    }

    /// Asks every server for its status and collects the answers for `window`.
    /// Each answer: the server's ID, the address it answered from (its
    /// unicast socket) and its status.
    pub fn statuses(&mut self, window: Duration) -> Result<Vec<(u64, SocketAddrV4, ServerStatus)>, BenchError> {
        self.last_request += 1;
        let request = self.last_request;
        let message = Request { client: self.id, request, command: Command::Status };
        let end = Instant::now() + window;
        let mut next_send = Instant::now();
        let mut found: Vec<(u64, SocketAddrV4, ServerStatus)> = Vec::new();
        while Instant::now() < end {
            if Instant::now() >= next_send {
                let datagram = self.guard.seal_request(Instant::now(), &message);
                self.send(&datagram)?;
                next_send = Instant::now() + Duration::from_millis(100);
            }
            if let Some((reply, from)) = self.receive()?
                && reply.request == request
                && let Answer::Status(status) = reply.answer
                && !found.iter().any(|(_, a, _)| *a == from)
            {
                found.push((reply.server, from, *status));
            }
        }
        Ok(found)
    }

    fn send(&self, datagram: &[u8]) -> Result<(), BenchError> {
        self.send_to(datagram, self.group)
    }

    fn send_to(&self, datagram: &[u8], to: SocketAddrV4) -> Result<(), BenchError> {
        match self.socket.send_to(datagram, to) {
            Ok(_) => Ok(()),
            // A full buffer is a lost datagram: the retry sends it again.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(BenchError::Io { action: format!("sending a request to {to}"), source: e }),
        }
    }

    /// One datagram, if a reply arrives within the retry interval; a
    /// server's challenge is answered on the way.
    fn receive(&mut self) -> Result<Option<(Reply, SocketAddrV4)>, BenchError> {
        match self.socket.recv_from(&mut self.buf) {
            Ok((n, SocketAddr::V4(from))) => match self.guard.open(Instant::now(), from, &self.buf[..n]) {
                ClientInput::Reply(reply) => Ok(Some((reply, from))),
                ClientInput::Notice(_) | ClientInput::Nothing => {
                    while let Some((to, proof)) = self.guard.poll_transmit() {
                        self.send_to(&proof, to)?;
                    }
                    Ok(None)
                }
            },
            Ok(_) => Ok(None),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(BenchError::Io { action: "receiving a reply".into(), source: e }),
        }
    }
}

/// A writer that alternates `reserve` and `cancel` over its own slots, so
/// that every write changes the table and none meets another client's. (A
/// refusal can only follow a failover, when a retried write had already been
/// applied; the next write is then right again.)
pub struct SlotCycler {
    slots: Vec<Slot>,
    next: usize,
    reserve: bool,
}

impl SlotCycler {
    /// Cycles over `slots` (at least one).
    pub fn new(slots: Vec<Slot>) -> SlotCycler {
        SlotCycler { slots, next: 0, reserve: true }
    }

    /// The next write: reserve a slot, then cancel it, then the next slot.
    pub fn next_command(&mut self) -> Command {
        let slot = self.slots[self.next % self.slots.len()].clone();
        let command = if self.reserve { Command::Reserve(slot) } else { Command::Cancel(slot) };
        if !self.reserve {
            self.next += 1;
        }
        self.reserve = !self.reserve;
        command
    }
}

/// The answer of a write, checked: `Ok(true)` confirmed, `Ok(false)` refused.
pub fn write_confirmed(answer: &Answer) -> Result<bool, BenchError> {
    match answer {
        Answer::Write(wire::WriteOutcome::Reserved | wire::WriteOutcome::Cancelled) => Ok(true),
        Answer::Write(wire::WriteOutcome::Refused(_)) => Ok(false),
        other => Err(BenchError::Unexpected(format!("a write was answered {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycler_reserves_then_cancels_each_slot_in_turn() {
        let slot = |n: usize| Slot { room: "B000".into(), timeslot: format!("t{n}"), day: "Monday".into() };
        let mut cycler = SlotCycler::new(vec![slot(0), slot(1)]);
        let sent: Vec<Command> = (0..5).map(|_| cycler.next_command()).collect();
        assert_eq!(
            sent,
            vec![
                Command::Reserve(slot(0)),
                Command::Cancel(slot(0)),
                Command::Reserve(slot(1)),
                Command::Cancel(slot(1)),
                Command::Reserve(slot(0)),
            ]
        );
    }

    #[test]
    fn only_write_outcomes_count_as_writes() {
        assert!(write_confirmed(&Answer::Write(wire::WriteOutcome::Reserved)).expect("a write"));
        assert!(write_confirmed(&Answer::Write(wire::WriteOutcome::Cancelled)).expect("a write"));
        assert!(matches!(write_confirmed(&Answer::Bye), Err(BenchError::Unexpected(_))));
    }
}
