//! Integrations: create, change, remove, verify, consent, credential health. Every change is
//! audited; secrets go through the vault and come back out only as "set, when".
pub mod connectors;
pub mod consent;
pub mod settings;

use super::audit::{self, Actor};
use crate::error::ApiError;
use crate::state::now;
use crate::vault::{SecretVault, VaultError};
use rmmbridge_core::secret::SecretString;
use rmmbridge_core::{IntegrationKind, Timestamp};
use rmmbridge_rmm::{Check, CheckStatus, RmmError};
use rmmbridge_store::{
    CredentialHealth, Db, HealthEvent, Integration, IntegrationChange, NewIntegration, StoreError,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
pub use settings::{IntegrationOptions, IntegrationSettings, NinjaGrantKind, REFRESH_TOKEN};

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("{0}")]
    Invalid(String),
    #[error("integration not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Rmm(#[from] RmmError),
}

impl From<IntegrationError> for ApiError {
    fn from(e: IntegrationError) -> Self {
        match e {
            IntegrationError::Invalid(m) => ApiError::BadRequest(m),
            IntegrationError::NotFound => ApiError::NotFound("integration"),
            IntegrationError::Store(s) => s.into(),
            IntegrationError::Rmm(
                r @ (RmmError::Config(_) | RmmError::NeedsConsent(_) | RmmError::Auth { .. }),
            ) => ApiError::BadRequest(r.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

type Result<T> = std::result::Result<T, IntegrationError>;

/// A create or verify request: `{"kind","name","settings","secrets","options"}`.
#[derive(Debug, Clone)]
pub struct IntegrationInput {
    pub kind: IntegrationKind,
    pub name: String,
    pub settings: Value,
    /// A string sets a secret; `null` removes it.
    pub secrets: Map<String, Value>,
    pub options: Value,
}

/// A change: absent fields are kept.
#[derive(Debug, Clone, Default)]
pub struct IntegrationPatch {
    pub name: Option<String>,
    pub settings: Option<Value>,
    pub secrets: Map<String, Value>,
    pub options: Option<Value>,
}

/// Secret values to set (`Some`) or remove (`None`), already checked against the kind.
type SecretChanges = Vec<(String, Option<SecretString>)>;

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(IntegrationError::Invalid(
            "an integration name is 1 to 100 characters".into(),
        ));
    }
    Ok(n.to_owned())
}

fn parse_secrets(kind: IntegrationKind, secrets: &Map<String, Value>) -> Result<SecretChanges> {
    let allowed = settings::secret_fields(kind);
    let mut out = Vec::new();
    for (k, v) in secrets {
        if !allowed.contains(&k.as_str()) {
            return Err(IntegrationError::Invalid(format!(
                "secrets.{k} is not a secret of a {kind} integration; expected one of: {}",
                allowed.join(", ")
            )));
        }
        match v {
            Value::Null => out.push((k.clone(), None)),
            Value::String(s) if s.trim().is_empty() => out.push((k.clone(), None)),
            Value::String(s) => {
                if k == "mfa_secret" {
                    rmmbridge_core::totp::decode_base32_secret(s).map_err(|e| {
                        IntegrationError::Invalid(format!(
                            "secrets.mfa_secret is not a Base32 MFA secret: {e}"
                        ))
                    })?;
                }
                out.push((k.clone(), Some(SecretString::new(s.trim()))));
            }
            _ => {
                return Err(IntegrationError::Invalid(format!(
                    "secrets.{k} must be a string (or null to remove it)"
                )));
            }
        }
    }
    Ok(out)
}

fn invalid(e: String) -> IntegrationError {
    IntegrationError::Invalid(e)
}

/// What the API shows of an integration: never a secret value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    pub id: i64,
    #[schema(value_type = String)]
    pub kind: IntegrationKind,
    pub name: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    #[schema(value_type = Object)]
    pub options: Value,
    /// `new`, `healthy`, `needs_consent`, `failing`.
    pub status: String,
    pub status_message: Option<String>,
    /// Which secrets are set, and when: `{"jwt": {"set": true, "updated_at": ...}}`.
    #[schema(value_type = Object)]
    pub secrets: Value,
    pub health: HealthView,
    /// The URL to paste into the NinjaOne API app as its redirect URI.
    pub redirect_uri: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Credential health as a technician reads it, with warnings before things break.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    /// When a token was last bought or refreshed.
    pub last_token_at: Option<i64>,
    pub access_expires_in_s: Option<i64>,
    pub refresh_expires_in_s: Option<i64>,
    /// NinjaOne: age of the stored refresh token.
    pub refresh_token_age_s: Option<i64>,
    pub consented_at: Option<i64>,
    pub consented_by: Option<String>,
    /// Age of each stored secret, by field.
    #[schema(value_type = Object)]
    pub secret_age_s: Value,
    pub authentications: i64,
    pub refreshes: i64,
    pub rotations: i64,
    pub warnings: Vec<String>,
}

const DAY_MS: i64 = 86_400_000;
/// N-central API users' passwords expire after 90 days by default, and the JWT dies with them.
const NCENTRAL_PASSWORD_DAYS: i64 = 90;
/// NinjaOne refresh tokens last about 30 days (reference/ninjaone-api.md §2).
const NINJA_REFRESH_DAYS: i64 = 30;

/// Pure: health and its warnings from the stored facts.
pub fn health_view(
    kind: IntegrationKind,
    h: &CredentialHealth,
    secrets: &[(String, Timestamp)],
    at: Timestamp,
) -> HealthView {
    let mut warnings = Vec::new();
    let age = |t: Option<i64>| t.map(|t| (at.0 - t).max(0) / 1000);
    let left = |t: Option<i64>| t.map(|t| (t - at.0) / 1000);
    let mut secret_age = Map::new();
    for (field, t) in secrets {
        if field == REFRESH_TOKEN {
            continue;
        }
        secret_age.insert(field.clone(), json!((at.0 - t.0).max(0) / 1000));
    }
    if kind == IntegrationKind::Ncentral
        && let Some((_, t)) = secrets.iter().find(|(f, _)| f == "password")
    {
        let days = (at.0 - t.0) / DAY_MS;
        if days >= NCENTRAL_PASSWORD_DAYS - 14 {
            warnings.push(format!(
                "the API user's password was stored {days} days ago; N-central expires passwords after {NCENTRAL_PASSWORD_DAYS} days by default, and the User-API token stops working with it: change the password in N-central and save it here"
            ));
        }
    }
    if kind == IntegrationKind::Ninjaone
        && let Some(issued) = h.refresh_token_issued_at
    {
        let days = (at.0 - issued) / DAY_MS;
        if days >= NINJA_REFRESH_DAYS - 7 {
            warnings.push(format!(
                "the NinjaOne refresh token is {days} days old and NinjaOne refresh tokens last about {NINJA_REFRESH_DAYS} days: sync now to rotate it, or provide consent again"
            ));
        }
    }
    if h.consecutive_failures >= 3 {
        warnings.push(format!(
            "{} failures in a row; the last: {}",
            h.consecutive_failures,
            h.last_error.as_deref().unwrap_or("unknown")
        ));
    }
    HealthView {
        last_success_at: h.last_success_at,
        last_failure_at: h.last_failure_at,
        consecutive_failures: h.consecutive_failures,
        last_error: h.last_error.clone(),
        last_token_at: h.last_token_at,
        access_expires_in_s: left(h.access_expires_at).map(|s| s.max(0)),
        refresh_expires_in_s: left(h.refresh_expires_at).map(|s| s.max(0)),
        refresh_token_age_s: age(h.refresh_token_issued_at),
        consented_at: h.consented_at,
        consented_by: h.consented_by.clone(),
        secret_age_s: Value::Object(secret_age),
        authentications: h.authentications,
        refreshes: h.refreshes,
        rotations: h.rotations,
        warnings,
    }
}

pub fn redirect_uri(public_url: &str) -> String {
    format!("{}/consent-callback", public_url.trim_end_matches('/'))
}

pub async fn view(db: &Db, i: Integration, public_url: &str) -> Result<IntegrationView> {
    let fields = db.secret_fields(i.id).await?;
    let health = db.credential_health(i.id).await?;
    let mut secrets = Map::new();
    for f in settings::secret_fields(i.kind) {
        let at = fields.iter().find(|(n, _)| n == f).map(|(_, t)| t.0);
        secrets.insert(
            (*f).to_owned(),
            json!({"set": at.is_some(), "updated_at": at}),
        );
    }
    if i.kind == IntegrationKind::Ninjaone {
        let at = fields
            .iter()
            .find(|(n, _)| n == REFRESH_TOKEN)
            .map(|(_, t)| t.0);
        secrets.insert(
            "consent".into(),
            json!({"set": at.is_some(), "updated_at": at}),
        );
    }
    Ok(IntegrationView {
        id: i.id,
        kind: i.kind,
        name: i.name,
        health: health_view(i.kind, &health, &fields, now()),
        settings: i.settings,
        options: i.options,
        status: i.status,
        status_message: i.status_message,
        secrets: Value::Object(secrets),
        redirect_uri: (i.kind == IntegrationKind::Ninjaone).then(|| redirect_uri(public_url)),
        created_at: i.created_at.0,
        updated_at: i.updated_at.0,
    })
}

pub async fn get(db: &Db, id: i64) -> Result<Integration> {
    db.integration_by_id(id)
        .await?
        .ok_or(IntegrationError::NotFound)
}

fn required_secret(kind: IntegrationKind, s: &IntegrationSettings) -> &'static str {
    match (kind, s) {
        (IntegrationKind::Ncentral, _) => "jwt",
        _ => "client_secret",
    }
}

