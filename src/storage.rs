//! Durable state (`server --data-dir DIR`): a snapshot of the reservation
//! table plus an append-only log of what changed after it.
//!
//! ```text
//! DIR/snapshot   "RCSNAP04" | length u64 LE | CRC-32 u32 LE | (catalog, table) (bincode)
//! DIR/log        "RCLOG003" | record*          (the first record holds the catalog)
//! record         length u32 LE | CRC-32 of length u32 LE | CRC-32 of payload u32 LE | Record (bincode)
//! ```
//!
//! Both files record the catalog they were written under, because the table
//! stores rooms, timeslots and days by their place in it. A server started
//! with a different catalog carries its reservations over by name if the new
//! catalog holds every one of them, and otherwise refuses to start, naming
//! the reservations it would lose.
//!
//! Each save is one [`Record`]: "the log from `replaced_from` on is now
//! `entries`" (which covers both appends and a new leader replacing
//! uncommitted entries) and "the commit point is now `commit`". One record
//! per save means a crash tears at most the last record, never one followed
//! by an intact one. The log is fsynced before the server sends anything that
//! depends on it, so an acknowledgement is never given for an entry that is
//! only in memory.
//!
//! A record cut short at the end of the log, or a tail of zeros (a file
//! extended but not written when the machine stopped), is a torn write: it
//! is dropped (nothing sent depended on it). The length has its own checksum,
//! so a damaged length is never mistaken for a short write. A bad record anywhere
//! else, or a bad snapshot, is corruption: the server refuses to start rather
//! than come back with less than it acknowledged. Every [`SNAPSHOT_EVERY`]
//! entries the table is written to a new snapshot (write, fsync, rename) and
//! the log restarts after it; a crash between the two renames leaves the new
//! snapshot with the old log, whose entries up to the snapshot are skipped.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::node::replicated_log::{MAX_SNAPSHOT, MAX_STORED};
use crate::node::{LogChanges, ReplicatedLog};
use crate::rooms::{Catalog, ReservationTable};
use crate::wire::{Entry, LogPosition, Reservation};

pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"RCSNAP04";
/// The snapshot formats before slot holders and merge records (1), before
/// the table's lineage (2), and before owners and the catalog (3); refused
/// with their own message.
const OLD_SNAPSHOT_MAGICS: [&[u8; 8]; 3] = [b"RCSNAP01", b"RCSNAP02", b"RCSNAP03"];
pub(crate) const LOG_MAGIC: &[u8; 8] = b"RCLOG003";
/// The log formats before one record per save (1) and before owners and the
/// catalog (2); refused with their own message.
const OLD_LOG_MAGICS: [&[u8; 8]; 2] = [b"RCLOG001", b"RCLOG002"];
const SNAPSHOT_FILE: &str = "snapshot";
const LOG_FILE: &str = "log";
/// A new snapshot after this many entries stored since the last one.
const SNAPSHOT_EVERY: u64 = 10_000;
/// The largest record written or read back.
const MAX_RECORD: usize = 64 << 20;

/// One save, as stored in the log file.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The catalog the log was written under: in its first record only.
    catalog: Option<Catalog>,
    /// The log from this sequence number on is now `entries`.
    replaced_from: Option<u64>,
    entries: Vec<Entry>,
    /// The commit point moved here.
    commit: Option<u64>,
}

