//! The NinjaOne simulator over real HTTP: OAuth flows, scopes, paging, df, scripts, webhooks, faults.
use base64::Engine;
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use rmmbridge_sim::script::encode_payload;
use rmmbridge_sim::server::Faults;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;

const REDIRECT: &str = "http://127.0.0.1:9/consent-callback";

fn cfg(devices: u32) -> NinjaConfig {
    NinjaConfig {
        fleet: FleetConfig {
            seed: 4,
            customers: 12,
            devices,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn start(cfg: NinjaConfig) -> NinjaSim {
    NinjaSim::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Walks the approval page as a browser would and returns the redirect's query.
async fn consent(
    sim: &NinjaSim,
    scope: &str,
    challenge: Option<&str>,
    decision: &str,
) -> HashMap<String, String> {
    let c = no_redirects();
    let info = sim.connection_info();
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", info["client_id"].as_str().unwrap()),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-123"),
    ];
    if let Some(ch) = challenge {
        q.push(("code_challenge", ch));
        q.push(("code_challenge_method", "S256"));
    }
    let page = c
        .get(format!("{}/ws/oauth/authorize", sim.url()))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"allow\"") && html.contains(scope));
    let mut form = q.clone();
    form.push(("decision", decision));
    let r = c
        .post(format!("{}/ws/oauth/authorize", sim.url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    query_of(&location)
}

async fn token(sim: &NinjaSim, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/ws/oauth/token", sim.url()))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(sim: &NinjaSim, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", sim.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn s256(v: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()))
}

async fn user_tokens(sim: &NinjaSim, scope: &str) -> Value {
    let info = sim.connection_info();
    let q = consent(sim, scope, None, "allow").await;
    let (status, body) = token(
        sim,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", info["client_id"].as_str().unwrap()),
            ("client_secret", info["client_secret"].as_str().unwrap()),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn authorization_code_with_pkce_and_single_use_codes() {
    let sim = start(cfg(50)).await;
    let info = sim.connection_info();
    let client_id = info["client_id"].as_str().unwrap();
    let verifier = "a-long-random-verifier-0123456789-abcdefghijklmnop";
    let q = consent(
        &sim,
        "monitoring management offline_access",
        Some(&s256(verifier)),
        "allow",
    )
    .await;
    assert_eq!(q["state"], "st-123");
    let code = q["code"].clone();

    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The failed attempt used the code up.
    let (status, _) = token(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 400);

    let q = consent(
        &sim,
        "monitoring offline_access",
        Some(&s256(verifier)),
        "allow",
    )
    .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    let (status, body) = token(&sim, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let rt = body["refresh_token"].as_str().unwrap();
    assert!(
        rt.split_once('.')
            .is_some_and(|(u, _)| uuid::Uuid::parse_str(u).is_ok()),
        "{rt}"
    );
    let (status, body) = token(&sim, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a code is single use"
    );

    let denied = consent(&sim, "monitoring", None, "deny").await;
    assert_eq!(denied["error"], "access_denied");
    let r = no_redirects()
        .get(format!(
            "{}/ws/oauth/authorize?response_type=code&client_id=nope&redirect_uri={REDIRECT}",
            sim.url()
        ))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ws/oauth/error?error=unauthorized_client")
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_can_be_revoked() {
    let sim = start(cfg(50)).await;
    let info = sim.connection_info();
    let (id, secret) = (
        info["client_id"].as_str().unwrap(),
        info["client_secret"].as_str().unwrap(),
    );
    let first = user_tokens(&sim, "monitoring offline_access").await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", secret),
            ("refresh_token", rt1),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2, "rotated");
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", secret),
            ("refresh_token", rt1),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the old one is gone"
    );
    reqwest::Client::new()
        .post(format!("{}/_sim/revoke-refresh-tokens", sim.url()))
        .send()
        .await
        .unwrap();
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", secret),
            ("refresh_token", rt2),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let without = user_tokens(&sim, "monitoring").await;
    assert!(
        without.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let (status, body) = token(&sim, &[("grant_type", "password"), ("client_id", id)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, _) = token(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn scopes_user_context_and_expiry_are_enforced() {
    let mut c = cfg(50);
    c.reject_offline_access_for_client_credentials = true;
    let sim = start(c).await;
    let info = sim.connection_info();
    let (id, secret) = (
        info["client_id"].as_str().unwrap(),
        info["client_secret"].as_str().unwrap(),
    );
    let (status, body) = token(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "monitoring offline_access"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "the EU quirk"
    );
    let (_, app) = token(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "monitoring management"),
        ],
    )
    .await;
    let app_token = app["access_token"].as_str().unwrap();
    let (_, devs) = get(&sim, app_token, "/v2/devices").await;
    let dev = devs[0]["id"].as_i64().unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/v2/device/{dev}/script/run", sim.url()))
        .bearer_auth(app_token)
        .json(&json!({"type": "SCRIPT", "id": sim.script_id(), "runAs": "system"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "user_context_required"
    );

    let user = user_tokens(&sim, "monitoring offline_access").await;
    let access = user["access_token"].as_str().unwrap();
    let r = reqwest::Client::new()
        .put(format!("{}/v2/webhook", sim.url()))
        .bearer_auth(access)
        .json(&json!({"url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "insufficient_privileges"
    );
    assert_eq!(
        get(&sim, access, "/api/v2/organizations").await.0,
        200,
        "both prefixes"
    );
    sim.common().clock.advance(3601);
    let (status, body) = get(&sim, access, "/v2/organizations").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, fresh) = token(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", secret),
            ("refresh_token", user["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get(
            &sim,
            fresh["access_token"].as_str().unwrap(),
            "/v2/organizations"
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn device_pages_by_after_reach_every_device_once() {
    let sim = start(cfg(1000)).await;
    let access = user_tokens(&sim, "monitoring").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut after = 0;
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    loop {
        let (status, page) = get(
            &sim,
            &access,
            &format!("/v2/devices-detailed?pageSize=100&after={after}"),
        )
        .await;
        assert_eq!(status, 200);
        let items = page.as_array().unwrap();
        pages += 1;
        for d in items {
            assert!(seen.insert(d["id"].as_i64().unwrap()));
            assert!(
                d["lastContact"].as_f64().unwrap().fract() > 0.0,
                "float epoch seconds"
            );
            assert!(
                d.get("displayName").is_none(),
                "unset fields are omitted, never null"
            );
            if d["nodeClass"] != "NMS_SWITCH" && d["nodeClass"] != "NMS_PRINTER" {
                assert_eq!(d["deviceType"], "AgentDevice");
            }
        }
        if items.len() < 100 {
            break;
        }
        after = items.last().unwrap()["id"].as_i64().unwrap();
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(pages, 11, "ten full pages and an empty one");
    assert_eq!(get(&sim, &access, "/v2/devices?pageSize=0").await.0, 400);
    let (_, orgs) = get(&sim, &access, "/v2/organizations?pageSize=5&after=5").await;
    assert_eq!(
        orgs.as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10]
    );
    let (_, detailed) = get(&sim, &access, "/v2/organizations-detailed?pageSize=1").await;
    assert!(!detailed[0]["locations"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_df_filter_selects_devices() {
    let sim = start(cfg(600)).await;
    let access = user_tokens(&sim, "monitoring").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let all = |df: &str| {
        let (sim, access) = (&sim, access.clone());
        let q = serde_urlencoded::to_string([("df", df), ("pageSize", "1000")]).unwrap();
        async move { get(sim, &access, &format!("/v2/devices?{q}")).await }
    };
    let (_, every) = all("").await;
    let every = every.as_array().unwrap().clone();
    let (_, org1) = all("org = 1").await;
    let org1 = org1.as_array().unwrap();
    assert!(!org1.is_empty() && org1.iter().all(|d| d["organizationId"] == 1));
    assert_eq!(
        org1.len(),
        every.iter().filter(|d| d["organizationId"] == 1).count()
    );
    let (_, some) = all("class in (MAC,LINUX_SERVER)").await;
    assert!(
        some.as_array()
            .unwrap()
            .iter()
            .all(|d| d["nodeClass"] == "MAC" || d["nodeClass"] == "LINUX_SERVER")
    );
    let (_, offline) = all("offline").await;
    let n_off = every.iter().filter(|d| d["offline"] == true).count();
    assert_eq!(offline.as_array().unwrap().len(), n_off);
    let (_, both) = all("org = 1 AND online").await;
    assert!(
        both.as_array()
            .unwrap()
            .iter()
            .all(|d| d["organizationId"] == 1 && d["offline"] == false)
    );
    let (status, body) = all("colour = red").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_script_run_is_recorded_and_calls_back() {
    let sim = start(cfg(100)).await;
    let access = user_tokens(&sim, "monitoring management").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cb = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (_, devs) = get(&sim, &access, "/v2/devices?df=online").await;
    let dev = devs[0]["id"].as_i64().unwrap();
    let params = encode_payload(&json!({"echo": "done", "exit": 1, "callback": cb, "run": "r-9"}));
    let r = reqwest::Client::new().post(format!("{}/v2/device/{dev}/script/run", sim.url())).bearer_auth(&access)
        .json(&json!({"type": "SCRIPT", "id": sim.script_id(), "parameters": params, "runAs": "system"})).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty(), "no body, no job id");
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got["run"].as_str(), got["exit_code"].as_i64()),
        (Some("r-9"), Some(1))
    );
    let (_, acts) = get(
        &sim,
        &access,
        &format!("/v2/device/{dev}/activities?activityType=ACTIONSET"),
    )
    .await;
    let codes: Vec<_> = acts["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["COMPLETED", "START_REQUESTED"], "newest first");
    assert_eq!(acts["activities"][0]["activityResult"], "FAILURE");
    let newest = acts["activities"][0]["id"].as_i64().unwrap();
    let (_, none_newer) = get(&sim, &access, &format!("/v2/activities?newerThan={newest}")).await;
    assert!(none_newer["activities"].as_array().unwrap().is_empty());
    let bad = reqwest::Client::new()
        .post(format!("{}/v2/device/{dev}/script/run", sim.url()))
        .bearer_auth(&access)
        .json(&json!({"type": "SCRIPT", "id": 999}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn webhooks_deliver_node_changes_with_their_headers() {
    let sim = start(cfg(100)).await;
    let access = user_tokens(&sim, "monitoring management").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Option<String>, Value)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(v): axum::Json<Value>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((
                        headers
                            .get("x-hook-secret")
                            .map(|h| h.to_str().unwrap().to_owned()),
                        v,
                    ));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = reqwest::Client::new().put(format!("{}/v2/webhook", sim.url())).bearer_auth(&access)
        .json(&json!({"url": hook, "headers": [{"name": "X-Hook-Secret", "value": "s3cr3t"}], "activities": {"SYSTEM": ["NODE_CREATED", "NODE_DELETED"]}}))
        .send().await.unwrap();
    assert_eq!(r.status(), 204);
    let added: Value = reqwest::Client::new()
        .post(format!("{}/_sim/devices", sim.url()))
        .json(&json!({"client_id": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (secret, body) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.as_deref(), Some("s3cr3t"));
    assert_eq!(body["statusCode"], "NODE_CREATED");
    assert_eq!(body["deviceId"], added["id"]);
    assert_eq!(body["device"]["references"]["organization"]["id"], 2);
    // Updates are filtered out; deletes arrive.
    let id = added["id"].as_i64().unwrap();
    reqwest::Client::new()
        .patch(format!("{}/_sim/devices/{id}", sim.url()))
        .json(&json!({"hostname": "X"}))
        .send()
        .await
        .unwrap();
    reqwest::Client::new()
        .delete(format!("{}/_sim/devices/{id}", sim.url()))
        .send()
        .await
        .unwrap();
    let (_, body) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["statusCode"], "NODE_DELETED");
    let r = reqwest::Client::new()
        .delete(format!("{}/v2/webhook", sim.url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(sim.webhook().is_none());
}

#[tokio::test]
async fn faults_rate_limits_malformed_pages_and_token_expiry() {
    let mut c = cfg(300);
    c.faults = Faults {
        rate_limit: 1.0,
        retry_after_s: Some(3),
        ..Faults::none()
    };
    let sim = start(c).await;
    let access = user_tokens(&sim, "monitoring").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reqwest::Client::new()
        .get(format!("{}/v2/devices", sim.url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    assert_eq!(r.json::<Value>().await.unwrap()["resultCode"], "429");

    let mut c = cfg(300);
    c.faults = Faults {
        malformed_page: Some(2),
        expire_token_after: Some(4),
        ..Faults::none()
    };
    let sim = start(c).await;
    let access = user_tokens(&sim, "monitoring").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        get(&sim, &access, "/v2/devices?pageSize=100")
            .await
            .1
            .is_array()
    );
    let (status, body) = get(&sim, &access, "/v2/devices?pageSize=100&after=100").await;
    assert_eq!(status, 200);
    assert!(body.is_string(), "page 2 is malformed");
    assert_eq!(
        get(&sim, &access, "/v2/devices?pageSize=100&after=200")
            .await
            .0,
        200
    );
    assert_eq!(
        get(&sim, &access, "/v2/devices?pageSize=100&after=200")
            .await
            .0,
        401,
        "the token expired mid-scan"
    );
}

#[tokio::test]
async fn library_changes_fire_webhooks_and_resets_break_connections() {
    let mut c = cfg(100);
    c.faults = Faults {
        resets: 1.0,
        ..Faults::none()
    };
    let sim = start(c).await;
    let access = user_tokens(&sim, "monitoring management").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let broken = match reqwest::Client::new()
        .get(format!("{}/v2/devices", sim.url()))
        .bearer_auth(&access)
        .send()
        .await
    {
        Err(e) => e.is_request() || e.is_body(),
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(broken, "the connection breaks before a complete response");

    let new_id = sim
        .change(|f, now| {
            let org = f.companies().next().unwrap().id;
            let (id, ch) = f.add_device(org, None, now)?;
            Ok((id, vec![ch]))
        })
        .unwrap();
    let acts = sim.activities();
    let last = acts.last().unwrap();
    assert_eq!(
        (last["statusCode"].as_str(), last["deviceId"].as_i64()),
        (Some("NODE_CREATED"), Some(new_id))
    );
}

#[tokio::test]
async fn a_burst_of_server_errors_passes() {
    let mut c = cfg(100);
    c.faults = Faults {
        server_errors: 1.0,
        burst: 3,
        ..Faults::none()
    };
    let sim = start(c).await;
    let access = user_tokens(&sim, "monitoring").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&sim, &access, "/v2/organizations").await.0, 503);
    // No new bursts start; the one under way runs its length.
    let mut f = sim.common().faults();
    f.server_errors = 0.0;
    *sim.common().faults.write().unwrap() = f;
    assert_eq!(get(&sim, &access, "/v2/organizations").await.0, 503);
    assert_eq!(get(&sim, &access, "/v2/organizations").await.0, 503);
    assert_eq!(get(&sim, &access, "/v2/organizations").await.0, 200);
}
