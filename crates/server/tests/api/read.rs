//! The read API and ManualDecisions over real HTTP: both simulators, the real sync, then
//! computers, agents, decisions, sync runs and the dashboard as a technician reads them.
use crate::both;
use crate::helpers::{ApiClient, TestApp};
use rmmbridge_core::Role;
use rmmbridge_core::identify::{normalise_serial, normalise_uuid};
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::integrations as svc;
use rmmbridge_sim::fleet::{FleetConfig, Overrides};
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use rmmbridge_store::{AgentState, TenantScope};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};

const SEED: u64 = 23;

fn fleet(devices: u32) -> FleetConfig {
    FleetConfig {
        seed: SEED,
        customers: 5,
        devices,
        shared: 0.6,
        ..Default::default()
    }
}

pub struct World {
    pub app: TestApp,
    pub nc: NcentralSim,
    pub nj: NinjaSim,
    pub nc_id: i64,
    pub nj_id: i64,
}

pub async fn world(app: TestApp) -> World {
    let addr = "127.0.0.1:0".parse().unwrap();
    let nc = NcentralSim::start(
        addr,
        NcentralConfig {
            fleet: fleet(80),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let nj = NinjaSim::start(
        addr,
        NinjaConfig {
            fleet: fleet(60),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let nc_id = app.ncentral_integration(&nc, "N-central", json!({})).await;
    let nj_id = app.ninjaone_integration(&nj, "NinjaOne", json!({})).await;
    World {
        app,
        nc,
        nj,
        nc_id,
        nj_id,
    }
}

impl World {
    /// Every company onto a tenant of its name (Finish), then a sync that identifies.
    pub async fn map_and_sync(&self, integration_id: i64) {
        self.sync(integration_id).await;
        self.app.map_every_company(integration_id).await;
        self.sync(integration_id).await;
    }

    pub async fn both_synced(app: TestApp) -> World {
        let w = world(app).await;
        w.map_and_sync(w.nc_id).await;
        w.map_and_sync(w.nj_id).await;
        w
    }

    /// Two live NinjaOne agents with usable hardware ids get a copy that keeps their name (a
    /// reinstall whose old agent the RMM still lists, or an unrenamed image): after the next sync
    /// the hub asks about each copy. Returns the originals and the copies' external ids.
    pub async fn copy_two_ninja_devices(&self) -> (Vec<rmmbridge_store::AgentSnapshot>, Vec<i64>) {
        let w = self;
        let db = &w.app.state.db;
        let originals: Vec<_> = db
            .agent_snapshot(w.nj_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| {
                a.state == AgentState::Active
                    && a.computer_id.is_some()
                    && a.clone_of.is_none()
                    && (a.smbios_uuid.as_deref().and_then(normalise_uuid).is_some()
                        || a.serial.as_deref().and_then(normalise_serial).is_some())
            })
            .take(2)
            .collect();
        assert_eq!(originals.len(), 2);
        let copies: Vec<i64> =
            w.nj.change(|f, now| {
                let mut out = Vec::new();
                let mut changes = Vec::new();
                for o in &originals {
                    let (id, c) = f.clone_device(o.external_id.parse().unwrap(), now)?;
                    changes.push(c);
                    changes.push(f.change_device(
                        id,
                        Overrides {
                            hostname: Some(o.hostname.clone()),
                            ..Default::default()
                        },
                        now,
                    )?);
                    out.push(id);
                }
                Ok((out, changes))
            })
            .unwrap();
        (originals, copies)
    }

    pub async fn sync(&self, integration_id: i64) -> Value {
        let out = self
            .app
            .state
            .sync
            .run(integration_id, "test", &|_| {})
            .await
            .unwrap();
        assert_eq!(out.run.state.to_string(), "succeeded", "{:?}", out.run);
        serde_json::to_value(&out.counts).unwrap()
    }

    pub async fn token(&self, name: &str, role: Role) -> (i64, ApiClient) {
        let (id, token) = self.app.user_with_token(name, role).await;
        (id, self.app.api(&token))
    }

    /// Computer of every agent of both integrations, by agent id.
    pub async fn agent_computers(&self) -> HashMap<i64, Option<i64>> {
        let mut out = HashMap::new();
        for i in [self.nc_id, self.nj_id] {
            for a in self.app.state.db.agent_snapshot(i).await.unwrap() {
                out.insert(a.id, a.computer_id);
            }
        }
        out
    }
}

async fn get(api: &ApiClient, path: &str) -> (u16, Value) {
    let r = api.get(path).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(api: &ApiClient, path: &str, body: Value) -> (u16, Value) {
    let r = api.post(path).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every page of a computer listing, following `next_cursor`; returns the items and each
/// page's `total`.
async fn all_pages(api: &ApiClient, query: &str, limit: usize) -> (Vec<Value>, Vec<i64>) {
    let mut items = Vec::new();
    let mut totals = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/v1/computers?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = get(api, &path).await;
        assert_eq!(s, 200, "{page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit);
        items.extend(got.iter().cloned());
        totals.push(page["total"].as_i64().unwrap());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, totals),
        }
    }
    panic!("paging never ended");
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

both!(
    computers_list_search_tenant_filter_and_cursor_paging,
    |app: TestApp| async move {
        let w = World::both_synced(app).await;
        let (_, api) = w.token("viewer", Role::Viewer).await;
        // The truth: distinct computers the agents are linked to (every computer has a live agent).
        let truth: BTreeSet<i64> = w
            .agent_computers()
            .await
            .values()
            .flatten()
            .copied()
            .collect();
        assert!(truth.len() > 50, "{}", truth.len());

        // Paging through every page: no duplicates, no gaps, the same total on each page.
        let (all, totals) = all_pages(&api, "", 7).await;
        let listed = ids(&all);
        let unique: BTreeSet<i64> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a computer on two pages");
        assert_eq!(unique, truth, "every computer exactly once");
        assert!(
            totals.iter().all(|t| *t == truth.len() as i64),
            "{totals:?}"
        );
        assert_eq!(totals.len(), truth.len().div_ceil(7));
        // Name order, case-insensitive.
        let names: Vec<String> = all
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_lowercase())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);

        // Search by part of a name: exactly the computers whose name or serial contains it.
        let target = &all[all.len() / 2];
        let name = target["name"].as_str().unwrap();
        let part: String = name
            .chars()
            .skip(1)
            .take(5)
            .collect::<String>()
            .to_uppercase();
        let expect: BTreeSet<i64> = all
            .iter()
            .filter(|c| {
                let hay = |k: &str| c[k].as_str().unwrap_or("").to_lowercase();
                hay("name").contains(&part.to_lowercase())
                    || hay("serial").contains(&part.to_lowercase())
            })
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        let (found, totals) = all_pages(&api, &format!("q={part}"), 5).await;
        assert_eq!(
            ids(&found).into_iter().collect::<BTreeSet<_>>(),
            expect,
            "q={part}"
        );
        assert!(expect.contains(&target["id"].as_i64().unwrap()));
        assert_eq!(totals[0], expect.len() as i64);

        // Search by serial (whole, lowercased): the computer that has it.
        let with_serial = all
            .iter()
            .find(|c| c["serial"].as_str().is_some_and(|s| s.len() >= 6))
            .expect("a computer with a serial");
        let serial = with_serial["serial"].as_str().unwrap().to_lowercase();
        let (s, page) = get(&api, &format!("/api/v1/computers?q={serial}")).await;
        assert_eq!(s, 200);
        let hits = ids(page["items"].as_array().unwrap());
        assert!(
            hits.contains(&with_serial["id"].as_i64().unwrap()),
            "{page}"
        );
        for c in page["items"].as_array().unwrap() {
            let n = c["name"].as_str().unwrap().to_lowercase();
            let sr = c["serial"].as_str().unwrap_or("").to_lowercase();
            assert!(n.contains(&serial) || sr.contains(&serial), "{c}");
        }

        // Tenant filter.
        let tenant = target["tenant_id"].as_i64().unwrap();
        let in_tenant: BTreeSet<i64> = all
            .iter()
            .filter(|c| c["tenant_id"] == tenant)
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        let (found, totals) = all_pages(&api, &format!("tenant_id={tenant}"), 4).await;
        assert_eq!(ids(&found).into_iter().collect::<BTreeSet<_>>(), in_tenant);
        assert_eq!(totals[0], in_tenant.len() as i64);
        assert!(in_tenant.len() < truth.len());

        // No retired computers yet; garbage is a 400 in our error shape.
        let (s, page) = get(&api, "/api/v1/computers?state=retired").await;
        assert_eq!((s, page["total"].as_i64()), (200, Some(0)));
        let (s, body) = get(&api, "/api/v1/computers?cursor=%21%21nope").await;
        assert_eq!(s, 400);
        assert_eq!(body["error"]["code"], "bad_request");
        let (s, body) = get(&api, "/api/v1/computers?limit=ten").await;
        assert_eq!(s, 400);
        assert_eq!(body["error"]["code"], "bad_request");
        let (s, _) = get(&api, "/api/v1/computers?state=gone").await;
        assert_eq!(s, 400);
    }
);

both!(
    computer_detail_shows_both_rmms_agents_with_rule_evidence_and_why,
    |app: TestApp| async move {
        let w = World::both_synced(app).await;
        let db = &w.app.state.db;
        let (_, api) = w.token("viewer", Role::Viewer).await;
        // A machine both RMMs report, linked by its serial number (NinjaOne's device list
        // carries no SMBIOS UUID).
        let mut shared = None;
        for a in db.agent_snapshot(w.nj_id).await.unwrap() {
            let Some(c) = a.computer_id else { continue };
            let agents = db.agents_of_computer(c).await.unwrap();
            if agents.len() == 2
                && agents.iter().any(|x| x.agent.integration_id == w.nc_id)
                && agents
                    .iter()
                    .any(|x| x.evidence.as_ref().is_some_and(|e| e.rule == "serial"))
            {
                shared = Some((c, agents));
                break;
            }
        }
        let (computer_id, stored) = shared.expect("a machine shared by both RMMs");
        let (s, detail) = get(&api, &format!("/api/v1/computers/{computer_id}")).await;
        assert_eq!(s, 200, "{detail}");
        assert_eq!(detail["id"], computer_id);
        assert_eq!(detail["state"], "active");
        assert_eq!(detail["agent_count"], 2);
        let agents = detail["agents"].as_array().unwrap();
        assert_eq!(agents.len(), 2);
        let by_integration: HashMap<&str, &Value> = agents
            .iter()
            .map(|a| (a["integration_name"].as_str().unwrap(), a))
            .collect();
        assert_eq!(
            by_integration.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from(["N-central", "NinjaOne"])
        );
        for a in agents {
            let s = stored.iter().find(|x| x.agent.id == a["id"]).unwrap();
            assert_eq!(a["external_id"], s.agent.external_id);
            assert_eq!(a["hostname"], s.agent.hostname);
            assert_eq!(a["state"], "active");
            assert_eq!(a["computer_id"], computer_id);
            assert!(
                a["rmm_client_name"].as_str().is_some_and(|n| !n.is_empty()),
                "{a}"
            );
            let e = s.evidence.as_ref().unwrap();
            assert_eq!(a["identification"]["rule"], e.rule);
            assert_eq!(a["identification"]["evidence"], e.evidence);
            assert_eq!(a["identification"]["decided_by"], "sync");
        }
        // The agent linked by serial names the other agent, its RMM, the serial and hostnames.
        let linked = agents
            .iter()
            .find(|a| a["identification"]["rule"] == "serial")
            .unwrap();
        assert_eq!(linked["integration_name"], "NinjaOne");
        let other = agents.iter().find(|a| a["id"] != linked["id"]).unwrap();
        let ev = &linked["identification"]["evidence"];
        assert_eq!(ev["matched_agent_id"], other["id"]);
        let serial = ev["value"].as_str().unwrap();
        assert_eq!(
            normalise_serial(linked["serial"].as_str().unwrap()).as_deref(),
            Some(serial)
        );
        assert_eq!(
            linked["identification"]["why"],
            format!(
                "Same serial number {serial} as agent #{} of N-central, hostnames {:?} and {:?} agree (decided by the sync)",
                other["id"],
                ev["hostname_a"].as_str().unwrap(),
                ev["hostname_b"].as_str().unwrap(),
            )
        );
        let first = &other["identification"];
        assert_eq!(first["rule"], "new");
        // The computer's why: the shared ids and both RMMs.
        let why = detail["why"].as_str().unwrap();
        let uuids: Vec<Option<String>> = agents
            .iter()
            .map(|a| a["smbios_uuid"].as_str().and_then(normalise_uuid))
            .collect();
        let expected_start = if uuids[0].is_some() && uuids[0] == uuids[1] {
            format!(
                "Same SMBIOS UUID {}, serial {serial}",
                uuids[0].as_ref().unwrap()
            )
        } else {
            format!("Same serial {serial}")
        };
        assert!(why.starts_with(&expected_start), "{why}");
        assert!(why.ends_with("reported by N-central and NinjaOne"), "{why}");
        // History: both links, newest first.
        let history = detail["history"].as_array().unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[0]["agent_id"], linked["id"]);
        assert_eq!(history[1]["rule"], "new");

        // The agent alone.
        let (s, a) = get(&api, &format!("/api/v1/agents/{}", linked["id"])).await;
        assert_eq!(s, 200, "{a}");
        assert_eq!(a["hostname"], linked["hostname"]);
        assert_eq!(a["identification"]["why"], linked["identification"]["why"]);
        assert_eq!(a["history"].as_array().unwrap().len(), 1);
        let (s, _) = get(&api, "/api/v1/agents/999999").await;
        assert_eq!(s, 404);
        let (s, body) = get(&api, "/api/v1/computers/999999").await;
        assert_eq!(s, 404);
        assert_eq!(body["error"]["code"], "not_found");
    }
);

both!(
    a_tenant_limited_user_sees_only_its_tenants,
    |app: TestApp| async move {
        let w = World::both_synced(app).await;
        let db = &w.app.state.db;
        let tenants = db.list_tenants(&TenantScope::All).await.unwrap();
        assert!(tenants.len() >= 2);
        let mine = tenants[0].id;
        let (uid, api) = w.token("limited", Role::Technician).await;
        db.set_user_tenants(uid, &[mine]).await.unwrap();

        let mut by_tenant: HashMap<i64, Vec<i64>> = HashMap::new();
        for c in w.agent_computers().await.values().flatten() {
            let row = db
                .computer_by_id(*c, &TenantScope::All)
                .await
                .unwrap()
                .unwrap();
            let list = by_tenant.entry(row.tenant_id).or_default();
            if !list.contains(c) {
                list.push(*c);
            }
        }
        let own: BTreeSet<i64> = by_tenant[&mine].iter().copied().collect();
        let (found, totals) = all_pages(&api, "", 10).await;
        assert_eq!(ids(&found).into_iter().collect::<BTreeSet<_>>(), own);
        assert_eq!(totals[0], own.len() as i64);
        // Asking for another tenant's computers gives none.
        let other_tenant = *by_tenant.keys().find(|t| **t != mine).unwrap();
        let (s, page) = get(&api, &format!("/api/v1/computers?tenant_id={other_tenant}")).await;
        assert_eq!((s, page["total"].as_i64()), (200, Some(0)));

        // Another tenant's computer and agent: 404, not 403.
        let theirs = by_tenant[&other_tenant][0];
        let (s, body) = get(&api, &format!("/api/v1/computers/{theirs}")).await;
        assert_eq!(s, 404, "{body}");
        let their_agent = db.agents_of_computer(theirs).await.unwrap()[0].agent.id;
        let (s, _) = get(&api, &format!("/api/v1/agents/{their_agent}")).await;
        assert_eq!(s, 404);
        let (s, _) = get(&api, &format!("/api/v1/computers/{}", by_tenant[&mine][0])).await;
        assert_eq!(s, 200);

        // Decisions outside the tenant are invisible too; counts are the tenant's.
        let open_all = db
            .list_decisions(
                &TenantScope::All,
                rmmbridge_store::DecisionFilter::Open,
                1000,
            )
            .await
            .unwrap();
        let own_open = open_all
            .iter()
            .filter(|d| d.tenant_id == Some(mine))
            .count();
        let (s, list) = get(&api, "/api/v1/decisions").await;
        assert_eq!(s, 200);
        assert_eq!(list.as_array().unwrap().len(), own_open);
        if let Some(d) = open_all.iter().find(|d| d.tenant_id != Some(mine)) {
            let (s, _) = get(&api, &format!("/api/v1/decisions/{}", d.id)).await;
            assert_eq!(s, 404);
            let (s, _) = post(
                &api,
                &format!("/api/v1/decisions/{}/resolve", d.id),
                json!({"action": "keep_separate"}),
            )
            .await;
            assert_eq!(s, 404);
        }
        let (s, dash) = get(&api, "/api/v1/dashboard").await;
        assert_eq!(s, 200);
        assert_eq!(dash["counts"]["tenants"], 1);
        assert_eq!(dash["counts"]["computers"], own.len() as i64);
        assert_eq!(dash["counts"]["open_decisions"], own_open as i64);
        // Sync runs are visible as integrations are.
        let (s, runs) = get(&api, "/api/v1/sync-runs").await;
        assert_eq!(s, 200);
        assert_eq!(runs.as_array().unwrap().len(), 4);
    }
);

both!(
    manual_decisions_resolve_by_merge_and_keep_separate_and_are_not_asked_again,
    |app: TestApp| async move {
        let w = world(app).await;
        w.map_and_sync(w.nj_id).await;
        let db = &w.app.state.db;
        let open_before: HashSet<i64> = db
            .open_decisions(&TenantScope::All, 1000)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        let (originals, copies) = w.copy_two_ninja_devices().await;
        w.sync(w.nj_id).await;
        let open: Vec<_> = db
            .open_decisions(&TenantScope::All, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| !open_before.contains(&d.id))
            .collect();
        assert_eq!(open.len(), 2, "{open:?}");
        let agent_of = |ext: i64| async move {
            db.agent_snapshot(w.nj_id)
                .await
                .unwrap()
                .into_iter()
                .find(|a| a.external_id == ext.to_string())
                .unwrap()
        };
        let copy0 = agent_of(copies[0]).await;
        let copy1 = agent_of(copies[1]).await;
        assert_eq!((copy0.computer_id, copy1.computer_id), (None, None));
        let d0 = open.iter().find(|d| d.agent_id == copy0.id).unwrap();
        let d1 = open.iter().find(|d| d.agent_id == copy1.id).unwrap();
        let (c0, c1) = (
            originals[0].computer_id.unwrap(),
            originals[1].computer_id.unwrap(),
        );
        assert_eq!(d0.kind, "reinstall_or_clone");
        assert_eq!(d0.candidate_computer_id, Some(c0));
        assert_eq!(d1.candidate_computer_id, Some(c1));

        let (_, viewer) = w.token("viewer", Role::Viewer).await;
        let (_, tech) = w.token("tech", Role::Technician).await;
        // Listing and detail.
        let (s, list) = get(&viewer, "/api/v1/decisions").await;
        assert_eq!(s, 200);
        assert_eq!(list.as_array().unwrap().len(), open_before.len() + 2);
        let (s, detail) = get(&viewer, &format!("/api/v1/decisions/{}", d0.id)).await;
        assert_eq!(s, 200, "{detail}");
        assert_eq!(detail["state"], "open");
        assert_eq!(detail["kind"], "reinstall_or_clone");
        assert_eq!(detail["agent"]["id"], copy0.id);
        assert_eq!(detail["agent"]["hostname"], originals[0].hostname);
        assert_eq!(detail["agent"]["computer_id"], Value::Null);
        assert_eq!(detail["candidate_computer_ids"], json!([c0]));
        let candidates = detail["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0]["id"], c0);
        assert_eq!(candidates[0]["agents"][0]["id"], originals[0].id);
        assert_eq!(detail["evidence"]["matched_agent_id"], originals[0].id);

        // A viewer may not decide; a bad body and a computer that is no candidate are refused.
        let path0 = format!("/api/v1/decisions/{}/resolve", d0.id);
        let (s, _) = post(
            &viewer,
            &path0,
            json!({"action": "merge", "computer_id": c0}),
        )
        .await;
        assert_eq!(s, 403);
        let (s, body) = post(&tech, &path0, json!({"action": "squash"})).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["error"]["code"], "bad_request");
        let (s, body) = post(&tech, &path0, json!({"action": "merge", "computer_id": c1})).await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(body["error"]["code"], "unprocessable");

        // Merge: the copy is the same computer as the original.
        let (s, body) = post(&tech, &path0, json!({"action": "merge", "computer_id": c0})).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["computer_id"], c0);
        assert_eq!(body["state"], "resolved");
        assert_eq!(body["resolution"], "merge");
        assert_eq!(body["resolved_by"], "tech");
        assert_eq!(agent_of(copies[0]).await.computer_id, Some(c0));
        let (s, body) = post(&tech, &path0, json!({"action": "keep_separate"})).await;
        assert_eq!(s, 409, "{body}");
        assert_eq!(body["error"]["code"], "conflict");

        // Keep separate: a computer of its own, flagged as a clone of the original.
        let path1 = format!("/api/v1/decisions/{}/resolve", d1.id);
        let (s, body) = post(&tech, &path1, json!({"action": "keep_separate"})).await;
        assert_eq!(s, 200, "{body}");
        let own = body["computer_id"].as_i64().unwrap();
        assert_ne!(own, c1);
        let copy1 = agent_of(copies[1]).await;
        assert_eq!(copy1.computer_id, Some(own));
        assert_eq!(copy1.clone_of, Some(format!("[{}]", originals[1].id)));
        let (s, c) = get(&viewer, &format!("/api/v1/computers/{own}")).await;
        assert_eq!(s, 200);
        assert_eq!(c["name"], originals[1].hostname);
        assert_eq!(c["agents"][0]["identification"]["rule"], "manual");
        assert_eq!(c["agents"][0]["identification"]["decided_by"], "tech");
        let why = c["agents"][0]["identification"]["why"].as_str().unwrap();
        assert!(
            why.starts_with(&format!(
                "tech kept it as a computer of its own resolving ManualDecision {}",
                d1.id
            )),
            "{why}"
        );
        let (s, c) = get(&viewer, &format!("/api/v1/computers/{c0}")).await;
        assert_eq!(s, 200);
        assert_eq!(c["agents"].as_array().unwrap().len(), 2);

        // Audited.
        let audited = db
            .list_audit(&rmmbridge_store::AuditQuery {
                before_id: None,
                limit: 100,
                action: Some("decision.resolve".into()),
            })
            .await
            .unwrap();
        assert_eq!(audited.len(), 2);
        assert!(audited.iter().all(|e| e.actor == "tech"));

        // A resync does not ask again; both are listed as resolved.
        let counts = w.sync(w.nj_id).await;
        assert_eq!(counts["new_computers"], 0, "{counts}");
        let open_after: HashSet<i64> = db
            .open_decisions(&TenantScope::All, 1000)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(open_after, open_before);
        let (s, resolved) = get(&viewer, "/api/v1/decisions?state=resolved").await;
        assert_eq!(s, 200);
        let resolved: BTreeSet<i64> = resolved
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_i64().unwrap())
            .collect();
        assert_eq!(resolved, BTreeSet::from([d0.id, d1.id]));
        let (s, everything) = get(&viewer, "/api/v1/decisions?state=all").await;
        assert_eq!(s, 200);
        assert_eq!(everything.as_array().unwrap().len(), open_before.len() + 2);
        assert_eq!(agent_of(copies[0]).await.computer_id, Some(c0));
        assert_eq!(agent_of(copies[1]).await.computer_id, Some(own));
    }
);

