//! What a node counts for monitoring: plain numbers kept beside the protocol,
//! never read by it. The I/O shell exports them (`crate::metrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::wire::{Answer, Command, Message, PeerBody, Refusal, WriteOutcome};

/// Counters since the server started, and the latest heartbeat round trip.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// Client requests received (every server receives them), by command.
    pub requests: BTreeMap<&'static str, u64>,
    /// Answers this server sent, by what they said.
    pub replies: BTreeMap<&'static str, u64>,
    /// Answers to reserves and cancels, by outcome.
    pub writes: BTreeMap<&'static str, u64>,
    /// Datagrams the guard accepted, by message kind.
    pub datagrams: BTreeMap<&'static str, u64>,
    /// Elections this server started or joined as a candidate.
    pub elections: u64,
    /// Times this server declared its leader failed (a heartbeat timeout).
    pub failovers: u64,
    /// Times this server, leading, handed the group over to a higher server.
    pub hand_overs: u64,
    /// The leader this server last heartbeated, and how long its answer took.
    pub heartbeat_rtt: Option<(u64, Duration)>,
}

impl NodeStats {
    /// Counts a reply only: the answer to a retried write, already counted
    /// among the writes when it was decided.
    pub(super) fn replied(&mut self, answer: &Answer) {
        bump(&mut self.replies, answer_kind(answer));
    }

    /// Counts an accepted datagram, and the request it carries.
    pub(super) fn received(&mut self, message: &Message) {
        bump(&mut self.datagrams, message_kind(message));
        if let Message::Request(request) = message {
            bump(&mut self.requests, command_kind(&request.command));
        }
    }

    /// Counts an answer sent to a client (a write's outcome included).
    pub(super) fn answered(&mut self, answer: &Answer) {
        self.replied(answer);
        if let Some(outcome) = write_outcome(answer) {
            bump(&mut self.writes, outcome);
        }
    }
}

fn bump(counts: &mut BTreeMap<&'static str, u64>, key: &'static str) {
    *counts.entry(key).or_default() += 1;
}

/// The label of a message: its kind, as the protocol names it.
fn message_kind(message: &Message) -> &'static str {
    let peer = match message {
        Message::Request(_) => return "request",
        Message::Reply(_) => return "reply",
        Message::Peer(peer) => peer,
    };
    match peer.body {
        PeerBody::Election { .. } => "election",
        PeerBody::ElectionReply { .. } => "election_reply",
        PeerBody::Coordinator => "coordinator",
        PeerBody::LeaderAlive { .. } => "leader_alive",
        PeerBody::Heartbeat { .. } => "heartbeat",
        PeerBody::HeartbeatAck => "heartbeat_ack",
        PeerBody::Append { .. } => "append",
        PeerBody::Entries { .. } => "entries",
        PeerBody::Orphans { .. } => "orphans",
        PeerBody::OrphansTaken { .. } => "orphans_taken",
        PeerBody::Fetch { .. } => "fetch",
        PeerBody::SnapshotChunk { .. } => "snapshot_chunk",
        PeerBody::AppendAck => "append_ack",
        PeerBody::SnapshotRequest { .. } => "snapshot_request",
        PeerBody::HandOver { .. } => "hand_over",
        PeerBody::Leaving => "leaving",
        PeerBody::IdInUse => "id_in_use",
        PeerBody::StaleTerm => "stale_term",
    }
}

fn command_kind(command: &Command) -> &'static str {
    match command {
        Command::Rooms => "rooms",
        Command::Timeslots => "timeslots",
        Command::Days => "days",
        Command::Check { .. } => "check",
        Command::Reserve(_) => "reserve",
        Command::Cancel(_) => "cancel",
        Command::Quit => "quit",
        Command::Status => "status",
    }
}

fn answer_kind(answer: &Answer) -> &'static str {
    match answer {
        Answer::Rooms(_) => "rooms",
        Answer::Timeslots(_) => "timeslots",
        Answer::Days(_) => "days",
        Answer::Reservations { .. } => "reservations",
        Answer::NotModified => "not_modified",
        Answer::UnknownRoom(_) => "unknown_room",
        Answer::Write(_) | Answer::TooFewReplicas { .. } | Answer::Unconfirmed { .. } => "write",
        Answer::Bye => "bye",
        Answer::Status(_) => "status",
    }
}

/// What a write's answer says, or `None` for an answer to a read.
fn write_outcome(answer: &Answer) -> Option<&'static str> {
    Some(match answer {
        Answer::Write(WriteOutcome::Reserved) => "reserved",
        Answer::Write(WriteOutcome::Cancelled) => "cancelled",
        Answer::Write(WriteOutcome::Refused(refusal)) => match refusal {
            Refusal::AlreadyReserved(_) => "already_reserved",
            Refusal::NotReserved(_) => "not_reserved",
            Refusal::UnknownRoom(_) | Refusal::UnknownTimeslot(_) | Refusal::UnknownDay(_) => "not_in_catalog",
            Refusal::NotOwner { .. } => "not_owner",
        },
        Answer::TooFewReplicas { .. } => "too_few_replicas",
        Answer::Unconfirmed { .. } => "unconfirmed",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Slot;

    #[test]
    fn answers_count_as_replies_and_writes_as_outcomes() {
        let slot = Slot { room: "A".into(), timeslot: "t".into(), day: "d".into() };
        let cases: Vec<(Answer, &str, Option<&str>)> = vec![
            (Answer::NotModified, "not_modified", None),
            (Answer::Write(WriteOutcome::Reserved), "write", Some("reserved")),
            (
                Answer::Write(WriteOutcome::Refused(Refusal::AlreadyReserved(slot.clone()))),
                "write",
                Some("already_reserved"),
            ),
            (
                Answer::Write(WriteOutcome::Refused(Refusal::NotOwner { slot, owner: "bob".into() })),
                "write",
                Some("not_owner"),
            ),
            (Answer::TooFewReplicas { reachable: 1, required: 2 }, "write", Some("too_few_replicas")),
        ];
        for (i, (answer, reply, write)) in cases.into_iter().enumerate() {
            let mut stats = NodeStats::default();
            stats.answered(&answer);
            let got = (stats.replies.get(reply).copied(), write.and_then(|w| stats.writes.get(w).copied()));
            let want = (Some(1), write.map(|_| 1));
            assert_eq!(got, want, "#{i}: got {got:?}, want {want:?}");
            assert_eq!(stats.writes.len(), usize::from(write.is_some()), "#{i}: writes {:?}", stats.writes);
        }
        let mut stats = NodeStats::default();
        stats.replied(&Answer::Write(WriteOutcome::Reserved));
        assert_eq!((stats.replies.get("write"), stats.writes.len()), (Some(&1), 0), "a retry's answer is no write");
    }
}
