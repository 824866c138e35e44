//! The reservation state machine: the catalog of rooms, timeslots and days, and
//! the table of reservations that every replica builds by applying the same log
//! entries in the same order. No I/O and no clock: `apply` is a pure function of
//! the table and the entry, which is what makes replicas identical.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::wire::{Conflict, Entry, LogPosition, Op, Principal, Refusal, Reservation, RoomVersion, Slot, WriteOutcome};

/// How many clients' last writes are remembered for at-most-once execution.
/// The oldest is forgotten first; a client retries for seconds, not hours.
pub const MAX_SESSIONS: usize = 10_000;
/// The longest room, timeslot or day name, in characters: one a user can
/// type, and a request for it fits any datagram.
pub const MAX_NAME_CHARS: usize = 64;
/// The most names one list of a catalog (rooms, timeslots, days) may hold.
pub const MAX_CATALOG_NAMES: usize = 10_000;
/// How many of the latest merge conflicts the table keeps for `status`.
const MAX_CONFLICTS: usize = 100;
/// How many leaderships the table remembers the first entry of: one per
/// failover or hand-over whose leader wrote, so years of them on a LAN.
const MAX_LINEAGE: usize = 4096;

/// The rooms, timeslots and days a group offers. Every server of a group must
/// use the same catalog (checked through [`Catalog::fingerprint`]).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Room names, in display order.
    pub rooms: Vec<String>,
    /// Timeslots, in display order.
    pub timeslots: Vec<String>,
    /// Days, in display order.
    pub days: Vec<String>,
}

impl Default for Catalog {
    /// The seed assignment's catalog.
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        Catalog {
            rooms: owned(&["SA318", "ME4494", "SA314", "MC5050", "ME4326", "SA412"]),
            timeslots: owned(&[
                "8:30-9:30",
                "9:30-10:30",
                "10:30-11:30",
                "11:30-12:30",
                "12:30-13:30",
                "13:30-14:30",
                "14:30-15:30",
                "15:30-16:30",
                "16:30-17:30",
                "17:30-19:00",
                "19:30-21:00",
            ]),
            days: owned(&["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        }
    }
}

impl Catalog {
    /// A stable 64-bit FNV-1a hash of the catalog, equal on every platform.
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for list in [&self.rooms, &self.timeslots, &self.days] {
            for name in list.iter() {
                for byte in name.bytes().chain([0u8]) {
                    hash ^= u64::from(byte);
                    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3) ^ 0xff;
        }
        hash
    }

    fn position(list: &[String], name: &str) -> Option<u32> {
        list.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|i| i as u32)
    }

    /// Index of a room, matched case-insensitively.
    pub fn room_index(&self, name: &str) -> Option<u32> {
        Self::position(&self.rooms, name)
    }

    /// Resolves a slot to catalog indices and the names as the catalog spells
    /// them, or says which part is unknown.
    fn resolve(&self, slot: &Slot) -> Result<(SlotKey, Slot), Refusal> {
        let room = self.room_index(&slot.room).ok_or_else(|| Refusal::UnknownRoom(slot.room.clone()))?;
        let timeslot = Self::position(&self.timeslots, &slot.timeslot)
            .ok_or_else(|| Refusal::UnknownTimeslot(slot.timeslot.clone()))?;
        let day = Self::position(&self.days, &slot.day).ok_or_else(|| Refusal::UnknownDay(slot.day.clone()))?;
        let key = SlotKey { room, day, timeslot };
        let spelled = self.name(key).ok_or_else(|| Refusal::UnknownRoom(slot.room.clone()))?;
        Ok((key, spelled))
    }

    /// The slot's names as the catalog spells them; `None` for indices this
    /// catalog does not have (a table built under another catalog).
    fn name(&self, key: SlotKey) -> Option<Slot> {
        Some(Slot {
            room: self.rooms.get(key.room as usize)?.clone(),
            timeslot: self.timeslots.get(key.timeslot as usize)?.clone(),
            day: self.days.get(key.day as usize)?.clone(),
        })
    }
}

/// A slot as catalog indices; ordering by (room, day, timeslot) gives the
/// display order of `check`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SlotKey {
    room: u32,
    day: u32,
    timeslot: u32,
}

