//! The invariants a simulated run must keep: `liveness`, `applied-uncommitted`,
//! `durability` and `deposed-reply` are checked as the run goes (by the simulation, which sees
//! flushes and deliveries), the others once the faults stop, over every entry
//! any replica applied.
//!
//! | name | rule |
//! |---|---|
//! | `one-order` | no two entries at one sequence number survive: some replica still holds each (applied it or took a snapshot holding it, and did not drop that history when a partition healed, `node/heal.rs`, nor restart without its data since) |
//! | `at-most-once` | a client request is executed at one sequence number at most among the surviving entries |
//! | `acknowledged-writes` | every answer a client got for a write is the outcome of that write in the surviving history, or of a run that was merged into it (replayed, or dropped as a reported conflict), or a refusal from a history that did not survive |
//! | `convergence` | after the faults stop: one leader, every replica holds the same table |
//! | `liveness` | a run stays within its step budget (no message storm, no livelock) |
//! | `applied-uncommitted` | a replica that does not lead applies only what a leader committed: a leader applies what it commits at once, so some leader applied an entry before any follower or candidate does |
//! | `durability` | a server crashed between the two steps of a flush (a torn flush, `Traps::torn_flush`) had stored everything it sent: the shell stores before it sends (`sim::FLUSH_ORDER`, as `driver.rs`) |
//! | `deposed-reply` | a leader that stood still past the heartbeat timeout (SIGSTOP) gives no client an answer until it has led anew: the group may have replaced it and confirmed writes it lacks |
//!
//! There is deliberately no "one leader per term" rule: bully elections have no
//! votes, so after lost datagrams two servers can briefly lead the same term.
//! Log positions carry the leader's incarnation, so their entries never mix,
//! and `one-order` plus `acknowledged-writes` catch any harm done.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::rooms::{Applied, ReservationTable, merged_outcome};
use crate::wire::{Entry, LogPosition, Op, WriteOutcome};

/// A broken invariant, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name (see the module table).
    pub invariant: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// What the checker has seen of a run.
#[derive(Debug, Default)]
pub struct Checker {
    /// Every distinct entry applied at each sequence number, and the servers
    /// that applied it.
    order: BTreeMap<u64, Vec<Applications>>,
    /// The positions each server holds: applied, or taken over in a snapshot,
    /// and not lost since by dropping its history or restarting without data.
    held: HashMap<u64, HashSet<LogPosition>>,
    /// Origins of the writes merged into the surviving history.
    merged: HashSet<LogPosition>,
    /// Where each (client, request) was merged, and what a retry of it is
    /// told there: its outcome, or a refusal where it was a conflict.
    merge_outcomes: HashMap<(u64, u64), Vec<(LogPosition, WriteOutcome)>>,
    /// Where each (client, request) was executed, and with what outcome.
    executed: HashMap<(u64, u64), Vec<(LogPosition, WriteOutcome)>>,
    /// Answers clients received for writes: (client, request, outcome).
    acks: Vec<(u64, u64, WriteOutcome)>,
    /// A majority must hold every write (`--min-replicas`): histories never
    /// split, so no server may ever drop its history.
    pub majority_writes: bool,
    violations: Vec<Violation>,
}

/// One entry and the servers that applied it.
#[derive(Debug)]
struct Applications {
    entry: Entry,
    servers: BTreeSet<u64>,
}

impl Checker {
    /// The violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Number of write answers clients received.
    pub fn acknowledged(&self) -> usize {
        self.acks.len()
    }

    /// The newest entry any replica ever applied (committed), even one whose
    /// replica has since lost it by restarting without data.
    pub fn newest_applied(&self) -> Option<LogPosition> {
        self.order.values().next_back().and_then(|all| all.first()).map(|a| a.entry.position)
    }

    /// Records a broken invariant.
    pub fn fail(&mut self, invariant: &'static str, detail: String) {
        self.violations.push(Violation { invariant, detail });
    }

    /// A replica that did not lead applies `entry`: some leader must have
    /// committed it, and a leader applies what it commits at once, so one
    /// has applied it before (`applied-uncommitted` otherwise).
    pub fn check_committed(&mut self, server: u64, entry: &Entry, at: std::time::Duration) {
        let known = self.order.get(&entry.position.seq).is_some_and(|all| all.iter().any(|a| a.entry == *entry));
        if !known {
            let detail = format!(
                "at {at:?}, server {server}, not leading, applied {:?} at seq {} before any leader had committed it",
                entry.position, entry.position.seq
            );
            self.fail("applied-uncommitted", detail);
        }
    }

