//! etcd peer (stub, filled in below).
use serde::Serialize;

use super::super::Settings;
use super::super::error::BenchError;
use super::super::floor::FloorResult;
use super::super::report::Row;

/// etcd's programs.
pub struct EtcdBins;

/// etcd's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdResult {}

/// Finds etcd.
pub fn find() -> Result<EtcdBins, String> {
    Err("not yet".into())
}

/// Runs etcd.
pub fn run(_bins: &EtcdBins, _settings: &Settings) -> Result<EtcdResult, BenchError> {
    Err(BenchError::Usage("not yet".into()))
}

/// Rows.
pub fn rows(_result: &EtcdResult, _floor: Option<&FloorResult>) -> Vec<Row> {
    Vec::new()
}
