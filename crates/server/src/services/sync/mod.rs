//! Device import: one SyncRun per integration at a time. `start` records the run (the database
//! refuses a second running one) and works in the background; `run` does the same in the caller's
//! task, for the CLI and the benchmark.
mod engine;
mod identity;
mod schedule;

pub use engine::{SyncOutcome, SyncProgress};

use crate::error::ApiError;
use crate::services::integrations::connectors::Connectors;
use crate::state::now;
use rmmbridge_rmm::RmmError;
use rmmbridge_store::{Db, StoreError, SyncRun};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("integration not found")]
    NotFound,
    #[error("{0}")]
    AlreadyRunning(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rmm(#[from] RmmError),
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::NotFound => ApiError::NotFound("integration"),
            SyncError::AlreadyRunning(m) => ApiError::Conflict(m),
            SyncError::Invalid(m) => ApiError::BadRequest(m),
            SyncError::Store(s) => s.into(),
            SyncError::Rmm(r) => ApiError::BadRequest(r.to_string()),
        }
    }
}

pub struct SyncService {
    db: Db,
    connectors: Arc<Connectors>,
}

impl SyncService {
    pub fn new(db: Db, connectors: Arc<Connectors>) -> SyncService {
        SyncService { db, connectors }
    }

    /// Starts a device sync of one integration in the background and returns its run at once.
    /// A conflict when the integration already has a running sync.
    pub async fn start(
        self: &Arc<Self>,
        integration_id: i64,
        triggered_by: &str,
    ) -> Result<SyncRun, SyncError> {
        let run = self.begin(integration_id, triggered_by).await?;
        let this = self.clone();
        let started = run.clone();
        tokio::spawn(async move {
            if let Err(e) = this.execute(&started, &|_| {}).await {
                tracing::warn!(integration_id, run_id = started.id, error = %e, "sync failed");
            }
        });
        Ok(run)
    }

    /// Runs a device sync to the end in this task, calling `progress` after every page.
    pub async fn run(
        &self,
        integration_id: i64,
        triggered_by: &str,
        progress: &(dyn Fn(&SyncProgress) + Sync),
    ) -> Result<SyncOutcome, SyncError> {
        let run = self.begin(integration_id, triggered_by).await?;
        self.execute(&run, progress).await
    }

    async fn begin(&self, integration_id: i64, triggered_by: &str) -> Result<SyncRun, SyncError> {
        self.db
            .integration_by_id(integration_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        // A run whose worker died (no heartbeat for a while) must not block the next one forever.
        let t = now();
        self.db
            .abandon_stale_runs(t.plus_secs(-engine::STALE_AFTER_S), t)
            .await?;
        match self
            .db
            .start_sync_run(integration_id, "devices", triggered_by, t)
            .await
        {
            Ok(r) => Ok(r),
            Err(StoreError::Conflict { what }) => Err(SyncError::AlreadyRunning(what)),
            Err(e) => Err(e.into()),
        }
    }

    async fn execute(
        &self,
        run: &SyncRun,
        progress: &(dyn Fn(&SyncProgress) + Sync),
    ) -> Result<SyncOutcome, SyncError> {
        engine::execute(&self.db, &self.connectors, run, progress).await
    }
}
