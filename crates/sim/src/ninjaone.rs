//! The NinjaOne Public API v2 simulator, per `specs/ninjaone-openapi-v2.json` and
//! `reference/ninjaone-api.md`: OAuth 2.0 under `/ws/oauth` (authorization code with PKCE,
//! refresh tokens only with `offline_access`, configurable rotation, client credentials without
//! user context), both `/v2` and `/api/v2`, `after`-paged bare arrays, the `df` device filter,
//! float epoch-second timestamps with unset fields omitted, script runs recorded as ACTIONSET
//! activities, and one webhook per client app.
//!
//! Simulator convention (NinjaOne has no stdout endpoint): a finished script's exit code and
//! output are in the COMPLETED activity's `data.message.params`.
// Handlers return a ready `Response` as their early-exit error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]
use crate::fleet::{Change, ClientKind, DeviceRow, DeviceView, Fleet, FleetConfig};
use crate::script;
use crate::server::{self, Common, Faults, Injected, SimServer};
use crate::universe::{self, DeviceClass, Side};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct NinjaConfig {
    pub fleet: FleetConfig,
    pub faults: Faults,
    pub client_id: String,
    pub client_secret: String,
    pub access_ttl_s: i64,
    pub refresh_ttl_s: i64,
    /// Each refresh returns a new refresh token and retires the old one.
    pub rotate_refresh: bool,
    /// The EU instance answers 400 when client credentials ask for `offline_access`.
    pub reject_offline_access_for_client_credentials: bool,
    pub default_page_size: usize,
    /// The scopes enabled on the API app; a request gets the intersection.
    pub app_scopes: String,
}

impl Default for NinjaConfig {
    fn default() -> Self {
        NinjaConfig {
            fleet: FleetConfig::default(),
            faults: Faults::none(),
            client_id: "sim-client-id-7Qm2".into(),
            client_secret: "sim-client-secret-Zx81-kP0q-Rr55".into(),
            access_ttl_s: 3600,
            refresh_ttl_s: 30 * 86_400,
            rotate_refresh: true,
            reject_offline_access_for_client_credentials: false,
            default_page_size: 100,
            app_scopes: "monitoring management control offline_access".into(),
        }
    }
}

pub const SCRIPT_ID: i64 = 101;
const SCRIPTS: &[(i64, &str, &str)] = &[
    (101, "rmmbridge: Run payload", "PowerShell"),
    (102, "Collect inventory", "ShellScript"),
    (103, "Restart Print Spooler", "PowerShell"),
];
const RUN_AS: &[&str] = &[
    "system",
    "SR_MAC_SCRIPT",
    "SR_LINUX_SCRIPT",
    "loggedonuser",
    "SR_LOCAL_ADMINISTRATOR",
    "SR_DOMAIN_ADMINISTRATOR",
];

#[derive(Clone, Debug)]
struct CodeGrant {
    redirect_uri: String,
    scope: String,
    challenge: Option<String>,
    expires_s: i64,
    used: bool,
}

#[derive(Clone, Debug)]
struct AccessGrant {
    scope: String,
    user_context: bool,
    expires_s: i64,
}

#[derive(Clone, Debug)]
struct RefreshGrant {
    scope: String,
    public_client: bool,
    expires_s: i64,
}

#[derive(Debug, Default)]
struct OAuth {
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WebhookHeader {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub expand: Vec<String>,
    #[serde(default)]
    pub headers: Vec<WebhookHeader>,
    #[serde(default)]
    pub activities: HashMap<String, Vec<String>>,
}

pub struct NjState {
    pub common: Arc<Common>,
    cfg: NinjaConfig,
    oauth: Mutex<OAuth>,
    activities: Mutex<Vec<Value>>,
    next_activity: AtomicI64,
    webhook: Mutex<Option<Webhook>>,
    http: reqwest::Client,
}

/// A running NinjaOne simulator.
pub struct NinjaSim {
    pub server: SimServer,
    pub state: Arc<NjState>,
}

const MAX_ACTIVITIES: usize = 50_000;

impl NinjaSim {
    pub async fn start(listen: SocketAddr, cfg: NinjaConfig) -> std::io::Result<NinjaSim> {
        let fleet = Fleet::generate(Side::Ninjaone, cfg.fleet.clone());
        let common = Arc::new(Common::new(cfg.fleet.seed, fleet, cfg.faults.clone()));
        let state = Arc::new(NjState {
            common: common.clone(),
            cfg,
            oauth: Mutex::default(),
            activities: Mutex::default(),
            next_activity: AtomicI64::new(170_000),
            webhook: Mutex::default(),
            http: reqwest::Client::new(),
        });
        let server = SimServer::serve(listen, router(state.clone())).await?;
        Ok(NinjaSim { server, state })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn common(&self) -> &Common {
        &self.state.common
    }

    pub fn script_id(&self) -> i64 {
        SCRIPT_ID
    }

    /// What a client needs, as `rmmbridge sim ninjaone` prints it.
    pub fn connection_info(&self) -> Value {
        json!({"url": self.url(), "client_id": self.state.cfg.client_id,
            "client_secret": self.state.cfg.client_secret, "script_id": SCRIPT_ID})
    }

    /// Every refresh token issued so far stops working (`invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        self.state.revoke_refresh_tokens();
    }

    /// Changes the fleet in-process, as the `/_sim` endpoints do: the changes become activities
    /// and webhook deliveries. `f` gets the fleet and the simulated time in seconds.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&mut Fleet, i64) -> Result<(T, Vec<Change>), crate::fleet::FleetError>,
    ) -> Result<T, crate::fleet::FleetError> {
        let now = self.state.common.clock.now_s();
        let (out, changes) = f(&mut self.state.common.fleet_mut(), now)?;
        self.state.record_changes(&changes);
        Ok(out)
    }

