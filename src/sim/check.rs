//! The invariants a simulated run must keep: `one-order`, `at-most-once` and
//! `liveness` are checked as the run goes (every applied entry, every step),
//! `acknowledged-writes` and `convergence` once the faults stop.
//!
//! | name | rule |
//! |---|---|
//! | `one-order` | no two replicas apply different entries at one sequence number |
//! | `at-most-once` | a client request is executed at one sequence number at most |
//! | `acknowledged-writes` | every answer a client got for a write is the outcome of that write in the one order |
//! | `convergence` | after the faults stop: one leader, every replica holds the same table |
//! | `liveness` | a run stays within its step budget (no message storm, no livelock) |
//!
//! There is deliberately no "one leader per term" rule: bully elections have no
//! votes, so after lost datagrams two servers can briefly lead the same term.
//! Log positions carry the leader's incarnation, so their entries never mix,
//! and `one-order` plus `acknowledged-writes` catch any harm done.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::rooms::{Applied, ReservationTable};
use crate::wire::{Entry, LogPosition, WriteOutcome};

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
    /// The first entry applied at each sequence number, and what it did.
    order: BTreeMap<u64, (Entry, Applied)>,
    /// Where each (client, request) was executed.
    executed: HashMap<(u64, u64), u64>,
    /// Answers clients received for writes: (client, request, outcome).
    acks: Vec<(u64, u64, WriteOutcome)>,
    violations: Vec<Violation>,
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
        self.order.values().next_back().map(|(entry, _)| entry.position)
    }

    /// Records a broken invariant.
    pub fn fail(&mut self, invariant: &'static str, detail: String) {
        self.violations.push(Violation { invariant, detail });
    }

    /// A replica applied an entry.
    pub fn on_applied(&mut self, server: u64, entry: &Entry, applied: &Applied) {
        let seq = entry.position.seq;
        match self.order.get(&seq) {
            Some((first, _)) if first != entry => {
                let detail = format!("server {server} applied {entry:?} at seq {seq}, another replica {first:?}");
                self.fail("one-order", detail);
            }
            Some(_) => {}
            None => {
                self.order.insert(seq, (entry.clone(), applied.clone()));
            }
        }
        if matches!(applied, Applied::Executed(_)) {
            let key = (entry.client, entry.request);
            match self.executed.insert(key, seq) {
                Some(earlier) if earlier != seq => {
                    let detail = format!("client {} request {} executed at seq {earlier} and {seq}", key.0, key.1);
                    self.fail("at-most-once", detail);
                }
                _ => {}
            }
        }
    }

    /// A client received this answer to a write.
    pub fn on_write_answer(&mut self, client: u64, request: u64, outcome: WriteOutcome) {
        self.acks.push((client, request, outcome));
    }

    /// Checks every answered write against the one order.
    pub fn check_acknowledged(&mut self) {
        for (client, request, outcome) in std::mem::take(&mut self.acks) {
            let executed = self.executed.get(&(client, request)).and_then(|seq| self.order.get(seq));
            match executed {
                Some((_, Applied::Executed(done))) if *done == outcome => {}
                Some((entry, done)) => {
                    let detail =
                        format!("client {client} request {request} was told {outcome:?}, but {entry:?} did {done:?}");
                    self.fail("acknowledged-writes", detail);
                }
                None => {
                    let detail =
                        format!("client {client} request {request} was told {outcome:?}, but no replica executed it");
                    self.fail("acknowledged-writes", detail);
                }
            }
            self.acks.push((client, request, outcome));
        }
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
