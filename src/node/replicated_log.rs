//! The replicated log: the entries the leader sequenced, the commit point, and
//! the reservation table built by applying committed entries in order.
//!
//! Entries above the commit point may still be replaced by a new leader's;
//! entries at or below it never change, which is why only they are applied.

use std::collections::{BTreeSet, VecDeque};

use crate::rooms::{Applied, Catalog, ReservationTable};
use crate::wire::{Entry, LogPosition, Op, WriteOutcome};

/// How many applied entries are kept to serve followers that fell a little
/// behind; anyone further behind receives a snapshot instead.
pub const RETAINED_APPLIED: usize = 4096;

/// The largest snapshot a replica accepts (about 4 million reservations).
pub const MAX_SNAPSHOT: usize = 256 << 20;

/// The highest sequence number or term a stored log or snapshot may name
/// (2^62: a million writes a second for 146,000 years). The log and the
/// elections count on a next one (`seq + 1`, a new term) always fitting a
/// `u64`; storage refuses a file beyond this as damaged.
pub const MAX_STORED: u64 = 1 << 62;

/// Log entries plus the state they produce.
#[derive(Debug, Default, Clone)]
pub struct ReplicatedLog {
    table: ReservationTable,
    /// Consecutive entries; the first may already be applied (kept for catch-up).
    entries: VecDeque<Entry>,
    commit: u64,
    /// Applied entries still held that changed the table (a reservation made,
    /// a cancellation done, a merge replayed): what a partition's merge hands
    /// over. Refused and repeated requests are left out.
    effective: BTreeSet<u64>,
    /// What changed since storage last took the changes.
    unsaved: Unsaved,
}

#[derive(Debug, Default, Clone)]
struct Unsaved {
    snapshot: bool,
    /// Lowest sequence number pushed or truncated.
    from_seq: Option<u64>,
    commit: bool,
}

/// What changed in a log since the last [`ReplicatedLog::take_changes`]: what
/// storage must make durable before anything sent may depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChanges {
    /// A snapshot replaced the whole log: store the table first.
    pub snapshot: bool,
    /// Entries from this sequence number on were replaced by `entries`
    /// (none: the log was cut there).
    pub replaced_from: Option<u64>,
    /// The entries from `replaced_from` on.
    pub entries: Vec<Entry>,
    /// The new commit point, if it moved.
    pub commit: Option<u64>,
}

/// A follower's entries conflict with a committed one: the group's safety rules
/// were broken (for example two leaders committed in a partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The committed position that differs.
    pub ours: LogPosition,
    /// The position offered in its place; `None` where the sender's log
    /// ends before it.
    pub theirs: Option<LogPosition>,
}

impl ReplicatedLog {
    /// The reservation table (committed state).
    pub fn table(&self) -> &ReservationTable {
        &self.table
    }

    /// The last entry held, applied or not.
    pub fn last(&self) -> LogPosition {
        self.entries.back().map_or(self.table.applied(), |e| e.position)
    }

    /// Highest sequence number known to be committed.
    pub fn commit(&self) -> u64 {
        self.commit
    }

