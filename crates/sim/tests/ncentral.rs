//! The N-central simulator over real HTTP: auth, paging, org units, assets, tasks, SOAP, faults.
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{LOCKED_ITEM_ID, NcentralConfig, NcentralSim};
use rmmbridge_sim::script::encode_payload;
use rmmbridge_sim::server::Faults;
use serde_json::{Value, json};

async fn start(cfg: NcentralConfig) -> NcentralSim {
    NcentralSim::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn small() -> NcentralConfig {
    NcentralConfig {
        fleet: FleetConfig {
            seed: 4,
            customers: 12,
            devices: 1000,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn login(sim: &NcentralSim) -> (String, String) {
    let r: Value = reqwest::Client::new()
        .post(format!("{}/api/auth/authenticate", sim.url()))
        .bearer_auth(sim.connection_info()["jwt"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        r["tokens"]["access"]["token"].as_str().unwrap().into(),
        r["tokens"]["refresh"]["token"].as_str().unwrap().into(),
    )
}

async fn get(sim: &NcentralSim, token: &str, path: &str) -> (u16, Value) {
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

#[tokio::test]
async fn the_jwt_buys_access_and_refresh_tokens_with_their_expiry() {
    let sim = start(small()).await;
    let c = reqwest::Client::new();
    let r: Value = c
        .post(format!("{}/api/auth/authenticate", sim.url()))
        .bearer_auth(sim.connection_info()["jwt"].as_str().unwrap())
        .header("X-ACCESS-EXPIRY-OVERRIDE", "30m")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["tokens"]["access"]["expirySeconds"], 1800);
    assert_eq!(r["tokens"]["refresh"]["expirySeconds"], 90_000);
    assert_eq!(r["tokens"]["refresh"]["type"], "Body");

    let too_long = c
        .post(format!("{}/api/auth/authenticate", sim.url()))
        .bearer_auth(sim.connection_info()["jwt"].as_str().unwrap())
        .header("X-ACCESS-EXPIRY-OVERRIDE", "2h")
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);

    let wrong = c
        .post(format!("{}/api/auth/authenticate", sim.url()))
        .bearer_auth("eyJ.wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("[ID="),
        "{body}"
    );

    // Refresh takes the raw token as text/plain; a refresh token is good for one use.
    let refresh = r["tokens"]["refresh"]["token"].as_str().unwrap();
    let send_refresh = || {
        c.post(format!("{}/api/auth/refresh", sim.url()))
            .header("content-type", "text/plain")
            .body(refresh.to_owned())
            .send()
    };
    let again: Value = send_refresh().await.unwrap().json().await.unwrap();
    let access = again["tokens"]["access"]["token"].as_str().unwrap();
    assert_eq!(get(&sim, access, "/api/auth/validate").await.0, 200);
    assert_eq!(send_refresh().await.unwrap().status(), 401);
}

#[tokio::test]
async fn tokens_expire_with_the_clock_and_a_reboot_drops_them() {
    let sim = start(small()).await;
    let (access, _) = login(&sim).await;
    assert_eq!(get(&sim, &access, "/api/customers").await.0, 200);
    sim.common().clock.advance(3601);
    let (status, body) = get(&sim, &access, "/api/customers").await;
    assert_eq!(status, 401, "{body}");
    let (access, _) = login(&sim).await;
    assert_eq!(get(&sim, &access, "/api/customers").await.0, 200);
    reqwest::Client::new()
        .post(format!("{}/_sim/reboot", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&sim, &access, "/api/customers").await.0, 401);
    assert_eq!(
        get(&sim, "", "/api/health").await.0,
        200,
        "health needs no token"
    );
}

#[tokio::test]
async fn device_pages_walk_every_device_once_with_the_envelope() {
    let sim = start(small()).await;
    let (access, _) = login(&sim).await;
    let mut seen = std::collections::HashSet::new();
    let mut page = 1;
    loop {
        let (status, body) = get(
            &sim,
            &access,
            &format!("/api/devices?pageNumber={page}&pageSize=300"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["totalItems"], 1000);
        assert_eq!(body["totalPages"], 4);
        assert_eq!(body["pageNumber"], page);
        assert!(
            body["_links"]["firstPage"]
                .as_str()
                .unwrap()
                .starts_with("/api/devices?"),
            "relative links"
        );
        for d in body["data"].as_array().unwrap() {
            assert!(d["deviceId"].is_i64(), "device ids are integers");
            assert!(d["customerId"].is_i64());
            assert!(seen.insert(d["deviceId"].as_i64().unwrap()));
        }
        if page >= body["totalPages"].as_u64().unwrap() as usize {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(get(&sim, &access, "/api/devices?pageSize=0").await.0, 400);
    assert_eq!(
        get(&sim, &access, "/api/devices?pageSize=1001").await.0,
        400
    );
    let (_, all) = get(&sim, &access, "/api/devices?pageSize=-1").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1000);
    let (_, desc) = get(&sim, &access, "/api/devices?pageSize=1&sortOrder=desc").await;
    assert_eq!(desc["data"][0]["deviceId"], 1_000_000_999);
}

#[tokio::test]
async fn customers_sites_and_org_units_use_string_ids() {
    let sim = start(small()).await;
    let (access, _) = login(&sim).await;
    let (_, customers) = get(&sim, &access, "/api/customers?pageSize=1000").await;
    let list = customers["data"].as_array().unwrap();
    assert_eq!(list.len(), 12);
    assert!(
        list.iter()
            .all(|c| c["customerId"].is_string() && c["parentId"] == "50")
    );
    let (_, sites) = get(&sim, &access, "/api/sites?pageSize=1000").await;
    let site = &sites["data"][0];
    let parent = site["parentId"].as_str().unwrap();
    let (_, under) = get(&sim, &access, &format!("/api/customers/{parent}/sites")).await;
    assert!(
        under["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["siteId"] == site["siteId"])
    );
    let (_, units) = get(&sim, &access, "/api/org-units?pageSize=1000").await;
    let types: std::collections::HashSet<_> = units["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["orgUnitType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["SO", "CUSTOMER", "SITE"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let (status, body) = get(&sim, &access, "/api/customers/999999").await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("was not found"));
    // Devices of a customer include those in its sites.
    let site_id = site["siteId"].as_str().unwrap();
    let (_, in_site) = get(
        &sim,
        &access,
        &format!("/api/org-units/{site_id}/devices?pageSize=1000"),
    )
    .await;
    let (_, in_customer) = get(
        &sim,
        &access,
        &format!("/api/org-units/{parent}/devices?pageSize=1000"),
    )
    .await;
    let n_site = in_site["totalItems"].as_u64().unwrap();
    assert!(in_customer["totalItems"].as_u64().unwrap() >= n_site);
    let (_, selected) = get(
        &sim,
        &access,
        &format!("/api/devices?select=customerId=={parent}&pageSize=1000"),
    )
    .await;
    assert_eq!(selected["totalItems"], in_customer["totalItems"]);
}

#[tokio::test]
async fn assets_are_strings_with_none_for_empty() {
    let sim = start(small()).await;
    let (access, _) = login(&sim).await;
    let (_, page) = get(&sim, &access, "/api/devices?pageSize=1000").await;
    let mut saw_none = false;
    for d in page["data"].as_array().unwrap().iter().take(200) {
        let id = d["deviceId"].as_i64().unwrap();
        let (status, assets) = get(&sim, &access, &format!("/api/devices/{id}/assets")).await;
        assert_eq!(status, 200);
        let cs = &assets["data"]["computersystem"];
        assert!(cs["serialnumber"].is_string());
        saw_none |= cs["serialnumber"] == "None";
        let mac = assets["data"]["networkadapter"]["list"][0]["macaddress"]
            .as_str()
            .unwrap();
        assert_eq!(
            mac,
            mac.to_lowercase(),
            "N-central prints MACs in lower case"
        );
    }
    assert!(saw_none, "some devices have no serial");
    assert_eq!(get(&sim, &access, "/api/devices/5").await.0, 404);
}

#[tokio::test]
async fn a_direct_task_runs_the_script_and_reports_its_output() {
    let sim = start(small()).await;
    let (access, _) = login(&sim).await;
    // A callback receiver, as an rmmbridge server would be.
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

    let (_, page) = get(&sim, &access, "/api/devices?pageSize=1000").await;
    let d = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceStatus"]["state"] == 0)
        .unwrap()
        .clone();
    let payload =
        encode_payload(&json!({"echo": "inventory ok", "exit": 0, "callback": cb, "run": "run-7"}));
    let body = json!({"name": "rmmbridge run 7", "itemId": sim.connection_info()["script_item_id"], "taskType": "Script",
        "customerId": d["customerId"], "deviceId": d["deviceId"], "credential": {"type": "LocalSystem", "username": null, "password": null},
        "parameters": [{"name": "CommandLine", "value": payload}]});
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/api/scheduled-tasks/direct", sim.url()))
        .bearer_auth(&access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let task = created["data"]["taskId"].as_i64().unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got["run"], "run-7");
    assert!(got["output"].as_str().unwrap().ends_with("inventory ok"));
    let (_, status) = get(
        &sim,
        &access,
        &format!("/api/scheduled-tasks/{task}/status"),
    )
    .await;
    assert_eq!(status["data"]["statusCounts"]["Completed"], 1);
    let (_, details) = get(
        &sim,
        &access,
        &format!("/api/scheduled-tasks/{task}/status/details"),
    )
    .await;
    assert_eq!(details["data"][0]["status"], "Success");
    assert!(
        details["data"][0]["output"]
            .as_str()
            .unwrap()
            .contains(d["longName"].as_str().unwrap())
    );

    // The same name again, an item without "Enable API", a bad task type.
    let dup = c
        .post(format!("{}/api/scheduled-tasks/direct", sim.url()))
        .bearer_auth(&access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let mut locked = body.clone();
    locked["name"] = json!("locked");
    locked["itemId"] = json!(LOCKED_ITEM_ID);
    let r = c
        .post(format!("{}/api/scheduled-tasks/direct", sim.url()))
        .bearer_auth(&access)
        .json(&locked)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("ScriptNotRunnableException")
    );
    let mut bad = body.clone();
    bad["name"] = json!("bad");
    bad["taskType"] = json!("Shell");
    let r = c
        .post(format!("{}/api/scheduled-tasks/direct", sim.url()))
        .bearer_auth(&access)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

fn soap_body(op: &str, user: &str, pass: &str, settings: &[(&str, &[&str])]) -> String {
    let mut s = String::new();
    for (k, vs) in settings {
        s.push_str(&format!("<ei2:settings><ei2:key>{k}</ei2:key>"));
        for v in *vs {
            s.push_str(&format!("<ei2:value>{v}</ei2:value>"));
        }
        s.push_str("</ei2:settings>");
    }
    format!(
        r#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:ei2="http://ei2.nobj.nable.com/"><soap:Header/><soap:Body><ei2:{op}><ei2:username>{user}</ei2:username><ei2:password>{pass}</ei2:password>{s}</ei2:{op}></soap:Body></soap:Envelope>"#
    )
}

async fn soap(sim: &NcentralSim, body: String) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{}/dms2/services2/ServerEI2", sim.url()))
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn soap_serves_old_servers_with_jwt_or_password_but_not_mfa() {
    let mut cfg = small();
    cfg.version = "2023.4.1.7".into();
    let sim = start(cfg.clone()).await;
    let (_, access) = (0, "x");
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/authenticate", sim.url()))
        .bearer_auth(&cfg.jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no REST API before 2023.9");
    let _ = access;

    let (status, version) = soap(&sim, soap_body("versionInfoGet", "", "", &[])).await;
    assert_eq!(status, 200);
    assert!(
        version.contains("Installation: Deployment Product Version")
            && version.contains("2023.4.1.7")
    );

    let (status, customers) = soap(
        &sim,
        soap_body("customerList", "", &cfg.jwt, &[("listSOs", &["false"])]),
    )
    .await;
    assert_eq!(status, 200, "{customers}");
    assert!(customers.contains("<key>customer.parentid</key><value>50</value>"));
    let site_parent = customers
        .matches("<key>customer.parentid</key><value>1")
        .count();
    assert!(
        site_parent > 0,
        "sites are listed as customers whose parent is a customer"
    );

    let (status, devices) = soap(
        &sim,
        soap_body(
            "deviceList",
            &cfg.username,
            &cfg.password,
            &[
                ("customerID", &["100"]),
                ("devices", &["true"]),
                ("probes", &["false"]),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(devices.contains("device.longname"));
    assert!(
        !devices.contains("device.customerid"),
        "deviceList names the customer but gives no id"
    );

    let first_id = devices
        .split("<key>device.deviceid</key><value>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let (_, assets) = soap(
        &sim,
        soap_body(
            "deviceAssetInfoExportDeviceWithSettings",
            "",
            &cfg.jwt,
            &[("TargetByDeviceID", &[first_id.as_str()])],
        ),
    )
    .await;
    assert!(
        assets.contains("asset.computersystem.serialnumber")
            && assets.contains("asset.networkadapter.macaddress.0"),
        "{assets}"
    );
    let (status, unfiltered) = soap(
        &sim,
        soap_body("deviceAssetInfoExportDeviceWithSettings", "", &cfg.jwt, &[]),
    )
    .await;
    assert_eq!(status, 500);
    assert!(unfiltered.contains("1012"));

    let (status, fault) = soap(&sim, soap_body("customerList", &cfg.username, "wrong", &[])).await;
    assert_eq!(status, 500);
    assert!(fault.contains("2100"));

    let mut mfa = cfg.clone();
    mfa.mfa_enabled = true;
    let sim = start(mfa).await;
    let (status, fault) = soap(
        &sim,
        soap_body("customerList", &cfg.username, &cfg.password, &[]),
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        fault.contains("2100"),
        "an MFA user cannot use a password: {fault}"
    );
    let (status, _) = soap(&sim, soap_body("customerList", "", &cfg.jwt, &[])).await;
    assert_eq!(
        status, 200,
        "the JWT still works for an MFA-protected account"
    );
}

#[tokio::test]
async fn faults_are_injected_as_configured() {
    // An error message inside a 200.
    let mut cfg = small();
    cfg.faults = Faults {
        error_in_200: 1.0,
        ..Faults::none()
    };
    let sim = start(cfg).await;
    let (access, _) = login(&sim).await;
    let (status, body) = get(&sim, &access, "/api/devices").await;
    assert_eq!(status, 200);
    assert!(
        body["error message"].as_str().unwrap().contains("DMS"),
        "{body}"
    );

    // A malformed page.
    let mut cfg = small();
    cfg.faults = Faults {
        malformed_page: Some(2),
        ..Faults::none()
    };
    let sim = start(cfg).await;
    let (access, _) = login(&sim).await;
    assert!(
        get(&sim, &access, "/api/devices?pageNumber=1")
            .await
            .1
            .is_object()
    );
    let (status, body) = get(&sim, &access, "/api/devices?pageNumber=2").await;
    assert_eq!(status, 200);
    assert!(body.is_string(), "page 2 is not valid JSON");

    // The token expires in the middle of paging.
    let mut cfg = small();
    cfg.faults = Faults {
        expire_token_after: Some(3),
        ..Faults::none()
    };
    let sim = start(cfg).await;
    let (access, _) = login(&sim).await;
    let statuses: Vec<u16> = futures_lite(&sim, &access, 4).await;
    assert_eq!(statuses, [200, 200, 401, 401]);

    // 429 with Retry-After; and the in-flight cap.
    let mut cfg = small();
    cfg.faults = Faults {
        rate_limit: 1.0,
        retry_after_s: Some(7),
        ..Faults::none()
    };
    let sim = start(cfg).await;
    let (access, _) = login(&sim).await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/devices", sim.url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");

    let mut cfg = small();
    cfg.max_in_flight = 2;
    cfg.faults = Faults {
        slow: 1.0,
        slow_ms: 300,
        ..Faults::none()
    };
    let sim = start(cfg).await;
    let (access, _) = login(&sim).await;
    let c = reqwest::Client::new();
    let calls = (0..5).map(|i| {
        c.get(format!("{}/api/devices?pageNumber={}", sim.url(), i + 1))
            .bearer_auth(&access)
            .send()
    });
    let results = futures::future::join_all(calls).await;
    let limited = results
        .iter()
        .filter(|r| r.as_ref().unwrap().status() == 429)
        .count();
    assert!(limited >= 3, "at most two in flight: {limited} refused");
}

async fn futures_lite(sim: &NcentralSim, access: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for page in 1..=n {
        out.push(
            get(
                sim,
                access,
                &format!("/api/devices?pageNumber={page}&pageSize=10"),
            )
            .await
            .0,
        );
    }
    out
}

#[tokio::test]
async fn changes_through_the_admin_api_show_up() {
    let sim = start(small()).await;
    let (access, _) = login(&sim).await;
    let c = reqwest::Client::new();
    let added: Value = c
        .post(format!("{}/_sim/devices", sim.url()))
        .json(&json!({"client_id": 101}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = added["id"].as_i64().unwrap();
    let (status, d) = get(&sim, &access, &format!("/api/devices/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(d["data"]["customerId"], 101);
    c.patch(format!("{}/_sim/clients/101", sim.url()))
        .json(&json!({"name": "Renamed Customer Ltd"}))
        .send()
        .await
        .unwrap();
    let (_, cust) = get(&sim, &access, "/api/customers/101").await;
    assert_eq!(cust["customerName"], "Renamed Customer Ltd");
    c.post(format!("{}/_sim/devices/{id}/move", sim.url()))
        .json(&json!({"client_id": 102}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(&sim, &access, &format!("/api/devices/{id}")).await.1["data"]["customerId"],
        102
    );
    let r = c
        .delete(format!("{}/_sim/devices/{id}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get(&sim, &access, &format!("/api/devices/{id}")).await.0,
        404
    );
    let r = c
        .delete(format!("{}/_sim/devices/{id}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
