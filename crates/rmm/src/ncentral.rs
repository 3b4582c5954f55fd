//! The N-central connector. REST (2023.9 and later): the User-API token (JWT) buys access and
//! refresh tokens, refreshed before they expire and re-bought with the JWT when a refresh fails;
//! lists page to the end with guards against short or empty pages; an error message inside a 200
//! is an error. Older servers are read over SOAP ServerEI2 with the JWT as password.
use crate::error::{Check, RmmError};
use crate::http::{HttpSettings, TlsTrust, Transport, json_body, parse_base_url};
use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};
use rmmbridge_core::Timestamp;
use rmmbridge_core::rmm::{RmmClient, RmmClientKind, RmmDevice, present};
use rmmbridge_core::secret::SecretString;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The oldest server with the REST API-Service.
pub const REST_SINCE: (u32, u32) = (2023, 9);
const PAGE_SIZE: usize = 1000;
/// A refresh this long before expiry keeps a long paged read from meeting an expired token.
const REFRESH_MARGIN: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct NcentralSettings {
    pub server_url: String,
    pub tls: TlsTrust,
    pub http: HttpSettings,
    /// Asset requests in flight while a device page is being completed.
    pub asset_concurrency: usize,
}

impl NcentralSettings {
    pub fn new(server_url: &str) -> NcentralSettings {
        NcentralSettings {
            server_url: server_url.to_owned(),
            tls: TlsTrust::default(),
            http: HttpSettings::default(),
            asset_concurrency: 4,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NcentralCredentials {
    pub jwt: SecretString,
    /// The API user's own sign-in, optional: used to check that MFA or an expired password
    /// is not blocking the account.
    pub login: Option<(String, SecretString)>,
}

impl NcentralCredentials {
    pub fn jwt(jwt: SecretString) -> NcentralCredentials {
        NcentralCredentials { jwt, login: None }
    }
}

#[derive(Debug)]
struct Tokens {
    access: String,
    access_until: Instant,
    refresh: String,
    refresh_until: Instant,
}

/// Which API the server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Rest,
    Soap,
}

pub struct NcentralConnector {
    t: Transport,
    creds: NcentralCredentials,
    tokens: Mutex<Option<Tokens>>,
    asset_concurrency: usize,
    /// Counts token purchases and refreshes, for credential health and tests.
    pub stats: std::sync::Mutex<TokenStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub authentications: u32,
    pub refreshes: u32,
    pub failed_refreshes: u32,
}

const JWT_REMEDY: &str = "generate a new User-API token (JWT) for the API user in N-central (Administration > User Management > Users > API Access); the user needs MFA off, a password that has not expired, a role and an access group";

/// `2024.6.0.19` → (2024, 6).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The `message` of an N-central error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// N-central can report a core-engine failure inside a 200 (`{"error message": ...}`).
fn error_inside_200(v: &Value) -> Option<String> {
    let obj = v.as_object()?;
    obj.iter()
        .find(|(k, _)| {
            let k = k.to_ascii_lowercase().replace([' ', '_'], "");
            k == "errormessage"
        })
        .map(|(_, m)| {
            m.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| m.to_string())
        })
}

impl NcentralConnector {
    pub fn new(
        settings: &NcentralSettings,
        creds: NcentralCredentials,
    ) -> Result<NcentralConnector, RmmError> {
        let base = parse_base_url(&settings.server_url)?;
        if creds.jwt.expose().trim().is_empty() {
            return Err(RmmError::Config(
                "the N-central User-API token (JWT) is missing".into(),
            ));
        }
        Ok(NcentralConnector {
            t: Transport::new(base, &settings.tls, settings.http.clone())?,
            creds,
            tokens: Mutex::new(None),
            asset_concurrency: settings.asset_concurrency.max(1),
            stats: std::sync::Mutex::default(),
        })
    }

