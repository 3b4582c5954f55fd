//! The NinjaOne connector against the NinjaOne simulator over real HTTP.
use futures::TryStreamExt;
use rmmbridge_core::rmm::RmmClientKind;
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::RmmError;
use rmmbridge_rmm::error::CheckStatus;
use rmmbridge_rmm::http::HttpSettings;
use rmmbridge_rmm::ninjaone::{
    self, NinjaConnector, NinjaGrant, NinjaSettings, NoStore, Pkce, StoreFuture, TokenSet,
    TokenStore,
};
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use rmmbridge_sim::server::Faults;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:9/consent-callback";

fn sim_cfg(devices: u32, faults: Faults) -> NinjaConfig {
    NinjaConfig {
        fleet: FleetConfig {
            seed: 12,
            customers: 15,
            devices,
            ..Default::default()
        },
        faults,
        ..Default::default()
    }
}

async fn start(cfg: NinjaConfig) -> NinjaSim {
    NinjaSim::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn settings(sim: &NinjaSim) -> NinjaSettings {
    NinjaSettings {
        instance: sim.url(),
        client_id: sim.connection_info()["client_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        script_id: None,
        tls: Default::default(),
        http: HttpSettings {
            backoff_base: Duration::from_millis(2),
            backoff_max: Duration::from_millis(20),
            attempts: 8,
            ..Default::default()
        },
    }
}

fn secret(sim: &NinjaSim) -> SecretString {
    SecretString::new(sim.connection_info()["client_secret"].as_str().unwrap())
}

/// Records what the connector asked to persist, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl TokenStore for Recorder {
    fn save<'a>(&'a self, t: &'a TokenSet) -> StoreFuture<'a> {
        Box::pin(async move {
            self.0.lock().unwrap().push(
                t.refresh_token
                    .as_ref()
                    .map(|r| r.expose().to_owned())
                    .unwrap_or_default(),
            );
            Ok(())
        })
    }
}

/// Consent as the admin gives it: the connector's URL, the simulator's approval page, the code exchange.
async fn consent(sim: &NinjaSim) -> TokenSet {
    let s = settings(sim);
    let pkce = Pkce::generate();
    let url = ninjaone::consent_url(
        &s.instance,
        &s.client_id,
        REDIRECT,
        "state-1",
        &pkce.challenge,
    )
    .unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(browser.get(&url).send().await.unwrap().status(), 200);
    let q: Vec<(String, String)> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .chain([("decision".to_owned(), "allow".to_owned())])
        .collect();
    let r = browser
        .post(format!("{}/ws/oauth/authorize", sim.url()))
        .form(&q)
        .send()
        .await
        .unwrap();
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    ninjaone::exchange_code(&s, &secret(sim), &code, REDIRECT, &pkce.verifier)
        .await
        .unwrap()
}

#[tokio::test]
async fn client_credentials_stream_devices_and_list_clients() {
    let sim = start(sim_cfg(2500, Faults::none())).await;
    let c = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap();
    let pages: Vec<Vec<_>> = c.devices().try_collect().await.unwrap();
    assert_eq!(pages.len(), 3);
    let devices: Vec<_> = pages.into_iter().flatten().collect();
    assert_eq!(devices.len(), 2500);
    assert!(devices.iter().filter(|d| d.serial.is_some()).count() > 2200);
    assert!(
        devices
            .iter()
            .all(|d| d.site_external_id.is_some() && d.last_contact.is_some())
    );
    let mac = &devices.iter().find(|d| !d.macs.is_empty()).unwrap().macs[0];
    assert_eq!(
        mac,
        &mac.to_uppercase(),
        "NinjaOne prints MACs in upper case"
    );
    let clients = c.list_clients().await.unwrap();
    assert_eq!(
        clients
            .iter()
            .filter(|c| c.kind == RmmClientKind::Company)
            .count(),
        15
    );
    let sites: std::collections::HashSet<_> = clients
        .iter()
        .filter(|c| c.kind == RmmClientKind::Site)
        .map(|c| c.external_id.clone())
        .collect();
    assert!(
        devices
            .iter()
            .all(|d| sites.contains(d.site_external_id.as_ref().unwrap()))
    );
}

#[tokio::test]
async fn consent_then_refresh_rotates_and_persists_before_use() {
    let sim = start(sim_cfg(1200, Faults::none())).await;
    let tokens = consent(&sim).await;
    let first = tokens
        .refresh_token
        .expect("offline_access gives a refresh token");
    let store = Recorder::default();
    let c = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::RefreshToken(first.clone()),
        store.clone(),
    )
    .unwrap();
    assert_eq!(
        c.list_clients()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.kind == RmmClientKind::Company)
            .count(),
        15
    );
    // The access token expires in the simulator; the next call refreshes once more.
    sim.common().clock.advance(3700);
    let devices: Vec<Vec<_>> = c.devices().try_collect().await.unwrap();
    assert_eq!(devices.into_iter().flatten().count(), 1200);
    let saved = store.0.lock().unwrap().clone();
    assert_eq!(saved.len(), 2, "two refreshes, each persisted: {saved:?}");
    assert_ne!(saved[0], first.expose());
    assert_ne!(
        saved[0], saved[1],
        "every refresh rotated the refresh token"
    );
    assert_eq!(c.stats.lock().unwrap().rotations, 2);
}