/// Why the data directory cannot be used.
#[derive(Debug)]
pub enum StorageError {
    /// Reading or writing a file failed.
    Io { path: PathBuf, error: io::Error },
    /// A file's contents are damaged or inconsistent.
    Corrupt { path: PathBuf, detail: String },
    /// The log or snapshot was written by an older roomcast in a format this one does not read.
    OldFormat { path: PathBuf },
    /// A change is larger than a record or snapshot may be.
    TooLarge { path: PathBuf, bytes: usize, limit: usize },
    /// The data was written under another catalog, which held reservations the new one lacks.
    CatalogChanged { dir: PathBuf, lacking: Vec<Reservation> },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, error } => {
                write!(f, "cannot use {}: {error}", path.display())?;
                if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) {
                    write!(f, "; check that the data directory exists and this user may write to it")?;
                }
                Ok(())
            }
            StorageError::Corrupt { path, detail } => write!(
                f,
                "{} is damaged ({detail}); the server will not start with less than it stored. \
                 Restore the file from a backup, or move the data directory away to rejoin empty \
                 and copy the group's state from the other servers",
                path.display()
            ),
            StorageError::OldFormat { path } => write!(
                f,
                "{} was written by an older roomcast in a format this version does not read; move the data \
                 directory away to rejoin empty and copy the group's state from the other servers",
                path.display()
            ),
            StorageError::CatalogChanged { dir, lacking } => {
                let shown: Vec<String> = lacking.iter().take(10).map(ToString::to_string).collect();
                let more = match lacking.len() {
                    n if n > 10 => format!(" and {} more", n - 10),
                    _ => String::new(),
                };
                write!(
                    f,
                    "{} was written under another catalog of rooms, timeslots and days, and {} of its \
                     reservations name one the catalog given now lacks: {}{more}. Put them back in the catalog \
                     (or cancel them first with the old one), or move the data directory away to rejoin empty",
                    dir.display(),
                    lacking.len(),
                    shown.join(", ")
                )
            }
            StorageError::TooLarge { path, bytes, limit } => write!(
                f,
                "cannot store {bytes} bytes in one piece in {} (the limit is {limit}); \
                 this is a bug in roomcast: please report it",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {}

/// The open data directory.
pub struct Storage {
    dir: PathBuf,
    log_path: PathBuf,
    log: File,
    /// Entries stored since the last snapshot.
    since_snapshot: u64,
    /// The catalog written with the snapshot and the log.
    catalog: Catalog,
}

impl Storage {
    /// Opens (or creates) `dir` and reads back the log it holds, under
    /// `catalog` (moving the reservations over if the data was written under
    /// another one that names them all).
    pub fn open(dir: &Path, catalog: &Catalog) -> Result<(Storage, ReplicatedLog), StorageError> {
        create_dir(dir)?;
        let log_path = dir.join(LOG_FILE);
        let snapshot = read_snapshot(&dir.join(SNAPSHOT_FILE))?;
        let log_catalog = read_log_catalog(&log_path)?;
        // What was applied was applied under the catalog it was written with: replay it so.
        let stored = snapshot.as_ref().map(|(c, _)| c.clone()).or(log_catalog).unwrap_or_else(|| catalog.clone());
        let mut log = snapshot.map_or_else(ReplicatedLog::default, |(_, table)| ReplicatedLog::recovered(table));
        let since_snapshot = replay_log(&log_path, &mut log, &stored)?;
        let file = match OpenOptions::new().append(true).open(&log_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_log(&log_path, catalog)?,
            Err(error) => return Err(io_error(&log_path, error)),
        };
        let mut storage =
            Storage { dir: dir.to_path_buf(), log_path, log: file, since_snapshot, catalog: catalog.clone() };
        if stored != *catalog {
            let table = log
                .table()
                .remap(&stored, catalog)
                .map_err(|lacking| StorageError::CatalogChanged { dir: dir.to_path_buf(), lacking })?;
            info!(
                "the catalog changed since {} was written; its {} reservations carry over by name",
                dir.display(),
                table.len()
            );
            log.replace_table(table);
            storage.write_snapshot(&log)?;
        }
        let at = log.table().applied();
        if log.last().seq > 0 {
            info!("recovered {} reservations up to {at:?}, log up to {:?}", log.table().len(), log.last());
        }
        Ok((storage, log))
    }

    /// Makes `changes` durable (fsync) before the caller sends anything.
    pub fn save(&mut self, log: &ReplicatedLog, changes: LogChanges) -> Result<(), StorageError> {
        if changes.snapshot {
            return self.write_snapshot(log); // it holds the entries and the commit too
        }
        self.since_snapshot += changes.entries.len() as u64;
        if self.since_snapshot >= SNAPSHOT_EVERY {
            return self.write_snapshot(log); // it holds these changes too
        }
        let record = Record {
            catalog: None,
            replaced_from: changes.replaced_from,
            entries: changes.entries,
            commit: changes.commit,
        };
        let mut bytes = Vec::new();
        encode_record(&mut bytes, &record, &self.log_path)?;
        let path = &self.log_path;
        self.log.write_all(&bytes).map_err(|error| io_error(path, error))?;
        self.log.sync_data().map_err(|error| io_error(path, error))
    }

    /// Writes the table as the new snapshot and restarts the log with the
    /// entries after it.
    fn write_snapshot(&mut self, log: &ReplicatedLog) -> Result<(), StorageError> {
        let snapshot_path = self.dir.join(SNAPSHOT_FILE);
        let table = bincode::serde::encode_to_vec((&self.catalog, log.table()), bincode::config::standard())
            .map_err(|e| corrupt(&snapshot_path, format!("cannot encode the snapshot: {e}")))?;
        if table.len() > MAX_SNAPSHOT {
            return Err(StorageError::TooLarge { path: snapshot_path, bytes: table.len(), limit: MAX_SNAPSHOT });
        }
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&(table.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&table).to_le_bytes());
        bytes.extend_from_slice(&table);
        replace_file(&snapshot_path, &bytes)?;

        let applied = log.table().applied().seq;
        let mut fresh = LOG_MAGIC.to_vec();
        let record = Record {
            catalog: Some(self.catalog.clone()),
            replaced_from: Some(applied + 1),
            entries: log.entries_after(applied),
            commit: Some(log.commit()),
        };
        encode_record(&mut fresh, &record, &self.log_path)?;
        replace_file(&self.log_path, &fresh)?;
        self.log = open_for_append(&self.log_path)?;
        self.since_snapshot = 0;
        Ok(())
    }
}

