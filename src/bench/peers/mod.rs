//! The peers: the same measurements on tools people compare roomcast with,
//! run where Debian's packages are installed, skipped (saying so) where not.
//!
//! * [`etcd`] (`etcd-server`, `etcd-client`): three members on 127.0.0.1;
//!   puts and reads from 1 and N clients, and failover (kill -9 of the
//!   leader to the first put that succeeds), at etcd's default timings and
//!   at 10/50 ms.
//! * [`keepalived`]: three VRRP routers on a LAN the bench builds of network
//!   namespaces ([`lan`]); failover (kill -9 and SIGTERM of the master to the
//!   virtual address appearing on the new master) at the default advert
//!   interval (1 s) and at 10 ms adverts.

pub mod etcd;
pub mod keepalived;
pub mod lan;

use serde::Serialize;

use super::Settings;
use super::error::BenchError;
use super::floor::FloorResult;
use super::netns::Isolation;
use super::report::Row;

/// A peer's figures, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PeerOutcome<T> {
    /// Measured.
    Measured(T),
    /// Not installed (or not possible here), so not run.
    Skipped {
        /// Why.
        why: String,
    },
    /// Installed, but the measurement failed.
    Failed {
        /// The error.
        error: String,
    },
}

impl<T> PeerOutcome<T> {
    fn from_result(result: Result<T, BenchError>) -> PeerOutcome<T> {
        match result {
            Ok(value) => PeerOutcome::Measured(value),
            Err(e) => PeerOutcome::Failed { error: e.to_string() },
        }
    }
}

/// The peers' figures.
#[derive(Debug, Clone, Serialize)]
pub struct PeersResult {
    /// etcd.
    pub etcd: PeerOutcome<etcd::EtcdResult>,
    /// keepalived.
    pub keepalived: PeerOutcome<keepalived::KeepalivedResult>,
}

/// Runs every installed peer.
pub fn run(settings: &Settings, isolation: &Isolation) -> Result<PeersResult, BenchError> {
    let etcd = match etcd::find() {
        Err(why) => PeerOutcome::Skipped { why },
        Ok(bins) => {
            eprintln!("   etcd ...");
            PeerOutcome::from_result(etcd::run(&bins, settings))
        }
    };
    let keepalived = match keepalived::find(isolation) {
        Err(why) => PeerOutcome::Skipped { why },
        Ok(program) => {
            eprintln!("   keepalived ...");
            PeerOutcome::from_result(keepalived::run(&program, settings))
        }
    };
    for (name, outcome) in [("etcd", skipped_why(&etcd)), ("keepalived", skipped_why(&keepalived))] {
        if let Some(why) = outcome {
            eprintln!("   {name} skipped: {why}");
        }
    }
    Ok(PeersResult { etcd, keepalived })
}

fn skipped_why<T>(outcome: &PeerOutcome<T>) -> Option<&str> {
    match outcome {
        PeerOutcome::Skipped { why } => Some(why),
        _ => None,
    }
}

/// The peers' rows of the table.
pub fn rows(peers: &PeersResult, floor: Option<&FloorResult>) -> Vec<Row> {
    let mut rows = Vec::new();
    match &peers.etcd {
        PeerOutcome::Measured(e) => rows.extend(etcd::rows(e, floor)),
        PeerOutcome::Skipped { why } => rows.push(note("etcd", &format!("skipped: {why}"))),
        PeerOutcome::Failed { error } => rows.push(note("etcd", &format!("failed: {error}"))),
    }
    match &peers.keepalived {
        PeerOutcome::Measured(k) => rows.extend(keepalived::rows(k)),
        PeerOutcome::Skipped { why } => rows.push(note("keepalived", &format!("skipped: {why}"))),
        PeerOutcome::Failed { error } => rows.push(note("keepalived", &format!("failed: {error}"))),
    }
    rows
}

fn note(peer: &str, text: &str) -> Row {
    let first_line = text.lines().next().unwrap_or_default();
    Row { figure: format!("peer {peer}"), floor: String::new(), value: first_line.to_string(), ratio: String::new() }
}