both!(
    sync_runs_list_detail_and_plan_pages,
    |app: TestApp| async move {
        let w = world(app).await;
        w.map_and_sync(w.nj_id).await;
        let (_, api) = w.token("viewer", Role::Viewer).await;
        let (s, runs) = get(
            &api,
            &format!("/api/v1/sync-runs?integration_id={}", w.nj_id),
        )
        .await;
        assert_eq!(s, 200);
        let runs = runs.as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert!(
            runs[0]["id"].as_i64() > runs[1]["id"].as_i64(),
            "newest first"
        );
        assert!(
            runs.iter()
                .all(|r| r["state"] == "succeeded" && r["stage"] == "done")
        );
        let (_, none) = get(
            &api,
            &format!("/api/v1/sync-runs?integration_id={}", w.nc_id),
        )
        .await;
        assert_eq!(none.as_array().unwrap().len(), 0);

        // The first run stored all 60 devices as new agents.
        let first = runs[1]["id"].as_i64().unwrap();
        let (s, detail) = get(&api, &format!("/api/v1/sync-runs/{first}")).await;
        assert_eq!(s, 200, "{detail}");
        assert_eq!(detail["state"], "succeeded");
        assert_eq!(detail["integration_id"], w.nj_id);
        assert_eq!(detail["triggered_by"], "test");
        assert_eq!(detail["counts"]["fetched"], 60);
        assert_eq!(detail["counts"]["new"], 60);
        assert_eq!(detail["plan_counts"], json!({"new": 60}));
        assert_eq!(detail["error"], Value::Null);

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/v1/sync-runs/{first}/plan?action=new&limit=25");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (s, page) = get(&api, &path).await;
            assert_eq!(s, 200, "{page}");
            pages += 1;
            for it in page["items"].as_array().unwrap() {
                assert_eq!(it["action"], "new");
                assert!(it["agent_id"].as_i64().is_some());
                seen.push(it["external_id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 60);
        let fleet_ids: HashSet<String> =
            w.nj.common()
                .fleet()
                .rows()
                .iter()
                .map(|r| r.id.to_string())
                .collect();
        assert_eq!(
            unique.into_iter().cloned().collect::<HashSet<_>>(),
            fleet_ids
        );

        // A rename shows up as one changed item with its field diff.
        let renamed = w.nj.common().fleet().rows()[3].id;
        w.nj.change(|f, now| {
            let c = f.change_device(
                renamed,
                Overrides {
                    hostname: Some("RENAMED-LAPTOP".into()),
                    ..Default::default()
                },
                now,
            )?;
            Ok(((), vec![c]))
        })
        .unwrap();
        w.sync(w.nj_id).await;
        let (_, runs) = get(
            &api,
            &format!("/api/v1/sync-runs?integration_id={}&limit=1", w.nj_id),
        )
        .await;
        let last = runs[0]["id"].as_i64().unwrap();
        assert_eq!(runs[0]["counts"]["changed"], 1);
        let (s, page) = get(&api, &format!("/api/v1/sync-runs/{last}/plan")).await;
        assert_eq!(s, 200);
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        assert_eq!(items[0]["action"], "changed");
        assert_eq!(items[0]["external_id"], renamed.to_string());
        assert_eq!(items[0]["diffs"][0]["field"], "hostname");
        assert_eq!(items[0]["diffs"][0]["to"], "RENAMED-LAPTOP");
        assert_eq!(page["next_cursor"], Value::Null);
        let (_, page) = get(&api, &format!("/api/v1/sync-runs/{last}/plan?action=new")).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 0);

        let (s, _) = get(&api, "/api/v1/sync-runs/999999").await;
        assert_eq!(s, 404);
        let (s, _) = get(&api, "/api/v1/sync-runs/999999/plan").await;
        assert_eq!(s, 404);
        let (s, _) = get(&api, &format!("/api/v1/sync-runs/{last}/plan?cursor=zzz")).await;
        assert_eq!(s, 400);
    }
);

both!(
    dashboard_counts_equal_the_truth,
    |app: TestApp| async move {
        let w = World::both_synced(app).await;
        let (_, api) = w.token("viewer", Role::Viewer).await;
        let (s, dash) = get(&api, "/api/v1/dashboard").await;
        assert_eq!(s, 200, "{dash}");
        // Tenants: one per distinct company name across both RMMs (Create maps same names together).
        let mut names: BTreeSet<String> =
            w.nc.common()
                .fleet()
                .companies()
                .map(|c| c.name.clone())
                .collect();
        names.extend(w.nj.common().fleet().companies().map(|c| c.name.clone()));
        assert_eq!(dash["counts"]["tenants"], names.len() as i64);
        // Computers: the distinct computers agents are linked to; open decisions: agents waiting.
        let computers = w.agent_computers().await;
        let linked: BTreeSet<i64> = computers.values().flatten().copied().collect();
        let waiting = computers.values().filter(|c| c.is_none()).count();
        assert_eq!(dash["counts"]["computers"], linked.len() as i64);
        assert_eq!(dash["counts"]["open_decisions"], waiting as i64);

        let integrations = dash["integrations"].as_array().unwrap();
        assert_eq!(integrations.len(), 2);
        for (name, id) in [("N-central", w.nc_id), ("NinjaOne", w.nj_id)] {
            let entry = integrations.iter().find(|x| x["id"] == id).unwrap();
            assert_eq!(entry["name"], name);
            assert_eq!(entry["status"], "healthy", "{entry}");
            assert_eq!(entry["last_sync"]["state"], "succeeded");
            let last = w.app.state.db.last_sync_run(id).await.unwrap().unwrap();
            assert_eq!(entry["last_sync"]["id"], last.id);
        }

        // A sync that fails (the client secret was changed to a wrong one) turns it to failing.
        let mut secrets = serde_json::Map::new();
        secrets.insert("client_secret".into(), json!("not-the-secret"));
        svc::update(
            &w.app.state.db,
            &w.app.state.vault,
            &Actor::cli(),
            w.nj_id,
            &svc::IntegrationPatch {
                name: None,
                settings: None,
                secrets,
                options: None,
            },
        )
        .await
        .unwrap();
        w.app.state.connectors.forget(w.nj_id);
        assert!(
            w.app
                .state
                .sync
                .run(w.nj_id, "test", &|_| {})
                .await
                .is_err()
        );
        let (_, dash) = get(&api, "/api/v1/dashboard").await;
        let nj = dash["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == w.nj_id)
            .unwrap()
            .clone();
        assert_eq!(nj["status"], "failing", "{nj}");
        assert!(
            nj["status_reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{nj}"
        );
        assert_eq!(nj["last_sync"]["state"], "failed");
        let nc = dash["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == w.nc_id)
            .unwrap()
            .clone();
        assert_eq!(nc["status"], "healthy");
    }
);