    /// Sequence number of the first entry still held.
    fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.table.applied().seq + 1, |e| e.position.seq)
    }

    fn get(&self, seq: u64) -> Option<&Entry> {
        let index = seq.checked_sub(self.first_seq())?;
        self.entries.get(usize::try_from(index).ok()?)
    }

    /// The position of the entry at `seq`: the default for the empty prefix,
    /// the table's lineage for compacted entries, `None` beyond the end (or
    /// older than the lineage remembers).
    pub fn position_at(&self, seq: u64) -> Option<LogPosition> {
        match self.get(seq) {
            Some(entry) => Some(entry.position),
            None => self.table.applied_at(seq),
        }
    }

    /// True when `position` is in this log (or compacted below the table).
    pub fn holds(&self, position: LogPosition) -> bool {
        match self.position_at(position.seq) {
            Some(held) => held == position,
            // Older than the lineage remembers: committed long ago, and taken
            // to be the same everywhere.
            None => position.seq < self.first_seq(),
        }
    }

    /// True when `prev` names a committed sequence number of ours at which we
    /// hold a different entry: the sender's committed history split from ours.
    pub fn diverges_at(&self, prev: LogPosition) -> bool {
        prev.seq <= self.commit && self.position_at(prev.seq).is_some_and(|held| held != prev)
    }

    /// An empty log that storage must save as such (its snapshot replaced):
    /// for a server that drops a history its group did not keep.
    pub(crate) fn emptied() -> Self {
        let mut log = ReplicatedLog::default();
        log.unsaved.snapshot = true;
        log
    }

    /// True when an entry not yet applied merges the write from `origin`.
    pub fn has_pending_merge(&self, origin: LogPosition) -> bool {
        let applied = self.table.applied().seq;
        self.entries
            .iter()
            .any(|e| e.position.seq > applied && matches!(e.op, Op::Merged { origin: o, .. } if o == origin))
    }

    /// True when a committed entry still held carries this client request,
    /// run directly or merged, and changed the table (a refusal did not).
    pub fn request_changed_table(&self, client: u64, request: u64) -> bool {
        self.committed_writes().any(|e| e.client == client && e.request == request)
    }

    /// True when an entry not yet applied carries this client request.
    pub fn has_pending(&self, client: u64, request: u64) -> bool {
        // Entries are in sequence order: only the tail after `applied` counts,
        // not the thousands of applied entries kept for catch-up before it.
        let applied = self.table.applied().seq;
        self.entries
            .iter()
            .rev()
            .take_while(|e| e.position.seq > applied)
            .any(|e| e.client == client && e.request == request)
    }

    /// Appends the leader's own new entry.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.position.seq, self.last().seq + 1);
        self.mark_changed(entry.position.seq);
        self.entries.push_back(entry);
    }

    fn mark_changed(&mut self, seq: u64) {
        self.unsaved.from_seq = Some(self.unsaved.from_seq.map_or(seq, |s| s.min(seq)));
    }

    /// Takes what changed since the last call, or `None` if nothing did.
    pub fn take_changes(&mut self) -> Option<LogChanges> {
        let unsaved = std::mem::take(&mut self.unsaved);
        // Entries pushed, applied and compacted away since the last call exist
        // only in the table now: store the table then.
        let snapshot = unsaved.snapshot || unsaved.from_seq.is_some_and(|seq| seq < self.first_seq());
        let replaced_from = match snapshot {
            true => Some(self.table.applied().seq + 1),
            false => unsaved.from_seq,
        };
        let changes = LogChanges {
            snapshot,
            replaced_from,
            entries: replaced_from.map_or_else(Vec::new, |from| self.entries_after(from - 1)),
            commit: unsaved.commit.then_some(self.commit),
        };
        let empty = !changes.snapshot && changes.replaced_from.is_none() && changes.commit.is_none();
        (!empty).then_some(changes)
    }

    /// Clones of the entries held after `seq`.
    pub fn entries_after(&self, seq: u64) -> Vec<Entry> {
        let skip = usize::try_from((seq + 1).saturating_sub(self.first_seq())).unwrap_or(usize::MAX);
        self.entries.iter().skip(skip).cloned().collect()
    }

    /// A log recovered from storage: a snapshot's table, then the entries
    /// after it. Nothing is marked unsaved.
    pub(crate) fn recovered(table: ReservationTable) -> Self {
        let commit = table.applied().seq;
        ReplicatedLog { table, entries: VecDeque::new(), commit, ..ReplicatedLog::default() }
    }

    /// Replays a stored replacement of the entries from `from` on; refuses to
    /// replace an applied entry (the file does not match the snapshot).
    pub(crate) fn replay(&mut self, from: u64, entries: &[Entry]) -> Result<(), Divergence> {
        // Entries the snapshot already holds (a log older than the snapshot).
        let applied = self.table.applied().seq;
        let skipped = usize::try_from(applied.saturating_sub(from) + 1).unwrap_or(usize::MAX).min(entries.len());
        let (from, entries) = match from <= applied {
            true => (applied + 1, &entries[skipped..]),
            false => (from, entries),
        };
        if entries.is_empty() && from == applied + 1 {
            return Ok(());
        }
        let theirs = entries.first().map_or(LogPosition::new(0, from), |e| e.position);
        let consecutive = entries.iter().zip(from..).all(|(e, seq)| e.position.seq == seq);
        if !consecutive || from > self.last().seq + 1 {
            return Err(Divergence { ours: self.last(), theirs: Some(theirs) });
        }
        self.truncate_after(from - 1, Some(theirs))?;
        self.entries.extend(entries.iter().cloned());
        self.unsaved = Unsaved::default();
        Ok(())
    }

    /// Adds entries that follow `prev` in the sender's log, replacing any
    /// uncommitted entries of ours that differ. With `complete`, the sender's log
    /// ends there, so anything of ours beyond is dropped too. Returns how far our
    /// log now matches the sender's.
    /// The caller checks first that `prev` is [held](Self::holds).
    pub(crate) fn splice_after(
        &mut self,
        prev: LogPosition,
        entries: &[Entry],
        complete: bool,
    ) -> Result<u64, Divergence> {
        debug_assert!(self.holds(prev), "splice after {prev:?} which is not held");
        let mut matched = prev.seq;
        for entry in entries {
            let seq = entry.position.seq;
            if seq != matched + 1 {
                break;
            }
            match self.position_at(seq) {
                Some(held) if held == entry.position => {}
                None if seq <= self.table.applied().seq => {}
                Some(_) | None if seq <= self.last().seq => {
                    self.truncate_after(seq - 1, Some(entry.position))?;
                    self.push(entry.clone());
                }
                _ => self.push(entry.clone()),
            }
            matched = seq;
        }
        if complete && self.last().seq > matched {
            self.truncate_after(matched, None)?;
        }
        Ok(matched)
    }

    /// The first of `prev` and the `entries` after it that sits where we hold
    /// a different entry, if any: where the sender's log and ours split.
    pub fn first_difference(&self, prev: LogPosition, entries: &[Entry]) -> Option<LogPosition> {
        std::iter::once(prev)
            .chain(entries.iter().map(|e| e.position))
            .take_while(|p| p.seq <= self.last().seq)
            .find(|p| self.position_at(p.seq).is_some_and(|held| held != *p))
    }

    /// True when [`splice_after`](Self::splice_after) with these arguments would drop
    /// entries we hold beyond the sender's last one (its log ends there, `complete`).
    /// With [`first_difference`](Self::first_difference), what a splice replaces.
    pub fn drops_beyond(&self, prev: LogPosition, entries: &[Entry], complete: bool) -> bool {
        let end = entries.last().map_or(prev.seq, |e| e.position.seq);
        complete && self.last().seq > end
    }

    /// Drops the uncommitted entries after `seq` (never a committed one).
    pub(crate) fn drop_uncommitted_after(&mut self, seq: u64) {
        let keep = seq.max(self.commit).max(self.table.applied().seq);
        let _ = self.truncate_after(keep, None);
    }

    fn truncate_after(&mut self, seq: u64, theirs: Option<LogPosition>) -> Result<(), Divergence> {
        if seq < self.commit.max(self.table.applied().seq) {
            let ours = self.get(seq + 1).map_or(self.table.applied(), |e| e.position);
            return Err(Divergence { ours, theirs });
        }
        if self.last().seq > seq {
            self.mark_changed(seq + 1);
        }
        while self.last().seq > seq {
            self.entries.pop_back();
        }
        Ok(())
    }

    /// Entries from `from_seq` on, at most `budget` bytes' worth, with the
    /// position before them; `None` if they were compacted (send a snapshot).
    pub fn entries_from(&self, from_seq: u64, budget: usize) -> Option<(LogPosition, Vec<Entry>, bool)> {
        if from_seq < self.first_seq() && from_seq <= self.table.applied().seq {
            return None;
        }
        let prev_seq = from_seq.checked_sub(1)?;
        let prev = self.position_at(prev_seq)?;
        let mut taken = Vec::new();
        let mut size = 0;
        let mut seq = from_seq;
        while let Some(entry) = self.get(seq) {
            size += estimated_size(entry);
            if size > budget && !taken.is_empty() {
                return Some((prev, taken, false));
            }
            taken.push(entry.clone());
            seq += 1;
        }
        Some((prev, taken, true))
    }

    /// Marks everything up to `seq` (as far as held) committed and applies it,
    /// returning each applied entry with its outcome.
    pub fn commit_to(&mut self, seq: u64, catalog: &Catalog) -> Vec<(Entry, Applied)> {
        let target = seq.min(self.last().seq);
        if target > self.commit {
            self.commit = target;
            self.unsaved.commit = true;
        }
        let mut applied = Vec::new();
        while self.table.applied().seq < target {
            let Some(entry) = self.get(self.table.applied().seq + 1).cloned() else { break };
            let outcome = self.table.apply(catalog, &entry);
            if changes_table(&outcome) {
                self.effective.insert(entry.position.seq);
            }
            applied.push((entry, outcome));
        }
        self.compact();
        applied
    }

    fn compact(&mut self) {
        let applied = self.table.applied().seq;
        while self.entries.len() > RETAINED_APPLIED && self.first_seq() <= applied {
            self.entries.pop_front();
        }
        self.effective = self.effective.split_off(&self.first_seq());
    }

    /// The committed entries still held that changed the table, oldest first.
    pub fn committed_writes(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.position.seq <= self.commit && self.effective.contains(&e.position.seq))
    }

    /// The entries after the applied ones that would change the table if
    /// they were committed now: writes that a leader now gone may have
    /// confirmed before we learnt it.
    pub fn uncommitted_writes(&self, catalog: &Catalog) -> Vec<&Entry> {
        let applied = self.table.applied().seq;
        if self.last().seq <= applied {
            return Vec::new(); // nothing to try: spare the table's copy (resent every heartbeat)
        }
        let mut table = self.table.clone();
        let pending = self.entries.iter().filter(|e| e.position.seq > applied);
        pending.filter(|e| changes_table(&table.apply(catalog, e))).collect()
    }

    /// Replaces everything with a snapshot of a committed table.
    pub fn install(&mut self, table: ReservationTable) {
        self.commit = self.commit.max(table.applied().seq);
        self.table = table;
        self.entries.clear();
        self.effective.clear();
        self.unsaved = Unsaved { snapshot: true, from_seq: None, commit: true };
    }

    /// Replaces the table by the same reservations under another catalog
    /// (`ReservationTable::remap`), keeping the log.
    pub(crate) fn replace_table(&mut self, table: ReservationTable) {
        self.table = table;
    }

    /// The committed table, encoded for transfer.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(&self.table, bincode::config::standard())
            .expect("the reservation table is always encodable")
    }
}

