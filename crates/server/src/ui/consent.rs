//! `/consent-callback`: where NinjaOne sends the admin back after "Provide consent". Public (NinjaOne
//! redirects here), so it reads the session itself and lets the state check do the rest.
use super::render;
use crate::auth::{self, SESSION_COOKIE};
use crate::services::integrations::consent::{self, Callback, ConsentError};
use crate::state::{AppState, now};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    ok: bool,
    message: &'a str,
    integration_id: Option<i64>,
}

pub async fn consent_callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(cb): Query<Callback>,
) -> Response {
    let user = match jar.get(SESSION_COOKIE) {
        Some(c) => auth::from_session(&state, c.value(), now()).await.ok(),
        None => None,
    };
    let outcome = consent::complete(
        &state.db,
        &state.vault,
        &state.connectors,
        user.as_ref(),
        &cb,
    )
    .await;
    let (status, integration_id) = match &outcome {
        Ok(id) => (StatusCode::OK, Some(*id)),
        Err(ConsentError::AlreadyUsed { integration_id }) => {
            (StatusCode::OK, Some(*integration_id))
        }
        Err(ConsentError::WrongUser | ConsentError::NotSignedIn) => (StatusCode::FORBIDDEN, None),
        Err(e @ ConsentError::Failed(_)) => {
            tracing::warn!(error = %e, "NinjaOne consent failed");
            (StatusCode::BAD_GATEWAY, None)
        }
        Err(_) => (StatusCode::BAD_REQUEST, None),
    };
    let message = outcome
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    let page = ConsentPage {
        ok: outcome.is_ok(),
        message: &message,
        integration_id,
    };
    (status, render(&page)).into_response()
}
