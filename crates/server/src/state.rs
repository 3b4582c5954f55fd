//! The state every handler receives, passed explicitly (no globals).

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::services::integrations::connectors::Connectors;
use crate::services::sync::SyncService;
use crate::vault::SecretVault;
use metrics_exporter_prometheus::PrometheusHandle;
use rmmbridge_core::Timestamp;
use rmmbridge_store::Db;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub vault: Arc<SecretVault>,
    pub settings: Arc<Settings>,
    pub throttle: Arc<LoginThrottle>,
    pub metrics: PrometheusHandle,
    /// One connector per integration, so tokens survive between requests.
    pub connectors: Arc<Connectors>,
    /// Device syncs, one running per integration at most.
    pub sync: Arc<SyncService>,
}

/// Wall-clock now as Unix milliseconds.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}
