//! Durable state (`server --data-dir DIR`): a snapshot of the reservation
//! table plus an append-only log of what changed after it.
//!
//! ```text
//! DIR/snapshot   "RCSNAP01" | length u64 LE | CRC-32 u32 LE | table (bincode)
//! DIR/log        "RCLOG001" | record*
//! record         length u32 LE | CRC-32 of length u32 LE | CRC-32 of payload u32 LE | Record (bincode)
//! ```
//!
//! A `Record::Entries { from, entries }` says "the log from `from` on is now
//! `entries`", which covers both appends and a new leader replacing
//! uncommitted entries; `Record::Commit(seq)` moves the commit point. The log
//! is fsynced before the server sends anything that depends on it, so an
//! acknowledgement is never given for an entry that is only in memory.
//!
//! A record cut short at the end of the log is a write torn by a crash: it is
//! dropped (nothing sent depended on it). The length has its own checksum, so
//! a damaged length is never mistaken for a short write. A bad record anywhere
//! else, or a bad snapshot, is corruption: the server refuses to start rather
//! than come back with less than it acknowledged. Every [`SNAPSHOT_EVERY`]
//! entries the table is written to a new snapshot (write, fsync, rename) and
//! the log restarts after it; a crash between the two renames leaves the new
//! snapshot with the old log, whose entries up to the snapshot are skipped.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::node::{LogChanges, ReplicatedLog};
use crate::rooms::Catalog;
use crate::wire::Entry;

const SNAPSHOT_MAGIC: &[u8; 8] = b"RCSNAP01";
const LOG_MAGIC: &[u8; 8] = b"RCLOG001";
const SNAPSHOT_FILE: &str = "snapshot";
const LOG_FILE: &str = "log";
/// A new snapshot after this many entries stored since the last one.
pub const SNAPSHOT_EVERY: u64 = 10_000;
/// The largest record accepted when reading the log back.
const MAX_RECORD: usize = 64 << 20;

/// One change, as stored in the log file.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entries { from: u64, entries: Vec<Entry> },
    Commit(u64),
}

/// Why the data directory cannot be used.
#[derive(Debug)]
pub enum StorageError {
    /// Reading or writing a file failed.
    Io { path: PathBuf, error: io::Error },
    /// A file's contents are damaged or inconsistent.
    Corrupt { path: PathBuf, detail: String },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, error } => write!(
                f,
                "cannot use {}: {error}; check that the data directory exists and this user may write to it",
                path.display()
            ),
            StorageError::Corrupt { path, detail } => write!(
                f,
                "{} is damaged ({detail}); the server will not start with less than it stored. \
                 Restore the file from a backup, or move the data directory away to rejoin empty \
                 and copy the group's state from the other servers",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StorageError {}

/// The open data directory.
pub struct Storage {
    dir: PathBuf,
    log: File,
    /// Entries stored since the last snapshot.
    since_snapshot: u64,
}

impl Storage {
    /// Opens (or creates) `dir` and reads back the log it holds.
    pub fn open(dir: &Path, catalog: &Catalog) -> Result<(Storage, ReplicatedLog), StorageError> {
        fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
        let mut log = read_snapshot(&dir.join(SNAPSHOT_FILE))?;
        let log_path = dir.join(LOG_FILE);
        let since_snapshot = replay_log(&log_path, &mut log, catalog)?;
        let file = match OpenOptions::new().append(true).open(&log_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_log(&log_path)?,
            Err(error) => return Err(io_error(&log_path, error)),
        };
        let stored = log.table().applied();
        if log.last().seq > 0 {
            info!("recovered {} reservations up to {stored:?}, log up to {:?}", log.table().len(), log.last());
        }
        Ok((Storage { dir: dir.to_path_buf(), log: file, since_snapshot }, log))
    }

    /// Makes `changes` durable (fsync) before the caller sends anything.
    pub fn save(&mut self, log: &ReplicatedLog, changes: LogChanges) -> Result<(), StorageError> {
        if changes.snapshot {
            return self.write_snapshot(log); // it holds the entries and the commit too
        }
        let mut bytes = Vec::new();
        if let Some(from) = changes.replaced_from {
            self.since_snapshot += changes.entries.len() as u64;
            encode_record(&mut bytes, &Record::Entries { from, entries: changes.entries });
        }
        if let Some(seq) = changes.commit {
            encode_record(&mut bytes, &Record::Commit(seq));
        }
        let path = self.dir.join(LOG_FILE);
        self.log.write_all(&bytes).map_err(|error| io_error(&path, error))?;
        self.log.sync_data().map_err(|error| io_error(&path, error))?;
        if self.since_snapshot >= SNAPSHOT_EVERY {
            self.write_snapshot(log)?;
        }
        Ok(())
    }

    /// Writes the table as the new snapshot and restarts the log with the
    /// entries after it.
    fn write_snapshot(&mut self, log: &ReplicatedLog) -> Result<(), StorageError> {
        let table = log.encode_snapshot();
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&(table.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&table).to_le_bytes());
        bytes.extend_from_slice(&table);
        replace_file(&self.dir.join(SNAPSHOT_FILE), &bytes)?;

        let applied = log.table().applied().seq;
        let mut fresh = LOG_MAGIC.to_vec();
        let entries: Vec<Entry> = log.entries_after(applied);
        if !entries.is_empty() {
            encode_record(&mut fresh, &Record::Entries { from: applied + 1, entries });
        }
        encode_record(&mut fresh, &Record::Commit(log.commit()));
        let log_path = self.dir.join(LOG_FILE);
        replace_file(&log_path, &fresh)?;
        self.log = OpenOptions::new().append(true).open(&log_path).map_err(|error| io_error(&log_path, error))?;
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

fn read_snapshot(path: &Path) -> Result<ReplicatedLog, StorageError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReplicatedLog::default()),
        Err(error) => return Err(io_error(path, error)),
    };
    let header = SNAPSHOT_MAGIC.len() + 12;
    if bytes.len() < header || &bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return Err(corrupt(path, "not a roomcast snapshot (bad header)"));
    }
    let length = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    let table = &bytes[header..];
    if table.len() as u64 != length {
        return Err(corrupt(path, format!("{} bytes of table, the header says {length}", table.len())));
    }
    if crc32fast::hash(table) != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let table = crate::node::log::decode_snapshot(table).map_err(|e| corrupt(path, e))?;
    Ok(ReplicatedLog::recovered(table))
}