fn first_status(s: &IntegrationSettings) -> (&'static str, Option<&'static str>) {
    match s {
        IntegrationSettings::Ninjaone(f) if f.grant == NinjaGrantKind::AuthorizationCode => (
            "needs_consent",
            Some("choose \"Provide consent\" and approve rmmbridge in NinjaOne"),
        ),
        _ => (
            "new",
            Some("not verified yet: choose \"Verify credentials\""),
        ),
    }
}

pub async fn create(
    db: &Db,
    vault: &SecretVault,
    actor: &Actor,
    input: &IntegrationInput,
) -> Result<Integration> {
    let name = check_name(&input.name)?;
    let parsed = IntegrationSettings::parse(input.kind, &input.settings).map_err(invalid)?;
    let options = IntegrationOptions::parse(&input.options).map_err(invalid)?;
    let secrets = parse_secrets(input.kind, &input.secrets)?;
    let required = required_secret(input.kind, &parsed);
    if !secrets.iter().any(|(k, v)| k == required && v.is_some()) {
        return Err(IntegrationError::Invalid(format!(
            "secrets.{required} is required for a {} integration",
            input.kind
        )));
    }
    let t = now();
    let i = db
        .create_integration(&NewIntegration {
            kind: input.kind,
            name,
            settings: parsed.to_json(),
            options: serde_json::to_value(&options).unwrap_or_default(),
            now: t,
        })
        .await?;
    for (field, value) in &secrets {
        if let Some(v) = value {
            vault.put(i.id, field, v, t).await?;
        }
    }
    let (status, message) = first_status(&parsed);
    db.set_integration_status(i.id, status, message, t).await?;
    audit::record(
        db,
        actor,
        "integration.create",
        Some(("integration", i.id.to_string())),
        json!({"kind": i.kind, "name": i.name, "settings": i.settings, "options": i.options,
               "secrets_set": secrets.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k).collect::<Vec<_>>()}),
    )
    .await?;
    get(db, i.id).await
}