/// Decodes a snapshot received from another replica.
pub fn decode_snapshot(bytes: &[u8]) -> Result<ReservationTable, String> {
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT>();
    match bincode::serde::decode_from_slice(bytes, config) {
        Ok((table, used)) if used == bytes.len() => Ok(table),
        Ok((_, used)) => Err(format!("{} unexpected bytes after the snapshot", bytes.len() - used)),
        Err(e) => Err(e.to_string()),
    }
}

/// A cheap upper bound of an entry's encoded size, to fill datagrams.
pub(super) fn estimated_size(entry: &Entry) -> usize {
    let by = entry.by.as_ref().map_or(1, |p| 3 + p.name.len());
    48 + by + estimated_op_size(&entry.op)
}

fn estimated_op_size(op: &Op) -> usize {
    match op {
        Op::Genesis { .. } => 0,
        Op::Reserve(s) | Op::Cancel(s) => s.room.len() + s.timeslot.len() + s.day.len(),
        Op::Merged { write, .. } => 48 + estimated_op_size(write),
    }
}

/// Whether an applied entry changed the table (a refusal or a repeat did not).
fn changes_table(applied: &Applied) -> bool {
    matches!(applied, Applied::Executed(WriteOutcome::Reserved | WriteOutcome::Cancelled) | Applied::Merged(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Op, Slot};

    fn entry(term: u64, seq: u64) -> Entry {
        let slot = Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: format!("d{seq}") };
        Entry { position: LogPosition::new(term, seq), client: 1, request: seq, by: None, op: Op::Reserve(slot) }
    }

    fn log_with(terms: &[u64]) -> ReplicatedLog {
        let mut log = ReplicatedLog::default();
        for (i, &term) in terms.iter().enumerate() {
            log.push(entry(term, i as u64 + 1));
        }
        log
    }

    #[test]
    fn merge_appends_after_a_matching_prev() {
        let mut log = log_with(&[1, 1]);
        let got = log.splice_after(LogPosition::new(1, 2), &[entry(1, 3), entry(1, 4)], false);
        assert_eq!(got, Ok(4));
        assert_eq!(log.last(), LogPosition::new(1, 4));
    }

    #[test]
    fn merge_replaces_a_conflicting_uncommitted_suffix() {
        let mut log = log_with(&[1, 1, 1, 1]);
        log.commit_to(2, &Catalog::default());
        let got = log.splice_after(LogPosition::new(1, 2), &[entry(2, 3)], true);
        assert_eq!(got, Ok(3));
        assert_eq!(log.last(), LogPosition::new(2, 3));
    }

    #[test]
    fn merge_refuses_to_rewrite_a_committed_entry() {
        let mut log = log_with(&[1, 1, 1]);
        log.commit_to(3, &Catalog::default());
        let got = log.splice_after(LogPosition::new(1, 1), &[entry(2, 2)], false);
        assert!(got.is_err(), "{got:?}");
        assert_eq!(log.last(), LogPosition::new(1, 3));
    }

    #[test]
    fn complete_merge_drops_our_extra_uncommitted_entries() {
        let mut log = log_with(&[1, 1, 1]);
        assert_eq!(log.splice_after(LogPosition::new(1, 1), &[], true), Ok(1));
        assert_eq!(log.last(), LogPosition::new(1, 1));
    }

    #[test]
    fn entries_from_respects_the_budget_and_says_when_complete() {
        let log = log_with(&[1, 1, 1]);
        let (prev, entries, complete) = log.entries_from(2, 60).unwrap();
        assert_eq!((prev, entries.len(), complete), (LogPosition::new(1, 1), 1, false));
        let (_, entries, complete) = log.entries_from(2, 10_000).unwrap();
        assert_eq!((entries.len(), complete), (2, true));
    }

    #[test]
    fn compacted_entries_need_a_snapshot_and_the_snapshot_round_trips() {
        let terms = vec![1; RETAINED_APPLIED + 10];
        let mut log = log_with(&terms);
        log.commit_to(terms.len() as u64, &Catalog::default());
        assert!(log.entries_from(1, 1000).is_none());
        let table = decode_snapshot(&log.encode_snapshot()).unwrap();
        assert_eq!(&table, log.table());
        assert!(decode_snapshot(&[0xFF; 3]).is_err());
    }

    /// Compacted entries are still known by leadership (term and leader):
    /// another history's entry at a compacted position is not taken for ours,
    /// and a snapshot tells which history it holds.
    #[test]
    fn compacted_entries_keep_their_leadership() {
        let mut terms = vec![1; RETAINED_APPLIED];
        terms.extend([2; 10]);
        let mut log = log_with(&terms);
        log.commit_to(terms.len() as u64, &Catalog::default());
        assert!(log.holds(LogPosition::new(1, 5)), "a compacted entry of ours");
        assert!(!log.holds(LogPosition::new(3, 5)), "another history's entry at a compacted position");
        assert!(log.diverges_at(LogPosition::new(3, 5)));
        let table = decode_snapshot(&log.encode_snapshot()).unwrap();
        assert_eq!(table.applied_at(5), Some(LogPosition::new(1, 5)));
        assert_eq!(
            table.applied_at(RETAINED_APPLIED as u64 + 1),
            Some(LogPosition::new(2, RETAINED_APPLIED as u64 + 1))
        );
        assert_eq!(table.applied_at(terms.len() as u64 + 1), None, "beyond the applied entries");
    }
}
