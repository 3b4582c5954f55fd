//! The N-central connector against the N-central simulator over real HTTP.
use futures::TryStreamExt;
use rmmbridge_core::rmm::RmmClientKind;
use rmmbridge_core::secret::SecretString;
use rmmbridge_rmm::RmmError;
use rmmbridge_rmm::error::CheckStatus;
use rmmbridge_rmm::http::HttpSettings;
use rmmbridge_rmm::ncentral::{NcentralConnector, NcentralCredentials, NcentralSettings};
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::server::Faults;
use std::time::Duration;

fn sim_cfg(devices: u32, faults: Faults) -> NcentralConfig {
    NcentralConfig {
        fleet: FleetConfig {
            seed: 11,
            customers: 15,
            devices,
            ..Default::default()
        },
        faults,
        ..Default::default()
    }
}

async fn start(cfg: NcentralConfig) -> NcentralSim {
    NcentralSim::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn connector(sim: &NcentralSim, jwt: &str) -> NcentralConnector {
    let mut s = NcentralSettings::new(&sim.url());
    s.http = HttpSettings {
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(20),
        attempts: 8,
        ..Default::default()
    };
    NcentralConnector::new(&s, NcentralCredentials::jwt(SecretString::new(jwt))).unwrap()
}

fn jwt(sim: &NcentralSim) -> String {
    sim.connection_info()["jwt"].as_str().unwrap().to_owned()
}

async fn all_devices(
    c: &NcentralConnector,
) -> Result<Vec<rmmbridge_core::rmm::RmmDevice>, RmmError> {
    let pages: Vec<Vec<_>> = c.devices().try_collect().await?;
    Ok(pages.into_iter().flatten().collect())
}

#[tokio::test]
async fn streams_every_device_with_its_assets_and_lists_clients() {
    let sim = start(sim_cfg(2500, Faults::none())).await;
    let c = connector(&sim, &jwt(&sim));
    let devices = all_devices(&c).await.unwrap();
    assert_eq!(devices.len(), 2500);
    let ids: std::collections::HashSet<_> = devices.iter().map(|d| &d.external_id).collect();
    assert_eq!(ids.len(), 2500);
    assert!(devices.iter().filter(|d| d.serial.is_some()).count() > 2300);
    assert!(devices.iter().all(|d| {
        !d.macs.is_empty()
            || d.device_class
                .as_deref()
                .is_some_and(|c| !c.contains("Windows"))
    }));
    assert!(devices.iter().any(|d| d.smbios_uuid.is_some()));
    assert!(
        devices
            .iter()
            .all(|d| d.last_contact.is_some() && !d.hostname.is_empty())
    );
    let clients = c.list_clients().await.unwrap();
    let companies = clients
        .iter()
        .filter(|c| c.kind == RmmClientKind::Company)
        .count();
    assert_eq!(companies, 15);
    let sites: Vec<_> = clients
        .iter()
        .filter(|c| c.kind == RmmClientKind::Site)
        .collect();
    assert!(sites.iter().all(|s| s.parent_external_id.is_some()));
    // Every device's customer is a listed company.
    let company_ids: std::collections::HashSet<_> = clients
        .iter()
        .filter(|c| c.kind == RmmClientKind::Company)
        .map(|c| c.external_id.clone())
        .collect();
    assert!(
        devices
            .iter()
            .all(|d| company_ids.contains(&d.client_external_id))
    );
}

#[tokio::test]
async fn a_token_that_expires_mid_paging_is_replaced() {
    let sim = start(sim_cfg(
        2500,
        Faults {
            expire_token_after: Some(40),
            ..Faults::none()
        },
    ))
    .await;
    let c = connector(&sim, &jwt(&sim));
    assert_eq!(all_devices(&c).await.unwrap().len(), 2500);
    let stats = c.stats.lock().unwrap().clone();
    assert!(stats.authentications + stats.refreshes >= 2, "{stats:?}");
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_and_a_failed_refresh_reauthenticates() {
    let mut cfg = sim_cfg(1200, Faults::none());
    cfg.access_ttl_s = 60; // inside the refresh margin: every call refreshes
    let sim = start(cfg).await;
    let c = connector(&sim, &jwt(&sim));
    assert_eq!(
        c.list_clients()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.kind == RmmClientKind::Company)
            .count(),
        15
    );
    assert!(c.stats.lock().unwrap().refreshes > 0);
    sim.reboot(); // every token is gone; the refresh fails and the JWT buys new ones
    assert_eq!(all_devices(&c).await.unwrap().len(), 1200);
    let stats = c.stats.lock().unwrap().clone();
    assert!(
        stats.failed_refreshes >= 1 && stats.authentications >= 2,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_storm_of_429s_is_ridden_out_and_an_endless_one_is_reported() {
    // Three in ten requests refused: with eight attempts each, all get through (the draws are seeded).
    let sim = start(sim_cfg(
        1500,
        Faults {
            rate_limit: 0.3,
            ..Faults::none()
        },
    ))
    .await;
    let c = connector(&sim, &jwt(&sim));
    assert_eq!(all_devices(&c).await.unwrap().len(), 1500);

    let sim = start(sim_cfg(
        100,
        Faults {
            rate_limit: 1.0,
            ..Faults::none()
        },
    ))
    .await;
    let err = all_devices(&connector(&sim, &jwt(&sim))).await.unwrap_err();
    assert!(matches!(err, RmmError::RateLimited { .. }), "{err}");
    assert!(err.to_string().contains("429"));
}

#[tokio::test]
async fn server_errors_and_resets_are_retried() {
    let sim = start(sim_cfg(
        1200,
        Faults {
            server_errors: 0.05,
            burst: 2,
            resets: 0.05,
            ..Faults::none()
        },
    ))
    .await;
    let c = connector(&sim, &jwt(&sim));
    assert_eq!(all_devices(&c).await.unwrap().len(), 1200);
}

#[tokio::test]
async fn a_malformed_page_and_an_error_inside_a_200_are_errors() {
    let sim = start(sim_cfg(
        2500,
        Faults {
            malformed_page: Some(2),
            ..Faults::none()
        },
    ))
    .await;
    let err = all_devices(&connector(&sim, &jwt(&sim))).await.unwrap_err();
    assert!(
        matches!(&err, RmmError::Malformed { what, .. } if what == "device page 2"),
        "{err}"
    );

    let sim = start(sim_cfg(
        100,
        Faults {
            error_in_200: 1.0,
            ..Faults::none()
        },
    ))
    .await;
    let err = all_devices(&connector(&sim, &jwt(&sim))).await.unwrap_err();
    assert!(err.to_string().contains("inside a 200"), "{err}");
}

#[tokio::test]
async fn verification_passes_on_a_healthy_server() {
    let sim = start(sim_cfg(50, Faults::none())).await;
    let checks = connector(&sim, &jwt(&sim)).verify().await;
    assert!(
        checks.iter().all(|c| c.status == CheckStatus::Pass),
        "{checks:#?}"
    );
    let ids: Vec<_> = checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "tls_certificate",
            "server_reachable",
            "server_version",
            "jwt_accepted",
            "customers_visible",
            "devices_visible",
            "mfa_not_blocking"
        ]
    );
}

fn failed<'a>(checks: &'a [rmmbridge_rmm::Check], id: &str) -> &'a rmmbridge_rmm::Check {
    let c = checks.iter().find(|c| c.id == id).unwrap();
    assert_eq!(c.status, CheckStatus::Fail, "{checks:#?}");
    assert!(c.remedy.is_some());
    c
}

