//! NinjaOne consent (DESIGN.md §3 item 3): an authorization URL with `state` and PKCE S256; a
//! callback that accepts the state once, only from the user (and session) that asked, before it
//! expires, and stores the tokens sealed.
use super::connectors::{self, Connectors};
use super::settings::{IntegrationSettings, NinjaGrantKind, REFRESH_TOKEN};
use super::{IntegrationError, get, redirect_uri};
use crate::auth::CurrentUser;
use crate::auth::tokens::{random_token, sha256_hex};
use crate::services::audit::{self, Actor};
use crate::state::now;
use crate::vault::SecretVault;
use rmmbridge_core::IntegrationKind;
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::ninjaone::{self, Pkce};
use rmmbridge_store::{ConsentState, Db, HealthEvent};
use serde::Serialize;
use serde_json::json;

/// How long the admin has to finish on NinjaOne's page.
pub const CONSENT_TTL_SECS: i64 = 15 * 60;
const TABLE: &str = "consent_states";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsentStart {
    /// Send the admin's browser here.
    pub authorization_url: String,
    pub redirect_uri: String,
    pub expires_at: i64,
}

/// Why a callback was refused, each with what to do; shown to the admin as a page.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("this consent link is unknown; choose \"Provide consent\" on the integration again")]
    UnknownState,
    #[error("this consent link expired (they last {} minutes); choose \"Provide consent\" again", CONSENT_TTL_SECS / 60)]
    Expired,
    #[error("this consent was already completed; there is nothing more to do")]
    AlreadyUsed { integration_id: i64 },
    #[error(
        "this consent was started by another user or in another browser session; sign in as that user in this browser, or choose \"Provide consent\" again"
    )]
    WrongUser,
    #[error("sign in to rmmbridge in this browser first, then choose \"Provide consent\" again")]
    NotSignedIn,
    #[error("NinjaOne did not grant consent: {0}")]
    Denied(String),
    #[error("NinjaOne's answer has no code; choose \"Provide consent\" again")]
    NoCode,
    #[error("{0}")]
    Failed(String),
}

impl From<IntegrationError> for ConsentError {
    fn from(e: IntegrationError) -> Self {
        ConsentError::Failed(e.to_string())
    }
}

impl From<rmmbridge_store::StoreError> for ConsentError {
    fn from(e: rmmbridge_store::StoreError) -> Self {
        ConsentError::Failed(e.to_string())
    }
}

pub async fn start(
    db: &Db,
    vault: &SecretVault,
    user: &CurrentUser,
    id: i64,
    public_url: &str,
) -> Result<ConsentStart, IntegrationError> {
    let i = get(db, id).await?;
    if i.kind != IntegrationKind::Ninjaone {
        return Err(IntegrationError::Invalid(
            "consent is a NinjaOne step; N-central uses its User-API token".into(),
        ));
    }
    let parsed =
        IntegrationSettings::parse(i.kind, &i.settings).map_err(IntegrationError::Invalid)?;
    let IntegrationSettings::Ninjaone(f) = &parsed else {
        unreachable!("kind checked above")
    };
    if f.grant == NinjaGrantKind::ClientCredentials {
        return Err(IntegrationError::Invalid(
            "this integration uses client credentials (an API Services app), which has no consent; switch settings.grant to authorization_code with a Web app to run scripts".into(),
        ));
    }
    let state = random_token();
    let pkce = Pkce::generate();
    let redirect = redirect_uri(public_url);
    let t = now();
    let state_hash = sha256_hex(&state);
    let verifier_sealed =
        vault.seal_for(TABLE, id, &state_hash, &SecretString::new(pkce.verifier))?;
    let session_hash = match &user.via {
        crate::auth::AuthVia::Session { id_hash, .. } => Some(id_hash.clone()),
        crate::auth::AuthVia::Token { .. } => None,
    };
    db.purge_consent_states(t).await?;
    db.create_consent_state(&ConsentState {
        state_hash,
        integration_id: id,
        user_id: user.id,
        session_hash,
        verifier_sealed,
        redirect_uri: redirect.clone(),
        created_at: t.0,
        expires_at: t.plus_secs(CONSENT_TTL_SECS).0,
        used_at: None,
    })
    .await?;
    let url = ninjaone::consent_url(
        &f.instance,
        &f.client_id,
        &redirect,
        &state,
        &pkce.challenge,
    )?;
    audit::record(
        db,
        &Actor::from(user),
        "integration.consent_started",
        Some(("integration", id.to_string())),
        json!({}),
    )
    .await?;
    Ok(ConsentStart {
        authorization_url: url,
        redirect_uri: redirect,
        expires_at: t.plus_secs(CONSENT_TTL_SECS).0,
    })
}

