//! Part 5, catch-up: server 100 starts from a data directory holding
//! `--reservations` committed reservations (over enough rooms of a generated
//! catalog); then newcomers join empty, one at a time, each with a higher ID.
//! Each copies the whole state (a snapshot in many datagrams, then the
//! entries after it) and takes over. Timed from its start to its log
//! naming itself leader (every server agreeing), the same figure as
//! `tests/catch_up.rs`. Afterwards every server's resident memory (VmRSS from
//! /proc) is read, beside that of an empty server.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::Settings;
use super::catalog;
use super::error::BenchError;
use super::group::{Cluster, PATIENCE};
use super::procs::Binaries;
use super::stats::Summary;
use super::timeline::ms_since;
use crate::rooms::Catalog;
use crate::storage::Storage;
use crate::wire::{Entry, LogPosition, Op};

/// One newcomer's catch-up.
#[derive(Debug, Clone, Serialize)]
pub struct Newcomer {
    /// Its ID.
    pub id: u64,
    /// Start to its `installed a snapshot` line, ms (none if it got entries only).
    pub snapshot_ms: Option<f64>,
    /// The snapshot's size, bytes, as it logged it.
    pub snapshot_bytes: Option<u64>,
    /// Start to every server naming it leader, ms.
    pub took_over_ms: f64,
}

/// Part 5's figures.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpResult {
    /// Reservations the group held.
    pub reservations: usize,
    /// Rooms of the catalog.
    pub rooms: usize,
    /// Every newcomer.
    pub newcomers: Vec<Newcomer>,
    /// Their take-over times.
    pub took_over: Summary,
    /// VmRSS of each server holding the reservations, KiB, by ID.
    pub rss_kib: Vec<(u64, u64)>,
    /// VmRSS of a server of an empty group, KiB.
    pub empty_rss_kib: u64,
}

/// Runs part 5.
pub fn run(bins: &Binaries, settings: &Settings) -> Result<CatchUpResult, BenchError> {
    let reservations = settings.catch_up_reservations();
    let catalog = catalog::with_rooms(rooms_for(reservations));
    let scratch = tempfile::Builder::new()
        .prefix("roomcast-bench-")
        .tempdir_in(settings.scratch_dir())
        .map_err(BenchError::io("creating a scratch directory"))?;
    let catalog_file = catalog::write(scratch.path(), &catalog)?;
    let data = scratch.path().join("data-100");
    write_data_dir(&data, &catalog, reservations)?;
    let empty_rss_kib = empty_server_rss(bins)?;

    let mut cluster = Cluster::new(bins, vec!["--catalog".into(), catalog_file.display().to_string()])?;
    cluster.start_all(&[100], |_| vec!["--data-dir".into(), data.display().to_string()])?;
    let mut newcomers = Vec::new();
    for trial in 0..settings.catch_up_trials() {
        newcomers.push(join(&mut cluster, 200 + 100 * trial as u64)?);
    }
    let rss_kib = cluster.servers().iter().map(|s| s.rss_kib().map(|kib| (s.id(), kib))).collect::<Result<_, _>>()?;
    let took_over =
        Summary::of(newcomers.iter().map(|n| Duration::from_secs_f64(n.took_over_ms / 1e3)).collect(), None);
    Ok(CatchUpResult { reservations, rooms: catalog.rooms.len(), newcomers, took_over, rss_kib, empty_rss_kib })
}

/// Enough rooms for `reservations` slots (55 per room), and one spare.
fn rooms_for(reservations: usize) -> usize {
    let per_room = Catalog::default().timeslots.len() * Catalog::default().days.len();
    reservations.div_ceil(per_room) + 1
}

/// Starts newcomer `id` (empty, higher than all) and times its take-over.
fn join(cluster: &mut Cluster, id: u64) -> Result<Newcomer, BenchError> {
    let started = cluster.spawn(id, &[])?.spawned;
    let agreed = cluster.wait_agreement(id, PATIENCE)?;
    let took_over_ms = ms_since(started, agreed);
    let snapshot = cluster
        .get_mut(id)
        .and_then(|s| s.lines_since(0).into_iter().find(|l| l.text.contains("installed a snapshot")));
    Ok(Newcomer {
        id,
        snapshot_ms: snapshot.as_ref().map(|l| ms_since(started, l.at)),
        snapshot_bytes: snapshot.as_ref().and_then(|l| snapshot_bytes(&l.text)),
        took_over_ms,
    })
}

/// The byte count in `installed a snapshot from X (N bytes, M reservations)`.
fn snapshot_bytes(text: &str) -> Option<u64> {
    let open = text.rfind('(')?;
    text[open + 1..].split_whitespace().next()?.parse().ok()
}

/// VmRSS of the only server of a fresh, empty group, once it leads.
fn empty_server_rss(bins: &Binaries) -> Result<u64, BenchError> {
    let mut cluster = Cluster::new(bins, Vec::new())?;
    cluster.start_all(&[1], |_| Vec::new())?;
    cluster.servers().first().map_or(Err(BenchError::Unexpected("no server".into())), |s| s.rss_kib())
}

/// Writes a data directory holding `count` committed reservations, as a
/// server that had confirmed them would have stored them.
fn write_data_dir(dir: &Path, catalog: &Catalog, count: usize) -> Result<(), BenchError> {
    let storage_error =
        |e: crate::storage::StorageError| BenchError::Unexpected(format!("writing the data directory: {e}"));
    let (mut storage, mut log) = Storage::open(dir, catalog).map_err(storage_error)?;
    let entry = |seq: u64, op: Op| Entry { position: LogPosition::new(1, seq), client: 42, request: seq, by: None, op };
    log.push(entry(1, Op::Genesis { epoch: 7 }));
    for (n, slot) in catalog::all_slots(catalog).take(count).enumerate() {
        log.push(entry(n as u64 + 2, Op::Reserve(slot)));
    }
    log.commit_to(log.last().seq, catalog);
    if log.table().len() != count {
        return Err(BenchError::Unexpected(format!("the generated table holds {} reservations", log.table().len())));
    }
    if let Some(changes) = log.take_changes() {
        storage.save(&log, changes).map_err(storage_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_size_is_read_from_its_line() {
        let line = "[... INFO roomcast::node] installed a snapshot from 100 (2052731 bytes, 50000 reservations)";
        assert_eq!(snapshot_bytes(line), Some(2_052_731));
        assert_eq!(snapshot_bytes("nothing here"), None);
    }

    #[test]
    fn every_reservation_gets_a_slot() {
        assert_eq!(rooms_for(50_000), 911);
        assert_eq!(rooms_for(55), 2);
    }
}
