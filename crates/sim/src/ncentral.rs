//! The N-able N-central simulator: the REST "API-Service" (2023.9 and later) and the legacy SOAP
//! ServerEI2 endpoint, per `specs/ncentral-openapi-subset.json` and `reference/ncentral-api.md`.
//!
//! Quirks kept on purpose: org-unit ids are strings and device ids integers; errors carry an
//! `[ID=..]` prefix; an error message can arrive inside a 200; in-flight requests are capped per
//! endpoint (429, no `Retry-After`); tokens live in server memory (a reboot drops them); SOAP
//! `customerList` mixes customers and sites; asset values are strings with `"None"` for empty.
//! Assumption (not confirmed by the references): the SMBIOS UUID appears in the assets as
//! `computersystem.uuid`, lower-case.
// Handlers return a ready `Response` as their early-exit error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]
use crate::fleet::{Change, ClientKind, DeviceView, Fleet, FleetConfig};
use crate::script;
use crate::server::{self, Common, Faults, Injected, SimServer};
use crate::universe::{self, DeviceClass, Side};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const SO_ID: i64 = 50;
pub const SO_NAME: &str = "MSP Service Organization";

#[derive(Clone, Debug)]
pub struct NcentralConfig {
    pub fleet: FleetConfig,
    pub faults: Faults,
    /// The User-API token (JWT) of the API user.
    pub jwt: String,
    pub username: String,
    pub password: String,
    /// Base32 TOTP secret of the user; with `mfa_enabled` SOAP refuses username and password (2100).
    pub mfa_secret: String,
    pub mfa_enabled: bool,
    /// `Installation: Deployment Product Version`; below 2023.9 there is no REST API.
    pub version: String,
    pub access_ttl_s: i64,
    pub refresh_ttl_s: i64,
    /// Concurrent requests allowed per endpoint before 429 (N-central: 3 to 50).
    pub max_in_flight: usize,
    /// Repository item with "Enable API" on.
    pub script_item_id: i64,
}

impl Default for NcentralConfig {
    fn default() -> Self {
        NcentralConfig {
            fleet: FleetConfig::default(),
            faults: Faults::none(),
            jwt: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJybW1icmlkZ2UtYXBpIn0.sim-user-api-token".into(),
            username: "api@msp.example".into(),
            password: "Sim-Password-2026!".into(),
            mfa_secret: "JBSWY3DPEHPK3PXP".into(),
            mfa_enabled: false,
            version: "2024.6.0.19".into(),
            access_ttl_s: 3600,
            refresh_ttl_s: 90_000,
            max_in_flight: 10,
            script_item_id: 1001,
        }
    }
}

/// A repository item that refuses API runs ("Enable API" off).
pub const LOCKED_ITEM_ID: i64 = 1002;

#[derive(Clone, Debug)]
struct Task {
    id: i64,
    name: String,
    item_id: i64,
    customer_id: i64,
    device_id: i64,
    device_name: String,
    /// `None` while pending.
    outcome: Option<script::Outcome>,
}

#[derive(Debug, Default)]
struct Tokens {
    access: HashMap<String, i64>,
    refresh: HashMap<String, i64>,
}

pub struct NcState {
    pub common: Arc<Common>,
    cfg: NcentralConfig,
    tokens: Mutex<Tokens>,
    tasks: Mutex<HashMap<i64, Task>>,
    next_task: AtomicI64,
    in_flight: Mutex<HashMap<&'static str, Arc<AtomicUsize>>>,
    request_ids: AtomicI64,
}

/// A running N-central simulator.
pub struct NcentralSim {
    pub server: SimServer,
    pub state: Arc<NcState>,
}

impl NcentralSim {
    pub async fn start(listen: SocketAddr, cfg: NcentralConfig) -> std::io::Result<NcentralSim> {
        let fleet = Fleet::generate(Side::Ncentral, cfg.fleet.clone());
        let common = Arc::new(Common::new(cfg.fleet.seed, fleet, cfg.faults.clone()));
        let state = Arc::new(NcState {
            common: common.clone(),
            cfg,
            tokens: Mutex::default(),
            tasks: Mutex::default(),
            next_task: AtomicI64::new(1_985_975),
            in_flight: Mutex::default(),
            request_ids: AtomicI64::new(1),
        });
        let app = router(state.clone());
        let server = SimServer::serve(listen, app).await?;
        Ok(NcentralSim { server, state })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn common(&self) -> &Common {
        &self.state.common
    }

    /// What a client needs, as `rmmbridge sim ncentral` prints it.
    pub fn connection_info(&self) -> Value {
        json!({
            "url": self.url(),
            "jwt": self.state.cfg.jwt,
            "username": self.state.cfg.username,
            "password": self.state.cfg.password,
            "mfa_secret": self.state.cfg.mfa_secret,
            "script_item_id": self.state.cfg.script_item_id,
            "version": self.state.cfg.version,
        })
    }

    /// Changes the fleet in-process, as the `/_sim` endpoints do. `f` gets the fleet and the
    /// simulated time in seconds.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&mut Fleet, i64) -> Result<T, crate::fleet::FleetError>,
    ) -> Result<T, crate::fleet::FleetError> {
        let now = self.state.common.clock.now_s();
        f(&mut self.state.common.fleet_mut(), now)
    }

    /// Drops every token, as an N-central reboot does.
    pub fn reboot(&self) {
        *self.state.tokens.lock().unwrap_or_else(|e| e.into_inner()) = Tokens::default();
    }
}

fn router(state: Arc<NcState>) -> Router {
    let sink: server::ChangeSink = Arc::new(|_: &[Change]| {});
    let rest = Router::new()
        .route("/api", get(api_root))
        .route("/api/health", get(health))
        .route("/api/auth", get(auth_links))
        .route("/api/auth/authenticate", post(authenticate))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/validate", get(validate))
        .route("/api/auth/logout", post(logout))
        .route("/api/server-info/extra", get(server_info_extra))
        .route("/api/service-orgs", get(service_orgs))
        .route("/api/service-orgs/{id}", get(service_org))
        .route("/api/service-orgs/{id}/customers", get(so_customers))
        .route("/api/customers", get(customers))
        .route("/api/customers/{id}", get(customer))
        .route("/api/customers/{id}/sites", get(customer_sites))
        .route("/api/sites", get(sites))
        .route("/api/sites/{id}", get(site))
        .route("/api/org-units", get(org_units))
        .route("/api/org-units/{id}", get(org_unit))
        .route("/api/org-units/{id}/children", get(org_unit_children))
        .route("/api/org-units/{id}/devices", get(org_unit_devices))
        .route("/api/devices", get(devices))
        .route("/api/devices/{id}", get(device))
        .route("/api/devices/{id}/assets", get(device_assets))
        .route("/api/scheduled-tasks/direct", post(direct_task))
        .route("/api/scheduled-tasks/{id}", get(task_info))
        .route("/api/scheduled-tasks/{id}/status", get(task_status))
        .route(
            "/api/scheduled-tasks/{id}/status/details",
            get(task_details),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rest_available,
        ));
    Router::new()
        .merge(rest)
        .route("/dms2/services2/ServerEI2", post(soap))
        .route("/_sim/reboot", post(reboot_endpoint))
        .with_state(state.clone())
        .merge(server::admin_router(state.common.clone(), sink))
        .layer(axum::middleware::from_fn_with_state(
            state.common.clone(),
            server::count_requests,
        ))
}

