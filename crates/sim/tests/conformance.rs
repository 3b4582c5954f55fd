//! Every response the simulators serve, for every endpoint of the specs they implement, is
//! validated against the vendors' OpenAPI documents in `specs/` (strictly: undeclared
//! fields fail unless listed below as a documented deviation of the real service).
#[path = "support/openapi.rs"]
mod openapi;

use openapi::{Deviations, Spec};
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn spec(name: &str) -> Spec {
    let dir = std::env::var("RMMBRIDGE_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../specs"));
    Spec::load(&dir.join(name))
}

struct Checker {
    spec: Spec,
    client: reqwest::Client,
    base: String,
    covered: BTreeSet<String>,
    failures: Vec<String>,
}

impl Checker {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        dev: &Deviations<'_>,
    ) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method.parse().unwrap(), &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        };
        let spec_path = path
            .strip_prefix("/api/v2")
            .map(|p| format!("/v2{p}"))
            .unwrap_or_else(|| path.to_owned());
        match self.spec.validate(method, &spec_path, status, &value, dev) {
            Ok(t) => {
                self.covered
                    .insert(format!("{method} {t} {}", status / 100));
            }
            Err(e) => self.failures.push(e),
        }
        value
    }
}

/// N-central beyond its spec (reference/ncentral-api.md §2-§5): list responses typed
/// `ListResponse*` ({data, totalItems}) carry the paging fields of `QueryResponse*` too; the
/// reference's real examples send `null` for empty contact fields, `_warning`, absent links and
/// `outputFileName`.
const NC: Deviations = Deviations {
    extra: &[
        "pageNumber",
        "pageSize",
        "itemCount",
        "totalPages",
        "_links",
        "_warning",
    ],
    null: &[
        "contactPhoneExt",
        "county",
        "_warning",
        "previousPage",
        "nextPage",
        "outputFileName",
    ],
    any_type_under: None,
};
/// Asset values are strings and multi-instance categories are `{"list": [...]}` (reference §4),
/// where the spec types every field as an object.
const NC_ASSETS: Deviations = Deviations {
    extra: &[],
    null: &[],
    any_type_under: Some("/data/"),
};

