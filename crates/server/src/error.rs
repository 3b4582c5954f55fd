//! One error type for the HTTP layer, mapped to a status and the JSON shape `{"error":{"code","message"}}`
//! in exactly one place.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmmbridge_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "authentication required: sign in, or send an API token as `Authorization: Bearer <token>`"
    )]
    Unauthenticated,
    #[error("{0}")]
    Unauthorized(String),
    #[error("your role ({have}) may not do this; it needs the {need} role")]
    Forbidden { have: String, need: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but not possible for this object (e.g. merging into a computer that is not a candidate).
    #[error("{0}")]
    Unprocessable(String),
    #[error(
        "the form is missing its CSRF token or the token does not match your session; reload the page and try again"
    )]
    Csrf,
    #[error("too many failed sign-in attempts; try again in {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: &'static str,
    /// What happened and what to do, for a person.
    pub message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::Csrf => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Csrf => "csrf_failed",
            ApiError::Throttled { .. } => "throttled",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn forbidden(have: rmmbridge_core::Role, need: rmmbridge_core::Role) -> Self {
        ApiError::Forbidden {
            have: have.to_string(),
            need: need.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::NotFound(what),
            StoreError::Conflict { what } => ApiError::Conflict(what),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // Logged here, once; the client gets the message but never a stack of internals.
            tracing::error!(error = %self, "request failed");
        }
        let retry_after = match &self {
            ApiError::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
