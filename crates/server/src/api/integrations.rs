//! `/api/v1/integrations`: thin handlers over `services::integrations`.
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::Actor;
use crate::services::integrations::consent::{self, ConsentStart};
use crate::services::integrations::{
    self as svc, IntegrationInput, IntegrationPatch, IntegrationView, Verification,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rmmbridge_core::{IntegrationKind, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `{"kind","name","settings","secrets","options"}`. Secrets are write-only: they never come back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationBody {
    /// `ncentral` or `ninjaone`.
    pub kind: String,
    #[serde(default)]
    pub name: String,
    /// N-central: `server_url`, `username`, `script_item_id`; NinjaOne: `instance`, `client_id`,
    /// `script_id`, `grant`; both: `pinned_sha256`, `ca_pem`, `max_in_flight`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// N-central: `jwt`, `password`, `mfa_secret`; NinjaOne: `client_secret`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub secrets: Map<String, Value>,
    /// `device_sync`, `sites_as_clients`, `allow_duplicates`, `sync_interval_minutes`, `missing_grace_days`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: Value,
}

impl IntegrationBody {
    fn into_input(self) -> ApiResult<IntegrationInput> {
        let kind: IntegrationKind =
            self.kind
                .parse()
                .map_err(|e: rmmbridge_core::domain::ParseEnumError| {
                    ApiError::BadRequest(e.to_string())
                })?;
        Ok(IntegrationInput {
            kind,
            name: self.name,
            settings: self.settings,
            secrets: self.secrets,
            options: self.options,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatchBody {
    pub name: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Option<Value>,
    /// A string sets a secret; `null` removes it.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub secrets: Map<String, Value>,
    #[schema(value_type = Object)]
    pub options: Option<Value>,
}

async fn view(state: &AppState, i: rmmbridge_store::Integration) -> ApiResult<IntegrationView> {
    Ok(svc::view(&state.db, i, &state.settings.public_url).await?)
}

#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations",
    responses((status = 200, body = [IntegrationView])))]
pub async fn list_integrations(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> ApiResult<Json<Vec<IntegrationView>>> {
    let mut out = Vec::new();
    for i in state.db.list_integrations().await? {
        out.push(view(&state, i).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations", request_body = IntegrationBody,
    responses((status = 201, body = IntegrationView), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create_integration(
    State(state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<IntegrationBody>,
) -> ApiResult<(StatusCode, Json<IntegrationView>)> {
    user.require(Role::Admin)?;
    let i = svc::create(
        &state.db,
        &state.vault,
        &Actor::from(&user),
        &body.into_input()?,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, i).await?)))
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations",
    responses((status = 200, body = IntegrationView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_integration(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<IntegrationView>> {
    let i = svc::get(&state.db, id).await?;
    Ok(Json(view(&state, i).await?))
}

#[utoipa::path(patch, path = "/api/v1/integrations/{id}", tag = "integrations", request_body = IntegrationPatchBody,
    responses((status = 200, body = IntegrationView), (status = 400, body = crate::error::ErrorBody)))]
pub async fn update_integration(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Json(body): Json<IntegrationPatchBody>,
) -> ApiResult<Json<IntegrationView>> {
    user.require(Role::Admin)?;
    let patch = IntegrationPatch {
        name: body.name,
        settings: body.settings,
        secrets: body.secrets,
        options: body.options,
    };
    let i = svc::update(&state.db, &state.vault, &Actor::from(&user), id, &patch).await?;
    state.connectors.forget(id);
    Ok(Json(view(&state, i).await?))
}

#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "integrations",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_integration(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    user.require(Role::Admin)?;
    svc::remove(&state.db, &Actor::from(&user), id).await?;
    state.connectors.forget(id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/verify", tag = "integrations",
    responses((status = 200, body = Verification)))]
pub async fn verify_integration(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Verification>> {
    user.require(Role::Technician)?;
    Ok(Json(
        svc::verify(&state.db, &state.connectors, &Actor::from(&user), id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/integrations/verify", tag = "integrations", request_body = IntegrationBody,
    responses((status = 200, body = Verification)))]
pub async fn verify_unsaved(
    State(_state): State<AppState>,
    user: CurrentUser,
    Json(body): Json<IntegrationBody>,
) -> ApiResult<Json<Verification>> {
    user.require(Role::Admin)?;
    Ok(Json(svc::verify_unsaved(&body.into_input()?).await?))
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/consent", tag = "integrations",
    responses((status = 200, body = ConsentStart)))]
pub async fn start_consent(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ConsentStart>> {
    user.require(Role::Admin)?;
    Ok(Json(
        consent::start(
            &state.db,
            &state.vault,
            &user,
            id,
            &state.settings.public_url,
        )
        .await?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TotpView {
    pub code: String,
    pub valid_for_secs: u64,
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/totp", tag = "integrations",
    responses((status = 200, body = TotpView)))]
pub async fn current_totp(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<TotpView>> {
    user.require(Role::Admin)?;
    let c = svc::totp(&state.db, &state.vault, &Actor::from(&user), id).await?;
    Ok(Json(TotpView {
        code: c.code,
        valid_for_secs: c.valid_for_secs,
    }))
}
