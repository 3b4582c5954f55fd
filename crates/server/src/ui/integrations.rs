//! Integrations pages: list, add and edit per kind (with the set-up help), detail with credential health,
//! "Verify credentials", "Provide consent", the current TOTP code and "Sync now". Every action calls
//! `services::integrations` or `services::sync`; nothing here decides anything on its own.
use super::{Nav, UiError, UiResult, fmt_secs, fmt_time, notice_text, render, require, see_other};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::services::audit::{self, Actor};
use crate::services::integrations::consent;
use crate::services::integrations::{
    self as svc, IntegrationInput, IntegrationOptions, IntegrationPatch, IntegrationView,
    Verification,
};
use crate::services::sync::SyncError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmmbridge_core::{IntegrationKind, Role};
use rmmbridge_rmm::CheckStatus;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The status of an integration in words a technician reads at a glance.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "healthy" => "Healthy",
        "needs_consent" => "Needs consent",
        "failing" => "Failing",
        "new" => "Not verified",
        _ => "Unknown",
    }
}

pub fn kind_label(kind: IntegrationKind) -> &'static str {
    match kind {
        IntegrationKind::Ncentral => "N-central",
        IntegrationKind::Ninjaone => "NinjaOne",
    }
}

// ---------------------------------------------------------------------------------------------- list

pub struct Row {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
    pub status: String,
    pub status_label: &'static str,
    pub status_message: String,
    pub last_sync: String,
    pub last_sync_state: String,
    pub last_sync_id: Option<i64>,
    pub warnings: Vec<String>,
    pub device_sync: bool,
}

/// One row per integration, with its last sync and credential warnings (shared with the dashboard).
pub async fn rows(state: &AppState) -> UiResult<Vec<Row>> {
    let mut out = Vec::new();
    for i in state.db.list_integrations().await? {
        let last = state.db.last_sync_run(i.id).await?;
        let v = svc::view(&state.db, i, &state.settings.public_url).await?;
        let options = IntegrationOptions::from_stored(&v.options);
        out.push(Row {
            id: v.id,
            name: v.name,
            kind: kind_label(v.kind),
            status_label: status_label(&v.status),
            status: v.status,
            status_message: v.status_message.unwrap_or_default(),
            last_sync: last
                .as_ref()
                .map(|r| fmt_time(r.started_at.0))
                .unwrap_or_else(|| "never".into()),
            last_sync_state: last
                .as_ref()
                .map(|r| r.state.to_string())
                .unwrap_or_default(),
            last_sync_id: last.as_ref().map(|r| r.id),
            warnings: v.health.warnings,
            device_sync: options.device_sync,
        });
    }
    Ok(out)
}

#[derive(Template)]
#[template(path = "integrations/list.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<Row>,
    notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<NoticeQuery>,
) -> UiResult<Response> {
    Ok(render(&ListPage {
        nav: Nav::for_user(&user).at("integrations"),
        rows: rows(&state).await?,
        notice: notice_text(q.notice.as_deref()),
    }))
}

// ---------------------------------------------------------------------------------------------- form

/// Every field of the add/edit form, as posted (all text; checkboxes are present when ticked).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct IntegrationForm {
    pub kind: String,
    pub name: String,
    // N-central
    pub server_url: String,
    pub username: String,
    pub script_item_id: String,
    pub jwt: String,
    pub password: String,
    pub mfa_secret: String,
    pub remove_password: Option<String>,
    pub remove_mfa_secret: Option<String>,
    // NinjaOne
    pub instance: String,
    pub client_id: String,
    pub client_secret: String,
    pub script_id: String,
    pub grant: String,
    // Both
    pub pinned_sha256: String,
    pub ca_pem: String,
    pub max_in_flight: String,
    pub device_sync: Option<String>,
    pub sites_as_clients: Option<String>,
    pub allow_duplicates: Option<String>,
    pub sync_interval_minutes: String,
    pub missing_grace_days: String,
    /// Which button: `save` or `verify`.
    pub intent: String,
}

fn put(m: &mut Map<String, Value>, key: &str, v: &str) {
    let v = v.trim();
    if !v.is_empty() {
        m.insert(key.into(), json!(v));
    }
}

fn number(field: &str, v: &str) -> Result<Option<u64>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{field} must be a whole number (got {v:?})"))
}

impl IntegrationForm {
    fn parse_kind(&self) -> Result<IntegrationKind, ApiError> {
        self.kind
            .parse()
            .map_err(|e: rmmbridge_core::domain::ParseEnumError| {
                ApiError::BadRequest(e.to_string())
            })
    }