    fn bump(&self, f: impl FnOnce(&mut TokenStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The server version from SOAP `versionInfoGet`, which every version answers without credentials.
    pub async fn server_version(&self) -> Result<String, RmmError> {
        let body = soap::envelope("versionInfoGet", "", "", &[]);
        let resp = self.t.send(soap::request(&self.t, body), true).await?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| RmmError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(RmmError::Remote {
                what: "versionInfoGet".into(),
                status: status.as_u16(),
                message: soap::fault_text(&text),
            });
        }
        soap::config_value(&text, "Installation: Deployment Product Version").ok_or_else(|| RmmError::Malformed {
            what: "versionInfoGet".into(),
            detail: "no \"Installation: Deployment Product Version\" in the answer; is this an N-central server?".into(),
        })
    }

    pub async fn api(&self) -> Result<(Api, String), RmmError> {
        let v = self.server_version().await?;
        let api = match parse_version(&v) {
            Some(ver) if ver >= REST_SINCE => Api::Rest,
            Some(_) => Api::Soap,
            None => {
                return Err(RmmError::Malformed {
                    what: "the server version".into(),
                    detail: format!("{v:?} is not a version"),
                });
            }
        };
        Ok((api, v))
    }

    async fn authenticate(&self) -> Result<Tokens, RmmError> {
        self.bump(|s| s.authentications += 1);
        let req = self
            .t
            .request(Method::POST, "/api/auth/authenticate")
            .bearer_auth(self.creds.jwt.expose());
        let resp = self.t.send(req, true).await?;
        self.read_tokens(resp, "authentication with the User-API token")
            .await
            .map_err(|e| match e {
                RmmError::Remote {
                    status: 401 | 403,
                    message,
                    ..
                } => RmmError::Auth {
                    message: format!("N-central refused the User-API token (JWT): {message}"),
                    remedy: JWT_REMEDY.into(),
                },
                other => other,
            })
    }

    async fn read_tokens(&self, resp: reqwest::Response, what: &str) -> Result<Tokens, RmmError> {
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(RmmError::Remote {
                what: what.into(),
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        let v = json_body(resp, what).await?;
        let get = |kind: &str| -> Result<(String, u64), RmmError> {
            let t = &v["tokens"][kind];
            let token = t["token"].as_str().filter(|s| !s.is_empty());
            let secs = t["expirySeconds"].as_u64();
            match (token, secs) {
                (Some(tok), Some(s)) => Ok((tok.to_owned(), s)),
                _ => Err(RmmError::Malformed {
                    what: what.into(),
                    detail: format!("tokens.{kind}.token or expirySeconds is missing"),
                }),
            }
        };
        let (access, a) = get("access")?;
        let (refresh, r) = get("refresh")?;
        let now = Instant::now();
        Ok(Tokens {
            access,
            access_until: now + Duration::from_secs(a),
            refresh,
            refresh_until: now + Duration::from_secs(r),
        })
    }

    /// A valid access token: the cached one, a refreshed one, or one bought with the JWT.
    async fn access_token(&self) -> Result<String, RmmError> {
        let mut guard = self.tokens.lock().await;
        let now = Instant::now();
        if let Some(t) = guard.as_ref()
            && t.access_until > now + REFRESH_MARGIN
        {
            return Ok(t.access.clone());
        }
        if let Some(t) = guard.as_ref()
            && t.refresh_until > now + Duration::from_secs(5)
        {
            self.bump(|s| s.refreshes += 1);
            let req = self
                .t
                .request(Method::POST, "/api/auth/refresh")
                .header("content-type", "text/plain")
                .body(t.refresh.clone());
            match self.t.send(req, true).await {
                Ok(resp) => match self.read_tokens(resp, "token refresh").await {
                    Ok(fresh) => {
                        let access = fresh.access.clone();
                        *guard = Some(fresh);
                        return Ok(access);
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "N-central token refresh failed; authenticating with the JWT again")
                    }
                },
                Err(e) => {
                    tracing::info!(error = %e, "N-central token refresh failed; authenticating with the JWT again")
                }
            }
            self.bump(|s| s.failed_refreshes += 1);
        }
        let fresh = self.authenticate().await?;
        let access = fresh.access.clone();
        *guard = Some(fresh);
        Ok(access)
    }

    /// Token counters and the cached tokens' remaining life, for credential health.
    pub fn token_report(&self) -> crate::connector::TokenReport {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let now = Instant::now();
        let (access, refresh) = match self.tokens.try_lock() {
            Ok(g) => match g.as_ref() {
                Some(t) => (
                    Some(t.access_until.saturating_duration_since(now).as_secs()),
                    Some(t.refresh_until.saturating_duration_since(now).as_secs()),
                ),
                None => (None, None),
            },
            Err(_) => (None, None),
        };
        crate::connector::TokenReport {
            authentications: stats.authentications,
            refreshes: stats.refreshes,
            failed_refreshes: stats.failed_refreshes,
            rotations: 0,
            access_expires_in_s: access,
            refresh_expires_in_s: refresh,
        }
    }

    async fn forget_access(&self, used: &str) {
        let mut guard = self.tokens.lock().await;
        if let Some(t) = guard.as_mut()
            && t.access == used
        {
            t.access_until = Instant::now();
        }
    }

    /// GET a JSON document; one retry with a fresh token after a 401.
    pub async fn get_json(&self, path: &str, what: &str) -> Result<Value, RmmError> {
        for attempt in 0..2 {
            let token = self.access_token().await?;
            let resp = self
                .t
                .send(self.t.request(Method::GET, path).bearer_auth(&token), true)
                .await?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.forget_access(&token).await;
                continue;
            }
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                return Err(match status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RmmError::Auth {
                        message: format!("N-central refused {what}: {}", error_message(&body)),
                        remedy: "give the API user a role that can read customers and devices, and an access group that includes them".into(),
                    },
                    _ => RmmError::Remote { what: what.into(), status: status.as_u16(), message: error_message(&body) },
                });
            }
            let v = json_body(resp, what).await?;
            if let Some(msg) = error_inside_200(&v) {
                return Err(RmmError::Remote {
                    what: what.into(),
                    status: 200,
                    message: format!("an error inside a 200 answer: {msg}"),
                });
            }
            return Ok(v);
        }
        Err(RmmError::Auth {
            message: format!("N-central refused {what} twice with fresh tokens"),
            remedy: JWT_REMEDY.into(),
        })
    }

