//! Scheduled syncs: every integration with device sync on, a schedule (`sync_interval_minutes` > 0)
//! and at least one mapped client is synced when its last run is older than its interval. Started by
//! `serve` and `demo`, not by the test harness, so tests decide when syncs run.
use super::{SyncError, SyncService};
use crate::services::integrations::IntegrationOptions;
use crate::state::now;
use std::sync::Arc;
use std::time::Duration;

/// How often the schedule is checked.
const TICK: Duration = Duration::from_secs(30);

impl SyncService {
    /// Runs until the process ends.
    pub fn spawn_scheduler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.start_due().await {
                    tracing::warn!(error = %e, "checking the sync schedule failed; retrying at the next tick");
                }
            }
        })
    }

    /// Starts every sync that is due; returns the integrations started.
    pub async fn start_due(self: &Arc<Self>) -> Result<Vec<i64>, SyncError> {
        let t = now();
        let mut started = Vec::new();
        for i in self.db.list_integrations().await? {
            let Ok(opts) = IntegrationOptions::parse(&i.options) else {
                continue;
            };
            // An integration waiting for consent would only fail again; its status says why.
            if !opts.device_sync || opts.sync_interval_minutes == 0 || i.status == "needs_consent" {
                continue;
            }
            let due = match self.db.last_sync_run(i.id).await? {
                Some(r) if r.finished_at.is_none() => false,
                Some(r) => t.0 - r.started_at.0 >= i64::from(opts.sync_interval_minutes) * 60_000,
                None => true,
            };
            if !due || self.db.mapped_clients(i.id).await?.is_empty() {
                continue;
            }
            match self.start(i.id, "schedule").await {
                Ok(_) => started.push(i.id),
                Err(SyncError::AlreadyRunning(_)) => {}
                Err(e) => {
                    tracing::warn!(integration_id = i.id, error = %e, "a scheduled sync did not start")
                }
            }
        }
        Ok(started)
    }
}