    pub fn webhook(&self) -> Option<Webhook> {
        self.state
            .webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn activities(&self) -> Vec<Value> {
        self.state
            .activities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl NjState {
    fn revoke_refresh_tokens(&self) {
        self.oauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refresh
            .clear();
    }
}

fn router(state: Arc<NjState>) -> Router {
    let v2 = Router::new()
        .route("/organizations", get(organizations))
        .route("/organizations-detailed", get(organizations_detailed))
        .route("/organization/{id}", get(organization))
        .route("/organization/{id}/locations", get(organization_locations))
        .route("/organization/{id}/devices", get(organization_devices))
        .route("/locations", get(locations))
        .route("/devices", get(devices))
        .route("/devices-detailed", get(devices_detailed))
        .route("/device/{id}", get(device))
        .route("/device/{id}/activities", get(device_activities))
        .route("/device/{id}/script/run", post(script_run))
        .route("/automation/scripts", get(scripts))
        .route("/activities", get(activities))
        .route("/webhook", put(put_webhook).delete(delete_webhook));
    let sink_state = state.clone();
    let sink: server::ChangeSink =
        Arc::new(move |changes: &[Change]| sink_state.record_changes(changes));
    Router::new()
        .route(
            "/ws/oauth/authorize",
            get(authorize_page).post(authorize_decision),
        )
        .route("/ws/oauth/token", post(token))
        .route("/ws/oauth/error", get(oauth_error_page))
        .route("/_sim/revoke-refresh-tokens", post(revoke_endpoint))
        .nest("/v2", v2.clone())
        .nest("/api/v2", v2)
        .with_state(state.clone())
        .merge(server::admin_router(state.common.clone(), sink))
        .layer(axum::middleware::from_fn_with_state(
            state.common.clone(),
            server::count_requests,
        ))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn has_scope(scope: &str, want: &str) -> bool {
    scope.split_whitespace().any(|s| s == want)
}

// ---- OAuth ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    decision: Option<String>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error_redirect(description: &str) -> Response {
    let q = serde_urlencoded::to_string([
        ("error", "unauthorized_client"),
        ("error_description", description),
    ])
    .unwrap_or_default();
    Redirect::to(&format!("/ws/oauth/error?{q}")).into_response()
}

impl NjState {
    fn check_authorize(&self, p: &AuthorizeParams) -> Result<(), Response> {
        if p.client_id.as_deref() != Some(self.cfg.client_id.as_str()) {
            return Err(error_redirect("Invalid client_id"));
        }
        let Some(uri) = p.redirect_uri.as_deref() else {
            return Err(error_redirect("Invalid redirect_uri"));
        };
        if url::Url::parse(uri).is_err() {
            return Err(error_redirect("Invalid redirect_uri"));
        }
        if p.response_type.as_deref() != Some("code") {
            return Err(error_redirect("Unsupported response_type"));
        }
        if p.code_challenge.is_some() && p.code_challenge_method.as_deref() != Some("S256") {
            return Err(error_redirect(
                "Only code_challenge_method=S256 is supported",
            ));
        }
        Ok(())
    }
}

async fn authorize_page(
    State(s): State<Arc<NjState>>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    if let Err(r) = s.check_authorize(&p) {
        return r;
    }
    let hidden = |name: &str, v: &Option<String>| {
        v.as_ref()
            .map(|v| {
                format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    html_escape(v)
                )
            })
            .unwrap_or_default()
    };
    let fields = [
        hidden("response_type", &p.response_type),
        hidden("client_id", &p.client_id),
        hidden("redirect_uri", &p.redirect_uri),
        hidden("scope", &p.scope),
        hidden("state", &p.state),
        hidden("code_challenge", &p.code_challenge),
        hidden("code_challenge_method", &p.code_challenge_method),
    ]
    .concat();
    let scope = html_escape(p.scope.as_deref().unwrap_or(""));
    Html(format!(
        "<!doctype html><html><head><title>NinjaOne (simulated): authorize application</title></head><body>\
         <h1>Authorize application</h1><p>An application asks for access to your NinjaOne account with the scopes: <strong id=\"scopes\">{scope}</strong></p>\
         <form method=\"post\" action=\"/ws/oauth/authorize\">{fields}\
         <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form></body></html>"
    ))
    .into_response()
}

async fn authorize_decision(
    State(s): State<Arc<NjState>>,
    axum::Form(p): axum::Form<AuthorizeParams>,
) -> Response {
    if let Err(r) = s.check_authorize(&p) {
        return r;
    }
    let redirect = p.redirect_uri.clone().unwrap_or_default();
    let mut target = url::Url::parse(&redirect).expect("checked above");
    if p.decision.as_deref() != Some("allow") {
        target
            .query_pairs_mut()
            .append_pair("error", "access_denied");
    } else {
        let code = random_token(24);
        s.oauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .codes
            .insert(
                code.clone(),
                CodeGrant {
                    redirect_uri: redirect,
                    scope: p.scope.clone().unwrap_or_default(),
                    challenge: p.code_challenge.clone(),
                    expires_s: s.common.clock.now_s() + 60,
                    used: false,
                },
            );
        target.query_pairs_mut().append_pair("code", &code);
    }
    if let Some(state) = &p.state {
        target.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(target.as_str()).into_response()
}

async fn oauth_error_page(Query(q): Query<HashMap<String, String>>) -> Response {
    let e = html_escape(q.get("error").map(String::as_str).unwrap_or("error"));
    let d = html_escape(q.get("error_description").map(String::as_str).unwrap_or(""));
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><html><body><h1>{e}</h1><p>{d}</p></body></html>"
        )),
    )
        .into_response()
}