fn io_error(path: &Path, error: io::Error) -> StorageError {
    StorageError::Io { path: path.to_path_buf(), error }
}

fn corrupt(path: &Path, detail: impl Into<String>) -> StorageError {
    StorageError::Corrupt { path: path.to_path_buf(), detail: detail.into() }
}

/// The file's contents, or `None` if it does not exist.
fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error(path, error)),
    }
}

/// What is wrong with the bytes of a data file; the readers by path add the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Written by an older roomcast in a format this one does not read.
    OldFormat,
    /// Damaged or inconsistent, and why.
    Corrupt(String),
}

impl FormatError {
    /// The error for the file at `path`.
    fn at(self, path: &Path) -> StorageError {
        match self {
            FormatError::OldFormat => StorageError::OldFormat { path: path.to_path_buf() },
            FormatError::Corrupt(detail) => corrupt(path, detail),
        }
    }
}

/// The stored snapshot, with the catalog it was written under; `None` if there is none.
fn read_snapshot(path: &Path) -> Result<Option<(Catalog, ReservationTable)>, StorageError> {
    let Some(bytes) = read_if_exists(path)? else { return Ok(None) };
    parse_snapshot(&bytes).map(Some).map_err(|e| e.at(path))
}

/// Parses a snapshot file's contents: the catalog it was written under and
/// the table. Never panics, and allocates at most [`MAX_SNAPSHOT`] for the table.
pub fn parse_snapshot(bytes: &[u8]) -> Result<(Catalog, ReservationTable), FormatError> {
    let bad = |detail: String| FormatError::Corrupt(detail);
    let header = SNAPSHOT_MAGIC.len() + 12;
    match bytes.get(..SNAPSHOT_MAGIC.len()) {
        Some(magic) if OLD_SNAPSHOT_MAGICS.iter().any(|old| magic == *old) => return Err(FormatError::OldFormat),
        Some(magic) if magic == SNAPSHOT_MAGIC && bytes.len() >= header => {}
        _ => return Err(bad("not a roomcast snapshot (bad header)".into())),
    }
    let length = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    let table = &bytes[header..];
    if table.len() as u64 != length {
        return Err(bad(format!("{} bytes of table, the header says {length}", table.len())));
    }
    if crc32fast::hash(table) != crc {
        return Err(bad("checksum mismatch".into()));
    }
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT>();
    let (catalog, table): (Catalog, ReservationTable) = match bincode::serde::decode_from_slice(table, config) {
        Ok((snapshot, used)) if used == table.len() => snapshot,
        Ok(_) => return Err(bad("trailing bytes after the snapshot".into())),
        Err(e) => return Err(bad(e.to_string())),
    };
    check_position("the table's last applied entry", table.applied()).map_err(bad)?;
    Ok((catalog, table))
}