/// `YYYY.M...` at or above 2023.9?
pub fn has_rest(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2023, 9)
}

async fn rest_available(
    State(s): State<Arc<NcState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !has_rest(&s.cfg.version) {
        // Older servers have no API-Service: the path simply does not exist.
        return (
            StatusCode::NOT_FOUND,
            "<html><body><h1>404 Not Found</h1></body></html>",
        )
            .into_response();
    }
    next.run(req).await
}

async fn reboot_endpoint(State(s): State<Arc<NcState>>) -> Response {
    *s.tokens.lock().unwrap_or_else(|e| e.into_inner()) = Tokens::default();
    StatusCode::NO_CONTENT.into_response()
}

// ---- errors ---------------------------------------------------------------------------------

impl NcState {
    fn error(&self, status: StatusCode, kind: &str, detail: &str) -> Response {
        let id = format!(
            "{:08x}",
            self.request_ids
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(2_654_435_761)
                & 0xffff_ffff
        );
        let label = status.canonical_reason().unwrap_or("ERROR").to_uppercase();
        let body = json!({"status": status.as_u16(), "message": format!("[ID={id}] {label}: {kind}: {detail}")});
        (status, axum::Json(body)).into_response()
    }

    fn validation(&self, field: &str, message: &str) -> Response {
        let id = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let body = json!({"status": 400, "message": format!("[ID={id:08x}] Multiple Validations Failed."),
            "errors": [{"field": field, "message": message}]});
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }

    fn unauthorized(&self, detail: &str) -> Response {
        self.error(StatusCode::UNAUTHORIZED, "UnauthorizedException", detail)
    }