#[tokio::test]
async fn a_revoked_refresh_token_means_needs_consent_without_retrying() {
    let sim = start(sim_cfg(50, Faults::none())).await;
    let rt = consent(&sim).await.refresh_token.unwrap();
    sim.revoke_refresh_tokens();
    let c = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::RefreshToken(rt),
        NoStore,
    )
    .unwrap();
    let err = c.list_clients().await.unwrap_err();
    assert!(matches!(err, RmmError::NeedsConsent(_)), "{err}");
    assert!(err.to_string().contains("Provide consent"));
    assert_eq!(
        c.stats.lock().unwrap().token_requests,
        1,
        "one attempt, no retry loop"
    );
    let checks = c.verify().await;
    assert_eq!(checks[0].status, CheckStatus::Fail);
    assert!(
        checks[0]
            .remedy
            .as_deref()
            .unwrap()
            .contains("Provide consent")
    );
}

#[tokio::test]
async fn storms_of_429_and_a_token_expiring_mid_scan_are_survived() {
    let sim = start(sim_cfg(
        2500,
        Faults {
            rate_limit: 0.3,
            retry_after_s: Some(0),
            expire_token_after: Some(2),
            ..Faults::none()
        },
    ))
    .await;
    let c = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap();
    let devices: Vec<Vec<_>> = c.devices().try_collect().await.unwrap();
    assert_eq!(devices.into_iter().flatten().count(), 2500);
    assert!(c.stats.lock().unwrap().token_requests >= 2);
}

#[tokio::test]
async fn a_malformed_page_is_an_error_that_names_it() {
    let sim = start(sim_cfg(
        2500,
        Faults {
            malformed_page: Some(2),
            ..Faults::none()
        },
    ))
    .await;
    let c = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap();
    let err = c.devices().try_collect::<Vec<_>>().await.unwrap_err();
    assert!(
        matches!(&err, RmmError::Malformed { what, .. } if what == "device page 2"),
        "{err}"
    );
}

#[tokio::test]
async fn verification_names_each_failure() {
    let sim = start(sim_cfg(50, Faults::none())).await;
    let mut with_script = settings(&sim);
    with_script.script_id = Some(sim.connection_info()["script_id"].to_string());
    let ok = NinjaConnector::new(
        &with_script,
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap()
    .verify()
    .await;
    assert!(ok.iter().all(|c| c.status == CheckStatus::Pass), "{ok:#?}");

    // No helper script id: script runs are impossible, which is a warning, not a failure.
    let checks = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap()
    .verify()
    .await;
    let script = checks.iter().find(|c| c.id == "script_item").unwrap();
    assert_eq!(script.status, CheckStatus::Warn);
    assert!(script.remedy.as_deref().unwrap().contains("Automation"));

    // A helper script id that the library does not have.
    let mut missing = settings(&sim);
    missing.script_id = Some("999999".into());
    let checks = NinjaConnector::new(
        &missing,
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap()
    .verify()
    .await;
    let script = checks.iter().find(|c| c.id == "script_item").unwrap();
    assert_eq!(script.status, CheckStatus::Fail);
    assert!(
        script.reason.contains("no script 999999"),
        "{}",
        script.reason
    );

    let wrong = NinjaConnector::new(
        &settings(&sim),
        SecretString::new("not-the-secret"),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap()
    .verify()
    .await;
    assert_eq!(wrong[0].status, CheckStatus::Fail);
    assert!(
        wrong[0].reason.contains("client id or secret"),
        "{}",
        wrong[0].reason
    );
    assert!(wrong[1..].iter().all(|c| c.status == CheckStatus::Skipped));

    // An API app without the Monitoring scope.
    let mut cfg = sim_cfg(50, Faults::none());
    cfg.app_scopes = "management offline_access".into();
    let narrow = start(cfg).await;
    let checks = NinjaConnector::new(
        &settings(&narrow),
        secret(&narrow),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap()
    .verify()
    .await;
    let scope = checks.iter().find(|c| c.id == "scope_monitoring").unwrap();
    assert_eq!(scope.status, CheckStatus::Fail, "{checks:#?}");
    assert!(scope.reason.contains("lacks a scope"), "{}", scope.reason);

    // No organizations.
    let http = reqwest::Client::new();
    for id in 1..=15 {
        http.delete(format!("{}/_sim/clients/{id}", sim.url()))
            .send()
            .await
            .unwrap();
    }
    let empty = NinjaConnector::new(
        &settings(&sim),
        secret(&sim),
        NinjaGrant::ClientCredentials,
        NoStore,
    )
    .unwrap()
    .verify()
    .await;
    let orgs = empty
        .iter()
        .find(|c| c.id == "organizations_visible")
        .unwrap();
    assert_eq!(orgs.status, CheckStatus::Fail, "{empty:#?}");
}