/// What holds a reserved slot: the sequence number of the write that reserved
/// it (in its own side's log, for a merged write), whether it was merged, and
/// the name of the key that reserved it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Holder {
    seq: u64,
    merged: bool,
    owner: Option<String>,
}

/// Whether a cancel by `by` may remove a reservation held by `owner`.
///
/// A reservation made with a key belongs to that key's name: only the same
/// name, or an administrator's key, may cancel it. Without keys on either
/// side there is no one to tell apart, and anyone may cancel, as roomcast
/// always allowed. Safe because every replica applies the same entries, each
/// carrying its authenticated `by`, so every replica decides the same.
pub fn may_cancel(owner: Option<&str>, by: Option<&Principal>) -> bool {
    match (owner, by) {
        (Some(owner), Some(by)) => by.admin || by.name == owner,
        (None, _) | (_, None) => true,
    }
}

/// The last write a client made, kept to answer its retries without re-running it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Session {
    request: u64,
    outcome: WriteOutcome,
    seq: u64,
}

/// The replicated state: reservations, per-room versions and client sessions.
/// This is exactly what a snapshot carries.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ReservationTable {
    epoch: u64,
    applied: LogPosition,
    booked: BTreeMap<SlotKey, Holder>,
    room_changed: BTreeMap<u32, u64>,
    sessions: BTreeMap<u64, Session>,
    /// Sessions by the sequence number of their last write, to evict the oldest.
    sessions_by_age: BTreeMap<u64, u64>,
    /// Origins of the merged writes applied: a merge runs once.
    merged: BTreeSet<LogPosition>,
    /// The latest writes a merge had to drop, oldest first.
    conflicts: VecDeque<Conflict>,
    conflicts_total: u64,
    /// The first applied entry of each leadership (term and leader), oldest
    /// first: which history the table holds, even once its entries are
    /// compacted, so that a snapshot from the other side of a healed
    /// partition is recognised as another history instead of installed.
    lineage: VecDeque<LogPosition>,
}

/// What a retry of a merged write is told where the merge ran: done as
/// asked, or refused as the `conflict` it became.
pub fn merged_outcome(write: &Op, conflict: Option<&Conflict>) -> WriteOutcome {
    match (conflict, write) {
        (Some(conflict), _) => conflict.outcome(),
        (None, Op::Cancel(_)) => WriteOutcome::Cancelled,
        (None, _) => WriteOutcome::Reserved,
    }
}

/// What a client's write resolved to when its entry was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The entry ran, with this outcome.
    Executed(WriteOutcome),
    /// The same request already ran; this is its original outcome.
    Replayed(WriteOutcome),
    /// Not a client write (genesis), or a request older than the client's last.
    Internal,
    /// A write from the other side of a healed partition was replayed; the
    /// conflict, if it had to be dropped.
    Merged(Option<Conflict>),
}

impl ReservationTable {
    /// The last entry applied.
    pub fn applied(&self) -> LogPosition {
        self.applied
    }

    /// The data epoch (0 until the genesis entry is applied).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of reserved slots.
    pub fn len(&self) -> usize {
        self.booked.len()
    }

    /// True when nothing is reserved.
    pub fn is_empty(&self) -> bool {
        self.booked.is_empty()
    }

    /// The stored outcome of a client's request, if it is the client's last write.
    pub fn outcome_of(&self, client: u64, request: u64) -> Option<&WriteOutcome> {
        self.sessions.get(&client).filter(|s| s.request == request).map(|s| &s.outcome)
    }

