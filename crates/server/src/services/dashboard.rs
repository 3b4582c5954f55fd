//! The dashboard's numbers and the one-word status of each integration.
use crate::services::integrations::health_view;
use crate::state::now;
use rmmbridge_store::{CredentialHealth, Db, StoreResult, SyncRun, SyncRunState, TenantScope};

/// Counts in the caller's tenants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    pub tenants: i64,
    pub computers: i64,
    pub open_decisions: i64,
}

/// One integration as the dashboard shows it.
#[derive(Clone, Debug)]
pub struct IntegrationStatus {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// `healthy`, `needs_consent`, `failing` or `new` (never verified nor synced).
    pub status: &'static str,
    /// What is wrong and what to do, when not healthy.
    pub reason: Option<String>,
    pub warnings: Vec<String>,
    pub last_sync: Option<SyncRun>,
}

/// Pure: the status from the stored integration status, its credential health and its last run.
/// Consent needed wins (nothing works without it), then any failure, then a verification or a
/// successful sync makes it healthy.
pub fn status_of(
    stored: &str,
    stored_message: Option<&str>,
    health: &CredentialHealth,
    last_run: Option<&SyncRun>,
) -> (&'static str, Option<String>) {
    if stored == "needs_consent" {
        return (
            "needs_consent",
            Some(
                stored_message
                    .unwrap_or("choose \"Provide consent\" and approve rmmbridge in NinjaOne")
                    .to_owned(),
            ),
        );
    }
    if stored == "failing" {
        return (
            "failing",
            Some(
                stored_message
                    .or(health.last_error.as_deref())
                    .unwrap_or("the last verification failed")
                    .to_owned(),
            ),
        );
    }
    if health.consecutive_failures > 0 {
        return (
            "failing",
            Some(format!(
                "{} failed call(s) to the RMM in a row; the last: {}",
                health.consecutive_failures,
                health.last_error.as_deref().unwrap_or("unknown error")
            )),
        );
    }
    if let Some(r) = last_run
        && r.state == SyncRunState::Failed
    {
        return (
            "failing",
            Some(format!(
                "the last sync (run {}) failed: {}",
                r.id,
                r.error.as_deref().unwrap_or("no message")
            )),
        );
    }
    let synced = last_run.is_some_and(|r| r.state == SyncRunState::Succeeded);
    if stored == "healthy" || synced {
        ("healthy", None)
    } else {
        (
            "new",
            Some(
                stored_message
                    .unwrap_or("not verified yet: choose \"Verify credentials\"")
                    .to_owned(),
            ),
        )
    }
}

pub async fn counts(db: &Db, scope: &TenantScope) -> StoreResult<Counts> {
    Ok(Counts {
        tenants: db.list_tenants(scope).await?.len() as i64,
        computers: db.count_computers(scope).await?,
        open_decisions: db.count_open_decisions(scope).await?,
    })
}

pub async fn integrations(db: &Db) -> StoreResult<Vec<IntegrationStatus>> {
    let mut out = Vec::new();
    for i in db.list_integrations().await? {
        let health = db.credential_health(i.id).await?;
        let secrets = db.secret_fields(i.id).await?;
        let last = db.last_sync_run(i.id).await?;
        let (status, reason) = status_of(
            &i.status,
            i.status_message.as_deref(),
            &health,
            last.as_ref(),
        );
        let warnings = health_view(i.kind, &health, &secrets, now()).warnings;
        out.push(IntegrationStatus {
            id: i.id,
            name: i.name,
            kind: i.kind.to_string(),
            status,
            reason,
            warnings,
            last_sync: last,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmmbridge_core::Timestamp;
    use serde_json::json;

    fn run(state: SyncRunState) -> SyncRun {
        SyncRun {
            id: 9,
            integration_id: 1,
            kind: "devices".into(),
            state,
            stage: "done".into(),
            counts: json!({}),
            error: (state == SyncRunState::Failed).then(|| "HTTP 500".into()),
            triggered_by: "test".into(),
            started_at: Timestamp(0),
            heartbeat_at: Timestamp(0),
            finished_at: Some(Timestamp(1)),
        }
    }

    #[test]
    fn status_follows_consent_then_failures_then_success() {
        let ok = CredentialHealth::default();
        let failing = CredentialHealth {
            consecutive_failures: 2,
            last_error: Some("401 Unauthorized".into()),
            ..Default::default()
        };
        let ok_run = run(SyncRunState::Succeeded);
        let bad_run = run(SyncRunState::Failed);
        assert_eq!(
            status_of("needs_consent", None, &failing, Some(&ok_run)).0,
            "needs_consent"
        );
        let (s, why) = status_of("healthy", None, &failing, Some(&ok_run));
        assert_eq!(s, "failing");
        assert_eq!(
            why.unwrap(),
            "2 failed call(s) to the RMM in a row; the last: 401 Unauthorized"
        );
        let (s, why) = status_of("healthy", None, &ok, Some(&bad_run));
        assert_eq!(s, "failing");
        assert_eq!(why.unwrap(), "the last sync (run 9) failed: HTTP 500");
        assert_eq!(status_of("healthy", None, &ok, None), ("healthy", None));
        assert_eq!(
            status_of("new", None, &ok, Some(&ok_run)),
            ("healthy", None)
        );
        assert_eq!(status_of("new", Some("verify"), &ok, None).0, "new");
        assert_eq!(
            status_of("failing", Some("TLS certificate not trusted"), &ok, None),
            ("failing", Some("TLS certificate not trusted".into()))
        );
    }
}
