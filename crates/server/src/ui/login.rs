//! Sign-in and sign-out. Before a session exists the form is protected by a double-submit token: a random
//! value in a SameSite=Strict cookie that the posted form must repeat.

use super::render;
use crate::auth::{self, CurrentUser, SESSION_COOKIE, SESSION_TTL_SECS, tokens};
use crate::error::ApiError;
use crate::services::audit::{self, Actor};
use crate::state::{AppState, now};
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use rmmbridge_store::Session;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

const LOGIN_CSRF_COOKIE: &str = "rmmbridge_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only same-site paths: `//evil.example` and absolute URLs would make the sign-in page an open redirect.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n,
        _ => "/",
    }
}

fn login_response(
    state: &AppState,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let csrf = tokens::random_token();
    let cookie = Cookie::build((LOGIN_CSRF_COOKIE, csrf.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.secure_cookies())
        .path("/login")
        .build();
    let page = render(&LoginPage {
        csrf_token: &csrf,
        next,
        username,
        error,
    });
    (status, CookieJar::new().add(cookie), page).into_response()
}

/// What an anonymous browser sees on any protected page: the sign-in form, with status 401.
pub fn login_required(state: &AppState, original: &str) -> Response {
    login_response(
        state,
        StatusCode::UNAUTHORIZED,
        safe_next(Some(original)),
        "",
        None,
    )
}

pub async fn login_form(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    login_response(
        &state,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        "",
        None,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_owned();
    let expected = jar.get(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned());
    if !expected.is_some_and(|e| !e.is_empty() && tokens::same(&e, &form.csrf_token)) {
        return login_response(
            &state,
            StatusCode::FORBIDDEN,
            &next,
            &form.username,
            Some("The sign-in form expired or was not sent from this site. Please try again."),
        );
    }
    let username = form.username.trim().to_ascii_lowercase();
    let ip = peer.ip().to_string();
    let keys = [format!("user:{username}"), format!("ip:{ip}")];
    if let Err(wait) = state.throttle.check(&keys) {
        let message = ApiError::Throttled {
            retry_after_secs: wait,
        }
        .to_string();
        return login_response(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &form.username,
            Some(&message),
        );
    }
    match try_login(&state, &username, &form.password, &ip).await {
        Ok(Some(session_cookie)) => {
            state.throttle.record_success(&keys[0]);
            let jar = CookieJar::new()
                .add(session_cookie)
                .remove(Cookie::build(LOGIN_CSRF_COOKIE).path("/login"));
            (jar, Redirect::to(&next)).into_response()
        }
        Ok(None) => {
            state.throttle.record_failure(&keys);
            login_response(
                &state,
                StatusCode::UNAUTHORIZED,
                &next,
                &form.username,
                Some("Wrong username or password."),
            )
        }
        Err(e) => e.into_response(),
    }
}

/// `Ok(None)` for wrong credentials or a disabled user; the caller does not learn which.
async fn try_login(
    state: &AppState,
    username: &str,
    password: &str,
    ip: &str,
) -> Result<Option<Cookie<'static>>, ApiError> {
    let user = state.db.user_by_username(username).await?;
    let valid = match &user {
        Some(u) => !u.disabled && auth::password::verify_password(password, &u.password_hash),
        None => {
            auth::password::burn_verification_time(password);
            false
        }
    };
    let actor = Actor {
        user_id: user.as_ref().map(|u| u.id),
        name: username.to_owned(),
        ip: Some(ip.to_owned()),
    };
    let (Some(user), true) = (user, valid) else {
        audit::record(&state.db, &actor, "login.failed", None, json!({})).await?;
        metrics::counter!("rmmbridge_login_failures_total").increment(1);
        return Ok(None);
    };
    let token = tokens::random_token();
    let t = now();
    state
        .db
        .create_session(&Session {
            id_hash: tokens::sha256_hex(&token),
            user_id: user.id,
            csrf_token: tokens::random_token(),
            created_at: t,
            expires_at: t.plus_secs(SESSION_TTL_SECS),
            last_seen_at: t,
        })
        .await?;
    state.db.record_login(user.id, t).await?;
    audit::record(
        &state.db,
        &actor,
        "login.success",
        Some(("user", user.id.to_string())),
        json!({}),
    )
    .await?;
    // Lax, not Strict: the NinjaOne consent redirect comes back cross-site and must carry the session.
    Ok(Some(
        Cookie::build((SESSION_COOKIE, token))
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(state.settings.secure_cookies())
            .path("/")
            .build(),
    ))
}

pub async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, ApiError> {
    if let auth::AuthVia::Session { id_hash, .. } = &user.via {
        state.db.delete_session(id_hash).await?;
    }
    audit::record(
        &state.db,
        &Actor::from(&user),
        "logout",
        Some(("user", user.id.to_string())),
        json!({}),
    )
    .await?;
    let jar = CookieJar::new().remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}