    /// True when the client has since sent a newer write, so this one is stale.
    pub fn is_superseded(&self, client: u64, request: u64) -> bool {
        self.sessions.get(&client).is_some_and(|s| s.request > request)
    }

    /// True when this request, or a newer one of the client's, was applied:
    /// the client was answered, or gave up on it and moved on.
    pub fn has_reached(&self, client: u64, request: u64) -> bool {
        self.sessions.get(&client).is_some_and(|s| s.request >= request)
    }

    /// The room's reservations in display order, with their version; `None` if
    /// the room is not in the catalog.
    pub fn check(&self, catalog: &Catalog, room: &str) -> Option<(Vec<Reservation>, RoomVersion)> {
        let index = catalog.room_index(room)?;
        let from = SlotKey { room: index, day: 0, timeslot: 0 };
        let to = SlotKey { room: index, day: u32::MAX, timeslot: u32::MAX };
        let slots = self
            .booked
            .range(from..=to)
            .filter_map(|(&key, holder)| Some(Reservation { slot: catalog.name(key)?, owner: holder.owner.clone() }))
            .collect();
        let seq = self.room_changed.get(&index).copied().unwrap_or(0);
        Some((slots, RoomVersion { epoch: self.epoch, seq }))
    }

    /// Every reservation, in (room, day, timeslot) order; for tests and status.
    pub fn all(&self, catalog: &Catalog) -> Vec<Slot> {
        self.booked.keys().filter_map(|&key| catalog.name(key)).collect()
    }

    /// This table under another catalog, for a server restarted with a
    /// changed catalog file: every reservation keeps its names, which `to`
    /// must still hold. Otherwise the reservations it lacks, and nothing changes.
    pub fn remap(&self, from: &Catalog, to: &Catalog) -> Result<ReservationTable, Vec<Reservation>> {
        let mut booked = BTreeMap::new();
        let mut lacking = Vec::new();
        for (&key, holder) in &self.booked {
            let resolved = from.name(key).ok_or(None).and_then(|slot| to.resolve(&slot).map_err(|_| Some(slot)));
            match resolved {
                Ok((new_key, _)) => {
                    booked.insert(new_key, holder.clone());
                }
                Err(slot) => {
                    // Indices beyond the stored catalog: named by number.
                    let number = |i: u32| format!("#{i}");
                    let slot = slot.unwrap_or_else(|| Slot {
                        room: number(key.room),
                        timeslot: number(key.timeslot),
                        day: number(key.day),
                    });
                    lacking.push(Reservation { slot, owner: holder.owner.clone() });
                }
            }
        }
        if !lacking.is_empty() {
            return Err(lacking);
        }
        let room_changed = self
            .room_changed
            .iter()
            .filter_map(|(&room, &seq)| Some((to.room_index(from.rooms.get(room as usize)?)?, seq)))
            .collect();
        Ok(ReservationTable { booked, room_changed, ..self.clone() })
    }

    /// The position of the applied entry at `seq`, as the lineage tells it;
    /// `None` beyond the applied entries or before the oldest leadership
    /// remembered.
    pub fn applied_at(&self, seq: u64) -> Option<LogPosition> {
        if seq == 0 {
            return Some(LogPosition::default());
        }
        if seq > self.applied.seq {
            return None;
        }
        let later = self.lineage.partition_point(|first| first.seq <= seq);
        let first = self.lineage.get(later.checked_sub(1)?)?;
        Some(LogPosition { seq, ..*first })
    }

    fn extend_lineage(&mut self, position: LogPosition) {
        let same_leadership = |first: &LogPosition| (first.term, first.leader) == (position.term, position.leader);
        if !self.lineage.back().is_some_and(same_leadership) {
            self.lineage.push_back(position);
            if self.lineage.len() > MAX_LINEAGE {
                self.lineage.pop_front();
            }
        }
    }

    /// True when the merged write from `origin` was applied.
    pub fn has_merged(&self, origin: LogPosition) -> bool {
        self.merged.contains(&origin)
    }