impl NjState {
    fn issue(
        &self,
        o: &mut OAuth,
        scope: &str,
        user_context: bool,
        refresh: bool,
        public_client: bool,
    ) -> Value {
        // The app's enabled scopes bound what any request gets.
        let granted: Vec<&str> = scope
            .split_whitespace()
            .filter(|s| has_scope(&self.cfg.app_scopes, s))
            .collect();
        let scope = granted.join(" ");
        let scope = scope.as_str();
        let now = self.common.clock.now_s();
        let access = random_token(32);
        o.access.insert(
            access.clone(),
            AccessGrant {
                scope: scope.to_owned(),
                user_context,
                expires_s: now + self.cfg.access_ttl_s,
            },
        );
        let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": self.cfg.access_ttl_s, "scope": scope});
        if refresh && has_scope(scope, "offline_access") {
            let rt = format!("{}.{}", uuid::Uuid::new_v4(), random_token(32));
            o.refresh.insert(
                rt.clone(),
                RefreshGrant {
                    scope: scope.to_owned(),
                    public_client,
                    expires_s: now + self.cfg.refresh_ttl_s,
                },
            );
            body["refresh_token"] = json!(rt);
        }
        body
    }
}

async fn token(State(s): State<Arc<NjState>>, body: Bytes) -> Response {
    let f: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            );
        }
    };
    let get = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if get("client_id") != Some(s.cfg.client_id.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client_id",
        );
    }
    let secret_ok = get("client_secret") == Some(s.cfg.client_secret.as_str());
    if get("client_secret").is_some() && !secret_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client credentials",
        );
    }
    let now = s.common.clock.now_s();
    let mut o = s.oauth.lock().unwrap_or_else(|e| e.into_inner());
    match get("grant_type") {
        Some("authorization_code") => {
            let code = get("code").unwrap_or_default();
            let Some(grant) = o.codes.get_mut(code) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The authorization code is invalid",
                );
            };
            if grant.used || grant.expires_s <= now {
                grant.used = true;
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The authorization code was already used or has expired",
                );
            }
            grant.used = true;
            let grant = grant.clone();
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri does not match the authorization request",
                );
            }
            let public = match &grant.challenge {
                Some(ch) => match get("code_verifier") {
                    Some(v) if s256(v) == *ch => !secret_ok,
                    _ => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "PKCE verification failed: code_verifier does not match code_challenge",
                        );
                    }
                },
                None if !secret_ok => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        "client_secret is required",
                    );
                }
                None => false,
            };
            let body = s.issue(&mut o, &grant.scope, true, true, public);
            axum::Json(body).into_response()
        }
        Some("refresh_token") => {
            let rt = get("refresh_token").unwrap_or_default().to_owned();
            let Some(grant) = o.refresh.get(&rt).cloned() else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token is invalid, expired or revoked",
                );
            };
            if grant.expires_s <= now {
                o.refresh.remove(&rt);
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token has expired",
                );
            }
            if !grant.public_client && !secret_ok {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client_secret is required",
                );
            }
            let body = if s.cfg.rotate_refresh {
                o.refresh.remove(&rt);
                s.issue(&mut o, &grant.scope, true, true, grant.public_client)
            } else {
                let mut b = s.issue(&mut o, &grant.scope, true, false, grant.public_client);
                b["refresh_token"] = json!(rt);
                b
            };
            axum::Json(body).into_response()
        }
        Some("client_credentials") => {
            if !secret_ok {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Invalid client credentials",
                );
            }
            let scope = get("scope").unwrap_or("monitoring").to_owned();
            if has_scope(&scope, "offline_access")
                && s.cfg.reject_offline_access_for_client_credentials
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "offline_access is not allowed for client_credentials",
                );
            }
            let body = s.issue(&mut o, &scope, false, true, false);
            axum::Json(body).into_response()
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or client_credentials",
        ),
    }
}

async fn revoke_endpoint(State(s): State<Arc<NjState>>) -> Response {
    s.revoke_refresh_tokens();
    StatusCode::NO_CONTENT.into_response()
}

// ---- access control and faults --------------------------------------------------------------

fn api_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

impl NjState {
    async fn guard(
        &self,
        headers: &HeaderMap,
        scope: &str,
        user_context: bool,
        key: String,
    ) -> Result<(), Response> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                api_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "Missing bearer token",
                )
            })?;
        let now = self.common.clock.now_s();
        {
            let mut o = self.oauth.lock().unwrap_or_else(|e| e.into_inner());
            let grant = match o.access.get(token) {
                Some(g) if g.expires_s > now => g.clone(),
                _ => {
                    return Err(api_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "The access token is invalid or has expired",
                    ));
                }
            };
            if self.common.count_data_request() {
                o.access.remove(token);
                return Err(api_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "The access token is invalid or has expired",
                ));
            }
            if !has_scope(&grant.scope, scope) {
                return Err(api_error(
                    StatusCode::UNAUTHORIZED,
                    "insufficient_privileges",
                    &format!("This request needs the {scope} scope"),
                ));
            }
            if user_context && !grant.user_context {
                let body = json!({"error": "user_context_required", "error_description": "Access key does not have user context which is required for this request", "error_code": 5});
                return Err((StatusCode::FORBIDDEN, axum::Json(body)).into_response());
            }
        }
        self.common.maybe_slow(&key).await;
        match self.common.draw_fault(&key) {
            None | Some(Injected::ErrorIn200) => Ok(()),
            Some(Injected::RateLimited) => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(json!({"resultCode": "429"}))).into_response();
                if let Some(s) = self.common.faults().retry_after_s {
                    r.headers_mut().insert("retry-after", s.into());
                }
                Err(r)
            }
            Some(Injected::ServerError) => Err((StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"resultCode": "SERVICE_UNAVAILABLE", "errorMessage": "Service temporarily unavailable", "incidentId": "sim-503"}))).into_response()),
            Some(Injected::Reset) => Err(server::reset_response()),
        }
    }
}