    fn settings(&self, kind: IntegrationKind) -> Result<Value, String> {
        let mut m = Map::new();
        match kind {
            IntegrationKind::Ncentral => {
                put(&mut m, "server_url", &self.server_url);
                m.entry("server_url").or_insert(json!(""));
                put(&mut m, "username", &self.username);
                put(&mut m, "script_item_id", &self.script_item_id);
            }
            IntegrationKind::Ninjaone => {
                put(&mut m, "instance", &self.instance);
                m.entry("instance").or_insert(json!(""));
                m.insert("client_id".into(), json!(self.client_id.trim()));
                put(&mut m, "script_id", &self.script_id);
                put(&mut m, "grant", &self.grant);
            }
        }
        put(&mut m, "pinned_sha256", &self.pinned_sha256);
        put(&mut m, "ca_pem", &self.ca_pem);
        if let Some(n) = number("Requests in flight", &self.max_in_flight)? {
            m.insert("max_in_flight".into(), json!(n));
        }
        Ok(Value::Object(m))
    }

    fn options(&self) -> Result<Value, String> {
        let d = IntegrationOptions::default();
        let interval = number("Sync every (minutes)", &self.sync_interval_minutes)?
            .unwrap_or(u64::from(d.sync_interval_minutes));
        let grace = number(
            "Retire missing devices after (days)",
            &self.missing_grace_days,
        )?
        .unwrap_or(u64::from(d.missing_grace_days));
        Ok(json!({
            "device_sync": self.device_sync.is_some(),
            "sites_as_clients": self.sites_as_clients.is_some(),
            "allow_duplicates": self.allow_duplicates.is_some(),
            "sync_interval_minutes": interval,
            "missing_grace_days": grace,
        }))
    }

    /// Secrets typed into the form; an empty field keeps the stored value, a ticked "remove" removes it.
    fn secrets(&self, kind: IntegrationKind) -> Map<String, Value> {
        let mut m = Map::new();
        match kind {
            IntegrationKind::Ncentral => {
                put(&mut m, "jwt", &self.jwt);
                put(&mut m, "password", &self.password);
                put(&mut m, "mfa_secret", &self.mfa_secret);
                if self.remove_password.is_some() {
                    m.insert("password".into(), Value::Null);
                }
                if self.remove_mfa_secret.is_some() {
                    m.insert("mfa_secret".into(), Value::Null);
                }
            }
            IntegrationKind::Ninjaone => put(&mut m, "client_secret", &self.client_secret),
        }
        m
    }

    fn input(&self) -> Result<IntegrationInput, ApiError> {
        let kind = self.parse_kind()?;
        Ok(IntegrationInput {
            kind,
            name: self.name.clone(),
            settings: self.settings(kind).map_err(ApiError::BadRequest)?,
            secrets: self.secrets(kind),
            options: self.options().map_err(ApiError::BadRequest)?,
        })
    }

    /// A fresh form with the default options.
    fn blank(kind: IntegrationKind) -> IntegrationForm {
        let d = IntegrationOptions::default();
        IntegrationForm {
            kind: kind.to_string(),
            instance: if kind == IntegrationKind::Ninjaone {
                "app".into()
            } else {
                String::new()
            },
            grant: "authorization_code".into(),
            device_sync: d.device_sync.then(|| "on".into()),
            sites_as_clients: d.sites_as_clients.then(|| "on".into()),
            allow_duplicates: d.allow_duplicates.then(|| "on".into()),
            sync_interval_minutes: d.sync_interval_minutes.to_string(),
            missing_grace_days: d.missing_grace_days.to_string(),
            ..Default::default()
        }
    }

    /// The stored settings and options of an integration, for the edit form (never a secret).
    fn from_view(v: &IntegrationView) -> IntegrationForm {
        let s = |k: &str| match &v.settings[k] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let o = IntegrationOptions::from_stored(&v.options);
        IntegrationForm {
            kind: v.kind.to_string(),
            name: v.name.clone(),
            server_url: s("server_url"),
            username: s("username"),
            script_item_id: s("script_item_id"),
            instance: s("instance"),
            client_id: s("client_id"),
            script_id: s("script_id"),
            grant: match s("grant").as_str() {
                "" => "authorization_code".into(),
                g => g.into(),
            },
            pinned_sha256: s("pinned_sha256"),
            ca_pem: s("ca_pem"),
            max_in_flight: s("max_in_flight"),
            device_sync: o.device_sync.then(|| "on".into()),
            sites_as_clients: o.sites_as_clients.then(|| "on".into()),
            allow_duplicates: o.allow_duplicates.then(|| "on".into()),
            sync_interval_minutes: o.sync_interval_minutes.to_string(),
            missing_grace_days: o.missing_grace_days.to_string(),
            ..Default::default()
        }
    }

