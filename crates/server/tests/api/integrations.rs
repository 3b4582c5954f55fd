//! Integrations over the real API against the simulated RMMs over real HTTP: create, secrets
//! write-only, verification, NinjaOne consent through the simulator's authorize page, health, TOTP.
use crate::both;
use crate::helpers::{PASSWORD, TestApp};
use rmmbridge_core::Role;
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use serde_json::{Value, json};

fn fleet() -> FleetConfig {
    FleetConfig {
        seed: 5,
        customers: 6,
        devices: 40,
        ..Default::default()
    }
}

async fn ncentral_sim() -> NcentralSim {
    NcentralSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NcentralConfig {
            fleet: fleet(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn ninja_sim() -> NinjaSim {
    NinjaSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NinjaConfig {
            fleet: fleet(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn ncentral_body(sim: &NcentralSim, jwt: &str) -> Value {
    let info = sim.connection_info();
    json!({
        "kind": "ncentral", "name": "Acme N-central",
        "settings": {"server_url": sim.url(), "username": info["username"]},
        "secrets": {"jwt": jwt, "password": info["password"], "mfa_secret": info["mfa_secret"]},
        "options": {"sites_as_clients": true}
    })
}

fn ninja_body(sim: &NinjaSim) -> Value {
    let info = sim.connection_info();
    json!({
        "kind": "ninjaone", "name": "Acme NinjaOne",
        "settings": {"instance": sim.url(), "client_id": info["client_id"], "script_id": info["script_id"].to_string()},
        "secrets": {"client_secret": info["client_secret"]},
    })
}

fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {v:#}"))
}

both!(
    ncentral_create_verify_and_secrets_stay_write_only,
    |app: TestApp| async move {
        let sim = ncentral_sim().await;
        let jwt = sim.connection_info()["jwt"].as_str().unwrap().to_owned();
        let (_, token) = app.user_with_token("ada", Role::Admin).await;
        let api = app.api(&token);

        // A wrong body gets a named error and creates nothing.
        let mut bad = ncentral_body(&sim, &jwt);
        bad["settings"]["server_url"] = json!("http://nc.example.com");
        let r = api
            .post("/api/v1/integrations")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let msg = r.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.contains("loopback"), "{msg}");
        let mut no_jwt = ncentral_body(&sim, &jwt);
        no_jwt["secrets"] = json!({});
        let r = api
            .post("/api/v1/integrations")
            .json(&no_jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("secrets.jwt is required"));
        let all: Value = api
            .get("/api/v1/integrations")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.as_array().unwrap().len(), 0);

        let r = api
            .post("/api/v1/integrations")
            .json(&ncentral_body(&sim, &jwt))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created = r.text().await.unwrap();
        assert!(!created.contains(&jwt), "the JWT never comes back");
        let created: Value = serde_json::from_str(&created).unwrap();
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["secrets"]["jwt"]["set"], true);
        assert_eq!(created["secrets"]["mfa_secret"]["set"], true);
        assert_eq!(created["options"]["sites_as_clients"], true);
        assert_eq!(created["options"]["device_sync"], true);
        assert_eq!(created["status"], "new");

        let v: Value = api
            .post(&format!("/api/v1/integrations/{id}/verify"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["ok"], true, "{v:#}");
        for id in [
            "tls_certificate",
            "server_reachable",
            "server_version",
            "jwt_accepted",
            "customers_visible",
            "devices_visible",
            "mfa_not_blocking",
        ] {
            assert_eq!(check(&v, id)["status"], "pass", "{id}: {v:#}");
        }
        let got: Value = api
            .get(&format!("/api/v1/integrations/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["status"], "healthy");
        assert_eq!(got["health"]["consecutive_failures"], 0);
        assert_eq!(got["health"]["authentications"], 1);
        assert!(
            got["health"]["access_expires_in_s"].as_i64().unwrap() > 3000,
            "{got:#}"
        );
        assert!(got["health"]["secret_age_s"]["jwt"].as_i64().unwrap() < 60);

        // The current TOTP code of the stored MFA secret, as an authenticator app would show it.
        let code: Value = api
            .get(&format!("/api/v1/integrations/{id}/totp"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let expect = rmmbridge_core::totp::current_code(
            sim.connection_info()["mfa_secret"].as_str().unwrap(),
            unix,
        )
        .unwrap();
        assert_eq!(code["code"].as_str().unwrap().len(), 6);
        if code["valid_for_secs"].as_u64().unwrap() > 2 && expect.valid_for_secs > 2 {
            assert_eq!(code["code"], expect.code.as_str());
        }

        // A regenerated JWT: verification names the failing check, health counts the failure.
        let r = api
            .req(
                reqwest::Method::PATCH,
                &format!("/api/v1/integrations/{id}"),
            )
            .json(&json!({"secrets": {"jwt": "eyJ.regenerated"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = api
            .post(&format!("/api/v1/integrations/{id}/verify"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(check(&v, "jwt_accepted")["status"], "fail");
        assert!(
            check(&v, "jwt_accepted")["remedy"]
                .as_str()
                .unwrap()
                .contains("User-API token")
        );
        let got: Value = api
            .get(&format!("/api/v1/integrations/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["status"], "failing");
        assert_eq!(got["health"]["consecutive_failures"], 1);
        assert!(
            got["status_message"]
                .as_str()
                .unwrap()
                .contains("User-API token")
        );

        // Secrets never reach the audit log either.
        let audit = api
            .get("/api/v1/audit")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            audit.contains("integration.create")
                && audit.contains("integration.verify")
                && audit.contains("integration.update")
        );
        assert!(!audit.contains(&jwt) && !audit.contains("eyJ.regenerated"));
        assert!(!audit.contains(sim.connection_info()["password"].as_str().unwrap()));

        // Viewers read, but may not change or verify.
        let (_, viewer) = app.user_with_token("vic", Role::Viewer).await;
        let v = app.api(&viewer);
        assert_eq!(
            v.get(&format!("/api/v1/integrations/{id}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            v.post(&format!("/api/v1/integrations/{id}/verify"))
                .send()
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(
            v.req(
                reqwest::Method::DELETE,
                &format!("/api/v1/integrations/{id}")
            )
            .send()
            .await
            .unwrap()
            .status(),
            403
        );

        let r = api
            .req(
                reqwest::Method::DELETE,
                &format!("/api/v1/integrations/{id}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(
            api.get(&format!("/api/v1/integrations/{id}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
);

both!(
    unsaved_settings_are_verified_without_storing,
    |app: TestApp| async move {
        let nc = ncentral_sim().await;
        let nj = ninja_sim().await;
        let (_, token) = app.user_with_token("ada", Role::Admin).await;
        let api = app.api(&token);

        let v: Value = api
            .post("/api/v1/integrations/verify")
            .json(&ncentral_body(&nc, "eyJ.wrong"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["ok"], false);
        assert!(
            check(&v, "jwt_accepted")["reason"]
                .as_str()
                .unwrap()
                .contains("refused the User-API token")
        );

        let v: Value = api
            .post("/api/v1/integrations/verify")
            .json(&ninja_body(&nj))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["ok"], true, "{v:#}");
        assert_eq!(check(&v, "token_obtained")["status"], "pass");
        assert_eq!(check(&v, "consent_given")["status"], "warn");
        let mut wrong = ninja_body(&nj);
        wrong["secrets"]["client_secret"] = json!("not-it");
        let v: Value = api
            .post("/api/v1/integrations/verify")
            .json(&wrong)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(check(&v, "token_obtained")["status"], "fail");
        assert!(
            check(&v, "token_obtained")["reason"]
                .as_str()
                .unwrap()
                .contains("client id or secret")
        );

        let all: Value = api
            .get("/api/v1/integrations")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            all.as_array().unwrap().len(),
            0,
            "verification stores nothing"
        );
    }
);

/// Walks the simulator's authorize page like a browser and returns where it sends us back.
async fn approve_on_ninja(authorization_url: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(authorization_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let url = url::Url::parse(authorization_url).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("decision".into(), "allow".into()));
    let r = browser
        .post(format!(
            "{}://{}/ws/oauth/authorize",
            url.scheme(),
            url.host_str().unwrap().to_owned() + ":" + &url.port().unwrap().to_string()
        ))
        .form(&form)
        .send()
        .await
        .unwrap();
    r.headers()["location"].to_str().unwrap().to_owned()
}

both!(
    ninja_consent_is_single_use_bound_to_the_session_and_stored,
    |app: TestApp| async move {
        let sim = ninja_sim().await;
        app.add_user("ada", Role::Admin).await;
        app.add_user("bob", Role::Admin).await;
        let (browser, csrf) = app.sign_in("ada", PASSWORD).await;
        let r = browser
            .post(app.url("/api/v1/integrations"))
            .header("x-csrf-token", &csrf)
            .json(&ninja_body(&sim))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.unwrap();
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["status"], "needs_consent");
        assert_eq!(created["redirect_uri"], app.url("/consent-callback"));

        // Before consent, verification says exactly that.
        let v: Value = browser
            .post(app.url(&format!("/api/v1/integrations/{id}/verify")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(check(&v, "consent_given")["status"], "fail");

        let start: Value = browser
            .post(app.url(&format!("/api/v1/integrations/{id}/consent")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let auth_url = start["authorization_url"].as_str().unwrap();
        assert!(auth_url.contains("code_challenge_method=S256") && auth_url.contains("state="));
        let back = approve_on_ninja(auth_url).await;
        assert!(back.starts_with(&app.url("/consent-callback")), "{back}");

        // Another user's browser cannot complete it, and does not use it up.
        let (other, _) = app.sign_in("bob", PASSWORD).await;
        let r = other.get(&back).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("another user"));
        // Nor can a browser without a session.
        let r = app.browser().get(&back).send().await.unwrap();
        assert_eq!(r.status(), 403);

        let r = browser.get(&back).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("Consent stored"));
        // A reload of the callback page says it is done, and changes nothing.
        let r = browser.get(&back).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("already completed"));

        let got = browser
            .get(app.url(&format!("/api/v1/integrations/{id}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["status"], "healthy");
        assert_eq!(got["secrets"]["consent"]["set"], true);
        assert_eq!(got["health"]["consented_by"], "ada");
        assert!(got["health"]["refresh_token_age_s"].as_i64().unwrap() < 60);

        // Verification now refreshes with the stored token; the rotated token is persisted.
        let v: Value = browser
            .post(app.url(&format!("/api/v1/integrations/{id}/verify")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["ok"], true, "{v:#}");
        assert_eq!(check(&v, "script_item")["status"], "pass");
        let got: Value = browser
            .get(app.url(&format!("/api/v1/integrations/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(got["health"]["refreshes"].as_i64().unwrap() >= 1, "{got:#}");

        // A revoked refresh token: "needs consent", with the reason, and no retry loop.
        reqwest::Client::new()
            .post(format!("{}/_sim/revoke-refresh-tokens", sim.url()))
            .send()
            .await
            .unwrap();
        app.state.connectors.forget(id);
        let v: Value = browser
            .post(app.url(&format!("/api/v1/integrations/{id}/verify")))
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(check(&v, "token_obtained")["status"], "fail");
        let got: Value = browser
            .get(app.url(&format!("/api/v1/integrations/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["status"], "needs_consent", "{got:#}");

        // An unknown state is refused with what to do.
        let r = browser
            .get(app.url("/consent-callback?state=forged&code=x"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("Provide consent"));
    }
);