/// Refuses a stored sequence number or term beyond [`MAX_STORED`]: the
/// log's arithmetic (the next entry, a new term) would overflow.
fn check_stored(what: &str, number: u64) -> Result<(), String> {
    match number <= MAX_STORED {
        true => Ok(()),
        false => Err(format!("{what} is {number}, beyond any log (at most {MAX_STORED})")),
    }
}

fn check_position(what: &str, position: LogPosition) -> Result<(), String> {
    check_stored(&format!("the sequence number of {what}"), position.seq)?;
    check_stored(&format!("the term of {what}"), position.term)
}

/// Refuses a record whose sequence numbers or terms are beyond [`MAX_STORED`].
fn check_record(record: &Record) -> Result<(), String> {
    record.replaced_from.map_or(Ok(()), |seq| check_stored("the first sequence number replaced", seq))?;
    record.commit.map_or(Ok(()), |seq| check_stored("the commit point", seq))?;
    record.entries.iter().try_for_each(|entry| check_position("an entry", entry.position))
}

/// The catalog a log file's first record names; `None` without a log.
fn read_log_catalog(path: &Path) -> Result<Option<Catalog>, StorageError> {
    let Some(bytes) = read_if_exists(path)? else { return Ok(None) };
    parse_log_catalog(&bytes).map_err(|e| e.at(path))
}

/// The catalog a log file's contents name in their first record; `None` if
/// that record was cut short (a log that holds nothing yet).
pub fn parse_log_catalog(bytes: &[u8]) -> Result<Option<Catalog>, FormatError> {
    check_log_magic(bytes)?;
    match next_record(&bytes[LOG_MAGIC.len()..]) {
        Ok((Record { catalog: Some(catalog), .. }, _)) => Ok(Some(catalog)),
        Ok(_) => Err(FormatError::Corrupt("its first record does not name the catalog".into())),
        // A log cut short in its first record holds nothing yet.
        Err(RecordError::Torn) => Ok(None),
        Err(RecordError::Bad(detail)) => Err(FormatError::Corrupt(format!("first record: {detail}"))),
    }
}

fn check_log_magic(bytes: &[u8]) -> Result<(), FormatError> {
    match bytes.get(..LOG_MAGIC.len()) {
        Some(magic) if magic == LOG_MAGIC => Ok(()),
        Some(magic) if OLD_LOG_MAGICS.iter().any(|old| magic == *old) => Err(FormatError::OldFormat),
        _ => Err(FormatError::Corrupt("not a roomcast log (bad header)".into())),
    }
}

/// Replays the log file into `log`; returns how many entries it held. A torn
/// last record is cut off the file.
fn replay_log(path: &Path, log: &mut ReplicatedLog, catalog: &Catalog) -> Result<u64, StorageError> {
    let Some(bytes) = read_if_exists(path)? else { return Ok(0) };
    let replayed = replay_log_bytes(&bytes, log, catalog).map_err(|e| e.at(path))?;
    if let Some(offset) = replayed.torn_at {
        warn!("{}: dropping a torn record at byte {offset} (written when the server stopped)", path.display());
        truncate(path, offset)?;
    }
    Ok(replayed.entries)
}

/// What [`replay_log_bytes`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// How many entries the log's records held.
    pub entries: u64,
    /// Where a torn last record starts (a write cut short when the server
    /// stopped): the file is to be cut there. `None`: the log is whole.
    pub torn_at: Option<usize>,
}

/// Replays a log file's contents into `log`, under `catalog` (the one the
/// data was written with). A torn last record is skipped and reported in
/// [`Replayed::torn_at`]; a bad record anywhere else is an error.
pub fn replay_log_bytes(bytes: &[u8], log: &mut ReplicatedLog, catalog: &Catalog) -> Result<Replayed, FormatError> {
    check_log_magic(bytes)?;
    let mut offset = LOG_MAGIC.len();
    let mut replayed = Replayed { entries: 0, torn_at: None };
    while offset < bytes.len() {
        let record = match next_record(&bytes[offset..]) {
            Ok((record, used)) => {
                offset += used;
                record
            }
            Err(RecordError::Bad(detail)) if !zero_tail(&bytes[offset..]) => {
                return Err(FormatError::Corrupt(format!("record at byte {offset}: {detail}")));
            }
            Err(_) => {
                replayed.torn_at = Some(offset);
                break;
            }
        };
        if let Some(from) = record.replaced_from {
            replayed.entries += record.entries.len() as u64;
            log.replay(from, &record.entries).map_err(|d| {
                FormatError::Corrupt(format!(
                    "entries from seq {from} do not follow the stored log (ends at {:?})",
                    d.ours
                ))
            })?;
        }
        if let Some(seq) = record.commit {
            log.commit_to(seq, catalog);
        }
    }
    log.take_changes();
    Ok(replayed)
}

