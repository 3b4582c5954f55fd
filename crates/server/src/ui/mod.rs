//! Server-rendered HTML pages (askama templates in `crates/server/templates/`, checked at compile time).

pub mod assets;
pub mod consent;
pub mod dashboard;
pub mod login;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use axum::response::{Html, IntoResponse, Response};

/// What the top bar of every signed-in page shows.
pub struct Nav {
    pub username: String,
    pub role: String,
    pub csrf_token: String,
}

impl Nav {
    pub fn for_user(user: &CurrentUser) -> Nav {
        Nav {
            username: user.username.clone(),
            role: user.role.to_string(),
            csrf_token: user.csrf_token().unwrap_or_default().to_owned(),
        }
    }
}

pub fn render(template: &impl askama::Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::Internal(format!("rendering a page failed: {e}")).into_response(),
    }
}