fn key(method: &str, path: &str, q: &impl serde::Serialize) -> String {
    format!(
        "{method} {path}?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

// ---- paging ---------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    page_size: Option<String>,
    after: Option<String>,
    df: Option<String>,
}

impl ListParams {
    fn parse(&self, default: usize) -> Result<(usize, i64), Response> {
        let size = match self.page_size.as_deref() {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(api_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_parameter",
                        "pageSize must be between 1 and 1000",
                    ));
                }
            },
        };
        let after = match self.after.as_deref() {
            None | Some("") => 0,
            Some(v) => v.parse::<i64>().map_err(|_| {
                api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    "after must be an id",
                )
            })?,
        };
        Ok((size, after))
    }
}

fn epoch(s: i64, id: i64) -> Value {
    // NinjaOne sends float epoch seconds with a fractional part.
    json!(s as f64 + ((id.unsigned_abs() * 37) % 1000) as f64 / 1000.0 + 0.0005)
}

fn org_json(fleet: &Fleet, id: i64, detailed: bool) -> Option<Value> {
    let c = fleet.client(id).filter(|c| c.kind == ClientKind::Company)?;
    let mut v = json!({"id": id, "name": c.name, "nodeApprovalMode": "AUTOMATIC"});
    if id % 3 == 0 {
        v["description"] = json!(format!("Client since {}", 2015 + id % 9));
    }
    if detailed {
        let locs: Vec<Value> = fleet
            .sites_of(id)
            .map(|l| location_json(l.id, &l.name, None))
            .collect();
        v["locations"] = json!(locs);
        v["policies"] = json!([]);
        v["settings"] = json!({});
    }
    Some(v)
}

fn location_json(id: i64, name: &str, org: Option<i64>) -> Value {
    let mut v = json!({"id": id, "name": name, "userData": {}});
    if let Some(o) = org {
        v["organizationId"] = json!(o);
    }
    v
}

async fn org_list(
    s: &NjState,
    headers: &HeaderMap,
    p: &ListParams,
    path: &str,
    detailed: bool,
) -> Response {
    if let Err(r) = s
        .guard(headers, "monitoring", false, key("GET", path, p))
        .await
    {
        return r;
    }
    let (size, after) = match p.parse(s.cfg.default_page_size) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let fleet = s.common.fleet();
    let list: Vec<Value> = fleet
        .companies()
        .filter(|c| c.id > after)
        .take(size)
        .filter_map(|c| org_json(&fleet, c.id, detailed))
        .collect();
    axum::Json(list).into_response()
}

async fn organizations(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    org_list(&s, &headers, &p, "/v2/organizations", false).await
}

async fn organizations_detailed(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    org_list(&s, &headers, &p, "/v2/organizations-detailed", true).await
}

async fn organization(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            format!("GET /v2/organization/{id}"),
        )
        .await
    {
        return r;
    }
    match org_json(&s.common.fleet(), id, true) {
        Some(v) => axum::Json(v).into_response(),
        None => api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Organization {id} not found"),
        ),
    }
}

async fn organization_locations(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            format!("GET /v2/organization/{id}/locations"),
        )
        .await
    {
        return r;
    }
    let fleet = s.common.fleet();
    if org_json(&fleet, id, false).is_none() {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Organization {id} not found"),
        );
    }
    let list: Vec<Value> = fleet
        .sites_of(id)
        .map(|l| location_json(l.id, &l.name, None))
        .collect();
    axum::Json(list).into_response()
}

async fn locations(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            key("GET", "/v2/locations", &p),
        )
        .await
    {
        return r;
    }
    let (size, after) = match p.parse(s.cfg.default_page_size) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let fleet = s.common.fleet();
    let list: Vec<Value> = fleet
        .clients()
        .filter(|c| c.kind == ClientKind::Site && c.id > after)
        .take(size)
        .map(|l| location_json(l.id, &l.name, l.parent))
        .collect();
    axum::Json(list).into_response()
}

// ---- devices and the df filter --------------------------------------------------------------

pub fn node_class(c: DeviceClass) -> &'static str {
    match c {
        DeviceClass::WindowsWorkstation => "WINDOWS_WORKSTATION",
        DeviceClass::WindowsServer | DeviceClass::WindowsVm => "WINDOWS_SERVER",
        DeviceClass::Mac => "MAC",
        DeviceClass::LinuxServer => "LINUX_SERVER",
        DeviceClass::LinuxWorkstation => "LINUX_WORKSTATION",
        DeviceClass::NetworkSwitch => "NMS_SWITCH",
        DeviceClass::NetworkPrinter => "NMS_PRINTER",
    }
}

#[derive(Debug, PartialEq)]
enum Clause {
    Field {
        field: String,
        negate: bool,
        values: Vec<String>,
    },
    Online(bool),
    Created {
        after: bool,
        at_s: i64,
    },
}