    fn not_found(&self, what: &str, id: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("{what} with ID {id} was not found!"),
        )
    }

    fn now_s(&self) -> i64 {
        self.common.clock.now_s()
    }

    /// Bearer check, token-expiry fault, in-flight cap and the drawn faults, in that order.
    async fn guard(
        &self,
        headers: &HeaderMap,
        endpoint: &'static str,
        key: String,
    ) -> Result<InFlight, Response> {
        let token = bearer(headers)
            .ok_or_else(|| self.unauthorized("Missing authorization header bearer."))?;
        let now = self.now_s();
        {
            let mut t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            match t.access.get(&token) {
                Some(exp) if *exp > now => {}
                _ => return Err(self.unauthorized("The access token is invalid or has expired.")),
            }
            if self.common.count_data_request() {
                t.access.remove(&token);
                return Err(self.unauthorized("The access token is invalid or has expired."));
            }
        }
        let counter = {
            let mut m = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(endpoint).or_default().clone()
        };
        if counter.fetch_add(1, Ordering::SeqCst) >= self.cfg.max_in_flight {
            counter.fetch_sub(1, Ordering::SeqCst);
            return Err(self.error(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceededException",
                "Too many concurrent requests for this endpoint.",
            ));
        }
        let guard = InFlight(counter);
        self.common.maybe_slow(&key).await;
        match self.common.draw_fault(&key) {
            None => Ok(guard),
            Some(Injected::RateLimited) => {
                let mut resp = self.error(StatusCode::TOO_MANY_REQUESTS, "RateLimitExceededException", "Too many concurrent requests for this endpoint.");
                if let Some(s) = self.common.faults().retry_after_s {
                    resp.headers_mut().insert("retry-after", s.into());
                }
                Err(resp)
            }
            Some(Injected::ServerError) => Err(self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UnexpectedDmsResponseException",
                "Unexpected response from DMS: connection to the core engine was lost",
            )),
            Some(Injected::Reset) => Err(server::reset_response()),
            // The core engine's error surfaces inside a 200, as N-central documents it does.
            Some(Injected::ErrorIn200) => Err(axum::Json(json!({"error message": "Error Message: Unexpected response from DMS: the query could not be completed"})).into_response()),
        }
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn request_key(method: &str, path: &str, q: &impl serde::Serialize) -> String {
    format!(
        "{method} {path}?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

// ---- auth -----------------------------------------------------------------------------------

async fn api_root() -> Response {
    axum::Json(
        json!({"_links": {"root": "/api", "auth": "/api/auth", "health": "/api/health",
        "devices": "/api/devices", "customers": "/api/customers", "orgUnits": "/api/org-units"}}),
    )
    .into_response()
}

async fn auth_links() -> Response {
    axum::Json(
        json!({"_links": {"authenticate": "/api/auth/authenticate", "refresh": "/api/auth/refresh",
        "validate": "/api/auth/validate", "logout": "/api/auth/logout"}}),
    )
    .into_response()
}

async fn health(State(s): State<Arc<NcState>>) -> Response {
    axum::Json(json!({"currentTime": iso_time(s.now_s() * 1000)})).into_response()
}

/// `(n)(s|m|h)`, capped at the system setting.
fn expiry_override(headers: &HeaderMap, name: &str, max: i64) -> Result<i64, String> {
    let Some(v) = headers.get(name) else {
        return Ok(max);
    };
    let v = v
        .to_str()
        .map_err(|_| format!("{name} is not text"))?
        .trim();
    let (num, unit) = v.split_at(v.len().saturating_sub(1));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{name} must look like 120s, 30m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{name} must look like 120s, 30m or 1h")),
    };
    if secs <= 0 || secs > max {
        return Err(format!(
            "{name} may not exceed the system setting of {max}s"
        ));
    }
    Ok(secs)
}

fn token(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let bytes: [u8; 24] = rng.random();
    format!("eyJhbGciOiJIUzI1NiJ9.{prefix}{}", hex::encode(bytes))
}

impl NcState {
    fn issue_tokens(&self, headers: &HeaderMap) -> Response {
        let access_ttl =
            match expiry_override(headers, "x-access-expiry-override", self.cfg.access_ttl_s) {
                Ok(t) => t,
                Err(e) => return self.validation("X-ACCESS-EXPIRY-OVERRIDE", &e),
            };
        let refresh_ttl =
            match expiry_override(headers, "x-refresh-expiry-override", self.cfg.refresh_ttl_s) {
                Ok(t) => t,
                Err(e) => return self.validation("X-REFRESH-EXPIRY-OVERRIDE", &e),
            };
        let (access, refresh) = (token("a"), token("r"));
        let now = self.now_s();
        {
            let mut t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            t.access.insert(access.clone(), now + access_ttl);
            t.refresh.insert(refresh.clone(), now + refresh_ttl);
        }
        axum::Json(json!({
            "tokens": {
                "access": {"token": access, "type": "Bearer", "expirySeconds": access_ttl},
                "refresh": {"token": refresh, "type": "Body", "expirySeconds": refresh_ttl},
            },
            "refresh": "/api/auth/refresh",
            "validate": "/api/auth/validate",
        }))
        .into_response()
    }
}

async fn authenticate(State(s): State<Arc<NcState>>, headers: HeaderMap) -> Response {
    match bearer(&headers) {
        Some(jwt) if jwt == s.cfg.jwt => s.issue_tokens(&headers),
        Some(_) => s.unauthorized(
            "The User-API token (JWT) is invalid, was regenerated, or its user's password expired.",
        ),
        None => s.unauthorized("Missing authorization header bearer."),
    }
}

async fn refresh(State(s): State<Arc<NcState>>, headers: HeaderMap, body: String) -> Response {
    let presented = body.trim().to_owned();
    let now = s.now_s();
    let valid = {
        let mut t = s.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match t.refresh.get(&presented) {
            Some(exp) if *exp > now => {
                t.refresh.remove(&presented);
                true
            }
            _ => false,
        }
    };
    if !valid {
        return s.unauthorized("The refresh token is invalid or has expired.");
    }
    s.issue_tokens(&headers)
}

async fn validate(State(s): State<Arc<NcState>>, headers: HeaderMap) -> Response {
    let ok = bearer(&headers).is_some_and(|t| {
        let now = s.now_s();
        s.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .access
            .get(&t)
            .is_some_and(|e| *e > now)
    });
    if ok {
        axum::Json(json!({"message": "The token is valid."})).into_response()
    } else {
        s.unauthorized("The token is invalid.")
    }
}

async fn logout(State(s): State<Arc<NcState>>, headers: HeaderMap) -> Response {
    if let Some(t) = bearer(&headers) {
        s.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .access
            .remove(&t);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn version_entries(s: &NcState) -> Vec<(&'static str, String)> {
    vec![
        (
            "Installation: Deployment Product Version",
            s.cfg.version.clone(),
        ),
        ("Installation: UI Product Version", s.cfg.version.clone()),
        ("N-able Hosted Platform", "false".into()),
        (
            "Installation: Product Name",
            "N-central (rmmbridge simulator)".into(),
        ),
    ]
}

async fn server_info_extra(State(s): State<Arc<NcState>>, headers: HeaderMap) -> Response {
    let _g = match s
        .guard(&headers, "server-info", "GET /api/server-info/extra".into())
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let extra: serde_json::Map<String, Value> = version_entries(&s)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    axum::Json(json!({"data": {"_extra": extra}, "_links": {}})).into_response()
}

// ---- org units ------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    page_number: Option<String>,
    page_size: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    select: Option<String>,
}

struct Page {
    number: usize,
    size: usize,
    descending: bool,
}

impl NcState {
    fn page(&self, p: &Paging, all_max: usize) -> Result<Page, Response> {
        let number = match p.page_number.as_deref() {
            None => 1,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(
                        self.validation("pageNumber", "pageNumber must be a number of 1 or more")
                    );
                }
            },
        };
        let size = match p.page_size.as_deref() {
            None => 50,
            Some("-1") => all_max,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(
                        self.validation("pageSize", "pageSize must be between 1 and 1000, or -1")
                    );
                }
            },
        };
        let descending = match p
            .sort_order
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("asc" | "ascending" | "natural") => false,
            Some("desc" | "descending" | "reverse") => true,
            Some(_) => {
                return Err(self.validation(
                    "sortOrder",
                    "sortOrder must be asc, ascending, natural, desc, descending or reverse",
                ));
            }
        };
        Ok(Page {
            number,
            size,
            descending,
        })
    }
}

/// The paging envelope of `QueryResponse*`, with server-relative links.
fn envelope(path: &str, page: &Page, data: Vec<Value>, total: usize) -> Value {
    let pages = total.div_ceil(page.size).max(1);
    let link = |n: usize| format!("{path}?pageNumber={n}&pageSize={}", page.size);
    json!({
        "data": data.clone(),
        "pageNumber": page.number,
        "pageSize": page.size,
        "itemCount": data.len(),
        "totalItems": total,
        "totalPages": pages,
        "_links": {
            "firstPage": link(1),
            "previousPage": if page.number > 1 { Value::String(link(page.number - 1)) } else { Value::Null },
            "nextPage": if page.number < pages { Value::String(link(page.number + 1)) } else { Value::Null },
            "lastPage": link(pages),
        },
        "_warning": Value::Null,
    })
}

fn paged<T: Clone>(items: &[T], page: &Page) -> Vec<T> {
    let start = (page.number - 1) * page.size;
    let mut v: Vec<T> = items.to_vec();
    if page.descending {
        v.reverse();
    }
    v.into_iter().skip(start).take(page.size).collect()
}