    /// A replica applied an entry.
    pub fn on_applied(&mut self, server: u64, entry: &Entry, applied: &Applied) {
        self.held.entry(server).or_default().insert(entry.position);
        let all = self.order.entry(entry.position.seq).or_default();
        match all.iter_mut().find(|a| a.entry == *entry) {
            Some(known) => drop(known.servers.insert(server)),
            None => {
                let servers = BTreeSet::from([server]);
                all.push(Applications { entry: entry.clone(), servers });
            }
        }
        if let (Applied::Merged(conflict), Op::Merged { origin, write, .. }) = (applied, &entry.op) {
            self.merged.insert(*origin);
            let outcome = merged_outcome(write, conflict.as_ref());
            self.merge_outcomes.entry((entry.client, entry.request)).or_default().push((entry.position, outcome));
        }
        if let Applied::Executed(outcome) = applied {
            let runs = self.executed.entry((entry.client, entry.request)).or_default();
            if !runs.iter().any(|(position, _)| *position == entry.position) {
                runs.push((entry.position, outcome.clone()));
            }
        }
    }

    /// A replica dropped its history to copy its leader's: what it applied so
    /// far no longer speaks for the surviving history.
    pub fn on_history_dropped(&mut self, server: u64) {
        if self.majority_writes {
            let detail = format!("server {server} dropped its history although a majority holds every write");
            self.fail("one-order", detail);
        }
        self.on_memory_lost(server);
    }

    /// A replica restarted without its data directory: what it held is gone.
    pub fn on_memory_lost(&mut self, server: u64) {
        self.held.remove(&server);
    }

    /// A replica installed `source`'s snapshot up to `last`: it holds what
    /// `source` held up to there, and nothing of its own log any more.
    pub fn on_snapshot_installed(&mut self, server: u64, source: u64, last: LogPosition) {
        let taken = self.held.get(&source).into_iter().flatten().filter(|p| p.seq <= last.seq).copied().collect();
        self.held.insert(server, taken);
    }

    /// Once the run is over: `one-order` and `at-most-once` over the
    /// surviving history, the entries some replica still holds (histories
    /// abandoned when a partition healed, or lost with every replica that held
    /// them, do not count), and every answered write checked against it.
    pub fn check_histories(&mut self) {
        let held: HashSet<LogPosition> = self.held.values().flatten().copied().collect();
        for (seq, all) in &self.order {
            let kept: Vec<&Applications> = all.iter().filter(|a| held.contains(&a.entry.position)).collect();
            if let [first, second, ..] = kept[..] {
                let detail = format!(
                    "servers {:?} applied {:?} at seq {seq}, servers {:?} {:?}",
                    second.servers, second.entry, first.servers, first.entry
                );
                self.violations.push(Violation { invariant: "one-order", detail });
            }
        }
        for ((client, request), runs) in &self.executed {
            let surviving: Vec<_> = runs.iter().filter(|(p, _)| held.contains(p)).collect();
            if surviving.len() > 1 {
                let detail = format!("client {client} request {request} executed at {surviving:?}");
                self.violations.push(Violation { invariant: "at-most-once", detail });
            }
        }
        for (client, request, outcome) in std::mem::take(&mut self.acks) {
            let runs = self.executed.get(&(client, request)).map(Vec::as_slice).unwrap_or_default();
            let merges = self.merge_outcomes.get(&(client, request)).map(Vec::as_slice).unwrap_or_default();
            if let Some(detail) = self.wrong_answer(&held, runs, merges, &outcome) {
                self.fail("acknowledged-writes", format!("client {client} request {request} {detail}"));
            }
            self.acks.push((client, request, outcome));
        }
    }

    /// Why `outcome` is not what the runs of its request did, if it is not.
    /// An answer stands when a surviving run gave it; when its run was merged
    /// (replayed after the winner's history, or dropped as a conflict that
    /// every server reports; `merges` says what retries are told where it was
    /// merged); and for a refusal from a history that did not survive: that
    /// side knew only its own writes.
    fn wrong_answer(
        &self,
        held: &HashSet<LogPosition>,
        runs: &[(LogPosition, WriteOutcome)],
        merges: &[(LogPosition, WriteOutcome)],
        outcome: &WriteOutcome,
    ) -> Option<String> {
        let stands = |(p, done): &(LogPosition, WriteOutcome)| {
            done == outcome && (held.contains(p) || self.merged.contains(p) || matches!(done, WriteOutcome::Refused(_)))
        };
        let surviving = runs.iter().find(|(p, _)| held.contains(p));
        let merged = runs.iter().any(|(p, _)| self.merged.contains(p));
        // The surviving history dropped this request as a conflict, which every
        // server logs and `status` shows: whatever the client was told, the
        // operator is told what became of it.
        let reported = merges.iter().any(|(p, done)| held.contains(p) && matches!(done, WriteOutcome::Refused(_)));
        match surviving {
            _ if reported || runs.iter().chain(merges).any(stands) => None,
            None if merged => None,
            Some((position, done)) => {
                Some(format!("was told {outcome:?}, but {position:?} did {done:?} (runs: {runs:?})"))
            }
            None if runs.is_empty() => Some(format!("was told {outcome:?}, but no replica executed it")),
            None => Some(format!(
                "was told {outcome:?}, executed only in histories nobody holds, never merged (runs: {runs:?})"
            )),
        }
    }