    /// The form as it is re-rendered: the secrets typed are not sent back into the page.
    fn without_secrets(mut self) -> IntegrationForm {
        self.jwt.clear();
        self.password.clear();
        self.mfa_secret.clear();
        self.client_secret.clear();
        self
    }
}

/// A check of "Verify credentials", as shown.
pub struct CheckRow {
    pub label: String,
    pub status: &'static str,
    pub reason: String,
    pub remedy: String,
}

fn check_rows(v: &Verification) -> Vec<CheckRow> {
    v.checks
        .iter()
        .map(|c| CheckRow {
            label: c.label.to_owned(),
            status: match c.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Fail => "fail",
                CheckStatus::Warn => "warn",
                CheckStatus::Skipped => "skipped",
            },
            reason: c.reason.clone(),
            remedy: c.remedy.clone().unwrap_or_default(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "integrations/form.html")]
struct FormPage {
    nav: Nav,
    /// `None` when adding.
    id: Option<i64>,
    f: IntegrationForm,
    is_ninja: bool,
    kind_label: &'static str,
    redirect_uri: String,
    error: Option<String>,
    note: Option<&'static str>,
    checks: Option<(bool, Vec<CheckRow>)>,
    /// Edit only: which secrets are stored (`jwt`, `password`, ...), never their values.
    stored: Vec<(String, String)>,
}

impl FormPage {
    fn new(state: &AppState, user: &CurrentUser, id: Option<i64>, f: IntegrationForm) -> FormPage {
        let kind = f.parse_kind().unwrap_or(IntegrationKind::Ncentral);
        FormPage {
            nav: Nav::for_user(user).at("integrations"),
            id,
            is_ninja: kind == IntegrationKind::Ninjaone,
            kind_label: kind_label(kind),
            redirect_uri: svc::redirect_uri(&state.settings.public_url),
            f,
            error: None,
            note: None,
            checks: None,
            stored: Vec::new(),
        }
    }

    fn stored_label(&self, field: &str) -> Option<&str> {
        self.stored
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, when)| when.as_str())
    }
}

#[derive(Deserialize)]
pub struct KindQuery {
    kind: Option<String>,
}

pub async fn new_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<KindQuery>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let kind = match q.kind.as_deref() {
        Some("ninjaone") => IntegrationKind::Ninjaone,
        _ => IntegrationKind::Ncentral,
    };
    let page = FormPage::new(&state, &user, None, IntegrationForm::blank(kind));
    Ok(render(&page))
}

/// `POST /integrations`: "Save" creates the integration; "Verify credentials" checks the unsaved
/// settings and shows the form again with every check.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::Form(form): axum::Form<IntegrationForm>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let input = match form.input() {
        Ok(i) => i,
        Err(e) => return Ok(form_error(&state, &user, None, form, e, Vec::new())),
    };
    if form.intent == "verify" {
        let v = svc::verify_unsaved(&input).await;
        let mut page = FormPage::new(&state, &user, None, form.without_secrets());
        match v {
            Ok(v) => page.checks = Some((v.ok, check_rows(&v))),
            Err(e) => page.error = Some(ApiError::from(e).to_string()),
        }
        page.note = Some("Nothing is saved yet: type the secrets again, then choose Save.");
        return Ok(render(&page));
    }
    match svc::create(&state.db, &state.vault, &Actor::from(&user), &input).await {
        Ok(i) => Ok(see_other(&format!("/integrations/{}?notice=created", i.id))),
        Err(e) => Ok(form_error(&state, &user, None, form, e.into(), Vec::new())),
    }
}

fn form_error(
    state: &AppState,
    user: &CurrentUser,
    id: Option<i64>,
    form: IntegrationForm,
    e: ApiError,
    stored: Vec<(String, String)>,
) -> Response {
    let status = e.status();
    let mut page = FormPage::new(state, user, id, form.without_secrets());
    page.stored = stored;
    page.error = Some(format!(
        "{} Nothing was saved; correct it and save again (secrets must be typed again).",
        super::capitalize(&e.to_string())
    ));
    (status, render(&page)).into_response()
}

async fn stored_secrets(state: &AppState, id: i64) -> UiResult<Vec<(String, String)>> {
    Ok(state
        .db
        .secret_fields(id)
        .await?
        .into_iter()
        .map(|(f, t)| (f, fmt_time(t.0)))
        .collect())
}