#[tokio::test]
async fn each_verification_check_fails_for_its_own_reason() {
    // Unreachable server.
    let sim = start(sim_cfg(10, Faults::none())).await;
    let url = sim.url();
    drop(sim);
    let mut s = NcentralSettings::new(&url);
    s.http = HttpSettings {
        attempts: 1,
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let checks = NcentralConnector::new(&s, NcentralCredentials::jwt(SecretString::new("x")))
        .unwrap()
        .verify()
        .await;
    assert!(
        failed(&checks, "server_reachable")
            .reason
            .contains("cannot reach")
    );
    let at = checks
        .iter()
        .position(|c| c.id == "server_reachable")
        .unwrap();
    assert!(
        checks[at + 1..]
            .iter()
            .all(|c| c.status == CheckStatus::Skipped)
    );
    assert_eq!(checks[0].id, "tls_certificate");

    // Too old for a User-API token.
    let mut cfg = sim_cfg(10, Faults::none());
    cfg.version = "12.1.0.300".into();
    let sim = start(cfg).await;
    let checks = connector(&sim, &jwt(&sim)).verify().await;
    assert!(failed(&checks, "server_version").reason.contains("too old"));

    // A wrong JWT.
    let sim = start(sim_cfg(10, Faults::none())).await;
    let checks = connector(&sim, "eyJ.not-the-token").verify().await;
    let c = failed(&checks, "jwt_accepted");
    assert!(
        c.reason.contains("refused the User-API token"),
        "{}",
        c.reason
    );
    assert!(c.remedy.as_deref().unwrap().contains("MFA"));

    // No customers visible (an access group without them).
    let sim = start(sim_cfg(10, Faults::none())).await;
    let ids: Vec<i64> = (100..115).collect();
    let http = reqwest::Client::new();
    for id in ids {
        http.delete(format!("{}/_sim/clients/{id}", sim.url()))
            .send()
            .await
            .unwrap();
    }
    let checks = connector(&sim, &jwt(&sim)).verify().await;
    assert!(
        failed(&checks, "customers_visible")
            .remedy
            .as_deref()
            .unwrap()
            .contains("access group")
    );
    assert!(
        failed(&checks, "devices_visible")
            .reason
            .contains("no devices")
    );

    // MFA switched on for the API user: its username and password stop working.
    let mut cfg = sim_cfg(10, Faults::none());
    cfg.mfa_enabled = true;
    let sim = start(cfg).await;
    let info = sim.connection_info();
    let mut c = NcentralCredentials::jwt(SecretString::new(jwt(&sim)));
    c.login = Some((
        info["username"].as_str().unwrap().to_owned(),
        SecretString::new(info["password"].as_str().unwrap()),
    ));
    let mut s = NcentralSettings::new(&sim.url());
    s.http.attempts = 1;
    let checks = NcentralConnector::new(&s, c.clone())
        .unwrap()
        .verify()
        .await;
    let mfa = failed(&checks, "mfa_not_blocking");
    assert!(mfa.reason.contains("2100"), "{}", mfa.reason);
    assert!(mfa.remedy.as_deref().unwrap().contains("MFA off"));

    // The same user without MFA passes.
    let sim = start(sim_cfg(10, Faults::none())).await;
    let info = sim.connection_info();
    c.jwt = SecretString::new(jwt(&sim));
    c.login = Some((
        info["username"].as_str().unwrap().to_owned(),
        SecretString::new(info["password"].as_str().unwrap()),
    ));
    let s = NcentralSettings::new(&sim.url());
    let checks = NcentralConnector::new(&s, c).unwrap().verify().await;
    assert!(
        checks.iter().all(|c| c.status == CheckStatus::Pass),
        "{checks:#?}"
    );
}

#[tokio::test]
async fn servers_before_2023_9_are_read_over_soap() {
    let mut cfg = sim_cfg(300, Faults::none());
    cfg.version = "2023.4.1.7".into();
    let sim = start(cfg).await;
    let c = connector(&sim, &jwt(&sim));
    let checks = c.verify().await;
    assert!(
        checks.iter().all(|c| c.status == CheckStatus::Pass),
        "{checks:#?}"
    );
    let version = checks.iter().find(|c| c.id == "server_version").unwrap();
    assert!(version.reason.contains("SOAP"));
    let clients = c.list_clients().await.unwrap();
    assert_eq!(
        clients
            .iter()
            .filter(|c| c.kind == RmmClientKind::Company)
            .count(),
        15
    );
    assert!(
        clients
            .iter()
            .filter(|c| c.kind == RmmClientKind::Site)
            .all(|s| s.parent_external_id.is_some())
    );
    let checks = connector(&sim, "wrong").verify().await;
    assert!(failed(&checks, "jwt_accepted").reason.contains("2100"));
}