pub async fn update(
    db: &Db,
    vault: &SecretVault,
    actor: &Actor,
    id: i64,
    patch: &IntegrationPatch,
) -> Result<Integration> {
    let old = get(db, id).await?;
    let old_settings = IntegrationSettings::parse(old.kind, &old.settings).map_err(invalid)?;
    let name = patch.name.as_deref().map(check_name).transpose()?;
    let new_settings = patch
        .settings
        .as_ref()
        .map(|s| IntegrationSettings::parse(old.kind, s))
        .transpose()
        .map_err(invalid)?;
    let options = patch
        .options
        .as_ref()
        .map(IntegrationOptions::parse)
        .transpose()
        .map_err(invalid)?;
    let secrets = parse_secrets(old.kind, &patch.secrets)?;
    let required = required_secret(old.kind, &old_settings);
    if secrets.iter().any(|(k, v)| k == required && v.is_none()) {
        return Err(IntegrationError::Invalid(format!(
            "secrets.{required} cannot be removed; set a new value instead"
        )));
    }
    let t = now();
    let updated = db
        .update_integration(
            id,
            &IntegrationChange {
                name,
                settings: new_settings.as_ref().map(IntegrationSettings::to_json),
                options: options.map(|o| serde_json::to_value(o).unwrap_or_default()),
            },
            t,
        )
        .await?;
    for (field, value) in &secrets {
        match value {
            Some(v) => vault.put(id, field, v, t).await?,
            None => {
                db.delete_secret(id, field).await?;
            }
        }
    }
    let consent_lost = new_settings
        .as_ref()
        .is_some_and(|n| old_settings.consent_changes(n))
        || secrets.iter().any(|(k, _)| k == "client_secret");
    let mut details = json!({
        "changed": {
            "name": patch.name.is_some(), "settings": patch.settings.is_some(), "options": patch.options.is_some()
        },
        "settings": updated.settings, "options": updated.options,
        "secrets_set": secrets.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k).collect::<Vec<_>>(),
        "secrets_removed": secrets.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect::<Vec<_>>(),
    });
    if consent_lost && old.kind == IntegrationKind::Ninjaone {
        // Tokens of another app or instance are useless and must not be sent to the new one.
        if db.delete_secret(id, REFRESH_TOKEN).await? {
            details["consent_revoked"] = json!(true);
        }
        db.reset_token_health(id).await?;
        let parsed = new_settings.as_ref().unwrap_or(&old_settings);
        let (status, message) = first_status(parsed);
        db.set_integration_status(id, status, message, t).await?;
    } else if patch.settings.is_some() || !secrets.is_empty() {
        db.set_integration_status(
            id,
            "new",
            Some("changed: choose \"Verify credentials\" again"),
            t,
        )
        .await?;
    }
    audit::record(
        db,
        actor,
        "integration.update",
        Some(("integration", id.to_string())),
        details,
    )
    .await?;
    get(db, id).await
}

