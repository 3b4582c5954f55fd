use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::Actor;
use crate::services::tenants;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rmmbridge_core::{Role, Timestamp};
use rmmbridge_store::Tenant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: i64,
    pub name: String,
    #[schema(value_type = i64)]
    pub created_at: Timestamp,
    #[schema(value_type = i64)]
    pub updated_at: Timestamp,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = [TenantView])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<Vec<TenantView>>> {
    let tenants = state.db.list_tenants(&user.tenants).await?;
    Ok(Json(tenants.into_iter().map(TenantView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateTenant {
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    user.require(Role::Admin)?;
    let tenant = tenants::create(&state.db, &Actor::from(&user), &body.name).await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    responses((status = 200, body = TenantView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<TenantView>> {
    // Outside the user's tenants the answer is 404, not 403: existence is not disclosed.
    if !user.sees_tenant(id) {
        return Err(ApiError::NotFound("tenant"));
    }
    let tenant = state
        .db
        .tenant_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(Json(tenant.into()))
}
