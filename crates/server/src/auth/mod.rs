//! Who is calling: a session cookie (the UI) or an API token (`Authorization: Bearer`). The
//! [`authenticate`] middleware guards every non-public route, checks CSRF for cookie-authenticated unsafe
//! requests, and leaves a [`CurrentUser`] in the request for handlers.

pub mod password;
pub mod throttle;
pub mod tokens;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, now};
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use rmmbridge_core::{Role, Timestamp};
use rmmbridge_store::TenantScope;

pub const SESSION_COOKIE: &str = "rmmbridge_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "csrf_token";
/// Sessions slide: each use (at most once a minute) extends them by this much.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
const FORM_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Clone, Debug)]
pub enum AuthVia {
    Session { id_hash: String, csrf_token: String },
    Token { token_id: i64 },
}

#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub tenants: TenantScope,
    pub via: AuthVia,
    /// The caller's address, for the audit log.
    pub ip: Option<String>,
}

impl CurrentUser {
    pub fn require(&self, needed: Role) -> ApiResult<()> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(self.role, needed))
        }
    }

    pub fn sees_tenant(&self, tenant_id: i64) -> bool {
        match &self.tenants {
            TenantScope::All => true,
            TenantScope::Only(ids) => ids.contains(&tenant_id),
        }
    }

    pub fn csrf_token(&self) -> Option<&str> {
        match &self.via {
            AuthVia::Session { csrf_token, .. } => Some(csrf_token),
            AuthVia::Token { .. } => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Set by `authenticate`; absent only if a handler is mounted on a public route by mistake.
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }
}

/// Where a request came from, for the audit log.
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
}

pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_api = is_machine_path(req.uri().path());
    match resolve(&state, req).await {
        Ok((mut user, mut req)) => {
            user.ip = client_ip(req.extensions());
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err((ApiError::Unauthenticated, Some(original))) if !is_api => {
            crate::ui::login::login_required(&state, &original)
        }
        // People in a browser get a page that says what happened (a missing CSRF token, ...).
        Err((err, _)) if !is_api => crate::ui::error_page(&err, None),
        Err((err, _)) => err.into_response(),
    }
}

/// JSON callers get JSON errors; people in a browser get the sign-in page.
fn is_machine_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

type Rejected = (ApiError, Option<String>);

async fn resolve(state: &AppState, req: Request) -> Result<(CurrentUser, Request), Rejected> {
    let original = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let reject = |e: ApiError| (e, Some(original.clone()));
    let t = now();

    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                reject(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <API token>`".into(),
                ))
            })?;
        let user = from_api_token(state, token, t).await.map_err(reject)?;
        return Ok((user, req));
    }

    let jar = CookieJar::from_headers(req.headers());
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Err(reject(ApiError::Unauthenticated));
    };
    let user = from_session(state, cookie.value(), t)
        .await
        .map_err(reject)?;
    let req = if is_unsafe(req.method()) {
        check_csrf(&user, req).await.map_err(|e| (e, None))?
    } else {
        req
    };
    Ok((user, req))
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn from_api_token(state: &AppState, token: &str, t: Timestamp) -> ApiResult<CurrentUser> {
    let invalid = || {
        ApiError::Unauthorized(
            "the API token is unknown, revoked or expired; create a new one with `rmmbridge token create`".into(),
        )
    };
    let record = state
        .db
        .api_token_by_hash(&tokens::sha256_hex(token))
        .await?
        .ok_or_else(invalid)?;
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|e| e <= t) {
        return Err(invalid());
    }
    let user = load_user(state, record.user_id).await?;
    state.db.touch_api_token(record.id, t).await?;
    Ok(CurrentUser {
        via: AuthVia::Token {
            token_id: record.id,
        },
        ..user
    })
}

pub(crate) async fn from_session(
    state: &AppState,
    cookie: &str,
    t: Timestamp,
) -> ApiResult<CurrentUser> {
    let id_hash = tokens::sha256_hex(cookie);
    let session = state
        .db
        .session_by_hash(&id_hash)
        .await?
        .filter(|s| s.expires_at > t)
        .ok_or(ApiError::Unauthenticated)?;
    let user = load_user(state, session.user_id).await?;
    if t.millis() - session.last_seen_at.millis() > 60_000 {
        state
            .db
            .touch_session(&id_hash, t, t.plus_secs(SESSION_TTL_SECS))
            .await?;
    }
    Ok(CurrentUser {
        via: AuthVia::Session {
            id_hash,
            csrf_token: session.csrf_token,
        },
        ..user
    })
}

async fn load_user(state: &AppState, user_id: i64) -> ApiResult<CurrentUser> {
    let user = state
        .db
        .user_by_id(user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(ApiError::Unauthenticated)?;
    let tenant_ids = state.db.user_tenants(user.id).await?;
    Ok(CurrentUser {
        id: user.id,
        username: user.username,
        role: user.role,
        tenants: if tenant_ids.is_empty() {
            TenantScope::All
        } else {
            TenantScope::Only(tenant_ids)
        },
        via: AuthVia::Token { token_id: 0 },
        ip: None,
    })
}

/// Cookie-authenticated unsafe requests must prove they come from our own pages: the session's CSRF token
/// in the `X-CSRF-Token` header (scripts) or the `csrf_token` form field (plain HTML forms).
async fn check_csrf(user: &CurrentUser, req: Request) -> ApiResult<Request> {
    let expected = user.csrf_token().unwrap_or_default().to_owned();
    if let Some(given) = req.headers().get(CSRF_HEADER) {
        return if tokens::same(given.to_str().unwrap_or_default(), &expected) {
            Ok(req)
        } else {
            Err(ApiError::Csrf)
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(ApiError::Csrf);
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| ApiError::BadRequest("the form is too large".into()))?;
    let given = form_field(&bytes, CSRF_FIELD).unwrap_or_default();
    if !tokens::same(&given, &expected) {
        return Err(ApiError::Csrf);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}
