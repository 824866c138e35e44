//! The invariants a simulated run must keep: `liveness` is checked as the
//! run goes (every step), the others once the faults stop, over every entry
//! any replica applied.
//!
//! | name | rule |
//! |---|---|
//! | `one-order` | no two replicas apply different entries at one sequence number, unless every replica that applied one of them dropped that history (a healed partition: `node/merge.rs`) |
//! | `at-most-once` | a client request is executed at one sequence number at most in the surviving history |
//! | `acknowledged-writes` | every answer a client got for a write is the outcome of that write in the surviving history, or the write was executed in an abandoned history and merged into the surviving one |
//! | `convergence` | after the faults stop: one leader, every replica holds the same table |
//! | `liveness` | a run stays within its step budget (no message storm, no livelock) |
//!
//! There is deliberately no "one leader per term" rule: bully elections have no
//! votes, so after lost datagrams two servers can briefly lead the same term.
//! Log positions carry the leader's incarnation, so their entries never mix,
//! and `one-order` plus `acknowledged-writes` catch any harm done.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::rooms::{Applied, ReservationTable};
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
    /// Positions each server applied before it last dropped its history.
    dropped: HashMap<u64, HashSet<LogPosition>>,
    /// Origins of the writes merged into the surviving history.
    merged: HashSet<LogPosition>,
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

    /// A replica applied an entry.
    pub fn on_applied(&mut self, server: u64, entry: &Entry, applied: &Applied) {
        let all = self.order.entry(entry.position.seq).or_default();
        match all.iter_mut().find(|a| a.entry == *entry) {
            Some(known) => drop(known.servers.insert(server)),
            None => {
                let servers = BTreeSet::from([server]);
                all.push(Applications { entry: entry.clone(), servers });
            }
        }
        if let (Applied::Merged(_), Op::Merged { origin, .. }) = (applied, &entry.op) {
            self.merged.insert(*origin);
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
        let dropped = self.dropped.entry(server).or_default();
        for all in self.order.values() {
            dropped.extend(all.iter().filter(|a| a.servers.contains(&server)).map(|a| a.entry.position));
        }
    }

    /// True when every server that applied `a` has since dropped that history.
    fn abandoned(&self, a: &Applications) -> bool {
        a.servers.iter().all(|s| self.dropped.get(s).is_some_and(|d| d.contains(&a.entry.position)))
    }

    /// Once the run is over: `one-order` and `at-most-once` over the
    /// surviving history (entries of histories abandoned when a partition
    /// healed do not count), and every answered write checked against it. A
    /// write executed only in an abandoned history must have been merged.
    pub fn check_histories(&mut self) {
        let mut abandoned = HashSet::new();
        for (seq, all) in &self.order {
            let (lost, kept): (Vec<&Applications>, Vec<&Applications>) = all.iter().partition(|a| self.abandoned(a));
            abandoned.extend(lost.iter().map(|a| a.entry.position));
            if let [first, second, ..] = kept[..] {
                let detail = format!(
                    "servers {:?} applied {:?} at seq {seq}, servers {:?} {:?}",
                    second.servers, second.entry, first.servers, first.entry
                );
                self.violations.push(Violation { invariant: "one-order", detail });
            }
        }
        for ((client, request), runs) in &self.executed {
            let surviving: Vec<_> = runs.iter().filter(|(p, _)| !abandoned.contains(p)).collect();
            if surviving.len() > 1 {
                let detail = format!("client {client} request {request} executed at {surviving:?}");
                self.violations.push(Violation { invariant: "at-most-once", detail });
            }
        }
        for (client, request, outcome) in std::mem::take(&mut self.acks) {
            let runs = self.executed.get(&(client, request)).map(Vec::as_slice).unwrap_or_default();
            let surviving = runs.iter().find(|(p, _)| !abandoned.contains(p));
            let merged = runs.iter().any(|(p, _)| self.merged.contains(p));
            let detail = match surviving {
                Some((_, done)) if *done == outcome => None,
                None if merged => None,
                Some((position, done)) => Some(format!("was told {outcome:?}, but {position:?} did {done:?}")),
                None if runs.is_empty() => Some(format!("was told {outcome:?}, but no replica executed it")),
                None => Some(format!("was told {outcome:?}, executed only in an abandoned history, never merged")),
            };
            if let Some(detail) = detail {
                self.fail("acknowledged-writes", format!("client {client} request {request} {detail}"));
            }
            self.acks.push((client, request, outcome));
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
