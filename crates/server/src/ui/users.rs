//! Users (admins): create with a generated password shown once, change role, disable, limit to tenants,
//! reset a password. Every change goes through `services::users`, which audits it.
use super::{Nav, UiError, UiResult, fmt_opt_time, fmt_time, render, require, see_other};
use crate::auth::CurrentUser;
use crate::auth::password::generate_password;
use crate::error::ApiError;
use crate::services::audit::Actor;
use crate::services::users::{self as svc, UserChange};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmmbridge_core::Role;
use rmmbridge_store::{TenantScope, User};
use serde::Deserialize;

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub created: String,
    pub last_login: String,
    pub tenants: Vec<i64>,
    pub tenant_names: String,
    pub is_self: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserRow>,
    tenants: Vec<(i64, String)>,
    roles: [&'static str; 3],
    error: Option<String>,
    /// Shown once: (username, password).
    shown: Option<(String, String)>,
    notice: Option<&'static str>,
    form_username: String,
    form_role: String,
}

async fn page(state: &AppState, user: &CurrentUser) -> UiResult<UsersPage> {
    let tenants: Vec<(i64, String)> = state
        .db
        .list_tenants(&TenantScope::All)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let mut users = Vec::new();
    for u in state.db.list_users().await? {
        let ids = state.db.user_tenants(u.id).await?;
        let names: Vec<&str> = ids
            .iter()
            .filter_map(|id| {
                tenants
                    .iter()
                    .find(|(t, _)| t == id)
                    .map(|(_, n)| n.as_str())
            })
            .collect();
        users.push(UserRow {
            id: u.id,
            is_self: u.id == user.id,
            username: u.username,
            role: u.role.to_string(),
            disabled: u.disabled,
            created: fmt_time(u.created_at.0),
            last_login: fmt_opt_time(u.last_login_at.map(|t| t.0)),
            tenant_names: if ids.is_empty() {
                "all tenants".into()
            } else {
                names.join(", ")
            },
            tenants: ids,
        });
    }
    Ok(UsersPage {
        nav: Nav::for_user(user).at("users"),
        users,
        tenants,
        roles: ["viewer", "technician", "admin"],
        error: None,
        shown: None,
        notice: None,
        form_username: String::new(),
        form_role: "viewer".into(),
    })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<NoticeQuery>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let mut p = page(&state, &user).await?;
    p.notice = super::notice_text(q.notice.as_deref());
    Ok(render(&p))
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse()
        .map_err(|e: rmmbridge_core::domain::ParseEnumError| ApiError::BadRequest(e.to_string()))
}

/// Repeated fields (`tenants=1&tenants=2`) need the raw form.
fn fields(form: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(form).unwrap_or_default()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn tenant_ids(f: &[(String, String)]) -> Vec<i64> {
    f.iter()
        .filter(|(k, _)| k == "tenants")
        .filter_map(|(_, v)| v.parse().ok())
        .collect()
}

/// `POST /users`: creates a user and shows the generated password once.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    RawForm(form): RawForm,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let f = fields(&form);
    let username = field(&f, "username").unwrap_or_default().to_owned();
    let role_text = field(&f, "role").unwrap_or("viewer").to_owned();
    let tenants = tenant_ids(&f);
    let actor = Actor::from(&user);
    let password = generate_password();
    let result = async {
        let role = parse_role(&role_text)?;
        let created = svc::create_user(&state.db, &actor, &username, role, &password).await?;
        if !tenants.is_empty() {
            let change = UserChange {
                role: None,
                disabled: None,
                tenants: Some(tenants),
            };
            svc::update_user(&state.db, &actor, &created, change).await?;
        }
        Ok::<User, ApiError>(created)
    }
    .await;
    let mut p = page(&state, &user).await?;
    match result {
        Ok(created) => {
            p.shown = Some((created.username, password));
            Ok(render(&p))
        }
        Err(e) => {
            let status = e.status();
            p.error = Some(super::capitalize(&e.to_string()));
            p.form_username = username;
            p.form_role = role_text;
            Ok((status, render(&p)).into_response())
        }
    }
}

async fn load(state: &AppState, id: i64) -> UiResult<User> {
    state
        .db
        .user_by_id(id)
        .await?
        .ok_or(UiError::from(ApiError::NotFound("user")))
}

/// `POST /users/{id}`: role, disabled and tenant limit from the row's form.
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    RawForm(form): RawForm,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let target = load(&state, id).await?;
    let f = fields(&form);
    let role = parse_role(field(&f, "role").unwrap_or(target.role.as_str()))?;
    let disabled = field(&f, "disabled").is_some();
    if target.id == user.id && (disabled || role != Role::Admin) {
        return Err(ApiError::BadRequest(
            "you cannot disable or demote yourself; ask another admin".into(),
        )
        .into());
    }
    let change = UserChange {
        role: Some(role),
        disabled: Some(disabled),
        tenants: Some(tenant_ids(&f)),
    };
    svc::update_user(&state.db, &Actor::from(&user), &target, change).await?;
    Ok(see_other("/users?notice=user_updated"))
}

/// `POST /users/{id}/password`: a new generated password, shown once; the user is signed out everywhere.
pub async fn reset_password(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let target = load(&state, id).await?;
    let password = generate_password();
    svc::reset_password(&state.db, &Actor::from(&user), &target, &password).await?;
    let mut p = page(&state, &user).await?;
    p.shown = Some((target.username, password));
    Ok((StatusCode::OK, render(&p)).into_response())
}
