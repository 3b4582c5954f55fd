//! The NinjaOne connector. Consent is OAuth 2.0 authorization code with PKCE (S256); the refresh
//! token of every token response is persisted through a [`TokenStore`] before the new access token
//! is used, refreshes are single-flight, and `invalid_grant` means "needs consent", never a retry
//! loop. Lists are bare arrays paged by `after` (the last id) and stop on a short page.
use crate::error::{Check, RmmError};
use crate::http::{HttpSettings, TlsTrust, Transport, json_body, parse_base_url};
use base64::Engine;
use futures::Stream;
use reqwest::{Method, StatusCode};
use rmmbridge_core::Timestamp;
use rmmbridge_core::rmm::{RmmClient, RmmClientKind, RmmDevice, present};
use rmmbridge_core::secret::SecretString;
use serde_json::Value;
use sha2::Digest;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const PAGE_SIZE: usize = 1000;
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// What rmmbridge asks for: read (monitoring), run scripts (management), keep access (offline_access).
pub const SCOPES: &str = "monitoring management offline_access";

/// NinjaOne instances by region key; any other host can be given as a URL.
pub fn region_url(region: &str) -> Option<&'static str> {
    Some(match region.trim().to_ascii_lowercase().as_str() {
        "app" | "us" => "https://app.ninjarmm.com",
        "us2" => "https://us2.ninjarmm.com",
        "eu" => "https://eu.ninjarmm.com",
        "ca" => "https://ca.ninjarmm.com",
        "oc" => "https://oc.ninjarmm.com",
        "fed" => "https://fed.ninjarmm.com",
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub struct NinjaSettings {
    /// A region key (`app`, `us2`, `eu`, `ca`, `oc`, `fed`) or the instance URL.
    pub instance: String,
    pub client_id: String,
    /// The helper script in NinjaOne's automation library that runs a base64 `code` parameter.
    pub script_id: Option<String>,
    pub tls: TlsTrust,
    pub http: HttpSettings,
}

/// How the connector gets its tokens.
#[derive(Clone, Debug)]
pub enum NinjaGrant {
    /// After consent: the stored refresh token.
    RefreshToken(SecretString),
    /// An API Services (machine-to-machine) app: no user context, so no script runs.
    ClientCredentials,
}

/// The tokens of one response; the refresh token is absent when the server did not send one.
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub expires_in: u64,
    pub refresh_token: Option<SecretString>,
    pub scope: String,
}

pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Where refreshed tokens go. `save` must persist atomically: the connector waits for it before
/// using the new access token, so a crash never loses a rotated refresh token.
pub trait TokenStore: Send + Sync {
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> StoreFuture<'a>;
}

/// A store that keeps nothing: for benchmarks and one-shot tools.
pub struct NoStore;

impl TokenStore for NoStore {
    fn save<'a>(&'a self, _: &'a TokenSet) -> StoreFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

struct State {
    grant: NinjaGrant,
    access: Option<(String, Instant)>,
    scope: String,
    failed_refreshes: u32,
}

pub struct NinjaConnector<S: TokenStore> {
    t: Transport,
    client_id: String,
    client_secret: SecretString,
    state: Mutex<State>,
    store: S,
    script_id: Option<String>,
    pub stats: std::sync::Mutex<RefreshStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshStats {
    pub token_requests: u32,
    pub rotations: u32,
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let challenge = s256(&verifier);
        Pkce {
            verifier,
            challenge,
        }
    }
}

pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

pub fn instance_url(instance: &str) -> Result<url::Url, RmmError> {
    parse_base_url(region_url(instance).unwrap_or(instance))
}

/// The URL to send the consenting admin to.
pub fn consent_url(
    instance: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<String, RmmError> {
    let mut url = instance_url(instance)?;
    url.set_path("/ws/oauth/authorize");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.to_string())
}

fn oauth_error(v: &Value) -> (String, String) {
    (
        v["error"].as_str().unwrap_or("unknown_error").to_owned(),
        v["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn read_token_response(resp: reqwest::Response, what: &str) -> Result<TokenSet, RmmError> {
    let status = resp.status();
    let v = json_body(resp, what).await?;
    if !status.is_success() {
        let (error, description) = oauth_error(&v);
        return Err(match error.as_str() {
            "invalid_grant" | "invalid_token" => RmmError::NeedsConsent(format!("{error}: {description}")),
            "invalid_client" | "unauthorized_client" => RmmError::Auth {
                message: format!("NinjaOne refused the client id or secret ({error}: {description})"),
                remedy: "copy the client id and secret of the API app again (Administration > Apps > API > Client App IDs); a secret is shown only once, so generate a new one if it was lost".into(),
            },
            "invalid_scope" => RmmError::Auth {
                message: format!("NinjaOne refused the requested scopes ({description})"),
                remedy: "enable the Monitoring and Management scopes and the Authorization Code and Refresh Token grants on the API app".into(),
            },
            _ => RmmError::Remote { what: what.into(), status: status.as_u16(), message: format!("{error}: {description}") },
        });
    }
    let access = v["access_token"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RmmError::Malformed {
            what: what.into(),
            detail: "no access_token".into(),
        })?;
    Ok(TokenSet {
        access_token: SecretString::new(access),
        expires_in: v["expires_in"].as_u64().unwrap_or(3600),
        refresh_token: v["refresh_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(SecretString::new),
        scope: v["scope"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Exchanges the consent callback's code for tokens.
pub async fn exchange_code(
    settings: &NinjaSettings,
    client_secret: &SecretString,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenSet, RmmError> {
    let t = Transport::new(
        instance_url(&settings.instance)?,
        &settings.tls,
        settings.http.clone(),
    )?;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", settings.client_id.as_str()),
        ("client_secret", client_secret.expose()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    // Not retried on 5xx: a code is single use.
    let resp = t
        .send(
            t.request(Method::POST, "/ws/oauth/token").form(&form),
            false,
        )
        .await?;
    read_token_response(resp, "the consent code exchange").await
}

/// Checks a Web app's client id and secret before any consent exists: NinjaOne checks the client
/// before the code, so a made-up code answers `invalid_grant` for good credentials and
/// `invalid_client` for bad ones. Nothing is granted or stored.
pub async fn check_app_credentials(
    settings: &NinjaSettings,
    client_secret: &SecretString,
) -> Check {
    const ID: &str = "token_obtained";
    const LABEL: &str = "Client id and secret accepted";
    let t = match instance_url(&settings.instance)
        .and_then(|u| Transport::new(u, &settings.tls, settings.http.clone()))
    {
        Ok(t) => t,
        Err(e) => {
            return Check::fail(
                ID,
                LABEL,
                e.to_string(),
                "correct the region or instance URL",
            );
        }
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", settings.client_id.as_str()),
        ("client_secret", client_secret.expose()),
        ("code", "rmmbridge-credential-check"),
        ("redirect_uri", "https://rmmbridge.invalid/consent-callback"),
    ];
    let resp = match t
        .send(
            t.request(Method::POST, "/ws/oauth/token").form(&form),
            false,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                ID,
                LABEL,
                e.to_string(),
                "check the region or instance URL and that NinjaOne is reachable from this host",
            );
        }
    };
    match read_token_response(resp, "the credential check").await {
        Err(RmmError::NeedsConsent(_)) => {
            Check::pass(ID, LABEL, format!("NinjaOne at {} knows the app", t.base))
        }
        Err(RmmError::Auth { message, remedy }) => Check::fail(ID, LABEL, message, remedy),
        Err(e) => Check::fail(
            ID,
            LABEL,
            e.to_string(),
            "check the API app's settings in NinjaOne",
        ),
        Ok(_) => Check::pass(ID, LABEL, "NinjaOne accepted the app"),
    }
}

impl<S: TokenStore> NinjaConnector<S> {
    pub fn new(
        settings: &NinjaSettings,
        client_secret: SecretString,
        grant: NinjaGrant,
        store: S,
    ) -> Result<Self, RmmError> {
        if settings.client_id.trim().is_empty() || client_secret.expose().trim().is_empty() {
            return Err(RmmError::Config(
                "the NinjaOne client id and client secret are required".into(),
            ));
        }
        Ok(NinjaConnector {
            t: Transport::new(
                instance_url(&settings.instance)?,
                &settings.tls,
                settings.http.clone(),
            )?,
            client_id: settings.client_id.clone(),
            client_secret,
            state: Mutex::new(State {
                grant,
                access: None,
                scope: String::new(),
                failed_refreshes: 0,
            }),
            script_id: settings.script_id.clone().filter(|s| !s.trim().is_empty()),
            store,
            stats: std::sync::Mutex::default(),
        })
    }

    /// A valid access token. Holding the lock across the refresh makes it single-flight.
    async fn access_token(&self) -> Result<String, RmmError> {
        let mut st = self.state.lock().await;
        if let Some((token, until)) = &st.access
            && *until > Instant::now() + REFRESH_MARGIN
        {
            return Ok(token.clone());
        }
        let secret = self.client_secret.expose().to_owned();
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("client_secret", secret),
        ];
        match &st.grant {
            NinjaGrant::RefreshToken(rt) => {
                form.push(("grant_type", "refresh_token".into()));
                form.push(("refresh_token", rt.expose().to_owned()));
            }
            NinjaGrant::ClientCredentials => {
                form.push(("grant_type", "client_credentials".into()));
                // Not offline_access: the EU instance refuses it for client credentials.
                form.push(("scope", "monitoring management".into()));
            }
        }
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .token_requests += 1;
        // A token request is not idempotent once rotation is on: never retried on 5xx.
        let resp = self
            .t
            .send(
                self.t.request(Method::POST, "/ws/oauth/token").form(&form),
                false,
            )
            .await?;
        let tokens = match read_token_response(resp, "the token refresh").await {
            Ok(t) => t,
            Err(e) => {
                st.failed_refreshes += 1;
                return Err(e);
            }
        };
        // Persist first: a refresh token that rotated must never be lost with the process.
        self.store.save(&tokens).await.map_err(|e| {
            RmmError::Config(format!("cannot store the refreshed NinjaOne tokens: {e}"))
        })?;
        if let (NinjaGrant::RefreshToken(old), Some(new)) = (&st.grant, &tokens.refresh_token)
            && old.expose() != new.expose()
        {
            self.stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .rotations += 1;
            st.grant = NinjaGrant::RefreshToken(new.clone());
        }
        let access = tokens.access_token.expose().to_owned();
        st.access = Some((
            access.clone(),
            Instant::now() + Duration::from_secs(tokens.expires_in),
        ));
        st.scope = tokens.scope;
        Ok(access)
    }

    /// Token counters and the cached access token's remaining life, for credential health.
    pub fn token_report(&self) -> crate::connector::TokenReport {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (access, failed, by_refresh) = match self.state.try_lock() {
            Ok(st) => (
                st.access
                    .as_ref()
                    .map(|(_, until)| until.saturating_duration_since(Instant::now()).as_secs()),
                st.failed_refreshes,
                matches!(st.grant, NinjaGrant::RefreshToken(_)),
            ),
            Err(_) => (None, 0, true),
        };
        let (authentications, refreshes) = if by_refresh {
            (0, stats.token_requests)
        } else {
            (stats.token_requests, 0)
        };
        crate::connector::TokenReport {
            authentications,
            refreshes,
            failed_refreshes: failed,
            rotations: stats.rotations,
            access_expires_in_s: access,
            refresh_expires_in_s: None,
        }
    }

    async fn forget_access(&self, used: &str) {
        let mut st = self.state.lock().await;
        if st.access.as_ref().is_some_and(|(t, _)| t == used) {
            st.access = None;
        }
    }

    /// GET `/v2{path}` as JSON; one retry with a fresh token after an expired-token 401.
    pub async fn get_json(&self, path: &str, what: &str) -> Result<Value, RmmError> {
        for attempt in 0..2 {
            let token = self.access_token().await?;
            let resp = self
                .t
                .send(
                    self.t
                        .request(Method::GET, &format!("/v2{path}"))
                        .bearer_auth(&token),
                    true,
                )
                .await?;
            let status = resp.status();
            if status.is_success() {
                return json_body(resp, what).await;
            }
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            let (error, description) = oauth_error(&v);
            match (status, error.as_str()) {
                (StatusCode::UNAUTHORIZED, "insufficient_privileges") => {
                    return Err(RmmError::Auth {
                        message: format!("NinjaOne refused {what}: the token lacks a scope ({description})"),
                        remedy: "enable the Monitoring and Management scopes on the API app, then provide consent again".into(),
                    });
                }
                (StatusCode::UNAUTHORIZED, _) if attempt == 0 => self.forget_access(&token).await,
                (StatusCode::FORBIDDEN, "user_context_required") => {
                    return Err(RmmError::Auth {
                        message: format!(
                            "{what} needs a user's consent, and this integration uses client credentials"
                        ),
                        remedy: "use a Web (authorization code) app and provide consent".into(),
                    });
                }
                _ => {
                    return Err(RmmError::Remote {
                        what: what.into(),
                        status: status.as_u16(),
                        message: if error == "unknown_error" {
                            v.to_string()
                        } else {
                            format!("{error}: {description}")
                        },
                    });
                }
            }
        }
        Err(RmmError::NeedsConsent(format!(
            "{what} was refused twice with fresh tokens"
        )))
    }

    /// A bare-array list paged by `after`; stops on a short page.
    async fn get_all(&self, path: &str, what: &str) -> Result<Vec<Value>, RmmError> {
        let mut out: Vec<Value> = Vec::new();
        let mut after = 0i64;
        for page in 1.. {
            let v = self
                .get_json(
                    &format!("{path}?pageSize={PAGE_SIZE}&after={after}"),
                    &format!("{what} page {page}"),
                )
                .await?;
            let items = v.as_array().ok_or_else(|| RmmError::Malformed {
                what: format!("{what} page {page}"),
                detail: "not a list".into(),
            })?;
            out.extend(items.iter().cloned());
            let last = items.last().and_then(|i| i["id"].as_i64());
            match last {
                Some(l) if items.len() >= PAGE_SIZE && l > after => after = l,
                _ => break,
            }
        }
        Ok(out)
    }

    /// Organizations as companies and their locations as sites.
    pub async fn list_clients(&self) -> Result<Vec<RmmClient>, RmmError> {
        let mut out = Vec::new();
        for o in self
            .get_all("/organizations", "the organization list")
            .await?
        {
            let id = o["id"].as_i64().ok_or_else(|| RmmError::Malformed {
                what: "an organization".into(),
                detail: "no id".into(),
            })?;
            out.push(RmmClient {
                external_id: id.to_string(),
                kind: RmmClientKind::Company,
                parent_external_id: None,
                name: o["name"].as_str().unwrap_or_default().to_owned(),
            });
        }
        for l in self.get_all("/locations", "the location list").await? {
            let id = l["id"].as_i64().ok_or_else(|| RmmError::Malformed {
                what: "a location".into(),
                detail: "no id".into(),
            })?;
            out.push(RmmClient {
                external_id: format!("loc-{id}"),
                kind: RmmClientKind::Site,
                parent_external_id: l["organizationId"].as_i64().map(|o| o.to_string()),
                name: l["name"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(out)
    }

    /// `devices-detailed`, one page at a time.
    pub fn devices(&self) -> impl Stream<Item = Result<Vec<RmmDevice>, RmmError>> + '_ {
        futures::stream::try_unfold(Some((0i64, 1usize)), move |state| async move {
            let Some((after, page)) = state else {
                return Ok(None);
            };
            let what = format!("device page {page}");
            let v = self
                .get_json(
                    &format!("/devices-detailed?pageSize={PAGE_SIZE}&after={after}"),
                    &what,
                )
                .await?;
            let items = v.as_array().ok_or_else(|| RmmError::Malformed {
                what: what.clone(),
                detail: "not a list".into(),
            })?;
            let devices = items
                .iter()
                .map(|d| device(d, &what))
                .collect::<Result<Vec<_>, _>>()?;
            let next = match items.last().and_then(|d| d["id"].as_i64()) {
                Some(last) if items.len() >= PAGE_SIZE && last > after => Some((last, page + 1)),
                _ => None,
            };
            Ok(Some((devices, next)))
        })
    }

    /// Named checks, each with its reason and remedy.
    pub async fn verify(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let rest = [
            ("scope_monitoring", "Monitoring scope"),
            ("organizations_visible", "Organizations visible"),
            ("script_item", "Helper script exists"),
        ];
        match self.access_token().await {
            Ok(_) => checks.push(Check::pass(
                "token_obtained",
                "Credentials accepted",
                format!("NinjaOne at {} issued an access token", self.t.base),
            )),
            Err(e) => {
                let remedy = match &e {
                    RmmError::NeedsConsent(_) => "choose \"Provide consent\" and approve rmmbridge in NinjaOne".to_owned(),
                    RmmError::Auth { remedy, .. } => remedy.clone(),
                    RmmError::Transport(_) => "check the region or instance URL and that NinjaOne is reachable from this host".to_owned(),
                    _ => "check the API app's settings in NinjaOne".to_owned(),
                };
                checks.push(Check::fail(
                    "token_obtained",
                    "Credentials accepted",
                    e.to_string(),
                    remedy,
                ));
                checks.extend(rest.iter().map(|(id, l)| Check::skipped(id, l)));
                return checks;
            }
        }
        let scope = self.state.lock().await.scope.clone();
        match self
            .get_json("/organizations?pageSize=1", "the organization list")
            .await
        {
            Ok(v) => {
                checks.push(Check::pass(
                    "scope_monitoring",
                    "Monitoring scope",
                    format!("granted scopes: {scope}"),
                ));
                let n = v.as_array().map_or(0, Vec::len);
                if n == 0 {
                    checks.push(Check::fail("organizations_visible", "Organizations visible", "NinjaOne lists no organizations", "create organizations in NinjaOne, or check that the consenting user can see them"));
                } else {
                    checks.push(Check::pass(
                        "organizations_visible",
                        "Organizations visible",
                        "at least one organization",
                    ));
                }
            }
            Err(e) => {
                checks.push(Check::fail(
                    "scope_monitoring",
                    "Monitoring scope",
                    e.to_string(),
                    "enable the Monitoring scope on the API app and provide consent again",
                ));
                checks.push(Check::skipped(
                    "organizations_visible",
                    "Organizations visible",
                ));
            }
        }
        checks.push(self.check_script().await);
        checks
    }

    /// The helper script that script runs go through must exist in the automation library.
    async fn check_script(&self) -> Check {
        const ID: &str = "script_item";
        const LABEL: &str = "Helper script exists";
        let Some(id) = &self.script_id else {
            return Check::warn(
                ID,
                LABEL,
                "no helper script id is set, so scripts cannot be run through NinjaOne",
                "create the helper script in Administration > Library > Automation (PowerShell, one parameter `code` that it base64-decodes and runs), then copy the number at the end of its URL into the integration's script id",
            );
        };
        match self
            .get_json("/automation/scripts", "the automation script list")
            .await
        {
            Ok(v) => {
                let found = v.as_array().and_then(|list| {
                    list.iter().find(|sc| {
                        sc["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(id.as_str())
                    })
                });
                match found {
                    Some(sc) if sc["active"].as_bool() == Some(false) => Check::fail(
                        ID,
                        LABEL,
                        format!(
                            "script {id} ({}) is inactive",
                            sc["name"].as_str().unwrap_or("?")
                        ),
                        "activate the helper script in NinjaOne's automation library",
                    ),
                    Some(sc) => Check::pass(
                        ID,
                        LABEL,
                        format!("script {id}: {}", sc["name"].as_str().unwrap_or("?")),
                    ),
                    None => Check::fail(
                        ID,
                        LABEL,
                        format!("NinjaOne's automation library has no script {id}"),
                        "copy the helper script's id again: open it in Administration > Library > Automation; the id is the number at the end of the URL",
                    ),
                }
            }
            Err(e) => Check::fail(
                ID,
                LABEL,
                e.to_string(),
                "enable the Management scope on the API app and provide consent again",
            ),
        }
    }
}

fn secs(v: &Value) -> Option<Timestamp> {
    v.as_f64().map(|s| Timestamp((s * 1000.0) as i64))
}

fn device(d: &Value, what: &str) -> Result<RmmDevice, RmmError> {
    let id = d["id"].as_i64().ok_or_else(|| RmmError::Malformed {
        what: what.into(),
        detail: "a device has no id".into(),
    })?;
    let org = d["organizationId"]
        .as_i64()
        .ok_or_else(|| RmmError::Malformed {
            what: what.into(),
            detail: format!("device {id} has no organizationId"),
        })?;
    let sys = &d["system"];
    Ok(RmmDevice {
        external_id: id.to_string(),
        client_external_id: org.to_string(),
        site_external_id: d["locationId"].as_i64().map(|l| format!("loc-{l}")),
        hostname: d["systemName"]
            .as_str()
            .or(d["dnsName"].as_str())
            .unwrap_or_default()
            .to_owned(),
        serial: present(sys["serialNumber"].as_str())
            .or_else(|| present(sys["biosSerialNumber"].as_str())),
        smbios_uuid: None,
        macs: d["macAddresses"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| present(x.as_str())).collect())
            .unwrap_or_default(),
        os: present(d["os"]["name"].as_str()),
        device_class: present(d["nodeClass"].as_str()),
        last_contact: secs(&d["lastContact"]),
        online: d["offline"].as_bool().map(|o| !o),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_consent_urls() {
        assert_eq!(
            instance_url("eu").unwrap().as_str(),
            "https://eu.ninjarmm.com/"
        );
        assert_eq!(
            instance_url("https://acme.rmmservice.com")
                .unwrap()
                .as_str(),
            "https://acme.rmmservice.com/"
        );
        let url = consent_url(
            "app",
            "cid",
            "https://hub.example/consent-callback",
            "st",
            "ch",
        )
        .unwrap();
        assert!(url.starts_with(
            "https://app.ninjarmm.com/ws/oauth/authorize?response_type=code&client_id=cid"
        ));
        assert!(
            url.contains("code_challenge_method=S256")
                && url.contains("state=st")
                && url.contains("offline_access")
        );
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