pub async fn edit_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let i = svc::get(&state.db, id).await?;
    let v = svc::view(&state.db, i, &state.settings.public_url).await?;
    let mut page = FormPage::new(&state, &user, Some(id), IntegrationForm::from_view(&v));
    page.stored = stored_secrets(&state, id).await?;
    Ok(render(&page))
}

/// `POST /integrations/{id}`: saves the edit form; empty secret fields keep the stored secrets.
pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::Form(mut form): axum::Form<IntegrationForm>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let i = svc::get(&state.db, id).await?;
    form.kind = i.kind.to_string();
    let built = (|| -> Result<IntegrationPatch, ApiError> {
        Ok(IntegrationPatch {
            name: Some(form.name.clone()),
            settings: Some(form.settings(i.kind).map_err(ApiError::BadRequest)?),
            secrets: form.secrets(i.kind),
            options: Some(form.options().map_err(ApiError::BadRequest)?),
        })
    })();
    let result = match built {
        Ok(patch) => svc::update(&state.db, &state.vault, &Actor::from(&user), id, &patch)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
            state.connectors.forget(id);
            Ok(see_other(&format!("/integrations/{id}?notice=saved")))
        }
        Err(e) => {
            let stored = stored_secrets(&state, id).await?;
            Ok(form_error(&state, &user, Some(id), form, e, stored))
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    svc::remove(&state.db, &Actor::from(&user), id).await?;
    state.connectors.forget(id);
    Ok(see_other("/integrations?notice=deleted"))
}

// -------------------------------------------------------------------------------------------- detail

pub struct SecretRow {
    pub label: &'static str,
    pub set: bool,
    pub when: String,
}

pub struct RunRow {
    pub id: i64,
    pub state: String,
    pub stage: String,
    pub started: String,
    pub triggered_by: String,
}

