use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::Actor;
use crate::services::tokens as svc;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use rmmbridge_core::{Role, Timestamp};
use rmmbridge_store::ApiToken;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The first characters, to tell tokens apart.
    pub prefix: String,
    #[schema(value_type = i64)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<i64>)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<i64>)]
    pub revoked_at: Option<Timestamp>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Admins only: list every user's tokens.
    #[serde(default)]
    pub all: bool,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(ListQuery),
    responses((status = 200, body = [TokenView])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let owner = if q.all {
        user.require(Role::Admin)?;
        None
    } else {
        Some(user.id)
    };
    let tokens = state.db.list_api_tokens(owner).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateToken {
    pub name: String,
    /// Leave out for a token that does not expire.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer token. Shown only in this response.
    pub token: String,
    #[serde(flatten)]
    pub record: TokenView,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::BadRequest(
            "a token needs a name of 1 to 100 characters, e.g. the system that will use it".into(),
        ));
    }
    let created = svc::create_token(
        &state.db,
        &Actor::from(&user),
        user.id,
        &body.name,
        body.expires_in_days,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: created.token,
            record: created.record.into(),
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let token = svc::token_for(&state.db, &user, id)
        .await?
        .ok_or(ApiError::NotFound("API token"))?;
    svc::revoke_token(&state.db, &Actor::from(&user), &token).await?;
    Ok(StatusCode::NO_CONTENT)
}
