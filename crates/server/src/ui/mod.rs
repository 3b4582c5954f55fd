//! Server-rendered HTML pages (askama templates in `crates/server/templates/`, checked at compile time).
//! Handlers are thin: they parse the form, call `services`, then redirect (POST-redirect-GET) or render.
//! Every core action works without JavaScript; `static/app.js` only adds conveniences.

pub mod assets;
pub mod audit;
pub mod consent;
pub mod dashboard;
pub mod integrations;
pub mod login;
pub mod mapping;
pub mod sync_runs;
pub mod tokens;
pub mod users;
// Tenants, computers, ManualDecisions (issue 6 item 5).
pub mod computers;
pub mod decisions;
pub mod tenants;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use rmmbridge_core::Role;

/// What the navigation of every signed-in page shows.
pub struct Nav {
    pub username: String,
    pub role: String,
    pub csrf_token: String,
    /// The nav entry to highlight, e.g. `integrations`.
    pub active: &'static str,
    pub is_admin: bool,
    /// Technicians and admins: verify, sync now.
    pub can_operate: bool,
}

impl Nav {
    pub fn for_user(user: &CurrentUser) -> Nav {
        Nav {
            username: user.username.clone(),
            role: user.role.to_string(),
            csrf_token: user.csrf_token().unwrap_or_default().to_owned(),
            active: "",
            is_admin: user.role.allows(Role::Admin),
            can_operate: user.role.allows(Role::Technician),
        }
    }

    pub fn at(mut self, active: &'static str) -> Nav {
        self.active = active;
        self
    }
}

pub fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::Internal(format!("rendering a page failed: {e}")).into_response(),
    }
}

/// A page-level failure, shown as an HTML page with the error's status (403, 404, 409, ...), with what
/// happened and what to do.
pub struct UiError {
    pub error: ApiError,
    /// Boxed: results stay small on the happy path.
    pub nav: Option<Box<Nav>>,
}

pub type UiResult<T> = Result<T, UiError>;

macro_rules! into_ui_error {
    ($($t:ty),*) => {$(
        impl From<$t> for UiError {
            fn from(e: $t) -> Self {
                UiError { error: e.into(), nav: None }
            }
        }
    )*};
}
into_ui_error!(
    ApiError,
    rmmbridge_store::StoreError,
    crate::services::integrations::IntegrationError,
    crate::services::sync::SyncError,
    crate::services::users::UserError
);

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: &'a Option<Nav>,
    status: u16,
    title: &'a str,
    message: String,
    hint: &'a str,
}

/// The error page for an [`ApiError`]; also used by the auth middleware for browser requests.
pub fn error_page(error: &ApiError, nav: Option<Nav>) -> Response {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(error = %error, "page failed");
    }
    let (title, hint) = match error {
        ApiError::Forbidden { .. } => (
            "Not allowed",
            "Ask an admin to do this for you, or to give your account the role it needs.",
        ),
        ApiError::Csrf => (
            "Form expired",
            "Go back, reload the page so the form gets a fresh token, and submit it again.",
        ),
        ApiError::NotFound(_) => (
            "Not found",
            "It may have been removed, or your account may be limited to other tenants.",
        ),
        ApiError::Conflict(_) => ("Conflict", "Reload the page to see the current state."),
        ApiError::BadRequest(_) | ApiError::Unprocessable(_) => (
            "Cannot do that",
            "Go back, correct the input and try again.",
        ),
        ApiError::Unauthenticated | ApiError::Unauthorized(_) => {
            ("Sign in required", "Sign in again.")
        }
        ApiError::Throttled { .. } => ("Too many attempts", "Wait a moment, then try again."),
        ApiError::Internal(_) => (
            "Something went wrong",
            "This is a fault in rmmbridge or its database; the server log has the details. Try again.",
        ),
    };
    let page = ErrorPage {
        nav: &nav,
        status: status.as_u16(),
        title,
        message: capitalize(&error.to_string()),
        hint,
    };
    (status, render(&page)).into_response()
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(&self.error, self.nav.map(|n| *n))
    }
}

/// `user.require(role)` for pages: a refusal is the 403 page with the navigation.
pub fn require(user: &CurrentUser, role: Role) -> UiResult<()> {
    user.require(role).map_err(|error| UiError {
        error,
        nav: Some(Box::new(Nav::for_user(user))),
    })
}

/// A 303 to `location`: the GET after a successful POST.
pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(axum::http::header::LOCATION, location.to_owned())],
    )
        .into_response()
}

pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Unix milliseconds as `2025-03-04 13:05:09 UTC` (the page's script shows it in local time).
pub fn fmt_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn fmt_opt_time(ms: Option<i64>) -> String {
    ms.map(fmt_time).unwrap_or_else(|| "never".into())
}

/// A duration in seconds as `3 d 4 h`, `12 min`, `40 s`.
pub fn fmt_secs(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Notices shown after a redirect (`?notice=saved`); unknown codes show nothing.
pub fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => "Integration created. Next: choose \"Verify credentials\".",
        "saved" => "Changes saved.",
        "deleted" => "Integration removed.",
        "consent" => "NinjaOne consent stored.",
        "already_running" => "A sync of this integration is already running; this is its progress.",
        "sync_started" => "Sync started.",
        "user_updated" => "User updated.",
        "token_revoked" => "API token revoked.",
        "mapping_applied" => {
            "Client mapping applied. This sync imports the newly mapped clients' devices and identifies them."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(1_709_557_509_000), "2024-03-04 13:05:09 UTC");
        assert_eq!(fmt_secs(42), "42 s");
        assert_eq!(fmt_secs(3 * 86_400 + 4 * 3600 + 5), "3 d 4 h");
        assert_eq!(capitalize("the form"), "The form");
    }
}
