//! Client mapping over HTTP (DESIGN.md §3 items 4 and 5): thin handlers over
//! [`crate::services::mapping`]. Anyone signed in may read (a tenant-limited user sees only its
//! tenants); every change needs the technician role and a user not limited to tenants.
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::Actor;
use crate::services::mapping::{
    ApplyReport, BulkResult, ClientAction, ClientList, ClientMapping, ClientRow, Preview,
    RefreshReport, SyncAfter, View,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use rmmbridge_core::Role;
use rmmbridge_store::TenantScope;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

fn mapping(state: &AppState) -> ClientMapping<'_> {
    ClientMapping {
        db: &state.db,
        connectors: &state.connectors,
        sync: &state.sync,
    }
}

/// Mapping changes act on every tenant of the hub (Auto-match and Create look at all tenants,
/// Finish applies everyone's pending links), so a tenant-limited user may not make them.
pub(crate) fn require_mapper(user: &CurrentUser) -> ApiResult<Actor> {
    user.require(Role::Technician)?;
    if user.tenants != TenantScope::All {
        return Err(ApiError::Forbidden {
            have: format!("{}, limited to some tenants", user.role),
            need: "technician (not limited to tenants: client mapping affects every tenant)".into(),
        });
    }
    Ok(Actor::from(user))
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// all (default), unmatched, matched (includes `create`), excluded.
    pub view: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/refresh", tag = "clients",
    responses((status = 200, body = RefreshReport), (status = 404, body = crate::error::ErrorBody),
              (status = 400, body = crate::error::ErrorBody)))]
pub async fn refresh_clients(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<RefreshReport>> {
    let actor = require_mapper(&user)?;
    Ok(Json(mapping(&state).refresh(id, &actor).await?))
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/clients", tag = "clients", params(ListQuery),
    responses((status = 200, body = ClientList), (status = 404, body = crate::error::ErrorBody),
              (status = 400, body = crate::error::ErrorBody)))]
pub async fn list_clients(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ClientList>> {
    let view = match q.view.as_deref() {
        None | Some("") => View::All,
        Some(v) => v.parse().map_err(ApiError::BadRequest)?,
    };
    Ok(Json(mapping(&state).list(id, view, &user.tenants).await?))
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/auto-match", tag = "clients",
    responses((status = 200, body = BulkResult), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn auto_match(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<BulkResult>> {
    let actor = require_mapper(&user)?;
    Ok(Json(mapping(&state).auto_match(id, &actor).await?))
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/create-unmatched", tag = "clients",
    responses((status = 200, body = BulkResult), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn create_unmatched(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<BulkResult>> {
    let actor = require_mapper(&user)?;
    Ok(Json(mapping(&state).create_unmatched(id, &actor).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct MatchBody {
    pub tenant_id: i64,
}

async fn set(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    client_id: i64,
    action: ClientAction,
) -> ApiResult<Json<ClientRow>> {
    let actor = require_mapper(user)?;
    Ok(Json(
        mapping(state).set(id, client_id, action, &actor).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/{client_id}/match", tag = "clients",
    request_body = MatchBody,
    responses((status = 200, body = ClientRow), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn match_client(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, client_id)): Path<(i64, i64)>,
    Json(body): Json<MatchBody>,
) -> ApiResult<Json<ClientRow>> {
    let action = ClientAction::Match {
        tenant_id: body.tenant_id,
    };
    set(&state, &user, id, client_id, action).await
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/{client_id}/create", tag = "clients",
    responses((status = 200, body = ClientRow), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn create_for_client(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, client_id)): Path<(i64, i64)>,
) -> ApiResult<Json<ClientRow>> {
    set(&state, &user, id, client_id, ClientAction::Create).await
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/{client_id}/exclude", tag = "clients",
    responses((status = 200, body = ClientRow), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn exclude_client(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, client_id)): Path<(i64, i64)>,
) -> ApiResult<Json<ClientRow>> {
    set(&state, &user, id, client_id, ClientAction::Exclude).await
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/clients/{client_id}/include", tag = "clients",
    responses((status = 200, body = ClientRow), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn include_client(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, client_id)): Path<(i64, i64)>,
) -> ApiResult<Json<ClientRow>> {
    set(&state, &user, id, client_id, ClientAction::Include).await
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/preview", tag = "clients",
    responses((status = 200, body = Preview), (status = 404, body = crate::error::ErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Preview>> {
    Ok(Json(mapping(&state).preview(id, &user.tenants).await?))
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/apply", tag = "clients",
    responses((status = 200, body = ApplyReport), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn apply(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ApplyReport>> {
    let actor = require_mapper(&user)?;
    Ok(Json(
        mapping(&state)
            .apply(id, &actor, SyncAfter::Background)
            .await?,
    ))
}