/// The device filter grammar: `<field> <op> <value>` clauses (`=`, `eq`, `neq`, `!=`, `in (..)`,
/// `notin (..)`) on org, loc, role, id, class, status; bare `online`/`offline`;
/// `created after|before YYYY-MM-DD`; joined by ` AND `.
pub fn parse_df(df: &str) -> Result<Vec<DfClause>, String> {
    let mut out = Vec::new();
    let lower = df.to_string();
    let mut rest = lower.as_str();
    let mut parts = Vec::new();
    loop {
        match find_and(rest) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + 5..];
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    for part in parts {
        out.push(DfClause(parse_clause(part.trim())?));
    }
    Ok(out)
}

fn find_and(s: &str) -> Option<usize> {
    s.to_ascii_lowercase().find(" and ")
}

/// One parsed `df` clause.
#[derive(Debug, PartialEq)]
pub struct DfClause(Clause);

fn parse_clause(c: &str) -> Result<Clause, String> {
    let lc = c.to_ascii_lowercase();
    if lc == "online" || lc == "offline" {
        return Ok(Clause::Online(lc == "online"));
    }
    if let Some(rest) = lc.strip_prefix("created ") {
        let (dir, date) = rest
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("df clause {c:?}: expected created after|before YYYY-MM-DD"))?;
        let after = match dir {
            "after" => true,
            "before" => false,
            _ => {
                return Err(format!(
                    "df clause {c:?}: expected created after|before YYYY-MM-DD"
                ));
            }
        };
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = time::Date::parse(date.trim(), &fmt)
            .map_err(|_| format!("df clause {c:?}: the date must be YYYY-MM-DD"))?;
        return Ok(Clause::Created {
            after,
            at_s: d.midnight().assume_utc().unix_timestamp(),
        });
    }
    let spaced = c.replace("!=", " neq ").replace('=', " = ");
    let mut words = spaced.split_whitespace();
    let field = words.next().ok_or("empty df clause")?.to_ascii_lowercase();
    if !["org", "loc", "role", "id", "class", "status"].contains(&field.as_str()) {
        return Err(format!(
            "df field {field:?} is not supported (org, loc, role, id, class, status)"
        ));
    }
    let op = words
        .next()
        .ok_or_else(|| format!("df clause {c:?} has no operator"))?
        .to_ascii_lowercase();
    let value: String = words.collect::<Vec<_>>().join(" ");
    let (negate, list) = match op.as_str() {
        "=" | "eq" => (false, false),
        "neq" => (true, false),
        "in" => (false, true),
        "notin" => (true, true),
        other => {
            return Err(format!(
                "df operator {other:?} is not supported (=, eq, neq, in, notin)"
            ));
        }
    };
    let values: Vec<String> = if list {
        let inner = value
            .trim()
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| format!("df clause {c:?}: a list is written (a,b)"))?;
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    } else {
        vec![value.trim().to_owned()]
    };
    if values.is_empty() || values.iter().any(String::is_empty) {
        return Err(format!("df clause {c:?} has no value"));
    }
    if ["org", "loc", "role", "id"].contains(&field.as_str())
        && values.iter().any(|v| v.parse::<i64>().is_err())
    {
        return Err(format!("df clause {c:?}: {field} takes numbers"));
    }
    Ok(Clause::Field {
        field,
        negate,
        values,
    })
}

fn location_of(fleet: &Fleet, row: &DeviceRow) -> i64 {
    row.site
        .or_else(|| fleet.sites_of(row.company).next().map(|l| l.id))
        .unwrap_or(0)
}

fn matches(
    fleet: &Fleet,
    row: &DeviceRow,
    view: &mut Option<DeviceView>,
    clauses: &[DfClause],
) -> bool {
    let get_view = |v: &mut Option<DeviceView>| -> DeviceView {
        if v.is_none() {
            *v = Some(fleet.view(row));
        }
        v.clone().expect("just set")
    };
    clauses.iter().all(|DfClause(c)| match c {
        Clause::Online(on) => get_view(view).offline != *on,
        Clause::Created { after, at_s } => {
            let created = row.created_s;
            if *after {
                created > *at_s
            } else {
                created < *at_s
            }
        }
        Clause::Field {
            field,
            negate,
            values,
        } => {
            let actual = match field.as_str() {
                "org" => row.company.to_string(),
                "loc" => location_of(fleet, row).to_string(),
                "role" => role_of(get_view(view).machine.class).to_string(),
                "id" => row.id.to_string(),
                "class" => node_class(get_view(view).machine.class).to_owned(),
                _ => "APPROVED".to_owned(),
            };
            values.iter().any(|v| v.eq_ignore_ascii_case(&actual)) != *negate
        }
    })
}

fn role_of(c: DeviceClass) -> i64 {
    match c {
        DeviceClass::WindowsWorkstation => 1001,
        DeviceClass::WindowsServer | DeviceClass::WindowsVm => 1002,
        DeviceClass::Mac => 1003,
        DeviceClass::LinuxServer | DeviceClass::LinuxWorkstation => 1004,
        DeviceClass::NetworkSwitch | DeviceClass::NetworkPrinter => 1005,
    }
}

fn uid_of(seed: u64, id: i64) -> String {
    let a = universe::mix(seed, 301, id as u64);
    let b = universe::mix(seed, 302, id as u64);
    uuid::Uuid::from_u64_pair(a, b).to_string()
}