/// What NinjaOne sends back to `/consent-callback`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Checks the state, exchanges the code and stores the tokens. `user` is whoever the browser's
/// session belongs to, if anyone.
pub async fn complete(
    db: &Db,
    vault: &SecretVault,
    pool: &Connectors,
    user: Option<&CurrentUser>,
    cb: &Callback,
) -> Result<i64, ConsentError> {
    let state = cb
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(ConsentError::UnknownState)?;
    let state_hash = sha256_hex(state);
    let st = db
        .consent_state(&state_hash)
        .await?
        .ok_or(ConsentError::UnknownState)?;
    if st.used_at.is_some() {
        return Err(ConsentError::AlreadyUsed {
            integration_id: st.integration_id,
        });
    }
    let t = now();
    if st.expires_at <= t.0 {
        return Err(ConsentError::Expired);
    }
    let user = user.ok_or(ConsentError::NotSignedIn)?;
    let same_session = match (&st.session_hash, &user.via) {
        (Some(bound), crate::auth::AuthVia::Session { id_hash, .. }) => bound == id_hash,
        (Some(_), _) => false,
        (None, _) => true,
    };
    if st.user_id != user.id || !same_session {
        return Err(ConsentError::WrongUser);
    }
    // Single use: whoever marks it first proceeds; a replay or a double click stops here.
    if !db.use_consent_state(&state_hash, t).await? {
        return Err(ConsentError::AlreadyUsed {
            integration_id: st.integration_id,
        });
    }
    let actor = Actor::from(user);
    let target = Some(("integration", st.integration_id.to_string()));
    if let Some(err) = &cb.error {
        let why = format!("{err}: {}", cb.error_description.as_deref().unwrap_or(""));
        audit::record(
            db,
            &actor,
            "integration.consent_denied",
            target,
            json!({"error": why}),
        )
        .await?;
        return Err(ConsentError::Denied(why));
    }
    let code = cb
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(ConsentError::NoCode)?;
    let i = get(db, st.integration_id).await?;
    let parsed = IntegrationSettings::parse(i.kind, &i.settings).map_err(ConsentError::Failed)?;
    let verifier = vault
        .open_for(TABLE, i.id, &state_hash, &st.verifier_sealed)
        .map_err(|e| ConsentError::Failed(e.to_string()))?;
    let secret = vault
        .get(i.id, "client_secret")
        .await
        .map_err(|e| ConsentError::Failed(e.to_string()))?
        .ok_or_else(|| ConsentError::Failed("the integration has no client secret".into()))?;
    let tokens = ninjaone::exchange_code(
        &connectors::ninja_settings(&parsed),
        &secret,
        code,
        &st.redirect_uri,
        verifier.expose(),
    )
    .await
    .map_err(|e| ConsentError::Failed(format!("NinjaOne refused the code exchange: {e}")))?;
    let Some(refresh) = &tokens.refresh_token else {
        return Err(ConsentError::Failed(
            "NinjaOne granted no refresh token: enable the Refresh Token grant and the offline_access scope on the API app, then provide consent again".into(),
        ));
    };
    vault
        .put(i.id, REFRESH_TOKEN, refresh, t)
        .await
        .map_err(|e| ConsentError::Failed(e.to_string()))?;
    db.record_health(
        i.id,
        &HealthEvent {
            outcome: Some(None),
            token_at: Some(t),
            access_expires_at: Some(t.plus_secs(tokens.expires_in as i64)),
            refresh_token_issued_at: Some(t),
            consent: Some(user.username.clone()),
            authentications: 1,
            ..Default::default()
        },
        t,
    )
    .await?;
    db.set_integration_status(i.id, "healthy", None, t).await?;
    pool.forget(i.id);
    audit::record(
        db,
        &actor,
        "integration.consent",
        target,
        json!({"scope": tokens.scope}),
    )
    .await?;
    Ok(i.id)
}