    /// Every item of a paged list, guarded against short, empty or endless pages.
    async fn get_all(&self, path: &str, what: &str) -> Result<Vec<Value>, RmmError> {
        let mut out = Vec::new();
        let mut page = 1usize;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let v = self
                .get_json(
                    &format!("{path}{sep}pageNumber={page}&pageSize={PAGE_SIZE}"),
                    &format!("{what} page {page}"),
                )
                .await?;
            let data = v["data"].as_array().ok_or_else(|| RmmError::Malformed {
                what: format!("{what} page {page}"),
                detail: "no data array".into(),
            })?;
            let n = data.len();
            out.extend(data.iter().cloned());
            let total_pages = v["totalPages"].as_u64().map(|p| p as usize);
            if n == 0 || n < PAGE_SIZE || total_pages.is_some_and(|t| page >= t) || page > 100_000 {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// Customers as companies and sites under them.
    pub async fn list_clients(&self) -> Result<Vec<RmmClient>, RmmError> {
        if self.api().await?.0 == Api::Soap {
            return self.soap_clients().await;
        }
        let mut out = Vec::new();
        for c in self.get_all("/api/customers", "the customer list").await? {
            out.push(RmmClient {
                external_id: id_text(&c["customerId"])
                    .ok_or_else(|| malformed_item("customer", &c))?,
                kind: RmmClientKind::Company,
                parent_external_id: None,
                name: c["customerName"].as_str().unwrap_or_default().to_owned(),
            });
        }
        for s in self.get_all("/api/sites", "the site list").await? {
            out.push(RmmClient {
                external_id: id_text(&s["siteId"]).ok_or_else(|| malformed_item("site", &s))?,
                kind: RmmClientKind::Site,
                parent_external_id: id_text(&s["parentId"]),
                name: s["siteName"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(out)
    }

    /// Devices, one page at a time, each completed with its assets (serial, UUID, MACs, OS).
    pub fn devices(&self) -> impl Stream<Item = Result<Vec<RmmDevice>, RmmError>> + '_ {
        futures::stream::try_unfold(Some(1usize), move |state| async move {
            let Some(page) = state else { return Ok(None) };
            let what = format!("device page {page}");
            let v = self
                .get_json(
                    &format!("/api/devices?pageNumber={page}&pageSize={PAGE_SIZE}"),
                    &what,
                )
                .await?;
            let data = v["data"]
                .as_array()
                .cloned()
                .ok_or_else(|| RmmError::Malformed {
                    what: what.clone(),
                    detail: "no data array".into(),
                })?;
            let total_pages = v["totalPages"].as_u64().map(|p| p as usize);
            let more = !data.is_empty()
                && data.len() >= PAGE_SIZE
                && total_pages.is_none_or(|t| page < t)
                && page < 100_000;
            let devices: Vec<RmmDevice> =
                futures::stream::iter(data.into_iter().map(|d| self.complete_device(d)))
                    .buffered(self.asset_concurrency)
                    .try_collect()
                    .await?;
            Ok(Some((devices, more.then_some(page + 1))))
        })
    }

    async fn complete_device(&self, d: Value) -> Result<RmmDevice, RmmError> {
        let id = d["deviceId"]
            .as_i64()
            .map(|i| i.to_string())
            .ok_or_else(|| malformed_item("device", &d))?;
        let assets = self
            .get_json(
                &format!("/api/devices/{id}/assets"),
                &format!("the assets of device {id}"),
            )
            .await?;
        // The spec shows the categories with and without the `data` wrapper; accept both.
        let a = if assets.get("data").is_some_and(Value::is_object) {
            &assets["data"]
        } else {
            &assets
        };
        let cs = &a["computersystem"];
        let macs = adapters(&a["networkadapter"])
            .filter_map(|n| present(n["macaddress"].as_str()))
            .collect();
        let customer = id_text(&d["customerId"]).ok_or_else(|| malformed_item("device", &d))?;
        Ok(RmmDevice {
            external_id: id,
            client_external_id: customer,
            site_external_id: id_text(&d["siteId"]),
            hostname: d["longName"].as_str().unwrap_or_default().to_owned(),
            serial: present(cs["serialnumber"].as_str()),
            smbios_uuid: present(cs["uuid"].as_str()),
            macs,
            os: present(a["os"]["reportedos"].as_str())
                .or_else(|| present(d["supportedOs"].as_str())),
            device_class: present(d["deviceClass"].as_str()),
            last_contact: d["lastApplianceCheckinTime"].as_str().and_then(parse_time),
            online: d["deviceStatus"]["state"].as_i64().map(|s| s == 0),
        })
    }

    /// Counts every device the server lists (REST: `totalItems` of the first page).
    pub async fn count_devices(&self) -> Result<u64, RmmError> {
        let v = self
            .get_json("/api/devices?pageNumber=1&pageSize=1", "the device list")
            .await?;
        Ok(v["totalItems"].as_u64().unwrap_or(0))
    }

    /// Named checks, each with its reason and remedy (DESIGN.md §3 item 2).
    pub async fn verify(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let version = match self.server_version().await {
            Ok(v) => {
                checks.push(Check::pass(
                    "tls_certificate",
                    "TLS certificate valid",
                    if self.t.base.scheme() == "https" {
                        "the certificate was accepted"
                    } else {
                        "plain http on a loopback address: no certificate"
                    },
                ));
                checks.push(Check::pass(
                    "server_reachable",
                    "Server reachable",
                    format!("{} answered", self.t.base),
                ));
                v
            }
            Err(e) => {
                let text = e.to_string();
                if text.contains("certificate") || text.contains("fingerprint") {
                    checks.push(Check::fail("tls_certificate", "TLS certificate valid", text,
                        "if the server uses a self-signed or private-CA certificate, set its SHA-256 fingerprint or CA certificate on the integration; otherwise renew the certificate"));
                    checks.push(Check::skipped("server_reachable", "Server reachable"));
                } else {
                    checks.push(Check::pass(
                        "tls_certificate",
                        "TLS certificate valid",
                        "no certificate problem seen",
                    ));
                    checks.push(Check::fail("server_reachable", "Server reachable", text,
                        "check the server address and that it is reachable from this host (firewall, DNS, proxy)"));
                }
                for (id, label) in [
                    ("server_version", "Server version"),
                    ("jwt_accepted", "User-API token accepted"),
                    ("customers_visible", "Customers visible"),
                    ("devices_visible", "Devices visible"),
                ] {
                    checks.push(Check::skipped(id, label));
                }
                return checks;
            }
        };
        let rest = match parse_version(&version) {
            Some(v) if v >= REST_SINCE => {
                checks.push(Check::pass(
                    "server_version",
                    "Server version",
                    format!("N-central {version}: REST API available"),
                ));
                true
            }
            Some(v) if v >= (2020, 1) => {
                checks.push(Check::pass(
                    "server_version",
                    "Server version",
                    format!("N-central {version}: older than 2023.9, read over SOAP"),
                ));
                false
            }
            _ => {
                checks.push(Check::fail(
                    "server_version",
                    "Server version",
                    format!("N-central {version} is too old for the User-API token"),
                    "upgrade N-central to 2020.1 or later (2023.9 or later for the REST API)",
                ));
                for (id, label) in [
                    ("jwt_accepted", "User-API token accepted"),
                    ("customers_visible", "Customers visible"),
                    ("devices_visible", "Devices visible"),
                ] {
                    checks.push(Check::skipped(id, label));
                }
                return checks;
            }
        };
        let clients = if rest {
            match self.access_token().await {
                Ok(_) => checks.push(Check::pass(
                    "jwt_accepted",
                    "User-API token accepted",
                    "N-central issued access and refresh tokens",
                )),
                Err(e) => {
                    checks.push(Check::fail(
                        "jwt_accepted",
                        "User-API token accepted",
                        e.to_string(),
                        JWT_REMEDY,
                    ));
                    checks.push(Check::skipped("customers_visible", "Customers visible"));
                    checks.push(Check::skipped("devices_visible", "Devices visible"));
                    return checks;
                }
            }
            self.get_json(
                &format!("/api/customers?pageNumber=1&pageSize={PAGE_SIZE}"),
                "the customer list",
            )
            .await
            .map(|v| v["totalItems"].as_u64().unwrap_or(0) as usize)
        } else {
            match self.soap_clients().await {
                Ok(c) => {
                    checks.push(Check::pass(
                        "jwt_accepted",
                        "User-API token accepted",
                        "SOAP accepted the token",
                    ));
                    Ok(c.iter()
                        .filter(|c| c.kind == RmmClientKind::Company)
                        .count())
                }
                Err(e) => {
                    checks.push(Check::fail(
                        "jwt_accepted",
                        "User-API token accepted",
                        e.to_string(),
                        JWT_REMEDY,
                    ));
                    checks.push(Check::skipped("customers_visible", "Customers visible"));
                    checks.push(Check::skipped("devices_visible", "Devices visible"));
                    return checks;
                }
            }
        };
        match clients {
            Ok(0) => checks.push(Check::fail("customers_visible", "Customers visible", "the API user sees no customers",
                "add the customers to the API user's access group (or enable \"auto-include new org units\")")),
            Ok(n) => checks.push(Check::pass("customers_visible", "Customers visible", format!("{n} customers"))),
            Err(e) => checks.push(Check::fail("customers_visible", "Customers visible", e.to_string(), "give the API user a role that can view customers")),
        }
        if rest {
            match self.count_devices().await {
                Ok(0) => checks.push(Check::fail(
                    "devices_visible",
                    "Devices visible",
                    "the API user sees no devices",
                    "add the customers' devices to the API user's access group",
                )),
                Ok(n) => checks.push(Check::pass(
                    "devices_visible",
                    "Devices visible",
                    format!("{n} devices"),
                )),
                Err(e) => checks.push(Check::fail(
                    "devices_visible",
                    "Devices visible",
                    e.to_string(),
                    "give the API user a role that can view devices",
                )),
            }
        } else {
            checks.push(Check::pass(
                "devices_visible",
                "Devices visible",
                "read per customer over SOAP",
            ));
        }
        checks.push(self.check_login().await);
        checks
    }

    /// With the API user's username and password stored, a SOAP call with them shows whether MFA
    /// or an expired password has locked the account, the usual reason a JWT stops working.
    async fn check_login(&self) -> Check {
        const ID: &str = "mfa_not_blocking";
        const LABEL: &str = "MFA and password not blocking the API user";
        let Some((user, pass)) = &self.creds.login else {
            return Check::pass(
                ID,
                LABEL,
                "no username and password stored; only the User-API token is used",
            );
        };
        let body = soap::envelope(
            "customerList",
            user,
            pass.expose(),
            &[("listSOs", vec!["true".into()])],
        );
        let resp = match self.t.send(soap::request(&self.t, body), true).await {
            Ok(r) => r,
            Err(e) => {
                return Check::fail(
                    ID,
                    LABEL,
                    e.to_string(),
                    "check that the server is reachable",
                );
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Check::pass(
                ID,
                LABEL,
                format!("{user} signed in with its password (MFA is off)"),
            );
        }
        let fault = soap::fault_text(&text);
        if fault.starts_with("2100") {
            Check::fail(
                ID,
                LABEL,
                format!("N-central refused {user}'s username and password: {fault}"),
                "turn MFA off for the API user (N-central refuses API calls from MFA users), and check that its password has not expired (90 days by default); then save the new password here",
            )
        } else {
            Check::fail(
                ID,
                LABEL,
                format!("N-central answered HTTP {}: {fault}", status.as_u16()),
                "check the API user in N-central",
            )
        }
    }

    async fn soap_call(
        &self,
        op: &str,
        settings: &[(&str, Vec<String>)],
    ) -> Result<String, RmmError> {
        let body = soap::envelope(op, "", self.creds.jwt.expose(), settings);
        let resp = self.t.send(soap::request(&self.t, body), true).await?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| RmmError::Transport(e.to_string()))?;
        if status.is_success() {
            return Ok(text);
        }
        let fault = soap::fault_text(&text);
        if fault.starts_with("2100") {
            return Err(RmmError::Auth {
                message: format!("N-central refused the User-API token over SOAP: {fault}"),
                remedy: JWT_REMEDY.into(),
            });
        }
        Err(RmmError::Remote {
            what: op.into(),
            status: status.as_u16(),
            message: fault,
        })
    }

    async fn soap_clients(&self) -> Result<Vec<RmmClient>, RmmError> {
        let so = soap::items(
            &self
                .soap_call("customerList", &[("listSOs", vec!["true".into()])])
                .await?,
        );
        let so_ids: Vec<String> = so
            .iter()
            .filter_map(|r| r.get("customer.customerid").cloned())
            .collect();
        let all = soap::items(
            &self
                .soap_call("customerList", &[("listSOs", vec!["false".into()])])
                .await?,
        );
        let company_ids: std::collections::HashSet<String> = all
            .iter()
            .filter(|r| {
                r.get("customer.parentid")
                    .is_some_and(|p| so_ids.contains(p) || p == "1")
            })
            .filter_map(|r| r.get("customer.customerid").cloned())
            .collect();
        Ok(all
            .into_iter()
            .filter_map(|r| {
                let id = r.get("customer.customerid")?.clone();
                let parent = r.get("customer.parentid").cloned();
                let site = parent.as_ref().is_some_and(|p| company_ids.contains(p));
                Some(RmmClient {
                    external_id: id,
                    kind: if site {
                        RmmClientKind::Site
                    } else {
                        RmmClientKind::Company
                    },
                    parent_external_id: if site { parent } else { None },
                    name: r.get("customer.customername").cloned().unwrap_or_default(),
                })
            })
            .collect())
    }
}

fn adapters(n: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match n.get("list").and_then(Value::as_array) {
        Some(list) => Box::new(list.iter()),
        None if n.is_object() => Box::new(std::iter::once(n)),
        None => Box::new(std::iter::empty()),
    }
}

/// Org-unit ids are strings and device ids numbers; accept either.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn malformed_item(kind: &str, v: &Value) -> RmmError {
    RmmError::Malformed {
        what: format!("a {kind} record"),
        detail: format!(
            "its id is missing: {}",
            v.to_string().chars().take(200).collect::<String>()
        ),
    }
}

fn parse_time(text: &str) -> Option<Timestamp> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

mod soap {
    //! Just enough SOAP 1.2 for ServerEI2: build a request, read `<items>` key/values by local name.
    use crate::http::Transport;
    use std::collections::HashMap;

    fn escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    pub fn envelope(op: &str, user: &str, pass: &str, settings: &[(&str, Vec<String>)]) -> String {
        let mut s = String::new();
        for (k, vs) in settings {
            s.push_str(&format!("<ei2:settings><ei2:key>{}</ei2:key>", escape(k)));
            for v in vs {
                s.push_str(&format!("<ei2:value>{}</ei2:value>", escape(v)));
            }
            s.push_str("</ei2:settings>");
        }
        let creds = if op == "versionInfoGet" {
            String::new()
        } else {
            format!(
                "<ei2:username>{}</ei2:username><ei2:password>{}</ei2:password>",
                escape(user),
                escape(pass)
            )
        };
        format!(
            "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:ei2=\"http://ei2.nobj.nable.com/\"><soap:Header/><soap:Body><ei2:{op}>{creds}{s}</ei2:{op}></soap:Body></soap:Envelope>"
        )
    }

    pub fn request(t: &Transport, body: String) -> reqwest::RequestBuilder {
        t.request(reqwest::Method::POST, "/dms2/services2/ServerEI2")
            .header("content-type", "application/soap+xml; charset=utf-8")
            .body(body)
    }

    /// Every `<return>` as a map of its `<items>` (or `<key>`/`<value>` pairs).
    pub fn items(xml: &str) -> Vec<HashMap<String, String>> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut out = Vec::new();
        let mut current: Option<HashMap<String, String>> = None;
        let (mut key, mut text) = (None::<String>, String::new());
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    if e.local_name().into_inner() == "return" {
                        current = Some(HashMap::new());
                    }
                    text.clear();
                }
                Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
                Ok(Event::GeneralRef(r)) => {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        text.push(c);
                    }
                    text.push_str(match r.into_inner().as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
                Ok(Event::End(e)) => {
                    let name = e.local_name().into_inner().to_owned();
                    match name.as_str() {
                        "key" => key = Some(text.trim().to_owned()),
                        "value" => {
                            if let (Some(map), Some(k)) = (current.as_mut(), key.take()) {
                                map.insert(k, text.trim().to_owned());
                            }
                        }
                        "return" => {
                            if let Some(m) = current.take() {
                                out.push(m);
                            }
                        }
                        _ => {}
                    }
                    text.clear();
                }
                Ok(Event::Eof) | Err(_) => break,
                _ => {}
            }
        }
        out
    }

    pub fn config_value(xml: &str, key: &str) -> Option<String> {
        items(xml).into_iter().find_map(|m| m.get(key).cloned())
    }

    /// The `<soap:Text>` of a fault, e.g. `2100 Invalid username or password`.
    pub fn fault_text(xml: &str) -> String {
        let start = xml
            .find("Text")
            .and_then(|i| xml[i..].find('>').map(|j| i + j + 1));
        match start {
            Some(s) => xml[s..]
                .split('<')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            None => xml.chars().take(200).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_errors_inside_200_are_read() {
        assert_eq!(parse_version("2024.6.0.19"), Some((2024, 6)));
        assert_eq!(parse_version("garbage"), None);
        assert!(error_inside_200(&serde_json::json!({"error message": "DMS down"})).is_some());
        assert!(error_inside_200(&serde_json::json!({"errorMessage": "DMS down"})).is_some());
        assert!(error_inside_200(&serde_json::json!({"data": []})).is_none());
        assert_eq!(
            error_message(r#"{"status":401,"message":"[ID=1] UNAUTHORIZED: x"}"#),
            "[ID=1] UNAUTHORIZED: x"
        );
    }

    #[test]
    fn soap_items_are_read_by_local_name() {
        let xml = r#"<s:Envelope xmlns:s="x"><s:Body><ns2:customerListResponse xmlns:ns2="y"><return><items><key>customer.customerid</key><value>100</value></items><items><key>customer.customername</key><value>A &amp; B</value></items></return><return><key>Installation: Deployment Product Version</key><value>2023.4.1.7</value></return></ns2:customerListResponse></s:Body></s:Envelope>"#;
        let items = soap::items(xml);
        assert_eq!(items[0]["customer.customername"], "A & B");
        assert_eq!(
            soap::config_value(xml, "Installation: Deployment Product Version").as_deref(),
            Some("2023.4.1.7")
        );
        assert_eq!(
            soap::fault_text("<soap:Text xml:lang=\"en\">2100 Invalid</soap:Text>"),
            "2100 Invalid"
        );
    }
}
