//! keepalived peer (stub).
use serde::Serialize;

use super::super::Settings;
use super::super::error::BenchError;
use super::super::netns::Isolation;
use super::super::report::Row;

/// keepalived's figures.
#[derive(Debug, Clone, Serialize)]
pub struct KeepalivedResult {}

/// Finds keepalived.
pub fn find(_isolation: &Isolation) -> Result<String, String> {
    Err("not yet".into())
}

/// Runs keepalived.
pub fn run(_program: &str, _settings: &Settings) -> Result<KeepalivedResult, BenchError> {
    Err(BenchError::Usage("not yet".into()))
}

/// Rows.
pub fn rows(_result: &KeepalivedResult) -> Vec<Row> {
    Vec::new()
}