fn device_json(fleet: &Fleet, d: &DeviceView, detailed: bool) -> Value {
    let m = &d.machine;
    let class = m.class;
    let loc = d
        .site
        .or_else(|| fleet.sites_of(d.company).next().map(|l| l.id));
    let mut v = json!({
        "id": d.id, "uid": uid_of(fleet.cfg.seed, d.id), "organizationId": d.company,
        "nodeClass": node_class(class), "nodeRoleId": role_of(class), "rolePolicyId": 40 + role_of(class) % 10,
        "policyId": 200 + role_of(class) % 10, "approvalStatus": "APPROVED", "offline": d.offline,
        "systemName": m.hostname, "created": epoch(d.created_s, d.id), "lastContact": epoch(d.last_contact_s, d.id + 1),
        "lastUpdate": epoch(d.updated_s.max(d.last_contact_s), d.id + 2), "tags": [],
    });
    if let Some(l) = loc {
        v["locationId"] = json!(l);
    }
    let windows = matches!(
        class,
        DeviceClass::WindowsWorkstation | DeviceClass::WindowsServer | DeviceClass::WindowsVm
    );
    if !class.is_network() {
        v["dnsName"] = json!(format!("{}.corp.example", m.hostname.to_lowercase()));
    }
    if windows {
        v["netbiosName"] = json!(m.hostname.to_uppercase());
    }
    if !detailed {
        return v;
    }
    v["ipAddresses"] = json!([format!(
        "10.{}.{}.{}",
        (d.id >> 16) & 0xff,
        (d.id >> 8) & 0xff,
        (d.id & 0xff).max(1)
    )]);
    v["macAddresses"] = json!(
        m.macs
            .iter()
            .map(|mac| universe::format_mac(mac, Side::Ninjaone))
            .collect::<Vec<_>>()
    );
    v["publicIP"] = json!(format!("203.0.113.{}", d.company % 250 + 1));
    if class.is_network() {
        return v;
    }
    v["deviceType"] = json!("AgentDevice");
    v["os"] = json!({"manufacturer": if windows { "Microsoft Corporation" } else { m.manufacturer }, "name": m.os_name,
        "architecture": "64-bit", "buildNumber": m.os_version, "lastBootTime": epoch(d.last_contact_s - 86_400, d.id), "needsReboot": false});
    let mut system = json!({"name": m.hostname, "manufacturer": m.manufacturer, "model": m.model,
        "domain": "CORP", "numberOfProcessors": 1, "totalPhysicalMemory": 17_179_869_184_i64,
        "virtualMachine": class == DeviceClass::WindowsVm, "chassisType": if class.is_server() { "DESKTOP" } else { "LAPTOP" }});
    if let Some(serial) = &m.serial {
        system["serialNumber"] = json!(serial);
        system["biosSerialNumber"] = json!(serial);
    }
    v["system"] = system;
    v["memory"] = json!({"capacity": 17_179_869_184_i64});
    v["processors"] = json!([{"architecture": "x64", "clockSpeed": 2_694_000_000_i64, "name": "Intel(R) Core(TM) i7", "numCores": 8, "numLogicalCores": 16}]);
    v["volumes"] = json!([{"name": "C:", "deviceType": "Local Disk", "fileSystem": "NTFS", "capacity": 512_000_000_000_i64, "freeSpace": 200_000_000_000_i64}]);
    v["lastLoggedInUser"] = json!(m.last_user);
    v
}

async fn device_list(
    s: &NjState,
    headers: &HeaderMap,
    p: &ListParams,
    path: &str,
    org: Option<i64>,
    detailed: bool,
) -> Response {
    if let Err(r) = s
        .guard(headers, "monitoring", false, key("GET", path, p))
        .await
    {
        return r;
    }
    let (size, after) = match p.parse(s.cfg.default_page_size) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let clauses = match p.df.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => Vec::new(),
        Some(df) => match parse_df(df) {
            Ok(c) => c,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_filter", &e),
        },
    };
    let fleet = s.common.fleet();
    let rows = fleet.rows();
    let start = rows.partition_point(|r| r.id <= after);
    let mut page = Vec::with_capacity(size);
    for row in &rows[start..] {
        if org.is_some_and(|o| row.company != o) {
            continue;
        }
        let mut view = None;
        if !matches(&fleet, row, &mut view, &clauses) {
            continue;
        }
        let view = view.unwrap_or_else(|| fleet.view(row));
        page.push(device_json(&fleet, &view, detailed));
        if page.len() == size {
            break;
        }
    }
    // The n-th page of a scan, counted by how many devices precede `after`.
    let page_no = (start / size) as u32 + 1;
    if s.common.faults().malformed_page == Some(page_no) {
        let text = Value::Array(page).to_string();
        return (
            [("content-type", "application/json")],
            text[..text.len() / 2].to_owned(),
        )
            .into_response();
    }
    axum::Json(page).into_response()
}

async fn devices(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    device_list(&s, &headers, &p, "/v2/devices", None, false).await
}

async fn devices_detailed(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Response {
    device_list(&s, &headers, &p, "/v2/devices-detailed", None, true).await
}

async fn organization_devices(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(p): Query<ListParams>,
) -> Response {
    if org_json(&s.common.fleet(), id, false).is_none() {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Organization {id} not found"),
        );
    }
    device_list(
        &s,
        &headers,
        &p,
        &format!("/v2/organization/{id}/devices"),
        Some(id),
        false,
    )
    .await
}

async fn device(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            format!("GET /v2/device/{id}"),
        )
        .await
    {
        return r;
    }
    let fleet = s.common.fleet();
    match fleet.device(id) {
        Some(d) => axum::Json(device_json(&fleet, &d, true)).into_response(),
        None => api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Device {id} not found"),
        ),
    }
}

