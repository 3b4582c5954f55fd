use crate::auth::{AuthVia, CurrentUser};
use axum::Json;
use rmmbridge_store::TenantScope;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: i64,
    pub username: String,
    /// `admin`, `technician` or `viewer`.
    pub role: String,
    /// Tenant ids this user is limited to; absent when the user sees every tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<Vec<i64>>,
    /// `session` or `token`.
    pub auth: &'static str,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "users",
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(user: CurrentUser) -> Json<Me> {
    Json(Me {
        id: user.id,
        username: user.username.clone(),
        role: user.role.to_string(),
        tenants: match &user.tenants {
            TenantScope::All => None,
            TenantScope::Only(ids) => Some(ids.clone()),
        },
        auth: match user.via {
            AuthVia::Session { .. } => "session",
            AuthVia::Token { .. } => "token",
        },
    })
}