fn org_unit_json(fleet: &Fleet, id: i64, style: &str) -> Option<Value> {
    let (name, kind, parent, generation, descendants) = if id == SO_ID {
        (
            SO_NAME.to_owned(),
            "SO",
            "1".to_owned(),
            1,
            fleet.clients().count(),
        )
    } else {
        let c = fleet.client(id)?;
        match c.kind {
            ClientKind::Company => (
                c.name.clone(),
                "CUSTOMER",
                SO_ID.to_string(),
                2,
                fleet.sites_of(id).count(),
            ),
            ClientKind::Site => (
                c.name.clone(),
                "SITE",
                c.parent.unwrap_or(SO_ID).to_string(),
                3,
                0,
            ),
        }
    };
    let (id_key, name_key) = match style {
        "customer" => ("customerId", "customerName"),
        "site" => ("siteId", "siteName"),
        "so" => ("soId", "soName"),
        _ => ("orgUnitId", "orgUnitName"),
    };
    let mut v = json!({
        id_key: id.to_string(), name_key: name, "orgUnitType": kind, "parentId": parent,
        "externalId": "", "externalId2": "", "generation": generation, "descendantCount": descendants,
        "contactFirstName": "", "contactLastName": "", "phone": "", "contactTitle": "", "contactEmail": "",
        "contactPhone": "", "contactPhoneExt": Value::Null, "contactDepartment": "", "street1": "", "street2": "",
        "city": "", "stateProv": "", "country": "CA", "postalCode": "",
    });
    if style != "org" {
        v["isSystem"] = json!(false);
        v["isServiceOrg"] = json!(kind == "SO");
    }
    if style == "customer" {
        v["county"] = Value::Null;
    }
    Some(v)
}

async fn list_response(
    s: &NcState,
    headers: &HeaderMap,
    p: &Paging,
    path: &str,
    ids: Vec<i64>,
    style: &str,
) -> Response {
    let _g = match s
        .guard(headers, "org-units", request_key("GET", path, p))
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let page = match s.page(p, 10_000) {
        Ok(pg) => pg,
        Err(r) => return r,
    };
    let fleet = s.common.fleet();
    let data: Vec<Value> = paged(&ids, &page)
        .into_iter()
        .filter_map(|id| org_unit_json(&fleet, id, style))
        .collect();
    axum::Json(envelope(path, &page, data, ids.len())).into_response()
}

fn company_ids(fleet: &Fleet) -> Vec<i64> {
    fleet.companies().map(|c| c.id).collect()
}

fn site_ids(fleet: &Fleet, parent: Option<i64>) -> Vec<i64> {
    fleet
        .clients()
        .filter(|c| c.kind == ClientKind::Site && parent.is_none_or(|p| c.parent == Some(p)))
        .map(|c| c.id)
        .collect()
}

async fn service_orgs(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Query(p): Query<Paging>,
) -> Response {
    list_response(&s, &headers, &p, "/api/service-orgs", vec![SO_ID], "so").await
}

async fn service_org(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    single(&s, &headers, "/api/service-orgs", &id, "so", |_, i| {
        i == SO_ID
    })
    .await
}

