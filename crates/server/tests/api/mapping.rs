//! Client mapping end to end over HTTP (DESIGN.md §3 items 4 and 5): the N-central simulator is
//! the RMM, the API is driven with Bearer tokens, the database is checked behind it.
use crate::both;
use crate::helpers::{ApiClient, TestApp};
use rmmbridge_core::Role;
use rmmbridge_sim::fleet::FleetConfig;
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_store::{AuditQuery, SyncRunState};
use serde_json::{Value, json};

/// N-central numbers its four companies 100..=103; each has sites, which are folded into their
/// company (sites_as_clients is off by default).
const COMPANIES: [i64; 4] = [100, 101, 102, 103];

struct World {
    app: TestApp,
    nc: NcentralSim,
    id: i64,
    admin: ApiClient,
}

/// A simulated N-central whose companies carry the given names (in id order).
async fn world(app: TestApp, names: [&str; 4]) -> World {
    let nc = NcentralSim::start(
        "127.0.0.1:0".parse().unwrap(),
        NcentralConfig {
            fleet: FleetConfig {
                seed: 5,
                customers: 4,
                devices: 24,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for (id, name) in COMPANIES.iter().zip(names) {
        nc.common().fleet_mut().rename_client(*id, name, 0).unwrap();
    }
    let id = app.ncentral_integration(&nc, "N-central", json!({})).await;
    let (_, token) = app.user_with_token("admin", Role::Admin).await;
    let admin = app.api(&token);
    World { app, nc, id, admin }
}

async fn ok(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn status_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

impl World {
    fn path(&self, rest: &str) -> String {
        format!("/api/v1/integrations/{}{rest}", self.id)
    }

    async fn post(&self, rest: &str) -> Value {
        ok(self.admin.post(&self.path(rest)).send().await.unwrap()).await
    }

    async fn list(&self, view: &str) -> Value {
        ok(self
            .admin
            .get(&self.path(&format!("/clients?view={view}")))
            .send()
            .await
            .unwrap())
        .await
    }

    /// The RmmClient id in the hub of an N-central company id.
    async fn client(&self, external: i64) -> i64 {
        let list = self.list("all").await;
        list["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["external_id"].as_str().and_then(|e| e.parse().ok()) == Some(external))
            .unwrap_or_else(|| panic!("client {external} in {list}"))["id"]
            .as_i64()
            .unwrap()
    }

    async fn tenant(&self, name: &str) -> i64 {
        self.app
            .state
            .db
            .create_tenant(name, rmmbridge_server::state::now())
            .await
            .unwrap()
            .id
    }

    async fn audit_count(&self, action: &str) -> usize {
        self.app
            .state
            .db
            .list_audit(&AuditQuery {
                before_id: None,
                limit: 500,
                action: Some(action.into()),
            })
            .await
            .unwrap()
            .len()
    }
}

fn row(list: &Value, external: i64) -> &Value {
    list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["external_id"].as_str().and_then(|e| e.parse().ok()) == Some(external))
        .unwrap_or_else(|| panic!("client {external} in {list}"))
}

fn names(list: &Value) -> Vec<String> {
    list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    refresh_lists_unmatched_follows_renames_and_marks_vanished,
    |app: TestApp| async move {
        let w = world(
            app,
            [
                "Acme Dental",
                "Bolt Logistics",
                "Cedar Clinic",
                "Delta Farms",
            ],
        )
        .await;
        let r = w.post("/clients/refresh").await;
        // Companies and their sites are stored; only the four companies are mapping rows.
        let sites = w.nc.common().fleet().clients().count() - 4;
        assert!(sites > 0, "the fleet has sites");
        assert_eq!(r["added"].as_array().unwrap().len(), 4 + sites, "{r}");
        let list = w.list("all").await;
        assert_eq!(list["sites_as_clients"], false);
        assert_eq!(
            names(&list),
            vec![
                "Acme Dental",
                "Bolt Logistics",
                "Cedar Clinic",
                "Delta Farms"
            ]
        );
        assert_eq!(list["counts"]["all"], 4);
        assert_eq!(list["counts"]["unmatched"], 4);
        assert!(
            list["clients"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["state"] == "unmatched"
                    && c["applied_state"] == "unmatched"
                    && c["kind"] == "company"
                    && c["vanished_at"].is_null())
        );
        let bolt = w.client(101).await;

        // A rename in the RMM is the same RmmClient (followed by external id), not a new one.
        w.nc.common()
            .fleet_mut()
            .rename_client(101, "Bolt Freight", 0)
            .unwrap();
        let r = w.post("/clients/refresh").await;
        assert_eq!(
            r["renamed"],
            json!([{"external_id": "101", "old_name": "Bolt Logistics", "new_name": "Bolt Freight"}])
        );
        assert_eq!(r["added"], json!([]));
        assert_eq!(w.client(101).await, bolt);
        assert_eq!(row(&w.list("all").await, 101)["name"], "Bolt Freight");

        // A deleted client is kept and marked vanished, its sites with it.
        let gone = w.nc.common().fleet_mut().delete_client(103).unwrap();
        let r = w.post("/clients/refresh").await;
        let vanished = r["vanished"].as_array().unwrap();
        assert!(vanished.contains(&json!("103")), "{r}");
        assert_eq!(
            vanished.len(),
            gone.iter()
                .filter(|c| matches!(c, rmmbridge_sim::fleet::Change::ClientDeleted(_)))
                .count()
        );
        let list = w.list("all").await;
        assert_eq!(list["counts"]["all"], 4);
        assert!(row(&list, 103)["vanished_at"].is_i64(), "{list}");
        assert!(row(&list, 100)["vanished_at"].is_null());
        // A second refresh with nothing new changes nothing.
        let r = w.post("/clients/refresh").await;
        assert_eq!(r["unchanged"], 4 + sites as u64 - vanished.len() as u64);
        assert_eq!(
            (
                r["added"].as_array().unwrap().len(),
                r["vanished"].as_array().unwrap().len()
            ),
            (0, 0)
        );
    }
);

both!(
    auto_match_takes_identical_names_only_and_suggests_near_ones,
    |app: TestApp| async move {
        let w = world(
            app,
            [
                "  ACME   dental ",
                "Bolt Logistics GmbH",
                "Cedar Clinic",
                "Zephyr Works",
            ],
        )
        .await;
        let acme = w.tenant("Acme Dental").await;
        let bolt = w.tenant("Bolt Logistics").await;
        let _other = w.tenant("Unrelated Ltd").await;
        w.post("/clients/refresh").await;

        let before = w.list("unmatched").await;
        // Before Auto-match the identical name is announced as what Auto-match will take...
        let s = &row(&before, 100)["suggestion"];
        assert_eq!(
            (s["tenant_id"].as_i64(), s["kind"].as_str()),
            (Some(acme), Some("exact"))
        );
        assert_eq!(s["confidence"], 1.0);
        // ...and the near name is only a suggestion, with its reason and confidence.
        let b = row(&before, 101);
        assert_eq!(b["suggestion"]["tenant_id"], bolt);
        assert_eq!(b["suggestion"]["tenant_name"], "Bolt Logistics");
        assert_eq!(b["suggestion"]["kind"], "loose");
        assert_eq!(b["suggestion"]["confidence"], 0.95);
        assert!(
            b["suggestion"]["reason"]
                .as_str()
                .unwrap()
                .contains("legal suffix"),
            "{b}"
        );
        assert_eq!(row(&before, 103)["suggestions"], json!([]));

        let r = w.post("/clients/auto-match").await;
        assert_eq!(r["changed"], 1, "{r}");
        let list = w.list("all").await;
        let a = row(&list, 100);
        assert_eq!(
            (a["state"].as_str(), a["tenant_id"].as_i64()),
            (Some("matched"), Some(acme))
        );
        assert_eq!(a["tenant_name"], "Acme Dental");
        assert_eq!(a["provenance"]["source"], "auto");
        assert_eq!(a["provenance"]["by"], "admin");
        assert_eq!(a["pending"], true);
        // Suggestions were not applied.
        for ext in [101, 102, 103] {
            assert_eq!(row(&list, ext)["state"], "unmatched", "{ext}");
        }
        assert_eq!(list["counts"]["matched"], 1);
        assert_eq!(list["counts"]["unmatched"], 3);
        // Nothing is applied before Finish.
        assert_eq!(a["applied_state"], "unmatched");
        assert_eq!(w.app.state.db.mapped_clients(w.id).await.unwrap().len(), 0);
        // Auto-match again: nothing left to match.
        assert_eq!(w.post("/clients/auto-match").await["changed"], 0);
        assert_eq!(w.audit_count("client_links.auto_match").await, 1);
    }
);

both!(
    edits_preview_and_finish_once_then_sync_devices,
    |app: TestApp| async move {
        let w = world(
            app,
            [
                "Acme Dental",
                "  Padded Name  ",
                "Cedar Clinic",
                "Delta Farms",
            ],
        )
        .await;
        let acme = w.tenant("Acme Dental Group").await;
        w.post("/clients/refresh").await;
        let (a, p, c, d) = (
            w.client(100).await,
            w.client(101).await,
            w.client(102).await,
            w.client(103).await,
        );
        let m = ok(w
            .admin
            .post(&w.path(&format!("/clients/{a}/match")))
            .json(&json!({"tenant_id": acme}))
            .send()
            .await
            .unwrap())
        .await;
        assert_eq!(
            (m["state"].as_str(), m["tenant_id"].as_i64()),
            (Some("matched"), Some(acme))
        );
        assert_eq!(m["provenance"]["source"], "manual");
        let cr = w.post(&format!("/clients/{p}/create")).await;
        assert_eq!(
            (cr["state"].as_str(), cr["tenant_name"].as_str()),
            (Some("create"), Some("Padded Name"))
        );
        assert_eq!(
            w.post(&format!("/clients/{c}/exclude")).await["state"],
            "excluded"
        );
        let excluded = w.list("excluded").await;
        assert_eq!(names(&excluded), vec!["Cedar Clinic"]);
        // Create unmatched takes the one client left.
        let cu = w.post("/clients/create-unmatched").await;
        assert_eq!(cu["changed"], 1);
        assert_eq!(cu["clients"][0]["id"], d);
        assert_eq!(w.list("unmatched").await["clients"], json!([]));
        assert_eq!(w.list("matched").await["counts"]["matched"], 3);

        let pv = ok(w.admin.get(&w.path("/preview")).send().await.unwrap()).await;
        assert_eq!(
            pv["counts"],
            json!({"to_create": 2, "to_match": 1, "to_exclude": 1, "to_unmatch": 0, "unchanged": 0})
        );
        let mut created: Vec<&str> = pv["to_create"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["tenant_name"].as_str().unwrap())
            .collect();
        created.sort_unstable();
        assert_eq!(created, vec!["Delta Farms", "Padded Name"]);
        assert_eq!(pv["to_match"][0]["tenant_name"], "Acme Dental Group");

        let audits_before = w.audit_count("client_link.apply").await;
        assert_eq!(audits_before, 0);
        let out = w.post("/apply").await;
        assert_eq!(
            out["applied"],
            json!({"created_tenants": 2, "reused_tenants": 0, "matched": 3, "excluded": 1, "unmatched": 0, "unchanged": 0}),
            "{out}"
        );
        assert_eq!(out["changes"].as_array().unwrap().len(), 4);
        let run_id = out["sync_run_id"]
            .as_i64()
            .expect("Finish starts a device sync");
        assert_eq!(w.audit_count("client_link.apply").await, 4);
        assert_eq!(w.audit_count("tenant.create").await, 2);
        let tenants: Vec<String> = w
            .app
            .state
            .db
            .list_tenants(&rmmbridge_store::TenantScope::All)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(
            tenants,
            vec!["Acme Dental Group", "Delta Farms", "Padded Name"]
        );
        let list = w.list("all").await;
        assert_eq!(list["counts"]["pending"], 0);
        assert_eq!(row(&list, 101)["applied_tenant_name"], "Padded Name");
        assert_eq!(row(&list, 102)["applied_state"], "excluded");

        // The device sync imports the mapped clients' devices, not the excluded one's.
        let run = loop {
            let r = w.app.state.db.sync_run(run_id).await.unwrap().unwrap();
            if r.state != SyncRunState::Running {
                break r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(run.state, SyncRunState::Succeeded, "{:?}", run.error);
        assert_eq!(run.triggered_by, "admin");
        let (all_devices, excluded_devices) = {
            let fleet = w.nc.common().fleet();
            let rows = fleet.rows();
            (rows.len(), rows.iter().filter(|d| d.company == 102).count())
        };
        assert!(excluded_devices > 0, "the excluded client has devices");
        let agents = w.app.state.db.agent_snapshot(w.id).await.unwrap();
        assert_eq!(agents.len(), all_devices - excluded_devices);
        assert_eq!(run.counts["skipped_excluded"], excluded_devices as u64);

        // A second Finish changes nothing, audits nothing and starts no sync.
        let again = w.post("/apply").await;
        assert_eq!(again["changes"], json!([]));
        assert_eq!(again["applied"]["unchanged"], 4);
        assert_eq!(again["sync_run_id"], Value::Null);
        assert_eq!(w.audit_count("client_link.apply").await, 4);
        assert_eq!(w.audit_count("tenant.create").await, 2);

        // Include brings the excluded client back (pending until the next Finish).
        let inc = w.post(&format!("/clients/{c}/include")).await;
        assert_eq!(
            (inc["state"].as_str(), inc["pending"].as_bool()),
            (Some("unmatched"), Some(true))
        );
        assert_eq!(w.list("excluded").await["clients"], json!([]));
        let pv = ok(w.admin.get(&w.path("/preview")).send().await.unwrap()).await;
        assert_eq!(pv["counts"]["to_unmatch"], 1);
        assert_eq!(pv["counts"]["unchanged"], 3);
    }
);

both!(errors_roles_and_tenant_scope, |app: TestApp| async move {
    let w = world(
        app,
        [
            "Acme Dental Inc",
            "Bolt Logistics GmbH",
            "Cedar Clinic",
            "Delta Farms",
        ],
    )
    .await;
    let acme = w.tenant("Acme Dental").await;
    let bolt = w.tenant("Bolt Logistics").await;
    let cedar = w.tenant("Cedar Holdings").await;
    w.post("/clients/refresh").await;
    let (a, c) = (w.client(100).await, w.client(102).await);

    // Unknown integration and client: 404; a client of another integration or an unknown
    // tenant: 400 with what to do.
    let (s, _) = status_of(
        w.admin
            .get("/api/v1/integrations/9999/clients")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = status_of(
        w.admin
            .post(&w.path("/clients/99999/exclude"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let other = w.app.ncentral_integration(&w.nc, "Second", json!({})).await;
    let (s, body) = status_of(
        w.admin
            .post(&format!("/api/v1/integrations/{other}/clients/{a}/exclude"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("belongs to integration {}", w.id)),
        "{body}"
    );
    let (s, body) = status_of(
        w.admin
            .post(&w.path(&format!("/clients/{a}/match")))
            .json(&json!({"tenant_id": 424242}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant 424242 does not exist"),
        "{body}"
    );
    let (s, _) = status_of(
        w.admin
            .get(&w.path("/clients?view=mapped"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);

    // Cedar Clinic is matched to Cedar Holdings (applied).
    ok(w.admin
        .post(&w.path(&format!("/clients/{c}/match")))
        .json(&json!({"tenant_id": cedar}))
        .send()
        .await
        .unwrap())
    .await;
    w.post("/apply").await;

    // A viewer reads but changes nothing.
    let (_, vt) = w.app.user_with_token("viewer", Role::Viewer).await;
    let viewer = w.app.api(&vt);
    assert_eq!(
        ok(viewer.get(&w.path("/clients")).send().await.unwrap()).await["counts"]["all"],
        4
    );
    for path in [
        "/clients/refresh",
        "/clients/auto-match",
        "/clients/create-unmatched",
        "/apply",
        &format!("/clients/{a}/create"),
        &format!("/clients/{a}/exclude"),
    ] {
        let (s, _) = status_of(viewer.post(&w.path(path)).send().await.unwrap()).await;
        assert_eq!(s, 403, "{path}");
    }
    let (s, _) = status_of(
        viewer
            .post(&w.path(&format!("/clients/{a}/match")))
            .json(&json!({"tenant_id": acme}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(w.audit_count("client_link.match").await, 1);

    // A technician limited to Acme sees only Acme: in suggestions and in mapped rows.
    let (tid, tt) = w.app.user_with_token("limited", Role::Technician).await;
    w.app.state.db.set_user_tenants(tid, &[acme]).await.unwrap();
    let limited = w.app.api(&tt);
    let list = ok(limited.get(&w.path("/clients")).send().await.unwrap()).await;
    assert_eq!(
        names(&list),
        vec!["Acme Dental Inc", "Bolt Logistics GmbH", "Delta Farms"]
    );
    assert_eq!(row(&list, 100)["suggestion"]["tenant_id"], acme);
    assert_eq!(row(&list, 101)["suggestions"], json!([]));
    let pv = ok(limited.get(&w.path("/preview")).send().await.unwrap()).await;
    assert_eq!(pv["counts"]["unchanged"], 3);
    // The full view: Bolt's suggestion and Cedar's match are there.
    let full = w.list("all").await;
    assert_eq!(row(&full, 101)["suggestion"]["tenant_id"], bolt);
    assert_eq!(row(&full, 102)["applied_tenant_id"], cedar);
    // Mapping changes act on every tenant: a limited technician may not make them.
    let (s, body) = status_of(
        limited
            .post(&w.path("/clients/auto-match"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limited to some tenants"),
        "{body}"
    );
    let (s, _) = status_of(
        limited
            .post(&w.path(&format!("/clients/{a}/match")))
            .json(&json!({"tenant_id": acme}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(row(&w.list("all").await, 100)["state"], "unmatched");
});
