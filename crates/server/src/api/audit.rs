use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use rmmbridge_core::{Role, Timestamp};
use rmmbridge_store::{AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct AuditParams {
    /// Return entries older than this id (for paging backwards).
    pub before: Option<i64>,
    /// 1 to 500, default 100.
    pub limit: Option<i64>,
    /// Only this action, e.g. `login.failed`.
    pub action: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    #[schema(value_type = i64)]
    pub at: Timestamp,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub ip: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        AuditView {
            id: e.id,
            at: e.at,
            actor_user_id: e.actor_user_id,
            actor: e.actor,
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            details: e.details,
            ip: e.ip,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = [AuditView]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(p): Query<AuditParams>,
) -> ApiResult<Json<Vec<AuditView>>> {
    user.require(Role::Admin)?;
    let entries = state
        .db
        .list_audit(&AuditQuery {
            before_id: p.before,
            limit: super::clamp_limit(p.limit, 100, 500),
            action: p.action,
        })
        .await?;
    Ok(Json(entries.into_iter().map(AuditView::from).collect()))
}
