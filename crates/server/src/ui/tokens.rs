//! API tokens: everyone manages their own (as the API allows); admins see and revoke everyone's.
//! A new token is shown once.
use super::{Nav, UiError, UiResult, fmt_opt_time, fmt_time, render, see_other};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::services::audit::Actor;
use crate::services::tokens as svc;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmmbridge_core::Role;
use serde::Deserialize;
use std::collections::HashMap;

pub struct TokenRow {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub prefix: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<TokenRow>,
    all: bool,
    shown: Option<String>,
    error: Option<String>,
    notice: Option<&'static str>,
}

async fn page(state: &AppState, user: &CurrentUser) -> UiResult<TokensPage> {
    let all = user.role.allows(Role::Admin);
    let owners: HashMap<i64, String> = if all {
        state
            .db
            .list_users()
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect()
    } else {
        HashMap::from([(user.id, user.username.clone())])
    };
    let tokens = state
        .db
        .list_api_tokens((!all).then_some(user.id))
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            owner: owners.get(&t.user_id).cloned().unwrap_or_default(),
            name: t.name,
            prefix: t.prefix,
            created: fmt_time(t.created_at.0),
            last_used: fmt_opt_time(t.last_used_at.map(|t| t.0)),
            expires: t
                .expires_at
                .map(|t| fmt_time(t.0))
                .unwrap_or_else(|| "never".into()),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    Ok(TokensPage {
        nav: Nav::for_user(user).at("tokens"),
        tokens,
        all,
        shown: None,
        error: None,
        notice: None,
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
    let mut p = page(&state, &user).await?;
    p.notice = super::notice_text(q.notice.as_deref());
    Ok(render(&p))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::Form(form): axum::Form<CreateForm>,
) -> UiResult<Response> {
    let name = form.name.trim();
    let days = form.expires_in_days.trim();
    let checked = if name.is_empty() || name.len() > 100 {
        Err(
            "a token needs a name of 1 to 100 characters, e.g. the system that will use it"
                .to_owned(),
        )
    } else if days.is_empty() {
        Ok(None)
    } else {
        days.parse::<u32>()
            .map(Some)
            .map_err(|_| format!("expires in days must be a whole number (got {days:?})"))
    };
    let mut p;
    match checked {
        Ok(expires) => {
            let created =
                svc::create_token(&state.db, &Actor::from(&user), user.id, name, expires).await?;
            p = page(&state, &user).await?;
            p.shown = Some(created.token);
            Ok(render(&p))
        }
        Err(e) => {
            p = page(&state, &user).await?;
            p.error = Some(super::capitalize(&e));
            Ok((StatusCode::BAD_REQUEST, render(&p)).into_response())
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let token = svc::token_for(&state.db, &user, id)
        .await?
        .ok_or(UiError::from(ApiError::NotFound("API token")))?;
    svc::revoke_token(&state.db, &Actor::from(&user), &token).await?;
    Ok(see_other("/tokens?notice=token_revoked"))
}
