//! `POST /api/v1/integrations/{id}/sync`: "Sync now".
use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::services::audit::{self, Actor};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rmmbridge_core::Role;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// A sync that has started; follow it at `/api/v1/sync-runs/{run_id}`.
#[derive(Serialize, ToSchema)]
pub struct SyncStarted {
    pub run_id: i64,
    pub integration_id: i64,
    pub state: String,
    pub stage: String,
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/sync", tag = "sync",
    responses((status = 202, body = SyncStarted), (status = 409, body = crate::error::ErrorBody)))]
pub async fn sync_now(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<SyncStarted>)> {
    user.require(Role::Technician)?;
    let actor = Actor::from(&user);
    let run = state.sync.start(id, &actor.name).await?;
    audit::record(
        &state.db,
        &actor,
        "sync.start",
        Some(("integration", id.to_string())),
        json!({"run_id": run.id}),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncStarted {
            run_id: run.id,
            integration_id: id,
            state: run.state.to_string(),
            stage: run.stage,
        }),
    ))
}