#[tokio::test]
async fn the_ncentral_simulator_conforms_to_its_openapi_spec() {
    let sim = NcentralSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NcentralConfig {
            fleet: FleetConfig {
                devices: 300,
                customers: 10,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let jwt = sim.connection_info()["jwt"].as_str().unwrap().to_owned();
    let mut c = Checker {
        spec: spec("ncentral-openapi-subset.json"),
        client: reqwest::Client::new(),
        base: sim.url(),
        covered: BTreeSet::new(),
        failures: vec![],
    };
    c.call("GET", "/api", None, None, &NC).await;
    c.call("GET", "/api/health", None, None, &NC).await;
    c.call("GET", "/api/auth", None, None, &NC).await;
    let auth = c
        .call("POST", "/api/auth/authenticate", Some(&jwt), None, &NC)
        .await;
    let access = auth["tokens"]["access"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = auth["tokens"]["refresh"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .client
        .post(format!("{}/api/auth/refresh", sim.url()))
        .header("content-type", "text/plain")
        .body(refresh)
        .send()
        .await
        .unwrap();
    let (status, refreshed): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
    match c.spec.validate(
        "POST",
        "/api/auth/refresh",
        status,
        &refreshed,
        &Deviations::default(),
    ) {
        Ok(t) => drop(c.covered.insert(format!("POST {t} 2"))),
        Err(e) => c.failures.push(e),
    }
    let t = Some(access.as_str());
    c.call("GET", "/api/auth/validate", t, None, &NC).await;
    c.call("GET", "/api/server-info/extra", t, None, &NC).await;
    c.call("GET", "/api/service-orgs", t, None, &NC).await;
    c.call("GET", "/api/service-orgs/50", t, None, &NC).await;
    let customers = c
        .call("GET", "/api/service-orgs/50/customers", t, None, &NC)
        .await;
    c.call("GET", "/api/customers", t, None, &NC).await;
    let cid = customers["data"][0]["customerId"]
        .as_str()
        .unwrap()
        .to_owned();
    c.call("GET", &format!("/api/customers/{cid}"), t, None, &NC)
        .await;
    c.call("GET", &format!("/api/customers/{cid}/sites"), t, None, &NC)
        .await;
    let sites = c.call("GET", "/api/sites", t, None, &NC).await;
    let sid = sites["data"][0]["siteId"].as_str().unwrap().to_owned();
    c.call("GET", &format!("/api/sites/{sid}"), t, None, &NC)
        .await;
    c.call("GET", "/api/org-units", t, None, &NC).await;
    c.call("GET", &format!("/api/org-units/{cid}"), t, None, &NC)
        .await;
    c.call(
        "GET",
        &format!("/api/org-units/{cid}/children"),
        t,
        None,
        &NC,
    )
    .await;
    c.call(
        "GET",
        &format!("/api/org-units/{cid}/devices?pageSize=5"),
        t,
        None,
        &NC,
    )
    .await;
    let devices = c
        .call("GET", "/api/devices?pageSize=100", t, None, &NC)
        .await;
    let dev = devices["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceStatus"]["state"] == 0)
        .unwrap()
        .clone();
    let did = dev["deviceId"].as_i64().unwrap();
    c.call("GET", &format!("/api/devices/{did}"), t, None, &NC)
        .await;
    c.call(
        "GET",
        &format!("/api/devices/{did}/assets"),
        t,
        None,
        &NC_ASSETS,
    )
    .await;
    let task = c
        .call("POST", "/api/scheduled-tasks/direct", t, Some(json!({"name": "conformance", "itemId": 1001, "taskType": "Script",
            "customerId": dev["customerId"], "deviceId": did, "credential": {"type": "LocalSystem"}, "parameters": []})), &NC)
        .await;
    let tid = task["data"]["taskId"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    c.call("GET", &format!("/api/scheduled-tasks/{tid}"), t, None, &NC)
        .await;
    c.call(
        "GET",
        &format!("/api/scheduled-tasks/{tid}/status"),
        t,
        None,
        &NC,
    )
    .await;
    c.call(
        "GET",
        &format!("/api/scheduled-tasks/{tid}/status/details"),
        t,
        None,
        &NC,
    )
    .await;
    // Errors follow ErrorResponse.
    c.call("GET", "/api/devices/1", t, None, &NC).await;
    c.call("GET", "/api/customers", Some("expired"), None, &NC)
        .await;
    c.call("GET", "/api/devices?pageSize=0", t, None, &NC).await;

    assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
    assert!(c.covered.len() >= 27, "{:#?}", c.covered);
}

/// NinjaOne beyond its spec (reference/ninjaone-api.md §5): `devices-detailed` and `device/{id}`
/// document only the base device, while live responses carry the agent subtype at top level.
const NINJA_DEVICE: Deviations = Deviations {
    extra: &[
        "os",
        "system",
        "memory",
        "processors",
        "volumes",
        "lastLoggedInUser",
        "deviceType",
        "ipAddresses",
        "macAddresses",
        "publicIP",
    ],
    null: &[],
    any_type_under: None,
};
const NONE: Deviations = Deviations {
    extra: &[],
    null: &[],
    any_type_under: None,
};

#[tokio::test]
async fn the_ninjaone_simulator_conforms_to_its_openapi_spec() {
    let sim = NinjaSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NinjaConfig {
            fleet: FleetConfig {
                devices: 300,
                customers: 10,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let info = sim.connection_info();
    let client = reqwest::Client::new();
    let tok: Value = client
        .post(format!("{}/ws/oauth/token", sim.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", info["client_id"].as_str().unwrap()),
            ("client_secret", info["client_secret"].as_str().unwrap()),
            ("scope", "monitoring management"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let mut c = Checker {
        spec: spec("ninjaone-openapi-v2.json"),
        client,
        base: sim.url(),
        covered: BTreeSet::new(),
        failures: vec![],
    };
    let t = Some(access.as_str());
    for prefix in ["/v2", "/api/v2"] {
        let orgs = c
            .call("GET", &format!("{prefix}/organizations"), t, None, &NONE)
            .await;
        c.call(
            "GET",
            &format!("{prefix}/organizations-detailed"),
            t,
            None,
            &NONE,
        )
        .await;
        let oid = orgs[0]["id"].as_i64().unwrap();
        c.call(
            "GET",
            &format!("{prefix}/organization/{oid}"),
            t,
            None,
            &NONE,
        )
        .await;
        c.call(
            "GET",
            &format!("{prefix}/organization/{oid}/locations"),
            t,
            None,
            &NONE,
        )
        .await;
        c.call(
            "GET",
            &format!("{prefix}/organization/{oid}/devices"),
            t,
            None,
            &NONE,
        )
        .await;
        c.call("GET", &format!("{prefix}/locations"), t, None, &NONE)
            .await;
        c.call(
            "GET",
            &format!("{prefix}/devices?pageSize=50"),
            t,
            None,
            &NONE,
        )
        .await;
        let detailed = c
            .call(
                "GET",
                &format!("{prefix}/devices-detailed?pageSize=200"),
                t,
                None,
                &NINJA_DEVICE,
            )
            .await;
        let did = detailed[0]["id"].as_i64().unwrap();
        c.call(
            "GET",
            &format!("{prefix}/device/{did}"),
            t,
            None,
            &NINJA_DEVICE,
        )
        .await;
        c.call(
            "GET",
            &format!("{prefix}/automation/scripts"),
            t,
            None,
            &NONE,
        )
        .await;
        c.call(
            "GET",
            &format!("{prefix}/device/{did}/activities"),
            t,
            None,
            &NONE,
        )
        .await;
    }
    // Put activities in place (a webhook is registered with management scope) and read them back.
    let r = c
        .client
        .put(format!("{}/v2/webhook", sim.url()))
        .bearer_auth(&access)
        .json(&json!({"url": "http://127.0.0.1:9/h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    c.client
        .post(format!("{}/_sim/devices", sim.url()))
        .json(&json!({"client_id": 1}))
        .send()
        .await
        .unwrap();
    let acts = c.call("GET", "/v2/activities", t, None, &NONE).await;
    assert!(!acts["activities"].as_array().unwrap().is_empty());

    assert!(c.failures.is_empty(), "{}", c.failures.join("\n"));
    assert!(c.covered.len() >= 12, "{:#?}", c.covered);
}

#[test]
fn the_checker_itself_rejects_what_it_should() {
    let nc = spec("ncentral-openapi-subset.json");
    let ok = json!({"data": [{"deviceId": 1, "longName": "A"}], "pageNumber": 1, "pageSize": 50, "itemCount": 1, "totalItems": 1, "totalPages": 1, "_links": {}});
    assert!(nc.validate("GET", "/api/devices", 200, &ok, &NC).is_ok());
    let bad = json!({"data": [{"deviceId": "one"}], "_links": {}});
    let err = nc
        .validate("GET", "/api/devices", 200, &bad, &NC)
        .unwrap_err();
    assert!(err.contains("/data/0/deviceId"), "{err}");
    let undeclared = json!({"data": [{"deviceId": 1, "madeUp": true}], "_links": {}});
    assert!(
        nc.validate("GET", "/api/devices", 200, &undeclared, &NC)
            .unwrap_err()
            .contains("madeUp")
    );
    assert_eq!(
        nc.template("/api/devices/123").as_deref(),
        Some("/api/devices/{deviceId}")
    );
    assert!(
        nc.validate("GET", "/api/nothing/here", 200, &ok, &NC)
            .is_err()
    );
    let ninja = spec("ninjaone-openapi-v2.json");
    assert!(
        ninja
            .validate(
                "GET",
                "/v2/organizations",
                200,
                &json!([{"id": 1, "name": "Acme"}]),
                &NONE
            )
            .is_ok()
    );
    assert!(
        ninja
            .validate(
                "GET",
                "/v2/organizations",
                200,
                &json!([{"id": "x"}]),
                &NONE
            )
            .is_err()
    );
}