// ---- scripts, activities, webhooks ----------------------------------------------------------

async fn scripts(State(s): State<Arc<NjState>>, headers: HeaderMap) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            "GET /v2/automation/scripts".into(),
        )
        .await
    {
        return r;
    }
    let list: Vec<Value> = SCRIPTS
        .iter()
        .map(|(id, name, lang)| {
            json!({"id": id, "name": name, "description": format!("{name} (simulated)"), "active": true, "language": lang,
                "architecture": ["64"], "operatingSystems": if *lang == "PowerShell" { json!(["Windows"]) } else { json!(["Mac", "Linux"]) },
                "scriptParameters": [], "scriptVariables": []})
        })
        .collect();
    axum::Json(list).into_response()
}

impl NjState {
    fn push_activity(&self, mut a: Value) -> Value {
        let id = self.next_activity.fetch_add(1, Ordering::Relaxed);
        a["id"] = json!(id);
        a["activityTime"] = json!(self.common.clock.now_ms() as f64 / 1000.0);
        if let Some(o) = a.as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        {
            let mut list = self.activities.lock().unwrap_or_else(|e| e.into_inner());
            list.push(a.clone());
            if list.len() > MAX_ACTIVITIES {
                let excess = list.len() - MAX_ACTIVITIES;
                list.drain(..excess);
            }
        }
        self.deliver(&a);
        a
    }

    /// POSTs the activity to the registered webhook when its filter matches.
    fn deliver(&self, activity: &Value) {
        let Some(hook) = self
            .webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let kind = activity["activityType"].as_str().unwrap_or_default();
        let code = activity["statusCode"].as_str().unwrap_or_default();
        let wanted = hook.activities.is_empty()
            || hook
                .activities
                .get(kind)
                .is_some_and(|codes| codes.iter().any(|c| c == "*" || c == code));
        if !wanted {
            return;
        }
        let mut body = activity.clone();
        if let Some(id) = activity["deviceId"].as_i64() {
            let fleet = self.common.fleet();
            if let Some(d) = fleet.device(id) {
                let mut dev = device_json(&fleet, &d, false);
                let org = fleet
                    .client(d.company)
                    .map(|c| json!({"id": c.id, "name": c.name, "nodeApprovalMode": "AUTOMATIC"}));
                let loc = dev["locationId"]
                    .as_i64()
                    .and_then(|l| fleet.client(l))
                    .map(|l| json!({"id": l.id, "name": l.name}));
                dev["references"] = json!({"organization": org, "location": loc});
                body["device"] = dev;
            }
        }
        let client = self.http.clone();
        tokio::spawn(async move {
            let mut req = client
                .post(&hook.url)
                .json(&body)
                .timeout(std::time::Duration::from_secs(10));
            for h in &hook.headers {
                req = req.header(h.name.as_str(), h.value.as_str());
            }
            if let Err(e) = req.send().await {
                tracing::warn!(url = %hook.url, error = %e, "simulated NinjaOne webhook delivery failed");
            }
        });
    }