pub async fn remove(db: &Db, actor: &Actor, id: i64) -> Result<()> {
    let i = get(db, id).await?;
    db.delete_integration(id).await?;
    audit::record(
        db,
        actor,
        "integration.delete",
        Some(("integration", id.to_string())),
        json!({"kind": i.kind, "name": i.name}),
    )
    .await?;
    Ok(())
}

/// The outcome of "Verify credentials".
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// True when no check failed (warnings allowed).
    pub ok: bool,
    #[schema(value_type = Vec<Object>)]
    pub checks: Vec<Check>,
}

impl Verification {
    fn new(checks: Vec<Check>) -> Verification {
        Verification {
            ok: checks
                .iter()
                .all(|c| matches!(c.status, CheckStatus::Pass | CheckStatus::Warn)),
            checks,
        }
    }

    fn first_failure(&self) -> Option<String> {
        self.checks
            .iter()
            .find(|c| c.status == CheckStatus::Fail)
            .map(|c| format!("{}: {}", c.label, c.reason))
    }
}

/// A check that the settings themselves fail, before any network call.
fn settings_check(e: &RmmError) -> Vec<Check> {
    let (id, label, remedy) = match e {
        RmmError::NeedsConsent(_) => (
            "consent_given",
            "Consent given",
            "choose \"Provide consent\" and approve rmmbridge in NinjaOne",
        ),
        _ => (
            "settings_valid",
            "Settings valid",
            "correct the integration's settings",
        ),
    };
    vec![Check::fail(id, label, e.to_string(), remedy)]
}

/// Verifies a saved integration, recording the outcome in its status and health.
pub async fn verify(
    db: &Db,
    pool: &connectors::Connectors,
    actor: &Actor,
    id: i64,
) -> Result<Verification> {
    let i = get(db, id).await?;
    let verification = match pool.get(&i).await {
        Ok(c) => {
            let checks = c.verify().await;
            pool.record_tokens(i.id, c.as_ref()).await;
            Verification::new(checks)
        }
        Err(e) => Verification::new(settings_check(&e)),
    };
    let t = now();
    let failure = verification.first_failure();
    db.record_health(
        id,
        &HealthEvent {
            outcome: Some(failure.clone()),
            ..Default::default()
        },
        t,
    )
    .await?;
    let (status, message) = match &failure {
        None => ("healthy", None),
        Some(_)
            if verification
                .checks
                .iter()
                .any(|c| c.status == CheckStatus::Fail && c.id == "consent_given") =>
        {
            ("needs_consent", failure.as_deref())
        }
        Some(_)
            if verification.checks.iter().any(|c| {
                c.status == CheckStatus::Fail && c.reason.contains("needs consent again")
            }) =>
        {
            ("needs_consent", failure.as_deref())
        }
        Some(_) => ("failing", failure.as_deref()),
    };
    db.set_integration_status(id, status, message, t).await?;
    audit::record(
        db,
        actor,
        "integration.verify",
        Some(("integration", id.to_string())),
        json!({"ok": verification.ok, "failed": verification.checks.iter()
            .filter(|c| c.status == CheckStatus::Fail).map(|c| c.id).collect::<Vec<_>>()}),
    )
    .await?;
    Ok(verification)
}