/// Replays the log file into `log`; returns how many entries it held. A torn
/// last record is cut off the file.
fn replay_log(path: &Path, log: &mut ReplicatedLog, catalog: &Catalog) -> Result<u64, StorageError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(|error| io_error(path, error))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(io_error(path, error)),
    };
    if bytes.len() < LOG_MAGIC.len() || &bytes[..LOG_MAGIC.len()] != LOG_MAGIC {
        return Err(corrupt(path, "not a roomcast log (bad header)"));
    }
    let mut offset = LOG_MAGIC.len();
    let mut entries = 0;
    while offset < bytes.len() {
        let record = match next_record(&bytes[offset..]) {
            Ok((record, used)) => {
                offset += used;
                record
            }
            Err(RecordError::Torn) => {
                warn!("{}: dropping a torn record at byte {offset} (written when the server stopped)", path.display());
                truncate(path, offset)?;
                break;
            }
            Err(RecordError::Bad(detail)) => return Err(corrupt(path, format!("record at byte {offset}: {detail}"))),
        };
        match record {
            Record::Entries { from, entries: batch } => {
                entries += batch.len() as u64;
                log.replay(from, &batch).map_err(|d| {
                    corrupt(
                        path,
                        format!("entries from seq {from} do not follow the stored log (ends at {:?})", d.ours),
                    )
                })?;
            }
            Record::Commit(seq) => {
                log.commit_to(seq, catalog);
            }
        }
    }
    log.take_changes();
    Ok(entries)
}

enum RecordError {
    /// The record runs past the end of the file: a write cut short.
    Torn,
    Bad(String),
}

/// Bytes before a record's payload: length, its checksum, the payload's checksum.
const RECORD_HEADER: usize = 12;

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
        Ok((record, used)) if used == payload.len() => Ok((record, end)),
        Ok(_) => Err(RecordError::Bad("trailing bytes".into())),
        Err(e) => Err(RecordError::Bad(e.to_string())),
    }
}

fn encode_record(out: &mut Vec<u8>, record: &Record) {
    let payload =
        bincode::serde::encode_to_vec(record, bincode::config::standard()).expect("log records are always encodable");
    let length = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&crc32fast::hash(&length).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

fn create_log(path: &Path) -> Result<File, StorageError> {
    replace_file(path, LOG_MAGIC)?;
    OpenOptions::new().append(true).open(path).map_err(|error| io_error(path, error))
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
        Entry { position: LogPosition::new(1, seq), client: 7, request: seq, op: Op::Reserve(slot) }
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
        // The last record written was `Commit(2)`; its tail is gone.
        let log = reopen(dir.path()).expect("a torn tail is not an error");
        assert_eq!((log.last().seq, log.commit()), (2, 1));
        // The cut was made permanent: appending after it works.
        store(dir.path(), &["Friday"], 3);
        let log = reopen(dir.path()).expect("reopen");
        assert_eq!((log.last().seq, log.commit(), log.table().len()), (3, 3, 3));
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
    fn a_damaged_snapshot_is_an_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        fs::write(dir.path().join(SNAPSHOT_FILE), b"RCSNAP01 but not really").expect("write");
        assert!(matches!(reopen(dir.path()), Err(StorageError::Corrupt { .. })));
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
