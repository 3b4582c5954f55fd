//! `/api/v1/sync-runs`: SyncRuns (stages, counts while running, errors) and the device plan each
//! applied. Visible to every signed-in user, as integrations are.
use super::extract::{ApiQuery, decode_cursor, encode_cursor};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use rmmbridge_store::{PlanItem, SyncRun};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncRunListParams {
    /// Only this integration's runs.
    pub integration_id: Option<i64>,
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunView {
    pub id: i64,
    pub integration_id: i64,
    pub kind: String,
    /// `running`, `succeeded`, `failed`, `abandoned`.
    pub state: String,
    /// `starting`, `clients`, `devices`, `lifecycle`, `identify`, `done`.
    pub stage: String,
    /// What the run did so far (fetched, new, changed, moved, missing, identified_*, ...).
    #[schema(value_type = Object)]
    pub counts: Value,
    pub error: Option<String>,
    pub triggered_by: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub finished_at: Option<i64>,
    /// Wall time so far (running) or in total, in milliseconds.
    pub duration_ms: i64,
}

impl From<SyncRun> for SyncRunView {
    fn from(r: SyncRun) -> Self {
        let end = r.finished_at.unwrap_or(r.heartbeat_at);
        SyncRunView {
            id: r.id,
            integration_id: r.integration_id,
            kind: r.kind,
            state: r.state.to_string(),
            stage: r.stage,
            counts: r.counts,
            error: r.error,
            triggered_by: r.triggered_by,
            started_at: r.started_at.0,
            heartbeat_at: r.heartbeat_at.0,
            finished_at: r.finished_at.map(|t| t.0),
            duration_ms: (end.0 - r.started_at.0).max(0),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/sync-runs", tag = "sync", params(SyncRunListParams),
    responses((status = 200, body = [SyncRunView])))]
pub async fn list_sync_runs(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(p): ApiQuery<SyncRunListParams>,
) -> ApiResult<Json<Vec<SyncRunView>>> {
    let runs = state
        .db
        .list_sync_runs(p.integration_id, super::clamp_limit(p.limit, 50, 500))
        .await?;
    Ok(Json(runs.into_iter().map(SyncRunView::from).collect()))
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunDetail {
    #[serde(flatten)]
    pub run: SyncRunView,
    /// Plan items stored for the run, by action (`new`, `changed`, `moved`, `missing`, ...).
    pub plan_counts: BTreeMap<String, i64>,
}

#[utoipa::path(get, path = "/api/v1/sync-runs/{id}", tag = "sync",
    responses((status = 200, body = SyncRunDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_sync_run(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<SyncRunDetail>> {
    let run = state
        .db
        .sync_run(id)
        .await?
        .ok_or(ApiError::NotFound("sync run"))?;
    let plan_counts = state.db.plan_item_counts(id).await?.into_iter().collect();
    Ok(Json(SyncRunDetail {
        run: run.into(),
        plan_counts,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanParams {
    /// Only items of this action: `new`, `changed`, `moved`, `missing`, `retired`, `returned`.
    pub action: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PlanItemView {
    pub id: i64,
    pub external_id: String,
    pub agent_id: Option<i64>,
    pub action: String,
    /// `[{"field","from","to"}]`.
    #[schema(value_type = Object)]
    pub diffs: Value,
}

impl From<PlanItem> for PlanItemView {
    fn from(p: PlanItem) -> Self {
        PlanItemView {
            id: p.id,
            external_id: p.external_id,
            agent_id: p.agent_id,
            action: p.action,
            diffs: p.diffs,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PlanPage {
    pub items: Vec<PlanItemView>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct PlanKeyset {
    i: i64,
}

#[utoipa::path(get, path = "/api/v1/sync-runs/{id}/plan", tag = "sync", params(PlanParams),
    responses((status = 200, body = PlanPage), (status = 404, body = crate::error::ErrorBody)))]
pub async fn sync_run_plan(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<i64>,
    ApiQuery(p): ApiQuery<PlanParams>,
) -> ApiResult<Json<PlanPage>> {
    if state.db.sync_run(id).await?.is_none() {
        return Err(ApiError::NotFound("sync run"));
    }
    let after = match p.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => decode_cursor::<PlanKeyset>(c)?.i,
        None => 0,
    };
    let limit = super::clamp_limit(p.limit, 100, 1000);
    let action = p.action.as_deref().filter(|a| !a.is_empty());
    let mut items = state.db.plan_items(id, action, after, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(encode_cursor(&PlanKeyset { i: last.id })),
        _ => None,
    };
    Ok(Json(PlanPage {
        items: items.into_iter().map(PlanItemView::from).collect(),
        next_cursor,
    }))
}