/// Verifies settings that are not saved yet. Nothing is stored; NinjaOne consent cannot exist yet,
/// so its app credentials are checked without it.
pub async fn verify_unsaved(input: &IntegrationInput) -> Result<Verification> {
    let parsed = match IntegrationSettings::parse(input.kind, &input.settings) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Verification::new(vec![Check::fail(
                "settings_valid",
                "Settings valid",
                e,
                "correct the settings",
            )]));
        }
    };
    let secrets = parse_secrets(input.kind, &input.secrets)?;
    let secret = |f: &str| {
        secrets
            .iter()
            .find(|(k, _)| k == f)
            .and_then(|(_, v)| v.clone())
    };
    let checks = match &parsed {
        IntegrationSettings::Ncentral(_) => {
            match connectors::build_ncentral(&parsed, secret("jwt"), secret("password")) {
                Ok(c) => c.verify().await,
                Err(e) => settings_check(&e),
            }
        }
        IntegrationSettings::Ninjaone(f) => {
            let Some(client_secret) = secret("client_secret") else {
                return Ok(Verification::new(vec![Check::fail(
                    "settings_valid",
                    "Settings valid",
                    "no client secret given",
                    "paste the client secret of the NinjaOne API app",
                )]));
            };
            match f.grant {
                NinjaGrantKind::ClientCredentials => {
                    match connectors::build_ninja(
                        &parsed,
                        client_secret,
                        None,
                        None::<rmmbridge_rmm::ninjaone::NoStore>,
                    ) {
                        Ok(c) => c.verify().await,
                        Err(e) => settings_check(&e),
                    }
                }
                NinjaGrantKind::AuthorizationCode => {
                    let ns = connectors::ninja_settings(&parsed);
                    let mut checks = vec![
                        rmmbridge_rmm::ninjaone::check_app_credentials(&ns, &client_secret).await,
                    ];
                    checks.push(Check::warn(
                        "consent_given",
                        "Consent given",
                        "not yet: consent is given after saving",
                        "save the integration, then choose \"Provide consent\"",
                    ));
                    checks
                }
            }
        }
    };
    Ok(Verification::new(checks))
}

/// The current TOTP code of the stored MFA secret, so nobody pastes it into a website.
pub async fn totp(
    db: &Db,
    vault: &SecretVault,
    actor: &Actor,
    id: i64,
) -> Result<rmmbridge_core::totp::TotpCode> {
    let i = get(db, id).await?;
    let secret = vault.get(i.id, "mfa_secret").await?.ok_or_else(|| {
        IntegrationError::Invalid(
            "this integration has no MFA secret stored; set secrets.mfa_secret".into(),
        )
    })?;
    let unix = (now().0 / 1000).max(0) as u64;
    let code = rmmbridge_core::totp::current_code(secret.expose(), unix).map_err(|e| {
        IntegrationError::Invalid(format!("the stored MFA secret is not valid Base32: {e}"))
    })?;
    audit::record(
        db,
        actor,
        "integration.totp_shown",
        Some(("integration", id.to_string())),
        json!({}),
    )
    .await?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_warns_before_credentials_expire() {
        let at = Timestamp(1_800_000_000_000);
        let h = CredentialHealth {
            refresh_token_issued_at: Some(at.0 - 25 * DAY_MS),
            consecutive_failures: 3,
            last_error: Some("token refused".into()),
            ..Default::default()
        };
        let v = health_view(IntegrationKind::Ninjaone, &h, &[], at);
        assert_eq!(v.refresh_token_age_s, Some(25 * 86_400));
        assert!(
            v.warnings.iter().any(|w| w.contains("25 days old")),
            "{:?}",
            v.warnings
        );
        assert!(v.warnings.iter().any(|w| w.contains("3 failures")));

        let fresh = CredentialHealth::default();
        let pw = [
            ("password".to_owned(), Timestamp(at.0 - 80 * DAY_MS)),
            ("jwt".to_owned(), Timestamp(at.0 - DAY_MS)),
        ];
        let v = health_view(IntegrationKind::Ncentral, &fresh, &pw, at);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(v.warnings[0].contains("80 days"));
        assert_eq!(v.secret_age_s["jwt"], 86_400);
        let young = [("password".to_owned(), Timestamp(at.0 - 10 * DAY_MS))];
        assert!(
            health_view(IntegrationKind::Ncentral, &fresh, &young, at)
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn secrets_are_checked_against_the_kind() {
        let mut m = Map::new();
        m.insert("client_secret".into(), json!("x"));
        let e = parse_secrets(IntegrationKind::Ncentral, &m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("jwt, password, mfa_secret"), "{e}");
        let mut m = Map::new();
        m.insert("mfa_secret".into(), json!("not base32 !!"));
        assert!(parse_secrets(IntegrationKind::Ncentral, &m).is_err());
        let mut m = Map::new();
        m.insert(REFRESH_TOKEN.into(), json!("stolen"));
        assert!(parse_secrets(IntegrationKind::Ninjaone, &m).is_err());
    }
}
