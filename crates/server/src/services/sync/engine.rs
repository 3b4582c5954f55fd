//! The device sync engine (work in progress: filled in by the next commit).
use super::SyncError;
use crate::services::integrations::connectors::Connectors;
use rmmbridge_store::{Db, SyncRun};
use serde::Serialize;

/// A run whose heartbeat is older than this is abandoned by the next run.
pub const STALE_AFTER_S: i64 = 120;

/// Where a run stands, after every page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncProgress {
    pub stage: String,
    pub fetched: u64,
}

/// A finished run and what it did.
#[derive(Clone, Debug)]
pub struct SyncOutcome {
    pub run: SyncRun,
    pub rows_written: u64,
}

pub async fn execute(
    _db: &Db,
    _connectors: &Connectors,
    _run: &SyncRun,
    _progress: &(dyn Fn(&SyncProgress) + Sync),
) -> Result<SyncOutcome, SyncError> {
    Err(SyncError::Invalid("device sync is not built yet".into()))
}