    fn record_changes(&self, changes: &[Change]) {
        for c in changes {
            let (device, code, status, message) = match c {
                Change::DeviceCreated(id) => (
                    Some(*id),
                    "NODE_CREATED",
                    "Node Created",
                    format!("Device {id} was created"),
                ),
                Change::DeviceUpdated(id) => (
                    Some(*id),
                    "NODE_UPDATED",
                    "Node Updated",
                    format!("Device {id} was updated"),
                ),
                Change::DeviceDeleted(id) => (
                    Some(*id),
                    "NODE_DELETED",
                    "Node Deleted",
                    format!("Device {id} was deleted"),
                ),
                Change::ClientCreated(id) => (
                    None,
                    "CLIENT_CREATED",
                    "Client Created",
                    format!("Organization {id} was created"),
                ),
                Change::ClientUpdated(id) => (
                    None,
                    "CLIENT_UPDATED",
                    "Client Updated",
                    format!("Organization {id} was updated"),
                ),
                Change::ClientDeleted(id) => (
                    None,
                    "CLIENT_DELETED",
                    "Client Deleted",
                    format!("Organization {id} was deleted"),
                ),
            };
            self.push_activity(json!({"deviceId": device, "severity": "NONE", "priority": "NONE", "activityType": "SYSTEM",
                "statusCode": code, "status": status, "sourceName": "System", "subject": "", "message": message, "type": "System",
                "data": {"message": {"code": code.to_ascii_lowercase(), "params": {}}}}));
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunScript {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<i64>,
    uid: Option<String>,
    parameters: Option<String>,
    run_as: Option<String>,
}

async fn script_run(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "management",
            true,
            format!(
                "POST /v2/device/{id}/script/run#{}",
                s.next_activity.load(Ordering::Relaxed)
            ),
        )
        .await
    {
        return r;
    }
    let req: RunScript = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the body is not a script run request: {e}"),
            );
        }
    };
    let Some(d) = s.common.fleet().device(id) else {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Device {id} not found"),
        );
    };
    let name = match req.kind.as_deref() {
        Some("SCRIPT") => match req
            .id
            .and_then(|sid| SCRIPTS.iter().find(|(i, _, _)| *i == sid))
        {
            Some((_, name, _)) => (*name).to_owned(),
            None => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Unknown script id",
                );
            }
        },
        Some("ACTION") if req.uid.is_some() => "Built-in action".to_owned(),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "type must be SCRIPT (with id) or ACTION (with uid)",
            );
        }
    };
    let run_as = req.run_as.unwrap_or_else(|| "system".into());
    if !RUN_AS.contains(&run_as.as_str()) && run_as.parse::<i64>().is_err() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("runAs {run_as:?} is not a credential role or id"),
        );
    }
    let series = uuid::Uuid::new_v4().to_string();
    let source = uid_of(s.common.seed, req.id.unwrap_or(0) + 9_000_000);
    s.push_activity(json!({"deviceId": id, "severity": "NONE", "priority": "NONE", "seriesUid": series, "activityType": "ACTIONSET",
        "statusCode": "START_REQUESTED", "status": "Start Requested", "sourceConfigUid": source, "sourceName": name, "subject": "",
        "userId": 31, "message": format!("Scheduled automation '{name}' running on demand"), "type": "Action Set"}));
    if !d.offline {
        let state = s.clone();
        let params = req.parameters.unwrap_or_default();
        tokio::spawn(async move {
            let (outcome, payload) = script::run(&name, &d.machine.hostname, &params);
            tokio::time::sleep(std::time::Duration::from_millis(
                50 + payload.sleep_ms.unwrap_or(0),
            ))
            .await;
            let result = if outcome.exit_code == 0 {
                "SUCCESS"
            } else {
                "FAILURE"
            };
            state.push_activity(json!({"deviceId": d.id, "severity": "NONE", "priority": "NONE", "seriesUid": series,
                "activityType": "ACTIONSET", "statusCode": "COMPLETED", "status": "Completed", "activityResult": result,
                "sourceConfigUid": source, "sourceName": name, "subject": "", "userId": 31,
                "message": format!("Automation '{name}' completed with exit code {}", outcome.exit_code), "type": "Action Set",
                "data": {"message": {"code": "actionset_completed", "params": {"exitCode": outcome.exit_code, "output": outcome.output}}}}));
            script::call_back(&payload, d.id, &d.machine.hostname, &outcome).await;
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ActivityParams {
    page_size: Option<i64>,
    newer_than: Option<i64>,
    older_than: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    activity_type: Option<String>,
}

fn activity_page(s: &NjState, p: &ActivityParams, device: Option<i64>) -> Result<Value, Response> {
    let size = p.page_size.unwrap_or(200);
    if !(10..=1000).contains(&size) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "pageSize must be between 10 and 1000",
        ));
    }
    let kind = p.activity_type.as_deref().or(p.kind.as_deref());
    let list = s.activities.lock().unwrap_or_else(|e| e.into_inner());
    let last = list.last().and_then(|a| a["id"].as_i64()).unwrap_or(0);
    // Newest first; `newerThan` means id greater than, `olderThan` id less than (the spec swaps the two descriptions).
    let page: Vec<Value> = list
        .iter()
        .rev()
        .filter(|a| device.is_none_or(|d| a["deviceId"].as_i64() == Some(d)))
        .filter(|a| kind.is_none_or(|k| a["activityType"] == k))
        .filter(|a| {
            p.newer_than
                .is_none_or(|n| a["id"].as_i64().unwrap_or(0) > n)
        })
        .filter(|a| {
            p.older_than
                .is_none_or(|n| a["id"].as_i64().unwrap_or(0) < n)
        })
        .take(size as usize)
        .cloned()
        .collect();
    Ok(json!({"lastActivityId": last, "activities": page}))
}

async fn activities(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Query(p): Query<ActivityParams>,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            key("GET", "/v2/activities", &p),
        )
        .await
    {
        return r;
    }
    match activity_page(&s, &p, None) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

async fn device_activities(
    State(s): State<Arc<NjState>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(p): Query<ActivityParams>,
) -> Response {
    if let Err(r) = s
        .guard(
            &headers,
            "monitoring",
            false,
            key("GET", &format!("/v2/device/{id}/activities"), &p),
        )
        .await
    {
        return r;
    }
    if s.common.fleet().device(id).is_none() {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Device {id} not found"),
        );
    }
    match activity_page(&s, &p, Some(id)) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

async fn put_webhook(State(s): State<Arc<NjState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = s
        .guard(&headers, "management", false, "PUT /v2/webhook".into())
        .await
    {
        return r;
    }
    let hook: Webhook = match serde_json::from_slice(&body) {
        Ok(h) => h,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the body is not a webhook configuration: {e}"),
            );
        }
    };
    if url::Url::parse(&hook.url).is_err() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "url must be an absolute URL",
        );
    }
    *s.webhook.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_webhook(State(s): State<Arc<NjState>>, headers: HeaderMap) -> Response {
    if let Err(r) = s
        .guard(&headers, "management", false, "DELETE /v2/webhook".into())
        .await
    {
        return r;
    }
    *s.webhook.lock().unwrap_or_else(|e| e.into_inner()) = None;
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_df_grammar_parses_the_documented_forms() {
        for ok in [
            "org = 1",
            "org=1",
            "id=5948",
            "class in (WINDOWS_WORKSTATION,MAC)",
            "status eq APPROVED",
            "loc neq 3",
            "org != 2",
            "class notin (MAC)",
            "online",
            "offline",
            "created after 2024-01-31",
            "class eq WINDOWS_WORKSTATION AND online",
            "org = 1 and offline",
        ] {
            assert!(parse_df(ok).is_ok(), "{ok}: {:?}", parse_df(ok));
        }
        assert_eq!(parse_df("org = 1 AND offline").unwrap().len(), 2);
        for bad in [
            "org ~ 1",
            "colour = red",
            "org = x",
            "class in MAC",
            "created soon",
            "org =",
        ] {
            assert!(parse_df(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