    /// A client received this answer to a write.
    pub fn on_write_answer(&mut self, client: u64, request: u64, outcome: WriteOutcome) {
        self.acks.push((client, request, outcome));
    }

    /// After the faults stopped: one leader and identical tables.
    pub fn check_converged(&mut self, leaders: &[u64], tables: &[(u64, &ReservationTable)]) {
        if leaders.len() != 1 {
            self.fail("convergence", format!("{} leaders after healing: {leaders:?}", leaders.len()));
        }
        if let Some((first_id, first)) = tables.first() {
            for (id, table) in &tables[1..] {
                if table != first {
                    let detail = format!(
                        "server {id} holds {} reservations at {:?}, server {first_id} {} at {:?}",
                        table.len(),
                        table.applied(),
                        first.len(),
                        first.applied()
                    );
                    self.fail("convergence", detail);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Slot;

    const RESERVED: WriteOutcome = WriteOutcome::Reserved;

    /// Client 1's request `request`, reserving a slot, at `(term, seq)`.
    fn write(term: u64, seq: u64, request: u64) -> Entry {
        let slot = Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: "Monday".into() };
        Entry { position: LogPosition::new(term, seq), client: 1, request, by: None, op: Op::Reserve(slot) }
    }

    /// Server 100 applies, at (3, 6), the merge of client 1's request 1 that
    /// ran at (2, 5) on the other side, with `conflict` if it was dropped.
    fn merge_applied(checker: &mut Checker, conflict: Option<crate::wire::Conflict>) {
        let original = write(2, 5, 1);
        let merged = Op::Merged { origin: original.position, since: 5, write: Box::new(original.op) };
        let entry = Entry { position: LogPosition::new(3, 6), client: 1, request: 1, by: None, op: merged };
        checker.on_applied(100, &entry, &Applied::Merged(conflict));
    }

    fn invariants(checker: &mut Checker) -> Vec<&'static str> {
        checker.check_histories();
        checker.violations().iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn two_surviving_histories_break_one_order_unless_one_was_dropped() {
        let two_histories = || {
            let mut checker = Checker::default();
            checker.on_applied(100, &write(1, 5, 1), &Applied::Executed(RESERVED));
            checker.on_applied(200, &write(2, 5, 2), &Applied::Executed(RESERVED));
            checker
        };
        assert_eq!(invariants(&mut two_histories()), ["one-order"]);

        let mut checker = two_histories();
        checker.on_history_dropped(200);
        assert_eq!(invariants(&mut checker), Vec::<&str>::new());
    }

    #[test]
    fn a_confirmed_write_lost_with_its_history_is_caught_unless_merged() {
        let confirmed_by_200 = || {
            let mut checker = Checker::default();
            checker.on_applied(200, &write(2, 5, 1), &Applied::Executed(RESERVED));
            checker.on_write_answer(1, 1, RESERVED);
            checker
        };
        let mut checker = confirmed_by_200();
        checker.on_history_dropped(200);
        assert_eq!(invariants(&mut checker), ["acknowledged-writes"]);

        let mut checker = confirmed_by_200();
        merge_applied(&mut checker, None);
        checker.on_history_dropped(200);
        assert_eq!(invariants(&mut checker), Vec::<&str>::new());
    }

    #[test]
    fn a_confirmed_write_dropped_as_a_reported_conflict_is_accounted_for() {
        // The confirmation came from a side whose history is gone (its run is
        // not even on record); the surviving history reports the conflict.
        let mut checker = Checker::default();
        checker.on_write_answer(1, 1, RESERVED);
        let Op::Reserve(slot) = write(2, 5, 1).op else { unreachable!() };
        merge_applied(&mut checker, Some(crate::wire::Conflict { slot, reserve: true, client: 1, request: 1 }));
        assert_eq!(invariants(&mut checker), Vec::<&str>::new());
    }

    #[test]
    fn an_entry_applied_first_by_a_server_that_does_not_lead_is_caught() {
        let mut checker = Checker::default();
        checker.check_committed(200, &write(1, 5, 1), std::time::Duration::ZERO);
        assert_eq!(invariants(&mut checker), ["applied-uncommitted"]);

        let mut checker = Checker::default();
        checker.on_applied(100, &write(1, 5, 1), &Applied::Executed(RESERVED));
        checker.check_committed(200, &write(1, 5, 1), std::time::Duration::ZERO);
        assert_eq!(invariants(&mut checker), Vec::<&str>::new());
    }

    #[test]
    fn a_snapshot_keeps_entries_alive_after_their_last_applier_lost_them() {
        let mut checker = Checker::default();
        checker.on_applied(100, &write(1, 5, 1), &Applied::Executed(RESERVED));
        checker.on_write_answer(1, 1, RESERVED);
        checker.on_snapshot_installed(200, 100, LogPosition::new(1, 5));
        checker.on_memory_lost(100);
        assert_eq!(invariants(&mut checker), Vec::<&str>::new());
        checker.on_memory_lost(200);
        assert_eq!(invariants(&mut checker), ["acknowledged-writes"], "nobody holds it any more");
    }
}