async fn so_customers(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> Response {
    if id != SO_ID.to_string() {
        return s.not_found("Service Organization", &id);
    }
    let ids = company_ids(&s.common.fleet());
    list_response(
        &s,
        &headers,
        &p,
        &format!("/api/service-orgs/{id}/customers"),
        ids,
        "customer",
    )
    .await
}

async fn customers(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Query(p): Query<Paging>,
) -> Response {
    let ids = company_ids(&s.common.fleet());
    list_response(&s, &headers, &p, "/api/customers", ids, "customer").await
}

async fn single(
    s: &NcState,
    headers: &HeaderMap,
    base: &str,
    id: &str,
    style: &str,
    ok: impl Fn(&Fleet, i64) -> bool,
) -> Response {
    let _g = match s
        .guard(headers, "org-units", format!("GET {base}/{id}"))
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let fleet = s.common.fleet();
    let what = match style {
        "customer" => "Customer",
        "site" => "Site",
        "so" => "Service Organization",
        _ => "Organization Unit",
    };
    match id
        .parse::<i64>()
        .ok()
        .filter(|i| ok(&fleet, *i))
        .and_then(|i| org_unit_json(&fleet, i, style))
    {
        // Single org units come bare, unlike devices (`{"data": .., "_links": ..}`), per the spec.
        Some(v) => axum::Json(v).into_response(),
        None => s.not_found(what, id),
    }
}

async fn customer(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    single(&s, &headers, "/api/customers", &id, "customer", |f, i| {
        f.client(i).is_some_and(|c| c.kind == ClientKind::Company)
    })
    .await
}

async fn customer_sites(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> Response {
    let parent = id.parse::<i64>().ok().filter(|i| {
        s.common
            .fleet()
            .client(*i)
            .is_some_and(|c| c.kind == ClientKind::Company)
    });
    let Some(parent) = parent else {
        return s.not_found("Customer", &id);
    };
    let ids = site_ids(&s.common.fleet(), Some(parent));
    list_response(
        &s,
        &headers,
        &p,
        &format!("/api/customers/{id}/sites"),
        ids,
        "site",
    )
    .await
}

async fn sites(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Query(p): Query<Paging>,
) -> Response {
    let ids = site_ids(&s.common.fleet(), None);
    list_response(&s, &headers, &p, "/api/sites", ids, "site").await
}

async fn site(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    single(&s, &headers, "/api/sites", &id, "site", |f, i| {
        f.client(i).is_some_and(|c| c.kind == ClientKind::Site)
    })
    .await
}

async fn org_units(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Query(p): Query<Paging>,
) -> Response {
    let mut ids = vec![SO_ID];
    ids.extend(s.common.fleet().clients().map(|c| c.id));
    list_response(&s, &headers, &p, "/api/org-units", ids, "org").await
}

async fn org_unit(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    single(&s, &headers, "/api/org-units", &id, "org", |f, i| {
        i == SO_ID || f.client(i).is_some()
    })
    .await
}

async fn org_unit_children(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> Response {
    let fleet_ids = {
        let fleet = s.common.fleet();
        match id.parse::<i64>() {
            Ok(SO_ID) => Some(company_ids(&fleet)),
            Ok(i) if fleet.client(i).is_some() => Some(site_ids(&fleet, Some(i))),
            _ => None,
        }
    };
    match fleet_ids {
        Some(ids) => {
            list_response(
                &s,
                &headers,
                &p,
                &format!("/api/org-units/{id}/children"),
                ids,
                "org",
            )
            .await
        }
        None => s.not_found("Organization Unit", &id),
    }
}

// ---- devices --------------------------------------------------------------------------------

fn iso_time(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn class_label(c: DeviceClass) -> (&'static str, &'static str) {
    match c {
        DeviceClass::WindowsWorkstation => ("Workstations - Windows", "winnt"),
        DeviceClass::WindowsServer | DeviceClass::WindowsVm => ("Servers - Windows", "winnt"),
        DeviceClass::Mac => ("Workstations - Mac OS X", "macosx"),
        DeviceClass::LinuxServer => ("Servers - Linux", "linux"),
        DeviceClass::LinuxWorkstation => ("Workstations - Linux", "linux"),
        DeviceClass::NetworkSwitch => ("Switch/Router", "other"),
        DeviceClass::NetworkPrinter => ("Printer", "other"),
    }
}

fn ip_of(d: &DeviceView) -> String {
    format!(
        "10.{}.{}.{}",
        (d.id >> 16) & 0xff,
        (d.id >> 8) & 0xff,
        (d.id & 0xff).max(1)
    )
}

fn device_json(fleet: &Fleet, d: &DeviceView) -> Value {
    let m = &d.machine;
    let (class, os_id) = class_label(m.class);
    let customer = fleet
        .client(d.company)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let mut v = json!({
        "deviceId": d.id, "uri": ip_of(d), "remoteControlUri": "", "sourceUri": "",
        "longName": m.hostname, "deviceClass": class, "deviceClassLabel": class, "description": "",
        "isProbe": false, "osId": os_id, "supportedOs": m.os_name, "supportedOsLabel": m.os_name,
        "discoveredName": m.hostname, "lastLoggedInUser": if m.class.is_network() { "-".to_owned() } else { m.last_user.clone() },
        "stillLoggedIn": if d.offline { "" } else { "true" }, "licenseMode": "Professional",
        "orgUnitId": d.site.unwrap_or(d.company), "soId": SO_ID, "soName": SO_NAME,
        "customerId": d.company, "customerName": customer,
        "applianceId": d.id + 7, "lastApplianceCheckinTime": iso_time(d.last_contact_s * 1000),
        "lastApplianceCheckinTimeLocal": iso_time(d.last_contact_s * 1000),
        "deviceStatus": {"state": if d.offline { 1 } else { 0 }, "status": 0},
    });
    if let Some(site) = d.site.and_then(|s| fleet.client(s)) {
        v["siteId"] = json!(site.id);
        v["siteName"] = json!(site.name);
    }
    v
}

/// `select` supports the community's RSQL-like `field==value` on customerId, siteId and orgUnitId.
fn select_filter(select: Option<&str>) -> Result<Option<(String, i64)>, String> {
    let Some(sel) = select.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let (field, value) = sel
        .split_once("==")
        .ok_or_else(|| format!("select expression {sel:?} is not supported; use field==value"))?;
    let value: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("select value in {sel:?} must be a number"))?;
    match field.trim() {
        f @ ("customerId" | "siteId" | "orgUnitId") => Ok(Some((f.to_owned(), value))),
        f => Err(format!("select on {f:?} is not supported")),
    }
}

async fn device_list(
    s: &NcState,
    headers: &HeaderMap,
    p: &Paging,
    path: &str,
    org_unit: Option<i64>,
) -> Response {
    let _g = match s
        .guard(headers, "devices", request_key("GET", path, p))
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let page = match s.page(p, 10_000) {
        Ok(pg) => pg,
        Err(r) => return r,
    };
    let select = match select_filter(p.select.as_deref()) {
        Ok(sel) => sel,
        Err(e) => return s.validation("select", &e),
    };
    if let Some(sort) = p.sort_by.as_deref().filter(|f| *f != "deviceId") {
        return s.validation(
            "sortBy",
            &format!("sorting by {sort:?} is not supported by this server; use deviceId"),
        );
    }
    let fleet = s.common.fleet();
    let keep = |row: &crate::fleet::DeviceRow| {
        let in_unit = match org_unit {
            None | Some(SO_ID) => true,
            Some(u) => row.company == u || row.site == Some(u),
        };
        let selected = match &select {
            None => true,
            Some((f, v)) => match f.as_str() {
                "customerId" => row.company == *v,
                "siteId" => row.site == Some(*v),
                _ => row.site.unwrap_or(row.company) == *v,
            },
        };
        in_unit && selected
    };
    let total = fleet.rows().iter().filter(|r| keep(r)).count();
    let offset = (page.number - 1) * page.size;
    let views = if page.descending {
        let (all, _) = fleet.devices_page(0, usize::MAX, keep);
        all.into_iter().rev().skip(offset).take(page.size).collect()
    } else {
        fleet.devices_page(offset, page.size, keep).0
    };
    let data: Vec<Value> = views.iter().map(|d| device_json(&fleet, d)).collect();
    let body = envelope(path, &page, data, total);
    if s.common.faults().malformed_page == Some(page.number as u32) {
        let text = body.to_string();
        return (
            [("content-type", "application/json")],
            text[..text.len() / 2].to_owned(),
        )
            .into_response();
    }
    axum::Json(body).into_response()
}

async fn devices(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Query(p): Query<Paging>,
) -> Response {
    device_list(&s, &headers, &p, "/api/devices", None).await
}

async fn org_unit_devices(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Paging>,
) -> Response {
    let unit = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i == SO_ID || s.common.fleet().client(*i).is_some());
    match unit {
        Some(u) => {
            device_list(
                &s,
                &headers,
                &p,
                &format!("/api/org-units/{id}/devices"),
                Some(u),
            )
            .await
        }
        None => s.not_found("Organization Unit", &id),
    }
}

fn device_id(s: &NcState, id: &str) -> Result<DeviceView, Response> {
    id.parse::<i64>()
        .ok()
        .and_then(|i| s.common.fleet().device(i))
        .ok_or_else(|| s.not_found("Device", id))
}

async fn device(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _g = match s
        .guard(&headers, "device", format!("GET /api/devices/{id}"))
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    match device_id(&s, &id) {
        Ok(d) => axum::Json(json!({"data": device_json(&s.common.fleet(), &d), "_links": {}}))
            .into_response(),
        Err(r) => r,
    }
}

fn none_if_missing(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("None").to_owned()
}

fn assets_json(d: &DeviceView) -> Value {
    let m = &d.machine;
    let adapters: Vec<Value> = m
        .macs
        .iter()
        .enumerate()
        .map(|(i, mac)| {
            json!({"_index": i, "ipaddress": if i == 0 { ip_of(d) } else { "None".into() },
                "macaddress": universe::format_mac(mac, Side::Ncentral), "description": "Ethernet Adapter",
                "gateway": "10.0.0.1", "dhcpserver": Value::Null})
        })
        .collect();
    json!({
        "os": {"reportedos": m.os_name, "osarchitecture": "64-bit", "version": m.os_version},
        "computersystem": {"serialnumber": none_if_missing(m.serial.as_deref()), "netbiosname": m.hostname,
            "model": m.model, "manufacturer": m.manufacturer, "totalphysicalmemory": "17179869184",
            "uuid": none_if_missing(m.smbios_uuid.as_deref().map(str::to_lowercase).as_deref())},
        "networkadapter": {"list": adapters},
        "device": {"longname": m.hostname, "deleted": "false", "lastlogin": iso_time(d.last_contact_s * 1000), "deviceid": d.id.to_string()},
        "processor": {"name": "Intel(R) Core(TM) i7-1265U", "numberofcores": "10", "numberofcpus": "1"},
        "_extra": {"motherboard": {"serialnumber": "None", "biosversion": "1.14.0", "manufacturer": m.manufacturer}},
    })
}

async fn device_assets(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _g = match s
        .guard(&headers, "assets", format!("GET /api/devices/{id}/assets"))
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    match device_id(&s, &id) {
        Ok(d) => axum::Json(json!({"data": assets_json(&d), "_links": {}})).into_response(),
        Err(r) => r,
    }
}

// ---- scheduled tasks ------------------------------------------------------------------------

async fn direct_task(State(s): State<Arc<NcState>>, headers: HeaderMap, body: Bytes) -> Response {
    let _g = match s
        .guard(
            &headers,
            "tasks",
            format!(
                "POST /api/scheduled-tasks/direct#{}",
                s.next_task.load(Ordering::Relaxed)
            ),
        )
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return s.validation("body", &format!("the body is not valid JSON: {e}")),
    };
    for field in [
        "name",
        "itemId",
        "taskType",
        "customerId",
        "deviceId",
        "credential",
    ] {
        if v.get(field).is_none_or(Value::is_null) {
            return s.validation(field, &format!("{field} is required"));
        }
    }
    let name = v["name"].as_str().unwrap_or_default().to_owned();
    let task_type = v["taskType"].as_str().unwrap_or_default();
    if !["AutomationPolicy", "Script", "MacScript"].contains(&task_type) {
        return s.validation(
            "taskType",
            "taskType must be AutomationPolicy, Script or MacScript",
        );
    }
    let cred = v["credential"]["type"].as_str().unwrap_or_default();
    if !["LocalSystem", "DeviceCredentials", "CustomCredentials"].contains(&cred) {
        return s.validation(
            "credential.type",
            "credential.type must be LocalSystem, DeviceCredentials or CustomCredentials",
        );
    }
    let item_id = v["itemId"].as_i64().unwrap_or(-1);
    if item_id == LOCKED_ITEM_ID {
        return s.error(
            StatusCode::FORBIDDEN,
            "ScriptNotRunnableException",
            "The repository item is not enabled for API access (Enable API is off).",
        );
    }
    if item_id != s.cfg.script_item_id {
        return s.not_found("Repository item", &item_id.to_string());
    }
    let device_id = v["deviceId"].as_i64().unwrap_or(-1);
    let customer_id = v["customerId"]
        .as_i64()
        .or_else(|| v["customerId"].as_str().and_then(|c| c.parse().ok()))
        .unwrap_or(-1);
    let Some(d) = s.common.fleet().device(device_id) else {
        return s.not_found("Device", &device_id.to_string());
    };
    if d.company != customer_id && d.site != Some(customer_id) {
        return s.validation(
            "customerId",
            &format!("device {device_id} does not belong to customer {customer_id}"),
        );
    }
    {
        let tasks = s.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.values().any(|t| t.name == name) {
            return s.error(
                StatusCode::CONFLICT,
                "DuplicateTaskNameException",
                &format!("A task named {name:?} already exists."),
            );
        }
    }
    let command_line = v["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "CommandLine"))
        .and_then(|p| p["value"].as_str())
        .unwrap_or_default()
        .to_owned();
    let id = s.next_task.fetch_add(1, Ordering::Relaxed);
    s.tasks.lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Task {
            id,
            name: name.clone(),
            item_id,
            customer_id,
            device_id,
            device_name: d.machine.hostname.clone(),
            outcome: None,
        },
    );
    if !d.offline {
        let state = s.clone();
        tokio::spawn(async move {
            let (outcome, payload) = script::run(&name, &d.machine.hostname, &command_line);
            tokio::time::sleep(std::time::Duration::from_millis(
                50 + payload.sleep_ms.unwrap_or(0),
            ))
            .await;
            if let Some(t) = state
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&id)
            {
                t.outcome = Some(outcome.clone());
            }
            script::call_back(&payload, d.id, &d.machine.hostname, &outcome).await;
        });
    }
    (StatusCode::CREATED, axum::Json(json!({"data": {"taskId": id}, "_links": {"task": format!("/api/scheduled-tasks/{{{id}}}")}}))).into_response()
}

