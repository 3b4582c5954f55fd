use crate::auth::CurrentUser;
use crate::auth::password::generate_password;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::Actor;
use crate::services::users::{self as svc, UserChange};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rmmbridge_core::{Role, Timestamp};
use rmmbridge_store::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub disabled: bool,
    /// Tenant ids the user is limited to; empty means all tenants.
    pub tenants: Vec<i64>,
    /// Unix milliseconds.
    #[schema(value_type = i64)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<i64>)]
    pub last_login_at: Option<Timestamp>,
}

impl UserView {
    async fn load(state: &AppState, u: User) -> ApiResult<UserView> {
        let tenants = state.db.user_tenants(u.id).await?;
        Ok(UserView {
            id: u.id,
            username: u.username,
            role: u.role.to_string(),
            disabled: u.disabled,
            tenants,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        })
    }
}

fn parse_role(text: &str) -> ApiResult<Role> {
    text.parse()
        .map_err(|e: rmmbridge_core::domain::ParseEnumError| ApiError::BadRequest(e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [UserView]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<Vec<UserView>>> {
    user.require(Role::Admin)?;
    let mut out = Vec::new();
    for u in state.db.list_users().await? {
        out.push(UserView::load(&state, u).await?);
    }
    Ok(Json(out))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateUser {
    pub username: String,
    /// `admin`, `technician` or `viewer`.
    pub role: String,
    /// At least 12 characters. Leave out to have one generated and returned once.
    pub password: Option<String>,
    /// Limit the user to these tenants.
    #[serde(default)]
    pub tenants: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: UserView,
    /// Present only when the password was generated; it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_password: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = CreatedUser), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    user.require(Role::Admin)?;
    let role = parse_role(&body.role)?;
    let generated = body.password.is_none().then(generate_password);
    let password = body
        .password
        .as_deref()
        .or(generated.as_deref())
        .unwrap_or_default();
    let actor = Actor::from(&user);
    let created = svc::create_user(&state.db, &actor, &body.username, role, password).await?;
    if !body.tenants.is_empty() {
        svc::update_user(
            &state.db,
            &actor,
            &created,
            UserChange {
                role: None,
                disabled: None,
                tenants: Some(body.tenants),
            },
        )
        .await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserView::load(&state, created).await?,
            generated_password: generated,
        }),
    ))
}

async fn load(state: &AppState, id: i64) -> ApiResult<User> {
    state
        .db
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("user"))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    responses((status = 200, body = UserView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<UserView>> {
    if user.id != id {
        user.require(Role::Admin)?;
    }
    Ok(Json(UserView::load(&state, load(&state, id).await?).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateUser {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// Replace the tenant limit; an empty list removes it.
    pub tenants: Option<Vec<i64>>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<Json<UserView>> {
    user.require(Role::Admin)?;
    let target = load(&state, id).await?;
    if target.id == user.id
        && (body.disabled == Some(true) || body.role.as_deref().is_some_and(|r| r != "admin"))
    {
        return Err(ApiError::BadRequest(
            "you cannot disable or demote yourself; ask another admin".into(),
        ));
    }
    let change = UserChange {
        role: body.role.as_deref().map(parse_role).transpose()?,
        disabled: body.disabled,
        tenants: body.tenants,
    };
    svc::update_user(&state.db, &Actor::from(&user), &target, change).await?;
    Ok(Json(UserView::load(&state, load(&state, id).await?).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct SetPassword {
    /// Required when changing your own password.
    pub current_password: Option<String>,
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = SetPassword,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody)))]
pub async fn set_password(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(body): Json<SetPassword>,
) -> ApiResult<StatusCode> {
    let target = load(&state, id).await?;
    if target.id == user.id {
        let current = body.current_password.as_deref().unwrap_or_default();
        if !crate::auth::password::verify_password(current, &target.password_hash) {
            return Err(ApiError::BadRequest(
                "current_password is missing or wrong".into(),
            ));
        }
    } else {
        user.require(Role::Admin)?;
    }
    svc::reset_password(&state.db, &Actor::from(&user), &target, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
