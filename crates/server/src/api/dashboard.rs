//! `GET /api/v1/dashboard`: the numbers on the first screen and each integration's status.
use super::sync_runs::SyncRunView;
use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::services::dashboard as svc;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct DashboardCounts {
    /// Tenants the caller sees.
    pub tenants: i64,
    /// Computers that are not retired, in those tenants.
    pub computers: i64,
    /// ManualDecisions waiting for an admin, in those tenants.
    pub open_decisions: i64,
}

#[derive(Serialize, ToSchema)]
pub struct IntegrationSummary {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// `healthy`, `needs_consent`, `failing` or `new` (never verified nor synced).
    pub status: String,
    /// What is wrong and what to do, when not healthy.
    pub status_reason: Option<String>,
    /// Credential warnings before things break (expiring passwords, aging refresh tokens).
    pub warnings: Vec<String>,
    pub last_sync: Option<SyncRunView>,
}

#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    pub counts: DashboardCounts,
    pub integrations: Vec<IntegrationSummary>,
}

#[utoipa::path(get, path = "/api/v1/dashboard", tag = "dashboard",
    responses((status = 200, body = Dashboard)))]
pub async fn dashboard(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<Dashboard>> {
    let c = svc::counts(&state.db, &user.tenants).await?;
    let integrations = svc::integrations(&state.db)
        .await?
        .into_iter()
        .map(|i| IntegrationSummary {
            id: i.id,
            name: i.name,
            kind: i.kind,
            status: i.status.into(),
            status_reason: i.reason,
            warnings: i.warnings,
            last_sync: i.last_sync.map(SyncRunView::from),
        })
        .collect();
    Ok(Json(Dashboard {
        counts: DashboardCounts {
            tenants: c.tenants,
            computers: c.computers,
            open_decisions: c.open_decisions,
        },
        integrations,
    }))
}