    /// How many writes merges dropped, and the latest of them.
    pub fn conflicts(&self) -> (u64, impl DoubleEndedIterator<Item = &Conflict>) {
        (self.conflicts_total, self.conflicts.iter())
    }

    /// CRC-32 of every reservation in order: equal tables give equal digests,
    /// so `status` shows at a glance whether the servers agree.
    pub fn digest(&self, catalog: &Catalog) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        for slot in self.all(catalog) {
            hasher.update(slot.to_string().as_bytes());
            hasher.update(b"\n");
        }
        hasher.finalize()
    }

    /// Applies the next log entry. Entries must come in log order; the caller
    /// (the replication layer) guarantees it.
    pub fn apply(&mut self, catalog: &Catalog, entry: &Entry) -> Applied {
        debug_assert_eq!(entry.position.seq, self.applied.seq + 1, "entries applied out of order");
        self.applied = entry.position;
        self.extend_lineage(entry.position);
        let slot = match &entry.op {
            Op::Genesis { epoch } => {
                if self.epoch == 0 {
                    self.epoch = *epoch;
                }
                return Applied::Internal;
            }
            Op::Reserve(slot) | Op::Cancel(slot) => slot,
            Op::Merged { origin, since, write } => {
                let conflict = self.replay_merged(catalog, *origin, *since, write, entry);
                return Applied::Merged(conflict);
            }
        };
        if let Some(outcome) = self.outcome_of(entry.client, entry.request) {
            return Applied::Replayed(outcome.clone());
        }
        if self.is_superseded(entry.client, entry.request) {
            return Applied::Internal;
        }
        let outcome = self.execute(catalog, entry, slot);
        self.remember(entry.client, entry.request, outcome.clone(), entry.position.seq);
        Applied::Executed(outcome)
    }

    fn execute(&mut self, catalog: &Catalog, entry: &Entry, slot: &Slot) -> WriteOutcome {
        let (seq, by) = (entry.position.seq, entry.by.as_ref());
        let (key, spelled) = match catalog.resolve(slot) {
            Ok(resolved) => resolved,
            Err(refusal) => return WriteOutcome::Refused(refusal),
        };
        let owner = by.map(|p| p.name.clone());
        let outcome = match (&entry.op, self.booked.get(&key)) {
            (Op::Reserve(_), None) => {
                self.booked.insert(key, Holder { seq, merged: false, owner });
                WriteOutcome::Reserved
            }
            (Op::Reserve(_), Some(_)) => WriteOutcome::Refused(Refusal::AlreadyReserved(spelled)),
            (Op::Cancel(_), Some(holder)) if !may_cancel(holder.owner.as_deref(), by) => {
                let owner = holder.owner.clone().unwrap_or_default();
                WriteOutcome::Refused(Refusal::NotOwner { slot: spelled, owner })
            }
            (Op::Cancel(_), Some(_)) => {
                self.booked.remove(&key);
                WriteOutcome::Cancelled
            }
            (Op::Cancel(_), None) => WriteOutcome::Refused(Refusal::NotReserved(spelled)),
            (Op::Genesis { .. } | Op::Merged { .. }, _) => unreachable!("handled by apply"),
        };
        if !matches!(outcome, WriteOutcome::Refused(_)) {
            self.room_changed.insert(key.room, seq);
        }
        outcome
    }

    /// Books `key` for `holder` unless it is taken.
    fn reserve(&mut self, key: SlotKey, holder: Holder) -> bool {
        match self.booked.entry(key) {
            MapEntry::Vacant(free) => {
                free.insert(holder);
                true
            }
            MapEntry::Occupied(_) => false,
        }
    }

    /// Replays a write committed on the other side of a healed partition
    /// after this side's history. A reservation is made if the slot is free.
    /// A cancellation is done if the slot is held by a reservation both sides
    /// knew (made before the histories split at `since`) or by one merged
    /// from the other side; otherwise this side reserved the slot anew, and
    /// the cancellation is dropped. What is dropped is a conflict, returned
    /// and kept for `status`.
    fn replay_merged(
        &mut self,
        catalog: &Catalog,
        origin: LogPosition,
        since: u64,
        write: &Op,
        entry: &Entry,
    ) -> Option<Conflict> {
        if !self.merged.insert(origin) || self.request_done(entry.client, entry.request) {
            // The same request also ran here and did its work (its run was
            // still in flight when the merge was sequenced): nothing to replay.
            return None;
        }
        let (Op::Reserve(slot) | Op::Cancel(slot)) = write else { return None };
        let (key, spelled) = catalog.resolve(slot).ok()?; // refused on its own side as well
        let reserve = matches!(write, Op::Reserve(_));
        let owner = entry.by.as_ref().map(|p| p.name.clone());
        // A merged cancel needs no ownership check here: the reservation it
        // may remove (known to both sides, or merged from the other) has the
        // same owner as where the cancel was allowed.
        let done = match write {
            Op::Reserve(_) => self.reserve(key, Holder { seq: origin.seq, merged: true, owner }),
            _ => match self.booked.get(&key) {
                Some(holder) if holder.seq < since || holder.merged => self.booked.remove(&key).is_some(),
                Some(_) => false,
                None => true, // cancelled on both sides
            },
        };
        let conflict = Conflict { slot: spelled, reserve, client: entry.client, request: entry.request };
        // A retry of the request, here, gets what the merge did.
        let outcome = merged_outcome(write, (!done).then_some(&conflict));
        if !self.is_superseded(entry.client, entry.request) {
            self.remember(entry.client, entry.request, outcome, entry.position.seq);
        }
        if done {
            self.room_changed.insert(key.room, entry.position.seq);
            return None;
        }
        self.conflicts_total += 1;
        self.conflicts.push_back(conflict.clone());
        if self.conflicts.len() > MAX_CONFLICTS {
            self.conflicts.pop_front();
        }
        Some(conflict)
    }

    /// True when this client request ran here and changed the table.
    fn request_done(&self, client: u64, request: u64) -> bool {
        self.sessions.get(&client).is_some_and(|s| {
            s.request == request && matches!(s.outcome, WriteOutcome::Reserved | WriteOutcome::Cancelled)
        })
    }

    fn remember(&mut self, client: u64, request: u64, outcome: WriteOutcome, seq: u64) {
        if let Some(old) = self.sessions.insert(client, Session { request, outcome, seq }) {
            self.sessions_by_age.remove(&old.seq);
        }
        self.sessions_by_age.insert(seq, client);
        while self.sessions.len() > MAX_SESSIONS {
            let Some((_, oldest)) = self.sessions_by_age.pop_first() else { break };
            self.sessions.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(room: &str, timeslot: &str, day: &str) -> Slot {
        Slot { room: room.into(), timeslot: timeslot.into(), day: day.into() }
    }

    struct Log {
        table: ReservationTable,
        catalog: Catalog,
        seq: u64,
    }

    impl Log {
        fn new() -> Self {
            Log { table: ReservationTable::default(), catalog: Catalog::default(), seq: 0 }
        }

        fn run(&mut self, client: u64, request: u64, op: Op) -> Applied {
            self.run_as(None, client, request, op)
        }

        fn run_as(&mut self, by: Option<&Principal>, client: u64, request: u64, op: Op) -> Applied {
            self.seq += 1;
            let entry = Entry { position: LogPosition::new(1, self.seq), client, request, by: by.cloned(), op };
            self.table.apply(&self.catalog, &entry)
        }
    }

    /// A merged write from the other side's log position `(9, origin_seq)`,
    /// whose histories split at `since`.
    fn merged(origin_seq: u64, since: u64, write: Op) -> Op {
        Op::Merged { origin: LogPosition::new(9, origin_seq), since, write: Box::new(write) }
    }

    #[test]
    fn merges_replay_the_other_sides_writes_once_and_record_what_they_drop() {
        let mut log = Log::new();
        let (old, taken, free) = (
            slot("SA318", "8:30-9:30", "Monday"),
            slot("SA318", "9:30-10:30", "Monday"),
            slot("SA318", "8:30-9:30", "Friday"),
        );
        log.run(1, 1, Op::Reserve(old.clone())); // seq 1, before the split at 2
        log.run(2, 1, Op::Reserve(taken.clone())); // seq 2, this side only
        // The other side cancelled the old reservation and reserved `taken` and `free`.
        assert_eq!(log.run(3, 1, merged(2, 2, Op::Cancel(old.clone()))), Applied::Merged(None));
        let conflict = Conflict { slot: taken.clone(), reserve: true, client: 3, request: 2 };
        assert_eq!(log.run(3, 2, merged(3, 2, Op::Reserve(taken.clone()))), Applied::Merged(Some(conflict.clone())));
        assert_eq!(log.run(3, 3, merged(4, 2, Op::Reserve(free.clone()))), Applied::Merged(None));
        assert_eq!(log.run(3, 3, merged(4, 2, Op::Reserve(free.clone()))), Applied::Merged(None), "a merge runs once");
        assert_eq!(log.table.all(&log.catalog), [taken.clone(), free.clone()]);
        // A cancellation of a slot this side reserved anew is dropped too.
        let cancel = log.run(3, 4, merged(5, 2, Op::Cancel(taken.clone())));
        assert_eq!(cancel, Applied::Merged(Some(Conflict { slot: taken, reserve: false, client: 3, request: 4 })));
        let (total, latest) = log.table.conflicts();
        assert_eq!((total, latest.count()), (2, 2));
    }

    #[test]
    fn a_request_that_ran_on_both_sides_is_merged_only_where_it_was_refused() {
        let mut log = Log::new();
        let (mine, theirs) = (slot("SA318", "8:30-9:30", "Monday"), slot("SA318", "9:30-10:30", "Monday"));
        // Client 5's request 1 reserved `mine` here and on the other side: done once.
        log.run(5, 1, Op::Reserve(mine.clone()));
        assert_eq!(log.run(5, 1, merged(7, 1, Op::Reserve(mine.clone()))), Applied::Merged(None));
        assert_eq!(log.table.outcome_of(5, 1), Some(&WriteOutcome::Reserved), "retries still hear it was done");
        assert_eq!(log.table.conflicts().0, 0, "no conflict with itself");
        // Client 6's request 1 was refused here (slot taken) but done there: a conflict to report.
        log.run(4, 1, Op::Reserve(theirs.clone()));
        log.run(6, 1, Op::Reserve(theirs.clone()));
        let conflict = Conflict { slot: theirs, reserve: true, client: 6, request: 1 };
        assert_eq!(log.run(6, 1, merged(8, 1, Op::Reserve(conflict.slot.clone()))), Applied::Merged(Some(conflict)));
    }

    #[test]
    fn reserve_then_reserve_again_is_refused() {
        let mut log = Log::new();
        let s = slot("me4326", "8:30-9:30", "friday");
        assert_eq!(log.run(1, 1, Op::Reserve(s.clone())), Applied::Executed(WriteOutcome::Reserved));
        assert_eq!(
            log.run(2, 1, Op::Reserve(s)),
            Applied::Executed(WriteOutcome::Refused(Refusal::AlreadyReserved(slot("ME4326", "8:30-9:30", "Friday"))))
        );
    }

    #[test]
    fn unknown_names_are_refused_by_part() {
        let mut log = Log::new();
        let cases = [
            (slot("XX1", "8:30-9:30", "Monday"), Refusal::UnknownRoom("XX1".into())),
            (slot("SA318", "7:00-8:00", "Monday"), Refusal::UnknownTimeslot("7:00-8:00".into())),
            (slot("SA318", "8:30-9:30", "Sunday"), Refusal::UnknownDay("Sunday".into())),
        ];
        for (i, (s, want)) in cases.into_iter().enumerate() {
            let got = log.run(1, i as u64 + 1, Op::Reserve(s));
            assert_eq!(got, Applied::Executed(WriteOutcome::Refused(want)), "case #{i}");
        }
        assert!(log.table.is_empty());
    }

    #[test]
    fn check_lists_by_day_then_timeslot_and_versions_change_only_on_change() {
        let mut log = Log::new();
        log.run(0, 0, Op::Genesis { epoch: 77 });
        let (_, v0) = log.table.check(&log.catalog, "SA318").unwrap();
        log.run(1, 1, Op::Reserve(slot("SA318", "9:30-10:30", "Friday")));
        log.run(1, 2, Op::Reserve(slot("SA318", "8:30-9:30", "Friday")));
        log.run(1, 3, Op::Reserve(slot("SA318", "19:30-21:00", "Monday")));
        let (slots, v1) = log.table.check(&log.catalog, "sa318").unwrap();
        assert_eq!(
            slots.into_iter().map(|r| r.slot).collect::<Vec<_>>(),
            vec![
                slot("SA318", "19:30-21:00", "Monday"),
                slot("SA318", "8:30-9:30", "Friday"),
                slot("SA318", "9:30-10:30", "Friday"),
            ]
        );
        assert_ne!(v0, v1);
        assert_eq!(v1, RoomVersion { epoch: 77, seq: 4 });
        log.run(1, 4, Op::Reserve(slot("SA412", "8:30-9:30", "Friday")));
        log.run(1, 5, Op::Reserve(slot("SA318", "8:30-9:30", "Friday"))); // refused: no change
        assert_eq!(log.table.check(&log.catalog, "SA318").unwrap().1, v1);
        assert_eq!(log.table.check(&log.catalog, "nowhere"), None);
    }

    #[test]
    fn a_retried_write_runs_once_and_replays_its_outcome() {
        let mut log = Log::new();
        let s = slot("SA318", "8:30-9:30", "Monday");
        assert_eq!(log.run(5, 1, Op::Reserve(s.clone())), Applied::Executed(WriteOutcome::Reserved));
        assert_eq!(log.run(5, 1, Op::Reserve(s.clone())), Applied::Replayed(WriteOutcome::Reserved));
        assert_eq!(log.run(5, 2, Op::Cancel(s.clone())), Applied::Executed(WriteOutcome::Cancelled));
        assert_eq!(log.run(5, 1, Op::Reserve(s)), Applied::Internal, "an older request never runs");
        assert!(log.table.is_empty());
        let reached: Vec<bool> = (1..=3).map(|request| log.table.has_reached(5, request)).collect();
        assert_eq!(reached, [true, true, false], "requests 1 and 2 were answered or passed, 3 not yet");
        assert!(!log.table.has_reached(6, 1), "a client never heard from");
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes_first() {
        let mut log = Log::new();
        for client in 0..(MAX_SESSIONS as u64 + 5) {
            log.run(client + 1, 1, Op::Cancel(slot("SA318", "8:30-9:30", "Monday")));
        }
        assert_eq!(log.table.sessions.len(), MAX_SESSIONS);
        assert!(log.table.outcome_of(1, 1).is_none());
        assert!(log.table.outcome_of(MAX_SESSIONS as u64 + 5, 1).is_some());
    }

    #[test]
    fn who_may_cancel_a_reservation() {
        let user = |name: &str| Principal { name: name.into(), admin: false };
        let admin = Principal { name: "root".into(), admin: true };
        let cases: [(Option<&str>, Option<Principal>, bool); 6] = [
            (Some("alice"), Some(user("alice")), true),
            (Some("alice"), Some(user("bob")), false),
            (Some("alice"), Some(admin.clone()), true),
            (None, Some(user("bob")), true),
            (Some("alice"), None, true),
            (None, None, true),
        ];
        for (i, (owner, by, want)) in cases.into_iter().enumerate() {
            let got = may_cancel(owner, by.as_ref());
            assert_eq!(got, want, "#{i}: owner {owner:?}, by {by:?}: got {got}, want {want}");
        }
    }

    #[test]
    fn a_reservation_belongs_to_its_key_and_check_shows_whose() {
        let mut log = Log::new();
        let (alice, bob) =
            (Principal { name: "alice".into(), admin: false }, Principal { name: "bob".into(), admin: false });
        let admin = Principal { name: "ops".into(), admin: true };
        let s = slot("ME4326", "8:30-9:30", "Friday");
        assert_eq!(log.run_as(Some(&alice), 1, 1, Op::Reserve(s.clone())), Applied::Executed(WriteOutcome::Reserved));
        let (listed, _) = log.table.check(&log.catalog, "ME4326").expect("a room");
        assert_eq!(listed[0].to_string(), "ME4326 8:30-9:30 Friday (alice)");
        let refused = WriteOutcome::Refused(Refusal::NotOwner { slot: s.clone(), owner: "alice".into() });
        assert_eq!(log.run_as(Some(&bob), 2, 1, Op::Cancel(s.clone())), Applied::Executed(refused));
        assert_eq!(log.table.len(), 1, "bob's cancel changed nothing");
        assert_eq!(log.run_as(Some(&admin), 3, 1, Op::Cancel(s)), Applied::Executed(WriteOutcome::Cancelled));
        assert!(log.table.is_empty());
    }

    #[test]
    fn a_table_moves_to_a_catalog_that_holds_its_reservations_and_refuses_one_that_does_not() {
        let mut log = Log::new();
        let alice = Principal { name: "alice".into(), admin: false };
        log.run_as(Some(&alice), 1, 1, Op::Reserve(slot("SA412", "19:30-21:00", "Friday")));
        log.run(2, 1, Op::Reserve(slot("SA318", "8:30-9:30", "Monday")));
        // The same names in another order, and one room more: every reservation keeps its names.
        let mut reordered = Catalog::default();
        reordered.rooms.reverse();
        reordered.rooms.push("NEW1".into());
        reordered.days.reverse();
        let moved = log.table.remap(&log.catalog, &reordered).expect("every name is still there");
        assert_eq!(moved.all(&reordered).len(), 2);
        let (listed, _) = moved.check(&reordered, "SA412").expect("a room");
        assert_eq!(listed[0].to_string(), "SA412 19:30-21:00 Friday (alice)");
        let names = |table: &ReservationTable, catalog: &Catalog| {
            let mut all: Vec<String> = table.all(catalog).iter().map(ToString::to_string).collect();
            all.sort();
            all
        };
        assert_eq!(names(&moved, &reordered), names(&log.table, &log.catalog), "the same reservations");
        // A catalog without SA412: the reservation that names it is what stops the move.
        let mut shorter = Catalog::default();
        shorter.rooms.truncate(2);
        let lacking = log.table.remap(&log.catalog, &shorter).expect_err("SA412 is gone");
        assert_eq!(lacking.iter().map(ToString::to_string).collect::<Vec<_>>(), ["SA412 19:30-21:00 Friday (alice)"]);
    }

    #[test]
    fn fingerprint_depends_on_every_list_and_on_boundaries() {
        let base = Catalog::default();
        let mut moved = base.clone();
        moved.rooms[0] = "SA31".into();
        moved.rooms[1] = "8ME4494".into();
        assert_ne!(base.fingerprint(), moved.fingerprint());
        let mut days = base.clone();
        days.days.pop();
        assert_ne!(base.fingerprint(), days.fingerprint());
        assert_eq!(base.fingerprint(), Catalog::default().fingerprint());
    }
}