/// True if what follows a record's start is zeros, in whole or after an
/// intact header: a file the system extended but did not write before it
/// stopped. No record is all zeros (the length's checksum never is zero).
fn zero_tail(rest: &[u8]) -> bool {
    let zeros = |bytes: &[u8]| bytes.iter().all(|&b| b == 0);
    zeros(rest) || rest.get(RECORD_HEADER..).is_some_and(zeros)
}

enum RecordError {
    /// The record runs past the end of the file: a write cut short.
    Torn,
    Bad(String),
}

/// Bytes before a record's payload: length, its checksum, the payload's checksum.
pub(crate) const RECORD_HEADER: usize = 12;

fn next_record(bytes: &[u8]) -> Result<(Record, usize), RecordError> {
    let Some(header) = bytes.get(..RECORD_HEADER) else { return Err(RecordError::Torn) };
    let word = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if crc32fast::hash(&header[..4]) != word(4) {
        return Err(RecordError::Bad("damaged record length".into()));
    }
    let (length, crc) = (word(0) as usize, word(8));
    if length > MAX_RECORD {
        return Err(RecordError::Bad(format!("length {length} is beyond any record")));
    }
    let end = RECORD_HEADER + length;
    let Some(payload) = bytes.get(RECORD_HEADER..end) else { return Err(RecordError::Torn) };
    if crc32fast::hash(payload) != crc {
        // A torn write leaves the last record garbled; anything earlier is damage.
        return Err(if end == bytes.len() { RecordError::Torn } else { RecordError::Bad("checksum mismatch".into()) });
    }
    let config = bincode::config::standard().with_limit::<MAX_RECORD>();
    match bincode::serde::decode_from_slice(payload, config) {
        Ok((record, used)) if used == payload.len() => {
            check_record(&record).map(|()| (record, end)).map_err(RecordError::Bad)
        }
        Ok(_) => Err(RecordError::Bad("trailing bytes".into())),
        Err(e) => Err(RecordError::Bad(e.to_string())),
    }
}

fn encode_record(out: &mut Vec<u8>, record: &Record, path: &Path) -> Result<(), StorageError> {
    let too_large = |bytes| StorageError::TooLarge { path: path.to_path_buf(), bytes, limit: MAX_RECORD };
    let payload = bincode::serde::encode_to_vec(record, bincode::config::standard())
        .map_err(|e| corrupt(path, format!("cannot encode a record: {e}")))?;
    if payload.len() > MAX_RECORD {
        return Err(too_large(payload.len()));
    }
    let length = u32::try_from(payload.len()).map_err(|_| too_large(payload.len()))?.to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&crc32fast::hash(&length).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// A new, empty log that names its catalog.
fn create_log(path: &Path, catalog: &Catalog) -> Result<File, StorageError> {
    let mut bytes = LOG_MAGIC.to_vec();
    let record = Record { catalog: Some(catalog.clone()), replaced_from: None, entries: Vec::new(), commit: None };
    encode_record(&mut bytes, &record, path)?;
    replace_file(path, &bytes)?;
    open_for_append(path)
}

fn open_for_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new().append(true).open(path).map_err(|error| io_error(path, error))
}

/// Creates `dir` if needed, and makes its entry in the parent durable: a
/// directory created just before a crash could otherwise vanish with the
/// files the server already counted as stored.
fn create_dir(dir: &Path) -> Result<(), StorageError> {
    let sync = |d: &Path| File::open(d).and_then(|f| f.sync_all());
    fs::create_dir_all(dir).and_then(|()| sync(dir)).map_err(|error| io_error(dir, error))?;
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync(parent).map_err(|error| io_error(parent, error)),
        None => Ok(()),
    }
}