fn find_task(s: &NcState, id: &str) -> Result<Task, Response> {
    id.parse::<i64>()
        .ok()
        .and_then(|i| {
            s.tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&i)
                .cloned()
        })
        .ok_or_else(|| s.not_found("Task", id))
}

async fn task_info(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _g = match s
        .guard(&headers, "tasks", format!("GET /api/scheduled-tasks/{id}"))
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let t = match find_task(&s, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    axum::Json(json!({"data": {"taskId": t.id, "parentId": t.id, "name": t.name, "taskName": t.name, "itemId": t.item_id,
        "type": "Script", "orgUnitId": t.customer_id, "soId": SO_ID, "customerId": t.customer_id,
        "applianceId": t.device_id + 7, "isReactive": false, "isEnabled": true, "deviceIds": [t.device_id.to_string()]},
        "_links": {}}))
    .into_response()
}

async fn task_status(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _g = match s
        .guard(
            &headers,
            "tasks",
            format!("GET /api/scheduled-tasks/{id}/status"),
        )
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let t = match find_task(&s, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let counts = match &t.outcome {
        None => json!({"In Pending": 1}),
        Some(o) if o.exit_code == 0 => json!({"Completed": 1}),
        Some(_) => json!({"Failed": 1}),
    };
    axum::Json(json!({"data": {"taskName": t.name, "statusCounts": counts},
        "_links": {"details": format!("/api/scheduled-tasks/{}/status/details", t.id)}}))
    .into_response()
}

async fn task_details(
    State(s): State<Arc<NcState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _g = match s
        .guard(
            &headers,
            "tasks",
            format!("GET /api/scheduled-tasks/{id}/status/details"),
        )
        .await
    {
        Ok(g) => g,
        Err(r) => return r,
    };
    let t = match find_task(&s, &id) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (status, output, message) = match &t.outcome {
        None => (
            "In Pending",
            "Task did not produce any output.".to_owned(),
            "Waiting for the device to check in.",
        ),
        Some(o) if o.exit_code == 0 => (
            "Success",
            o.output.clone(),
            "Successful execution on remote device.",
        ),
        Some(o) => (
            "Failed",
            o.output.clone(),
            if o.exit_code == 2 {
                "Script failed: invalid input."
            } else {
                "Script returned a non-zero exit code."
            },
        ),
    };
    axum::Json(json!({"data": [{"taskId": t.id, "deviceId": t.device_id, "deviceName": t.device_name, "taskName": t.name,
        "status": status, "output": output, "message": message, "outputFileName": Value::Null}], "totalItems": 1}))
    .into_response()
}

// ---- SOAP (ServerEI2) -----------------------------------------------------------------------

/// The parts of a ServerEI2 request the simulator reads.
#[derive(Debug, Default, PartialEq)]
pub struct SoapRequest {
    pub operation: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub settings: Vec<(String, Vec<String>)>,
}

/// Parses by local name; namespace prefixes are not relied on.
pub fn parse_soap(xml: &str) -> Result<SoapRequest, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut req = SoapRequest::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut setting: Option<(String, Vec<String>)> = None;
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("the request is not well-formed XML: {e}"))?
        {
            Event::Start(e) => {
                let name = e.local_name().into_inner().to_owned();
                if path.last().is_some_and(|p| p == "Body") && req.operation.is_empty() {
                    req.operation = name.clone();
                }
                if name == "settings" {
                    setting = Some((String::new(), Vec::new()));
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                let name = e.local_name().into_inner().to_owned();
                if path.last().is_some_and(|p| p == "Body") && req.operation.is_empty() {
                    req.operation = name.clone();
                }
                match name.as_str() {
                    "username" => req.username = Some(String::new()),
                    "password" => req.password = Some(String::new()),
                    _ => {}
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                }
                let name = r.into_inner();
                text.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Event::CData(c) => text.push_str(&c.into_inner()),
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let value = text.trim().to_owned();
                match name.as_str() {
                    "username" => req.username = Some(value),
                    "password" => req.password = Some(value),
                    "key" => {
                        if let Some(s) = setting.as_mut() {
                            s.0 = value;
                        }
                    }
                    "value" => {
                        if let Some(s) = setting.as_mut() {
                            s.1.push(value);
                        }
                    }
                    "settings" => {
                        if let Some(s) = setting.take() {
                            req.settings.push(s);
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if req.operation.is_empty() {
        return Err("no operation found in the SOAP body".into());
    }
    Ok(req)
}

impl SoapRequest {
    fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    }

    fn setting_values(&self, key: &str) -> Vec<&str> {
        self.settings
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .flat_map(|(_, v)| v.iter().map(String::as_str))
            .collect()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn soap_envelope(op: &str, returns: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body><ns2:{op}Response xmlns:ns2=\"http://ei2.nobj.nable.com/\">{returns}</ns2:{op}Response></soap:Body></soap:Envelope>"
    );
    (
        [("content-type", "application/soap+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn soap_fault(code: u32, reason: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang=\"en\">{code} {}</soap:Text></soap:Reason></soap:Fault></soap:Body></soap:Envelope>",
        xml_escape(reason)
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [("content-type", "application/soap+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn items(pairs: &[(String, String)]) -> String {
    let mut out = String::from("<return>");
    for (k, v) in pairs {
        out.push_str(&format!(
            "<items><key>{}</key><value>{}</value></items>",
            xml_escape(k),
            xml_escape(v)
        ));
    }
    out.push_str("</return>");
    out
}

async fn soap(State(s): State<Arc<NcState>>, body: String) -> Response {
    let req = match parse_soap(&body) {
        Ok(r) => r,
        Err(e) => return soap_fault(5000, &format!("Unexpected error: {e}")),
    };
    if req.operation == "versionInfoGet" {
        let returns: String = version_entries(&s)
            .into_iter()
            .map(|(k, v)| format!("<return><key>{}</key><value>{}</value><dataType>String</dataType><description/></return>", xml_escape(k), xml_escape(&v)))
            .collect();
        return soap_envelope("versionInfoGet", &returns);
    }
    let user = req.username.clone().unwrap_or_default();
    let pass = req.password.clone().unwrap_or_default();
    let authorized = if user.is_empty() {
        !pass.is_empty() && pass == s.cfg.jwt
    } else {
        user == s.cfg.username && pass == s.cfg.password && !s.cfg.mfa_enabled
    };
    if !authorized {
        return if user.is_empty() && pass.is_empty() {
            soap_fault(2100, "Empty or null user name.")
        } else {
            soap_fault(
                2100,
                "Invalid username or password, or the account uses multi-factor authentication.",
            )
        };
    }
    let key = format!("SOAP {} {:?}", req.operation, req.settings);
    if s.common.count_data_request() {
        return soap_fault(4000, "Session id expired.");
    }
    s.common.maybe_slow(&key).await;
    match s.common.draw_fault(&key) {
        Some(Injected::RateLimited | Injected::ServerError) => {
            return soap_fault(5000, "Unexpected error or query failed.");
        }
        Some(Injected::Reset) => return server::reset_response(),
        _ => {}
    }
    let fleet = s.common.fleet();
    match req.operation.as_str() {
        "customerList" => {
            let sos_only = req
                .setting("listSOs")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let mut returns = String::new();
            if sos_only {
                returns.push_str(&items(&[
                    ("customer.customerid".into(), SO_ID.to_string()),
                    ("customer.customername".into(), SO_NAME.into()),
                    ("customer.parentid".into(), "1".into()),
                ]));
            } else {
                for c in fleet.clients() {
                    let parent = c.parent.unwrap_or(SO_ID);
                    returns.push_str(&items(&[
                        ("customer.customerid".into(), c.id.to_string()),
                        ("customer.customername".into(), c.name.clone()),
                        ("customer.parentid".into(), parent.to_string()),
                        ("customer.externalid".into(), String::new()),
                        (
                            "customer.registrationtoken".into(),
                            format!("{:032x}", universe::mix(s.common.seed, 91, c.id as u64)),
                        ),
                    ]));
                }
            }
            soap_envelope("customerList", &returns)
        }
        "customerListChildren" => {
            let Some(parent) = req
                .setting("customerID")
                .and_then(|v| v.parse::<i64>().ok())
            else {
                return soap_fault(1012, "Mandatory settings missing: customerID");
            };
            let mut returns = String::new();
            for c in fleet
                .clients()
                .filter(|c| c.parent == Some(parent) || (parent == SO_ID && c.parent.is_none()))
            {
                returns.push_str(&items(&[
                    ("customer.customerid".into(), c.id.to_string()),
                    ("customer.customername".into(), c.name.clone()),
                    (
                        "customer.parentid".into(),
                        c.parent.unwrap_or(SO_ID).to_string(),
                    ),
                ]));
            }
            soap_envelope("customerListChildren", &returns)
        }
        "deviceList" => {
            let Some(unit) = req
                .setting("customerID")
                .and_then(|v| v.parse::<i64>().ok())
            else {
                return soap_fault(1012, "Mandatory settings missing: customerID");
            };
            if req
                .setting("devices")
                .is_some_and(|v| v.eq_ignore_ascii_case("false"))
            {
                return soap_envelope("deviceList", "");
            }
            let (views, _) = fleet.devices_page(0, usize::MAX, |r| {
                unit == SO_ID || r.company == unit || r.site == Some(unit)
            });
            let mut returns = String::new();
            for d in &views {
                let m = &d.machine;
                let (class, os_id) = class_label(m.class);
                returns.push_str(&items(&[
                    ("device.deviceid".into(), d.id.to_string()),
                    ("device.uri".into(), ip_of(d)),
                    ("device.longname".into(), m.hostname.clone()),
                    ("device.deviceclass".into(), class.into()),
                    ("device.isprobe".into(), "false".into()),
                    ("device.osid".into(), os_id.into()),
                    ("device.supportedos".into(), m.os_name.to_string()),
                    ("device.discoveredname".into(), m.hostname.clone()),
                    ("device.lastloggedinuser".into(), m.last_user.clone()),
                    ("device.soname".into(), SO_NAME.into()),
                    (
                        "device.customername".into(),
                        fleet
                            .client(d.company)
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                    ),
                    (
                        "device.sitename".into(),
                        d.site
                            .and_then(|s| fleet.client(s))
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                    ),
                ]));
            }
            soap_envelope("deviceList", &returns)
        }
        "deviceAssetInfoExportDeviceWithSettings" => {
            let ids = req.setting_values("TargetByDeviceID");
            if ids.is_empty() {
                return soap_fault(
                    1012,
                    "Mandatory settings missing: one of TargetByDeviceID, TargetByDeviceName, TargetByFilterID, TargetByFilterName",
                );
            }
            let mut returns = String::new();
            for id in ids {
                let Some(d) = id.parse::<i64>().ok().and_then(|i| fleet.device(i)) else {
                    continue;
                };
                let m = &d.machine;
                // The export names the site in its customer fields when the device has one.
                let owner = d.site.unwrap_or(d.company);
                let mut pairs = vec![
                    ("asset.device.deviceid".to_owned(), d.id.to_string()),
                    ("asset.device.longname".into(), m.hostname.clone()),
                    ("asset.customer.customerid".into(), owner.to_string()),
                    (
                        "asset.customer.customername".into(),
                        fleet
                            .client(owner)
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                    ),
                    ("asset.os.reportedos".into(), m.os_name.to_string()),
                    (
                        "asset.computersystem.serialnumber".into(),
                        none_if_missing(m.serial.as_deref()),
                    ),
                    (
                        "asset.computersystem.uuid".into(),
                        none_if_missing(m.smbios_uuid.as_deref().map(str::to_lowercase).as_deref()),
                    ),
                    (
                        "asset.computersystem.manufacturer".into(),
                        m.manufacturer.into(),
                    ),
                    ("asset.computersystem.model".into(), m.model.into()),
                ];
                for (i, mac) in m.macs.iter().enumerate() {
                    pairs.push((
                        format!("asset.networkadapter.macaddress.{i}"),
                        universe::format_mac(mac, Side::Ncentral),
                    ));
                }
                returns.push_str(&items(&pairs));
            }
            soap_envelope("deviceAssetInfoExportDeviceWithSettings", &returns)
        }
        other => soap_fault(
            5000,
            &format!("Unexpected error: operation {other} is not supported by this simulator"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_below_2023_9_have_no_rest() {
        assert!(has_rest("2024.6.0.19"));
        assert!(has_rest("2023.9.0.1"));
        assert!(!has_rest("2023.8.1.5"));
        assert!(!has_rest("12.3.0.462"));
    }

    #[test]
    fn soap_requests_are_read_by_local_name() {
        let xml = r#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:ei2="http://ei2.nobj.nable.com/">
 <soap:Header/><soap:Body><ei2:deviceList>
   <ei2:username></ei2:username><ei2:password>eyJ&amp;JWT</ei2:password>
   <ei2:settings><ei2:key>customerID</ei2:key><ei2:value>100</ei2:value></ei2:settings>
   <ei2:settings><ei2:key>TargetByDeviceID</ei2:key><ei2:value>1</ei2:value><ei2:value>2</ei2:value></ei2:settings>
 </ei2:deviceList></soap:Body></soap:Envelope>"#;
        let r = parse_soap(xml).unwrap();
        assert_eq!(r.operation, "deviceList");
        assert_eq!(r.username.as_deref(), Some(""));
        assert_eq!(r.password.as_deref(), Some("eyJ&JWT"));
        assert_eq!(r.setting("customerid"), Some("100"));
        assert_eq!(r.setting_values("TargetByDeviceID"), vec!["1", "2"]);
        assert!(
            parse_soap("<a><b>").is_err() || parse_soap("<a><b>").unwrap().operation.is_empty()
        );
    }

    #[test]
    fn expiry_overrides_are_capped_by_the_system_setting() {
        let mut h = HeaderMap::new();
        assert_eq!(
            expiry_override(&h, "x-access-expiry-override", 3600),
            Ok(3600)
        );
        h.insert("x-access-expiry-override", "30m".parse().unwrap());
        assert_eq!(
            expiry_override(&h, "x-access-expiry-override", 3600),
            Ok(1800)
        );
        h.insert("x-access-expiry-override", "2h".parse().unwrap());
        assert!(expiry_override(&h, "x-access-expiry-override", 3600).is_err());
        h.insert("x-access-expiry-override", "soon".parse().unwrap());
        assert!(expiry_override(&h, "x-access-expiry-override", 3600).is_err());
    }

    #[test]
    fn select_supports_equality_on_org_ids() {
        assert_eq!(
            select_filter(Some("customerId==100")),
            Ok(Some(("customerId".into(), 100)))
        );
        assert_eq!(select_filter(None), Ok(None));
        assert!(select_filter(Some("longName==x")).is_err());
        assert!(select_filter(Some("customerId=100")).is_err());
    }
}
