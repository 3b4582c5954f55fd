//! Device import end to end: both simulators over real HTTP with overlapping fleets, the real
//! sync engine, the real database. The simulators know the truth (which physical machine each
//! device is), so the tests can check every merge and every separation against it.
use crate::both;
use crate::helpers::TestApp;
use rmmbridge_core::Role;
use rmmbridge_core::identify::{normalise_serial, normalise_uuid};
use rmmbridge_sim::fleet::{FleetConfig, Overrides};
use rmmbridge_sim::ncentral::{NcentralConfig, NcentralSim};
use rmmbridge_sim::ninjaone::{NinjaConfig, NinjaSim};
use rmmbridge_store::AgentState;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

const SEED: u64 = 11;

fn fleet(devices: u32) -> FleetConfig {
    FleetConfig {
        seed: SEED,
        customers: 6,
        devices,
        shared: 0.5,
        ..Default::default()
    }
}

struct World {
    app: TestApp,
    nc: NcentralSim,
    nj: NinjaSim,
    nc_id: i64,
    nj_id: i64,
}

async fn world(app: TestApp, options: Value) -> World {
    let addr = "127.0.0.1:0".parse().unwrap();
    let nc = NcentralSim::start(
        addr,
        NcentralConfig {
            fleet: fleet(90),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let nj = NinjaSim::start(
        addr,
        NinjaConfig {
            fleet: fleet(70),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let nc_id = app
        .ncentral_integration(&nc, "N-central", options.clone())
        .await;
    let nj_id = app.ninjaone_integration(&nj, "NinjaOne", options).await;
    World {
        app,
        nc,
        nj,
        nc_id,
        nj_id,
    }
}

impl World {
    /// Maps every company onto a tenant of its own name (Finish), as an admin would with
    /// "Create unmatched" — clients of both RMMs with the same name land in the same tenant.
    async fn map_all(&self, integration_id: i64) {
        // A sync refreshes the client list first.
        let _ = self.sync(integration_id).await;
        self.app.map_every_company(integration_id).await;
    }

    async fn sync(&self, integration_id: i64) -> Value {
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

    /// External device id → the simulator's physical machine.
    fn truth(&self) -> HashMap<(i64, String), u64> {
        let mut out = HashMap::new();
        for r in self.nc.common().fleet().rows() {
            out.insert((self.nc_id, r.id.to_string()), r.universe);
        }
        for r in self.nj.common().fleet().rows() {
            out.insert((self.nj_id, r.id.to_string()), r.universe);
        }
        out
    }
}

/// What a test compares of one agent: (computer, serial, SMBIOS UUID, state).
type AgentFacts = (Option<i64>, Option<String>, Option<String>, AgentState);
/// Agents by (integration, external id).
type Agents = HashMap<(i64, String), AgentFacts>;

/// Every agent of both integrations.
async fn agents(w: &World) -> Agents {
    let mut out = HashMap::new();
    for id in [w.nc_id, w.nj_id] {
        for a in w.app.state.db.agent_snapshot(id).await.unwrap() {
            out.insert(
                (id, a.external_id.clone()),
                (a.computer_id, a.serial, a.smbios_uuid, a.state),
            );
        }
    }
    out
}

both!(
    overlapping_fleets_become_one_computer_per_machine,
    |app: TestApp| async move {
        let w = world(app, json!({})).await;
        w.map_all(w.nc_id).await;
        w.map_all(w.nj_id).await;
        let first_nc = w.sync(w.nc_id).await;
        let first_nj = w.sync(w.nj_id).await;
        assert_eq!(first_nc["fetched"], 90, "{first_nc}");
        assert_eq!(first_nj["fetched"], 70, "{first_nj}");

        let truth = w.truth();
        let agents = agents(&w).await;
        assert_eq!(agents.len(), 160);
        // Every agent is identified, or waits for an admin's decision (never a guess).
        let waiting: HashSet<i64> = w
            .app
            .state
            .db
            .open_decisions(&rmmbridge_store::TenantScope::All, 1000)
            .await
            .unwrap()
            .iter()
            .map(|d| d.agent_id)
            .collect();
        let unlinked = agents.values().filter(|a| a.0.is_none()).count();
        assert_eq!(unlinked, waiting.len());
        assert_eq!(
            unlinked as u64,
            first_nc["manual_decisions"].as_u64().unwrap()
                + first_nj["manual_decisions"].as_u64().unwrap()
        );
        // No false merge: one computer never holds two machines (junk ids, clones).
        let mut machine_of: HashMap<i64, u64> = HashMap::new();
        for (key, (computer, ..)) in &agents {
            let Some(c) = computer else { continue };
            let u = truth[key];
            assert_eq!(
                *machine_of.entry(*c).or_insert(u),
                u,
                "computer {c} holds two machines"
            );
        }
        // No duplicate: the same machine with a usable SMBIOS UUID in both RMMs is one computer.
        let mut by_machine: HashMap<u64, Vec<&AgentFacts>> = HashMap::new();
        for (key, a) in &agents {
            by_machine.entry(truth[key]).or_default().push(a);
        }
        let mut shared_merged = 0;
        for list in by_machine.values().filter(|l| l.len() == 2) {
            let uuids: Vec<Option<String>> = list
                .iter()
                .map(|a| a.2.as_deref().and_then(normalise_uuid))
                .collect();
            let serials: Vec<Option<String>> = list
                .iter()
                .map(|a| a.1.as_deref().and_then(normalise_serial))
                .collect();
            let usable = (uuids[0].is_some() && uuids[0] == uuids[1])
                || (serials[0].is_some() && serials[0] == serials[1]);
            if usable && list[0].0 == list[1].0 {
                shared_merged += 1;
            }
            if uuids[0].is_some()
                && uuids[0] == uuids[1]
                && list[0].0.is_some()
                && list[1].0.is_some()
            {
                assert_eq!(list[0].0, list[1].0, "same UUID, two computers");
            }
        }
        assert!(
            shared_merged > 10,
            "only {shared_merged} shared machines merged"
        );
        let computers: HashSet<i64> = agents.values().filter_map(|a| a.0).collect();
        assert_eq!(
            w.app
                .state
                .db
                .count_computers(&rmmbridge_store::TenantScope::All)
                .await
                .unwrap(),
            computers.len() as i64
        );

        // A no-change resync writes nothing.
        let again = w.sync(w.nc_id).await;
        assert_eq!(again["rows_written"], 0, "{again}");
        assert_eq!(again["unchanged"], 90);
        let again = w.sync(w.nj_id).await;
        assert_eq!(again["rows_written"], 0, "{again}");

        // "Sync now" over HTTP; a second one while it runs is refused or it already finished.
        let (_, token) = w.app.user_with_token("tech", Role::Technician).await;
        let r = w
            .app
            .api(&token)
            .post(&format!("/api/v1/integrations/{}/sync", w.nj_id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let run_id = r.json::<Value>().await.unwrap()["run_id"].as_i64().unwrap();
        let mut finished = None;
        for _ in 0..100 {
            let run = w.app.state.db.sync_run(run_id).await.unwrap().unwrap();
            if run.finished_at.is_some() {
                finished = Some(run);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let run = finished.expect("the sync finishes");
        assert_eq!(run.state.to_string(), "succeeded", "{run:?}");
        let (_, viewer) = w.app.user_with_token("viewer", Role::Viewer).await;
        let r = w
            .app
            .api(&viewer)
            .post(&format!("/api/v1/integrations/{}/sync", w.nj_id))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
);

both!(
    changes_moves_deletions_clones_and_reinstalls,
    |app: TestApp| async move {
        let w = world(app, json!({"missing_grace_days": 0})).await;
        w.map_all(w.nj_id).await;
        w.sync(w.nj_id).await;
        let db = &w.app.state.db;
        let ids: Vec<i64> = w.nj.common().fleet().rows().iter().map(|r| r.id).collect();
        let before = agents(&w).await;
        let computer_of = |a: &Agents, id: i64| a[&(w.nj_id, id.to_string())].0.unwrap();

        // A rename and a move to another company.
        let (renamed, moved, deleted, cloned, reinstalled) =
            (ids[0], ids[1], ids[2], ids[3], ids[4]);
        let moved_company = w.nj.common().fleet().rows()[1].company;
        let other =
            w.nj.common()
                .fleet()
                .companies()
                .map(|c| c.id)
                .find(|c| *c != moved_company)
                .unwrap();
        w.nj.change(|f, now| {
            let mut changes = vec![
                f.change_device(
                    renamed,
                    Overrides {
                        hostname: Some("RENAMED-PC".into()),
                        ..Default::default()
                    },
                    now,
                )?,
                f.move_device(moved, other, None, now)?,
                f.delete_device(deleted)?,
                f.clone_device(cloned, now)?.1,
            ];
            changes.extend(f.reinstall_device(reinstalled, now)?.1);
            Ok(((), changes))
        })
        .unwrap();
        let counts = w.sync(w.nj_id).await;
        assert_eq!(counts["changed"], 1, "{counts}");
        assert_eq!(counts["moved"], 1, "{counts}");
        assert_eq!(
            counts["new"], 2,
            "the clone and the reinstalled agent: {counts}"
        );
        assert_eq!(
            counts["missing"], 2,
            "deleted and reinstalled-away: {counts}"
        );
        assert_eq!(counts["reinstalls"], 1, "{counts}");
        assert_eq!(counts["clones"], 1, "{counts}");
        let after = agents(&w).await;
        let c = db
            .computer_by_id(
                computer_of(&before, renamed),
                &rmmbridge_store::TenantScope::All,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.name, "RENAMED-PC",
            "the computer follows its agent's new name"
        );
        let moved_c = db
            .computer_by_id(
                computer_of(&before, moved),
                &rmmbridge_store::TenantScope::All,
            )
            .await
            .unwrap()
            .unwrap();
        let links = db.list_client_links(w.nj_id).await.unwrap();
        let tenant_of_company = |company: i64| {
            links
                .iter()
                .find(|l| l.external_id == company.to_string())
                .and_then(|l| l.applied_tenant_id)
                .unwrap()
        };
        assert_eq!(
            moved_c.tenant_id,
            tenant_of_company(other),
            "the computer moved tenant"
        );
        assert_eq!(
            after[&(w.nj_id, deleted.to_string())].3,
            AgentState::Missing
        );
        // The reinstalled machine's new agent is the same computer as its old one.
        let new_ids: Vec<i64> = w.nj.common().fleet().rows().iter().map(|r| r.id).collect();
        let fresh: Vec<i64> = new_ids
            .iter()
            .copied()
            .filter(|i| !ids.contains(i))
            .collect();
        assert_eq!(fresh.len(), 2);
        let fresh_computers: Vec<i64> = fresh.iter().map(|i| computer_of(&after, *i)).collect();
        assert!(
            fresh_computers.contains(&computer_of(&before, reinstalled)),
            "reinstall rejoins its computer: {fresh_computers:?}"
        );
        assert!(
            !fresh_computers.contains(&computer_of(&before, cloned)),
            "a clone is a computer of its own"
        );
        // The plan of the run names the changed field.
        let run = db.last_sync_run(w.nj_id).await.unwrap().unwrap();
        let changed = db.plan_items(run.id, Some("changed"), 0, 10).await.unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].diffs[0]["field"], "hostname");
        assert_eq!(changed[0].diffs[0]["to"], "RENAMED-PC");

        // Grace period 0: the next sync retires the missing agent and its computer; the
        // reinstalled machine's computer lives on through its new agent.
        let counts = w.sync(w.nj_id).await;
        assert_eq!(counts["retired"], 2, "{counts}");
        let gone = db
            .computer_by_id(
                computer_of(&before, deleted),
                &rmmbridge_store::TenantScope::All,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(gone.retired_at.is_some());
        let kept = db
            .computer_by_id(
                computer_of(&before, reinstalled),
                &rmmbridge_store::TenantScope::All,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(kept.retired_at.is_none());
        // Settled: nothing left to do.
        let counts = w.sync(w.nj_id).await;
        assert_eq!(counts["rows_written"], 0, "{counts}");
    }
);

both!(
    a_killed_sync_converges_on_the_next_run,
    |app: TestApp| async move {
        let w = world(app, json!({})).await;
        w.map_all(w.nc_id).await;
        w.map_all(w.nj_id).await;
        w.sync(w.nj_id).await;
        for stop_at in ["devices", "identify"] {
            // Kill the N-central sync mid-stage (the task is dropped at its next await, as a
            // killed process would stop), then run again.
            let sync = w.app.state.sync.clone();
            let id = w.nc_id;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let tx = std::sync::Mutex::new(Some(tx));
            let stop = stop_at.to_owned();
            let task = tokio::spawn(async move {
                let cb = move |p: &rmmbridge_server::services::sync::SyncProgress| {
                    if p.stage == stop
                        && let Some(tx) = tx.lock().unwrap().take()
                    {
                        let _ = tx.send(());
                    }
                };
                let _ = sync.run(id, "test", &cb).await;
            });
            let _ = rx.await;
            task.abort();
            let _ = task.await;
            let db = &w.app.state.db;
            let t = rmmbridge_server::state::now();
            db.abandon_stale_runs(t.plus_secs(1), t).await.unwrap();
            w.sync(w.nc_id).await;
            let once = agents(&w).await;
            let computers = db
                .count_computers(&rmmbridge_store::TenantScope::All)
                .await
                .unwrap();
            // Converged: a further run changes nothing, every agent is linked once.
            let again = w.sync(w.nc_id).await;
            assert_eq!(
                again["rows_written"], 0,
                "after a kill in {stop_at}: {again}"
            );
            assert_eq!(agents(&w).await, once);
            let waiting = db
                .open_decisions(&rmmbridge_store::TenantScope::All, 1000)
                .await
                .unwrap()
                .len();
            assert_eq!(once.values().filter(|a| a.0.is_none()).count(), waiting);
            let distinct: HashSet<i64> = once.values().filter_map(|a| a.0).collect();
            assert_eq!(computers, distinct.len() as i64, "no orphan computers");
        }
    }
);

both!(
    the_schedule_starts_due_syncs_of_mapped_integrations_only,
    |app: TestApp| async move {
        let w = world(app, json!({"sync_interval_minutes": 30})).await;
        w.map_all(w.nj_id).await;
        let sync = w.app.state.sync.clone();
        // N-central has no mapped client; NinjaOne was synced just now.
        assert_eq!(sync.start_due().await.unwrap(), Vec::<i64>::new());
        // A last run that started 31 minutes ago makes NinjaOne due.
        let db = &w.app.state.db;
        let long_ago = rmmbridge_server::state::now().plus_secs(-31 * 60);
        let old = db
            .start_sync_run(w.nj_id, "devices", "test", long_ago)
            .await
            .unwrap();
        db.finish_sync_run(
            old.id,
            rmmbridge_store::SyncRunState::Succeeded,
            &json!({}),
            None,
            long_ago,
        )
        .await
        .unwrap();
        assert_eq!(sync.start_due().await.unwrap(), vec![w.nj_id]);
        let run = db.last_sync_run(w.nj_id).await.unwrap().unwrap();
        assert_eq!(run.triggered_by, "schedule");
        // While it runs (or right after), nothing else is due.
        assert_eq!(sync.start_due().await.unwrap(), Vec::<i64>::new());
    }
);
