//! The JSON API under `/api/v1`, described by the OpenAPI document served at `/api/openapi.json`.

pub mod audit;
pub mod clients;
pub mod health;
pub mod integrations;
pub mod me;
pub mod sync;
pub mod tenants;
pub mod tokens;
pub mod users;
// Read API and ManualDecisions (issue 5 items 5-6).
pub mod computers;
pub mod dashboard;
pub mod decisions;
pub mod extract;
pub mod sync_runs;

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rmmbridge API",
        description = "Self-hosted RMM integration hub. Authenticate with `Authorization: Bearer <API token>` \
                       (create one with `rmmbridge token create`) or the UI session cookie plus `X-CSRF-Token`. \
                       Errors are `{\"error\":{\"code\",\"message\"}}`."
    ),
    paths(
        me::me,
        users::list_users, users::create_user, users::get_user, users::update_user, users::set_password,
        tokens::list_tokens, tokens::create_token, tokens::revoke_token,
        audit::list_audit,
        tenants::list_tenants, tenants::create_tenant, tenants::get_tenant,
        integrations::list_integrations, integrations::create_integration, integrations::get_integration,
        integrations::update_integration, integrations::delete_integration, integrations::verify_integration,
        integrations::verify_unsaved, integrations::start_consent, integrations::current_totp,
        sync::sync_now,
        // Read API and ManualDecisions.
        computers::list_computers, computers::get_computer, computers::get_agent,
        decisions::list_decisions, decisions::get_decision, decisions::resolve_decision,
        sync_runs::list_sync_runs, sync_runs::get_sync_run, sync_runs::sync_run_plan,
        dashboard::dashboard,
        clients::refresh_clients, clients::list_clients, clients::auto_match, clients::create_unmatched,
        clients::match_client, clients::create_for_client, clients::exclude_client,
        clients::include_client, clients::preview, clients::apply,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = []))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Paging parameters shared by list endpoints.
pub fn clamp_limit(limit: Option<i64>, default: i64, max: i64) -> i64 {
    limit.unwrap_or(default).clamp(1, max)
}