#[derive(Template)]
#[template(path = "integrations/detail.html")]
struct DetailPage {
    nav: Nav,
    v: IntegrationView,
    kind_label: &'static str,
    status_label: &'static str,
    is_ninja: bool,
    settings: Vec<(&'static str, String)>,
    options: IntegrationOptions,
    secrets: Vec<SecretRow>,
    has_mfa: bool,
    consent_given: bool,
    /// When and by whom.
    consented: (String, String),
    /// (label, value, whether the value is a time the page's script shows in local time).
    health: Vec<(&'static str, String, bool)>,
    runs: Vec<RunRow>,
    notice: Option<&'static str>,
    checks: Option<(bool, Vec<CheckRow>)>,
    totp: Option<(String, u64)>,
    error: Option<String>,
}

fn secret_label(field: &str) -> &'static str {
    match field {
        "jwt" => "User-API token (JWT)",
        "password" => "API user's password",
        "mfa_secret" => "MFA secret",
        "client_secret" => "Client secret",
        "consent" => "Consent (refresh token)",
        _ => "Secret",
    }
}

async fn detail_page(state: &AppState, user: &CurrentUser, id: i64) -> UiResult<DetailPage> {
    let i = svc::get(&state.db, id).await?;
    let v = svc::view(&state.db, i, &state.settings.public_url).await?;
    let is_ninja = v.kind == IntegrationKind::Ninjaone;
    let s = |k: &str| match &v.settings[k] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let mut settings = match v.kind {
        IntegrationKind::Ncentral => vec![
            ("Server URL", s("server_url")),
            ("API username", s("username")),
            ("Script item id", s("script_item_id")),
        ],
        IntegrationKind::Ninjaone => vec![
            ("Instance", s("instance")),
            ("Client id", s("client_id")),
            (
                "Grant",
                if s("grant") == "client_credentials" {
                    "Client credentials (API Services app, read only)".into()
                } else {
                    "Authorization code + refresh token (Web app)".into()
                },
            ),
            ("Helper script id", s("script_id")),
        ],
    };
    settings.push(("Pinned certificate (SHA-256)", s("pinned_sha256")));
    if !s("ca_pem").is_empty() {
        settings.push(("Private CA", "set".into()));
    }
    settings.push(("Requests in flight", s("max_in_flight")));
    let settings = settings
        .into_iter()
        .map(|(k, v)| (k, if v.is_empty() { "—".into() } else { v }))
        .collect();
    let mut secrets = Vec::new();
    let mut has_mfa = false;
    let mut consent_given = false;
    if let Value::Object(m) = &v.secrets {
        for (field, info) in m {
            let set = info["set"].as_bool().unwrap_or(false);
            if field == "mfa_secret" && set {
                has_mfa = true;
            }
            if field == "consent" && set {
                consent_given = true;
            }
            secrets.push(SecretRow {
                label: secret_label(field),
                set,
                when: info["updated_at"]
                    .as_i64()
                    .map(fmt_time)
                    .unwrap_or_default(),
            });
        }
    }
    let h = &v.health;
    let consented = (
        h.consented_at.map(fmt_time).unwrap_or_default(),
        h.consented_by.clone().unwrap_or_default(),
    );
    let time = |t: Option<i64>| {
        (
            t.map(fmt_time).unwrap_or_else(|| "never".into()),
            t.is_some(),
        )
    };
    let mut health = Vec::new();
    for (label, t) in [
        ("Last success", h.last_success_at),
        ("Last failure", h.last_failure_at),
        ("Last token", h.last_token_at),
    ] {
        let (v, is_time) = time(t);
        health.push((label, v, is_time));
    }
    health.push((
        "Failures in a row",
        h.consecutive_failures.to_string(),
        false,
    ));
    for (label, s) in [
        ("Access token expires in", h.access_expires_in_s),
        ("Refresh token expires in", h.refresh_expires_in_s),
        ("Refresh token age", h.refresh_token_age_s),
    ] {
        if let Some(s) = s {
            health.push((label, fmt_secs(s), false));
        }
    }
    if let Some(e) = &h.last_error {
        health.push(("Last error", e.clone(), false));
    }
    health.push((
        "Token exchanges / refreshes / rotations",
        format!("{} / {} / {}", h.authentications, h.refreshes, h.rotations),
        false,
    ));
    let runs = state
        .db
        .list_sync_runs(Some(id), 5)
        .await?
        .into_iter()
        .map(|r| RunRow {
            id: r.id,
            state: r.state.to_string(),
            stage: r.stage,
            started: fmt_time(r.started_at.0),
            triggered_by: r.triggered_by,
        })
        .collect();
    Ok(DetailPage {
        nav: Nav::for_user(user).at("integrations"),
        kind_label: kind_label(v.kind),
        status_label: status_label(&v.status),
        options: IntegrationOptions::from_stored(&v.options),
        is_ninja,
        settings,
        secrets,
        has_mfa,
        consent_given,
        consented,
        health,
        runs,
        v,
        notice: None,
        checks: None,
        totp: None,
        error: None,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<NoticeQuery>,
) -> UiResult<Response> {
    let mut page = detail_page(&state, &user, id).await?;
    page.notice = notice_text(q.notice.as_deref());
    Ok(render(&page))
}

/// `POST /integrations/{id}/verify`: runs every check and shows the detail page with them (the outcome
/// is also stored as the integration's status and health).
pub async fn verify(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Technician)?;
    let v = svc::verify(&state.db, &state.connectors, &Actor::from(&user), id).await?;
    let mut page = detail_page(&state, &user, id).await?;
    page.checks = Some((v.ok, check_rows(&v)));
    Ok(render(&page))
}

/// `POST /integrations/{id}/consent`: sends the admin's browser to NinjaOne's authorization page.
pub async fn start_consent(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    match consent::start(
        &state.db,
        &state.vault,
        &user,
        id,
        &state.settings.public_url,
    )
    .await
    {
        Ok(start) => Ok(see_other(&start.authorization_url)),
        Err(e) => {
            let mut page = detail_page(&state, &user, id).await?;
            page.error = Some(super::capitalize(&ApiError::from(e).to_string()));
            Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
        }
    }
}

/// `POST /integrations/{id}/totp`: shows the current code of the stored MFA secret (audited).
pub async fn totp(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let code = svc::totp(&state.db, &state.vault, &Actor::from(&user), id).await?;
    let mut page = detail_page(&state, &user, id).await?;
    page.totp = Some((code.code, code.valid_for_secs));
    Ok(render(&page))
}

/// `POST /integrations/{id}/sync`: "Sync now", then the run's progress page.
pub async fn sync_now(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    require(&user, Role::Technician)?;
    let actor = Actor::from(&user);
    match state.sync.start(id, &actor.name).await {
        Ok(run) => {
            audit::record(
                &state.db,
                &actor,
                "sync.start",
                Some(("integration", id.to_string())),
                json!({"run_id": run.id}),
            )
            .await?;
            Ok(see_other(&format!(
                "/sync-runs/{}?notice=sync_started",
                run.id
            )))
        }
        Err(SyncError::AlreadyRunning(m)) => match state.db.running_sync_run(id).await? {
            Some(run) => Ok(see_other(&format!(
                "/sync-runs/{}?notice=already_running",
                run.id
            ))),
            None => Err(UiError::from(ApiError::Conflict(m))),
        },
        Err(e) => Err(e.into()),
    }
}