fn truncate(path: &Path, length: usize) -> Result<(), StorageError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|error| io_error(path, error))?;
    file.set_len(length as u64).and_then(|()| file.sync_all()).map_err(|error| io_error(path, error))
}

/// Replaces `path` atomically: a crash leaves either the old or the new file.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let temporary = path.with_extension("new");
    let write = || -> io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|error| io_error(path, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{LogPosition, Op, Slot};

    fn reservation(seq: u64, day: &str) -> Entry {
        let slot = Slot { room: "SA318".into(), timeslot: "8:30-9:30".into(), day: day.into() };
        Entry { position: LogPosition::new(1, seq), client: 7, request: seq, by: None, op: Op::Reserve(slot) }
    }

    /// Opens `dir`, appends reservations for `days` and commits `commit` of them.
    fn store(dir: &Path, days: &[&str], commit: u64) -> ReplicatedLog {
        let catalog = Catalog::default();
        let (mut storage, mut log) = Storage::open(dir, &catalog).expect("open");
        for day in days {
            log.push(reservation(log.last().seq + 1, day));
        }
        log.commit_to(commit, &catalog);
        let changes = log.take_changes().expect("changes");
        storage.save(&log, changes).expect("save");
        log
    }

    fn reopen(dir: &Path) -> Result<ReplicatedLog, StorageError> {
        Storage::open(dir, &Catalog::default()).map(|(_, log)| log)
    }

    #[test]
    fn a_reopened_directory_has_the_entries_and_the_commit_point() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let stored = store(dir.path(), &["Monday", "Tuesday", "Wednesday"], 2);
        let log = reopen(dir.path()).expect("reopen");
        assert_eq!(log.last(), stored.last());
        assert_eq!(log.commit(), 2);
        assert_eq!(log.table(), stored.table());
        assert_eq!(log.table().len(), 2);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("temporary directory");
        store(dir.path(), &["Monday"], 1);
        store(dir.path(), &["Tuesday"], 2);
        let path = dir.path().join(LOG_FILE);
        let length = fs::metadata(&path).expect("log").len();
        let file = OpenOptions::new().write(true).open(&path).expect("log");
        file.set_len(length - 3).expect("cut");
        // The last save (Tuesday, commit 2) lost its tail: all of it is dropped.
        let log = reopen(dir.path()).expect("a torn tail is not an error");
        assert_eq!((log.last().seq, log.commit()), (1, 1));
        // The cut was made permanent: appending after it works.
        store(dir.path(), &["Friday"], 2);
        let log = reopen(dir.path()).expect("reopen");
        assert_eq!((log.last().seq, log.commit(), log.table().len()), (2, 2, 2));
    }

    #[test]
    fn a_tail_of_zeros_is_a_torn_write() {
        let dir = tempfile::tempdir().expect("temporary directory");
        store(dir.path(), &["Monday"], 1);
        store(dir.path(), &["Tuesday"], 2);
        let path = dir.path().join(LOG_FILE);
        let intact = fs::read(&path).expect("log");
        // The whole last record zeroed, then only its payload, then zeros appended.
        let last_start = intact.len() - last_record_length(&intact);
        let mut zeroed = intact.clone();
        zeroed[last_start..].fill(0);
        let mut payload_zeroed = intact.clone();
        payload_zeroed[last_start + RECORD_HEADER..].fill(0);
        let mut extended = intact.clone();
        extended.extend_from_slice(&[0; 4096]);
        for (case, bytes, want) in
            [("zeroed", zeroed, 1), ("payload zeroed", payload_zeroed, 1), ("extended", extended, 2)]
        {
            fs::write(&path, &bytes).expect("write");
            let log = reopen(dir.path()).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!((log.last().seq, log.commit()), (want, want), "{case}");
        }
    }

    /// The length of the last record of a log file, header included.
    fn last_record_length(log: &[u8]) -> usize {
        let mut offset = LOG_MAGIC.len();
        loop {
            let length = u32::from_le_bytes(log[offset..offset + 4].try_into().expect("4 bytes")) as usize;
            let next = offset + RECORD_HEADER + length;
            if next == log.len() {
                return next - offset;
            }
            offset = next;
        }
    }

    #[test]
    fn files_in_the_old_formats_are_refused_with_their_own_message() {
        let old_snapshots = OLD_SNAPSHOT_MAGICS.map(|magic| (SNAPSHOT_FILE, magic));
        let old_logs = OLD_LOG_MAGICS.map(|magic| (LOG_FILE, magic));
        for (file, magic) in old_logs.into_iter().chain(old_snapshots) {
            let dir = tempfile::tempdir().expect("temporary directory");
            fs::write(dir.path().join(file), magic).expect("write");
            let error = reopen(dir.path()).expect_err("an old file must not be read as empty");
            assert!(matches!(error, StorageError::OldFormat { .. }), "{file}: {error}");
            assert!(error.to_string().contains("older roomcast"), "{file}: {error}");
        }
    }

    #[test]
    fn a_damaged_record_before_the_end_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().expect("temporary directory");
        store(dir.path(), &["Monday", "Tuesday"], 2);
        store(dir.path(), &["Wednesday"], 3);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("log");
        bytes[LOG_MAGIC.len() + 12] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let error = reopen(dir.path()).expect_err("damage must be reported");
        let message = error.to_string();
        assert!(matches!(error, StorageError::Corrupt { .. }), "{message}");
        assert!(message.contains("damaged") && message.contains("log"), "{message}");
    }

    #[test]
    fn a_damaged_length_is_an_error_not_a_torn_tail() {
        let dir = tempfile::tempdir().expect("temporary directory");
        store(dir.path(), &["Monday", "Tuesday"], 2);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = fs::read(&path).expect("log");
        bytes[LOG_MAGIC.len() + 2] ^= 0x01; // the first record now claims to run past the end
        fs::write(&path, &bytes).expect("write");
        assert!(matches!(reopen(dir.path()), Err(StorageError::Corrupt { .. })));
        assert_eq!(fs::read(&path).expect("log"), bytes, "a damaged log must be left as it is");
    }

    #[test]
    fn a_new_snapshot_next_to_the_old_log_is_read_consistently() {
        let dir = tempfile::tempdir().expect("temporary directory");
        store(dir.path(), &["Monday", "Tuesday"], 2);
        let old_log = fs::read(dir.path().join(LOG_FILE)).expect("log");
        let log = store(dir.path(), &["Wednesday"], 2);
        let (mut storage, _) = Storage::open(dir.path(), &Catalog::default()).expect("open");
        storage.write_snapshot(&log).expect("snapshot");
        // As if the server crashed between renaming the snapshot and the log.
        fs::write(dir.path().join(LOG_FILE), old_log).expect("write");
        let back = reopen(dir.path()).expect("reopen");
        assert_eq!((back.table().len(), back.commit()), (2, 2));
    }

    #[test]
    fn a_changed_catalog_carries_reservations_over_by_name_or_names_those_it_would_lose() {
        let dir = tempfile::tempdir().expect("temporary directory");
        store(dir.path(), &["Monday", "Friday"], 2); // SA318 8:30-9:30, Monday and Friday
        let mut without_friday = Catalog::default();
        without_friday.days.retain(|d| d != "Friday");
        let error = Storage::open(dir.path(), &without_friday).map(|_| ()).expect_err("Friday is gone");
        let message = error.to_string();
        assert!(matches!(error, StorageError::CatalogChanged { ref lacking, .. } if lacking.len() == 1), "{message}");
        assert!(
            message.contains("1 of its reservations name one the catalog given now lacks: SA318 8:30-9:30 Friday"),
            "{message}"
        );
        assert_eq!(reopen(dir.path()).expect("the old catalog still works").table().len(), 2, "nothing was lost");
        // Rooms in another order and one more: the same reservations, by name.
        let mut reordered = Catalog::default();
        reordered.rooms.reverse();
        reordered.rooms.push("LAB1".into());
        let (_, log) = Storage::open(dir.path(), &reordered).expect("every name is still there");
        let listed = |log: &ReplicatedLog, catalog: &Catalog| log.table().check(catalog, "SA318").expect("a room").0;
        assert_eq!(listed(&log, &reordered).len(), 2);
        let (_, again) = Storage::open(dir.path(), &reordered).expect("stored under the new catalog now");
        assert_eq!(listed(&again, &reordered), listed(&log, &reordered));
    }

    #[test]
    fn a_damaged_snapshot_is_an_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        fs::write(dir.path().join(SNAPSHOT_FILE), b"RCSNAP04 but not really").expect("write");
        assert!(matches!(reopen(dir.path()), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn a_snapshot_with_no_room_for_a_next_entry_is_an_error() {
        // A default table (epoch 0, applied at 0) whose applied sequence number is patched to u64::MAX.
        let catalog = Catalog::default();
        fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
            bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encodable")
        }
        let mut body = encoded(&(&catalog, ReservationTable::default()));
        let seq_at = encoded(&catalog).len() + 2;
        assert_eq!(body[seq_at], 0, "the applied sequence number");
        body.splice(seq_at..=seq_at, [&[253][..], &u64::MAX.to_le_bytes()].concat());
        let mut file = SNAPSHOT_MAGIC.to_vec();
        file.extend_from_slice(&(body.len() as u64).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        file.extend_from_slice(&body);
        let error = parse_snapshot(&file).expect_err("no next entry fits");
        assert!(matches!(&error, FormatError::Corrupt(e) if e.contains("beyond any log")), "{error:?}");
        let dir = tempfile::tempdir().expect("temporary directory");
        fs::write(dir.path().join(SNAPSHOT_FILE), &file).expect("write");
        assert!(matches!(reopen(dir.path()), Err(StorageError::Corrupt { .. })));
    }

    #[test]
    fn a_log_record_with_no_room_for_a_next_entry_or_term_is_an_error() {
        let at_max = |mut entry: Entry, term: bool| {
            match term {
                true => entry.position.term = u64::MAX,
                false => entry.position.seq = u64::MAX,
            }
            entry
        };
        let records = [
            Record {
                catalog: None,
                replaced_from: Some(u64::MAX),
                entries: vec![at_max(reservation(1, "Monday"), false)],
                commit: None,
            },
            Record {
                catalog: None,
                replaced_from: Some(1),
                entries: vec![at_max(reservation(1, "Monday"), true)],
                commit: None,
            },
            Record { catalog: None, replaced_from: None, entries: Vec::new(), commit: Some(u64::MAX) },
        ];
        for (i, record) in records.into_iter().enumerate() {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join(LOG_FILE);
            let mut bytes = LOG_MAGIC.to_vec();
            let first =
                Record { catalog: Some(Catalog::default()), replaced_from: None, entries: Vec::new(), commit: None };
            encode_record(&mut bytes, &first, &path).expect("encode");
            encode_record(&mut bytes, &record, &path).expect("encode");
            encode_record(&mut bytes, &first, &path).expect("encode"); // not the last record: not torn
            let error =
                replay_log_bytes(&bytes, &mut ReplicatedLog::default(), &Catalog::default()).expect_err("refused");
            assert!(matches!(&error, FormatError::Corrupt(e) if e.contains("beyond any log")), "#{i}: {error:?}");
            fs::write(&path, &bytes).expect("write");
            assert!(matches!(reopen(dir.path()), Err(StorageError::Corrupt { .. })), "#{i}");
        }
    }

    #[test]
    fn many_entries_roll_into_a_snapshot_and_come_back() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let catalog = Catalog::default();
        let (mut storage, mut log) = Storage::open(dir.path(), &catalog).expect("open");
        let total = SNAPSHOT_EVERY + 5;
        for seq in 1..=total {
            // Reserve and cancel in turn, so every entry executes.
            let mut entry = reservation(seq, "Monday");
            if seq % 2 == 0 {
                let Op::Reserve(slot) = entry.op else { unreachable!() };
                entry.op = Op::Cancel(slot);
            }
            log.push(entry);
        }
        log.commit_to(total - 2, &catalog);
        storage.save(&log, log.clone().take_changes().expect("changes")).expect("save");
        assert!(dir.path().join(SNAPSHOT_FILE).exists(), "a snapshot was written");
        let back = reopen(dir.path()).expect("reopen");
        assert_eq!(back.table(), log.table());
        assert_eq!(back.last(), log.last());
        assert_eq!(back.commit(), total - 2);
    }
}
