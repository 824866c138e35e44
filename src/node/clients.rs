//! Client requests. Every server receives them; only the leader acts: reads
//! are answered from the committed table, writes are sequenced into the log and
//! answered when committed. A retried write (same client and request number) is
//! never sequenced twice: it is answered from the stored outcome, or joins the
//! wait for the entry already in the log.

use std::net::SocketAddrV4;
use std::time::Instant;

use super::{Destination, Node, State, Transmit};
use crate::rooms::Applied;
use crate::wire::{
    Answer, Command, Entry, LogPosition, Message, Op, PeerBody, Principal, Reply, Request, WriteOutcome,
};

/// A client's write to sequence: who asked (their request), and what.
pub(super) struct Write {
    /// The client and its request number.
    pub(super) client: u64,
    pub(super) request: u64,
    /// Whose key sealed the request (`None` without keys).
    pub(super) by: Option<Principal>,
    pub(super) op: Op,
}

impl Node {
    /// A client's request from `from`; `by` is whose key sealed it.
    pub(super) fn on_request(&mut self, now: Instant, from: SocketAddrV4, request: Request, by: Option<Principal>) {
        if request.command == Command::Status {
            let status = self.status(now);
            return self.reply(now, from, request.request, Answer::Status(Box::new(status)));
        }
        let State::Leader(l) = &self.state else { return };
        if self.log.commit() < l.inherited.seq {
            return; // not yet sure the table holds every confirmed write; the client retries
        }
        if l.handing_over.is_some() {
            // The successor may already serve: two answers would look like two
            // leaders to the client. Its retry reaches the one that leads.
            return;
        }
        let answer = match request.command {
            Command::Rooms => Answer::Rooms(self.config.catalog.rooms.clone()),
            Command::Timeslots => Answer::Timeslots(self.config.catalog.timeslots.clone()),
            Command::Days => Answer::Days(self.config.catalog.days.clone()),
            Command::Check { ref room, cached } => self.check(room, cached),
            Command::Quit => Answer::Bye,
            Command::Status => return, // answered above, by every server
            Command::Reserve(slot) => {
                let write = Write { client: request.client, request: request.request, by, op: Op::Reserve(slot) };
                return self.on_write(now, from, write);
            }
            Command::Cancel(slot) => {
                let write = Write { client: request.client, request: request.request, by, op: Op::Cancel(slot) };
                return self.on_write(now, from, write);
            }
        };
        self.reply(now, from, request.request, answer);
    }

    fn check(&self, room: &str, cached: Option<crate::wire::RoomVersion>) -> Answer {
        match self.log.table().check(&self.config.catalog, room) {
            None => Answer::UnknownRoom(room.to_string()),
            Some((_, version)) if cached == Some(version) => Answer::NotModified,
            Some((slots, version)) => Answer::Reservations { slots, version },
        }
    }

    /// A reserve or cancel.
    fn on_write(&mut self, now: Instant, from: SocketAddrV4, write: Write) {
        let (client, number) = (write.client, write.request);
        if let Some(outcome) = self.log.table().outcome_of(client, number).cloned() {
            // A retry of a write already decided: the same answer again, not another write.
            let answer = Answer::Write(outcome);
            self.stats.replied(&answer);
            return self.send_reply(now, from, number, answer);
        }
        if self.log.table().is_superseded(client, number) {
            return; // the client has moved on; nobody waits for this answer
        }
        let State::Leader(l) = &mut self.state else { return };
        let (reachable, required) = (l.replicas() as u32, self.config.min_replicas as u32);
        let pending = self.log.has_pending(client, number);
        if reachable < required {
            let answer = match pending {
                true => Answer::Unconfirmed { reachable, required },
                false => Answer::TooFewReplicas { reachable, required },
            };
            return self.reply(now, from, number, answer);
        }
        l.waiting.insert((client, number), from);
        if pending {
            return; // its outcome is not decided yet: it may still commit
        }
        self.sequence(now, vec![write]);
    }

    /// Appends `writes` to our log as leader, sends them to the members and
    /// commits what it can.
    pub(super) fn sequence(&mut self, now: Instant, writes: Vec<Write>) {
        let prev = self.log.last();
        let entries: Vec<Entry> = (prev.seq + 1..)
            .zip(writes)
            .map(|(seq, Write { client, request, by, op })| {
                let position = LogPosition { term: self.term, seq, leader: self.incarnation };
                Entry { position, client, request, by, op }
            })
            .collect();
        for entry in &entries {
            self.log.push(entry.clone());
        }
        self.multicast(PeerBody::Append { prev, entries });
        self.try_commit(now);
    }

    /// Tells the clients whose writes wait to commit that they cannot be
    /// confirmed while we reach fewer than `--min-replicas` servers, instead of
    /// leaving them to time out as if no server were running. The entries stay
    /// in the log: they may still commit once enough servers are back.
    pub(super) fn release_unconfirmable(&mut self, now: Instant) {
        let required = self.config.min_replicas;
        let State::Leader(l) = &mut self.state else { return };
        let reachable = l.replicas();
        if reachable >= required || l.waiting.is_empty() {
            return;
        }
        let answer = Answer::Unconfirmed { reachable: reachable as u32, required: required as u32 };
        for ((_, request), to) in std::mem::take(&mut l.waiting) {
            self.reply(now, to, request, answer.clone());
        }
    }

    /// Answers the client of a just-committed entry, if it is waiting here.
    pub(super) fn answer_committed(&mut self, now: Instant, entry: &Entry, applied: Applied) {
        let State::Leader(l) = &mut self.state else { return };
        let Some(to) = l.waiting.remove(&(entry.client, entry.request)) else { return };
        let outcome: WriteOutcome = match applied {
            Applied::Executed(outcome) | Applied::Replayed(outcome) => outcome,
            // A client that retried its write here while it was being merged.
            Applied::Merged(_) => match self.log.table().outcome_of(entry.client, entry.request) {
                Some(outcome) => outcome.clone(),
                None => return,
            },
            Applied::Internal => return,
        };
        self.reply(now, to, entry.request, Answer::Write(outcome));
    }

    /// Counts and sends an answer.
    fn reply(&mut self, now: Instant, to: SocketAddrV4, request: u64, answer: Answer) {
        self.stats.answered(&answer);
        self.send_reply(now, to, request, answer);
    }

    /// Sends an answer, after the configured service delay.
    fn send_reply(&mut self, now: Instant, to: SocketAddrV4, request: u64, answer: Answer) {
        let reply = Reply { request, server: self.me.id, catalog: self.fingerprint, answer };
        let transmit = Transmit { dst: Destination::Peer(to), message: Message::Reply(reply) };
        let delay = self.config.timing.service_delay;
        if delay.is_zero() {
            self.outbox.push_back(transmit);
        } else {
            // The delay is constant and time only moves forward, so a queue stays sorted.
            self.delayed.push_back((now + delay, transmit));
        }
    }

    pub(super) fn flush_delayed(&mut self, now: Instant) {
        while self.delayed.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, transmit)) = self.delayed.pop_front() {
                self.outbox.push_back(transmit);
            }
        }
    }
}
