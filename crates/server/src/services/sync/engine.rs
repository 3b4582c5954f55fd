//! The device sync engine (DESIGN.md §3 item 6, §4). One run, in stages:
//!
//! 1. `clients`: refresh the RMM's client list, so devices filed under new clients resolve.
//! 2. `devices`: stream the device pages (fetching runs ahead in its own task), compare each device
//!    with the stored Agent in pure code ([`plan::diff`]) and write only new and changed Agents, in
//!    batches. Devices of excluded clients are not stored.
//! 3. `lifecycle`: only after a *complete* fetch: unreported Agents go missing, missing ones past
//!    the grace period are retired; reported ones return.
//! 4. `identify`: every unlinked live Agent of a mapped client is identified against an in-memory
//!    [`IdentityIndex`] of every Agent the hub knows; computers follow their Agents' tenant and facts.
//!
//! Every write is idempotent and each stage re-derives its work from the database, so a run that
//! was killed half-way is converged by the next one: no duplicates, the same final state.
use super::SyncError;
use crate::services::integrations::IntegrationOptions;
use crate::services::integrations::connectors::Connectors;
use crate::state::now;
use futures::StreamExt;
use rmmbridge_core::Timestamp;
use rmmbridge_core::identify::{
    HardwareIds, Identification, IdentityIndex, Incoming, KnownAgent, Rule, identify,
};
use rmmbridge_core::plan::{self, AgentFacts, Lifecycle, PlanAction, RunCounts};
use rmmbridge_core::rmm::{RmmClientKind, RmmDevice};
use rmmbridge_rmm::Connector;
use rmmbridge_store::{
    AgentLink, AgentSnapshot, AgentState, AgentWrite, ClientLinkState, ComputerUpdate, Db,
    NewComputer, NewDecision, NewPlanItem, SyncRun, SyncRunState,
};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A run whose heartbeat is older than this is abandoned by the next run.
pub const STALE_AFTER_S: i64 = 120;

/// Agents written per transaction: big enough to amortise the commit, small enough that a crash
/// loses little and progress stays live.
const WRITE_BATCH: usize = 2_000;

/// Pages fetched ahead of the writer.
const PAGES_AHEAD: usize = 4;

/// Progress is stored at most this often while pages stream in (and at every stage change).
const PROGRESS_EVERY_MS: i64 = 500;

/// Where a run stands, after every page and stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncProgress {
    pub stage: String,
    pub counts: RunCounts,
}

/// A finished run and what it did.
#[derive(Clone, Debug)]
pub struct SyncOutcome {
    pub run: SyncRun,
    pub counts: RunCounts,
}

/// A stored Agent as the plan compares it.
struct Known {
    id: i64,
    lifecycle: Lifecycle,
    computer_id: Option<i64>,
    facts: AgentFacts,
}

fn lifecycle_of(a: &AgentSnapshot) -> Lifecycle {
    match a.state {
        AgentState::Active => Lifecycle::Active,
        AgentState::Missing => Lifecycle::Missing {
            since: a.missing_since.unwrap_or(a.updated_at),
        },
        AgentState::Retired => Lifecycle::Retired,
    }
}

fn facts_of(a: AgentSnapshot) -> (String, Known) {
    let known = Known {
        id: a.id,
        lifecycle: lifecycle_of(&a),
        computer_id: a.computer_id,
        facts: AgentFacts {
            hostname: a.hostname,
            serial: a.serial,
            smbios_uuid: a.smbios_uuid,
            macs: a.macs,
            os: a.os,
            device_class: a.device_class,
            client_external_id: a.rmm_client_external_id,
            last_contact: a.last_contact_at,
        },
    };
    (a.external_id, known)
}

/// How the integration's clients are mapped, by external id.
struct Mapping {
    sites_as_clients: bool,
    sites: HashSet<String>,
    excluded: HashSet<String>,
    tenant_of: HashMap<String, i64>,
}

impl Mapping {
    async fn load(
        db: &Db,
        integration_id: i64,
        opts: &IntegrationOptions,
    ) -> Result<Self, SyncError> {
        let mut m = Mapping {
            sites_as_clients: opts.sites_as_clients,
            sites: HashSet::new(),
            excluded: HashSet::new(),
            tenant_of: HashMap::new(),
        };
        for l in db.list_client_links(integration_id).await? {
            if l.kind == RmmClientKind::Site {
                m.sites.insert(l.external_id.clone());
            }
            if l.applied_state == Some(ClientLinkState::Excluded) {
                m.excluded.insert(l.external_id.clone());
            }
        }
        for c in db.mapped_clients(integration_id).await? {
            m.tenant_of.insert(c.external_id, c.tenant_id);
        }
        Ok(m)
    }

    fn filed_under(&self, d: &RmmDevice) -> String {
        plan::filed_under(d, self.sites_as_clients, |s| self.sites.contains(s))
    }

    /// Excluded when its own client or (for a site) its company is excluded.
    fn excluded(&self, d: &RmmDevice, client: &str) -> bool {
        self.excluded.contains(client) || self.excluded.contains(&d.client_external_id)
    }
}

/// Runs the stages, recording progress on the run; the run ends succeeded or failed.
pub async fn execute(
    db: &Db,
    connectors: &Connectors,
    run: &SyncRun,
    progress: &(dyn Fn(&SyncProgress) + Sync),
) -> Result<SyncOutcome, SyncError> {
    let mut eng = Engine {
        db,
        run,
        progress,
        counts: RunCounts::default(),
        touched: HashSet::new(),
        stage_started: std::time::Instant::now(),
        current_stage: String::new(),
        last_progress: 0,
    };
    let result = eng.stages(connectors).await;
    eng.close_stage();
    let (state, error) = match &result {
        Ok(()) => (SyncRunState::Succeeded, None),
        Err(e) => (SyncRunState::Failed, Some(failure_message(e))),
    };
    let counts = serde_json::to_value(&eng.counts).unwrap_or_default();
    let finished = db
        .finish_sync_run(run.id, state, &counts, error.as_deref(), now())
        .await?;
    progress(&SyncProgress {
        stage: "done".into(),
        counts: eng.counts.clone(),
    });
    match result {
        Ok(()) => Ok(SyncOutcome {
            run: finished,
            counts: eng.counts,
        }),
        Err(e) => Err(e),
    }
}

fn failure_message(e: &SyncError) -> String {
    format!(
        "{e}. Nothing was marked missing: agents are only marked missing after a complete fetch. \
         Fix the cause and run the sync again; it continues where this one stopped."
    )
}

struct Engine<'a> {
    db: &'a Db,
    run: &'a SyncRun,
    progress: &'a (dyn Fn(&SyncProgress) + Sync),
    counts: RunCounts,
    /// Agents written this run: their computers take on the new facts.
    touched: HashSet<i64>,
    stage_started: std::time::Instant,
    current_stage: String,
    last_progress: i64,
}

impl Engine<'_> {
    /// Records the wall time of the stage that is ending.
    fn close_stage(&mut self) {
        if !self.current_stage.is_empty() {
            let ms = self.stage_started.elapsed().as_millis() as u64;
            self.counts
                .stage_ms
                .insert(std::mem::take(&mut self.current_stage), ms);
        }
    }

    /// Wall time of one step inside a stage, for `bench sync`.
    fn lap(&mut self, step: &str, clock: &mut std::time::Instant) {
        let ms = clock.elapsed().as_millis() as u64;
        *self.counts.stage_ms.entry(step.to_owned()).or_default() += ms;
        *clock = std::time::Instant::now();
    }

    async fn stage(&mut self, stage: &str) -> Result<(), SyncError> {
        self.close_stage();
        self.current_stage = stage.to_owned();
        self.stage_started = std::time::Instant::now();
        self.last_progress = now().0;
        let counts = serde_json::to_value(&self.counts).unwrap_or_default();
        self.db
            .update_sync_run(self.run.id, stage, &counts, now())
            .await?;
        (self.progress)(&SyncProgress {
            stage: stage.to_owned(),
            counts: self.counts.clone(),
        });
        Ok(())
    }

    async fn stages(&mut self, connectors: &Connectors) -> Result<(), SyncError> {
        let integration_id = self.run.integration_id;
        let integration = self
            .db
            .integration_by_id(integration_id)
            .await?
            .ok_or(SyncError::NotFound)?;
        let opts = IntegrationOptions::parse(&integration.options).map_err(SyncError::Invalid)?;
        if !opts.device_sync {
            return Err(SyncError::Invalid(format!(
                "device sync is off for integration {:?}; turn on the device_sync option to import its computers",
                integration.name
            )));
        }
        let connector = connectors.get(&integration).await?;

        self.stage("clients").await?;
        crate::services::mapping::refresh_from(self.db, connectors, integration_id, &*connector)
            .await?;
        let mapping = Mapping::load(self.db, integration_id, &opts).await?;

        self.stage("devices").await?;
        let mut known: HashMap<String, Known> = self
            .db
            .agent_snapshot(integration_id)
            .await?
            .into_iter()
            .map(facts_of)
            .collect();
        let reported = self
            .fetch_and_write(connector.clone(), &mapping, &mut known)
            .await;
        connectors.record_tokens(integration_id, &*connector).await;
        let reported = reported?;

        self.stage("lifecycle").await?;
        self.lifecycle(&mut known, &reported, &opts).await?;
        drop(reported);

        self.stage("identify").await?;
        self.identify(&known, &mapping, &opts).await?;
        Ok(())
    }

    /// Stage 2. Returns the external ids the RMM reported (excluded clients' devices included:
    /// they are not absent, only not wanted).
    async fn fetch_and_write(
        &mut self,
        connector: Arc<dyn Connector>,
        mapping: &Mapping,
        known: &mut HashMap<String, Known>,
    ) -> Result<HashSet<String>, SyncError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let fetcher = tokio::spawn(async move {
            let mut pages = connector.devices();
            while let Some(page) = pages.next().await {
                let failed = page.is_err();
                if tx.send(page).await.is_err() || failed {
                    break;
                }
            }
        });
        let mut reported = HashSet::new();
        let mut writes: Vec<(AgentWrite, Option<NewPlanItem>)> = Vec::new();
        let mut outcome = Ok(());
        while let Some(page) = rx.recv().await {
            let devices = match page {
                Ok(d) => d,
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            };
            self.counts.pages += 1;
            self.counts.fetched += devices.len() as u64;
            for d in devices {
                let client = mapping.filed_under(&d);
                reported.insert(d.external_id.clone());
                if mapping.excluded(&d, &client) {
                    self.counts.skipped_excluded += 1;
                    continue;
                }
                let new = AgentFacts::from_device(&d, Some(client));
                if let Some(w) = self.plan_device(d.external_id, new, known) {
                    writes.push(w);
                }
            }
            if writes.len() >= WRITE_BATCH {
                self.write(&mut writes, known).await?;
            }
            (self.progress)(&SyncProgress {
                stage: "devices".into(),
                counts: self.counts.clone(),
            });
            // The heartbeat and the counts readers poll; not on every page at 100,000 devices.
            let t = now();
            if t.0 - self.last_progress >= PROGRESS_EVERY_MS {
                self.last_progress = t.0;
                let counts = serde_json::to_value(&self.counts).unwrap_or_default();
                self.db
                    .update_sync_run(self.run.id, "devices", &counts, t)
                    .await?;
            }
        }
        drop(rx);
        let _ = fetcher.await;
        // What was fetched before a failure is still stored: the next run starts from there.
        self.write(&mut writes, known).await?;
        outcome.map(|()| reported)
    }

    /// The write and plan item for one device, or `None` when nothing changed.
    fn plan_device(
        &mut self,
        external_id: String,
        mut new: AgentFacts,
        known: &HashMap<String, Known>,
    ) -> Option<(AgentWrite, Option<NewPlanItem>)> {
        let (action, diffs, agent_id) = match known.get(&external_id) {
            None => (PlanAction::New, Vec::new(), None),
            Some(k) => {
                // Keep the stored last contact while it is within the resolution, so the row stays equal.
                if let (Some(old), Some(now)) = (k.facts.last_contact, new.last_contact)
                    && (now.0 - old.0).abs() <= plan::LAST_CONTACT_RESOLUTION_MS
                {
                    new.last_contact = Some(old);
                }
                let diffs = plan::diff(&k.facts, &new);
                if diffs.is_empty() {
                    self.counts.unchanged += 1;
                    return None;
                }
                let moved = diffs.iter().any(|d| d.field == "client");
                let action = if moved {
                    PlanAction::Moved
                } else {
                    PlanAction::Changed
                };
                (action, diffs, Some(k.id))
            }
        };
        match action {
            PlanAction::New => self.counts.new += 1,
            PlanAction::Moved => self.counts.moved += 1,
            _ => self.counts.changed += 1,
        }
        let item = NewPlanItem {
            external_id: external_id.clone(),
            agent_id,
            action: action.as_str().into(),
            diffs: serde_json::to_value(&diffs).unwrap_or_default(),
        };
        let write = AgentWrite {
            fingerprint: new.fingerprint(),
            external_id,
            rmm_client_external_id: new.client_external_id,
            hostname: new.hostname,
            serial: new.serial,
            smbios_uuid: new.smbios_uuid,
            macs: new.macs,
            os: new.os,
            device_class: new.device_class,
            last_contact_at: new.last_contact,
        };
        Some((write, Some(item)))
    }

    async fn write(
        &mut self,
        writes: &mut Vec<(AgentWrite, Option<NewPlanItem>)>,
        known: &mut HashMap<String, Known>,
    ) -> Result<(), SyncError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (agents, items): (Vec<AgentWrite>, Vec<Option<NewPlanItem>>) =
            std::mem::take(writes).into_iter().unzip();
        let t = now();
        let upsert = self
            .db
            .upsert_agents(self.run.integration_id, &agents, t)
            .await?;
        self.counts.rows_written += upsert.rows_written();
        let ids: HashMap<&str, i64> = upsert.ids.iter().map(|(e, id)| (e.as_str(), *id)).collect();
        let mut items: Vec<NewPlanItem> = items.into_iter().flatten().collect();
        for it in &mut items {
            it.agent_id = ids.get(it.external_id.as_str()).copied();
        }
        self.counts.rows_written += self.db.add_plan_items(self.run.id, &items).await?;
        for a in agents {
            let Some(&id) = ids.get(a.external_id.as_str()) else {
                continue;
            };
            self.touched.insert(id);
            let facts = AgentFacts {
                hostname: a.hostname,
                serial: a.serial,
                smbios_uuid: a.smbios_uuid,
                macs: a.macs,
                os: a.os,
                device_class: a.device_class,
                client_external_id: a.rmm_client_external_id,
                last_contact: a.last_contact_at,
            };
            match known.get_mut(&a.external_id) {
                Some(k) => k.facts = facts,
                None => {
                    known.insert(
                        a.external_id,
                        Known {
                            id,
                            lifecycle: Lifecycle::Active,
                            computer_id: None,
                            facts,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Stage 3, after a complete fetch only.
    async fn lifecycle(
        &mut self,
        known: &mut HashMap<String, Known>,
        reported: &HashSet<String>,
        opts: &IntegrationOptions,
    ) -> Result<(), SyncError> {
        let t = now();
        let grace_ms = i64::from(opts.missing_grace_days) * 86_400_000;
        let mut states = Vec::new();
        let mut items = Vec::new();
        for (ext, k) in known.iter_mut() {
            let Some((next, action)) =
                plan::next_lifecycle(k.lifecycle, reported.contains(ext), t, grace_ms)
            else {
                continue;
            };
            let (state, since) = match next {
                Lifecycle::Active => (AgentState::Active, None),
                Lifecycle::Missing { since } => (AgentState::Missing, Some(since)),
                Lifecycle::Retired => (AgentState::Retired, None),
            };
            match action {
                PlanAction::Missing => self.counts.missing += 1,
                PlanAction::Retired => self.counts.retired += 1,
                _ => self.counts.returned += 1,
            }
            states.push((k.id, state, since));
            items.push(NewPlanItem {
                external_id: ext.clone(),
                agent_id: Some(k.id),
                action: action.as_str().into(),
                diffs: json!([{"field": "state", "from": lifecycle_name(k.lifecycle), "to": state.as_str()}]),
            });
            k.lifecycle = next;
        }
        self.counts.rows_written += self.db.set_agent_states(&states, t).await?;
        self.counts.rows_written += self.db.add_plan_items(self.run.id, &items).await?;
        Ok(())
    }

    /// Stage 4: identification and the computers that follow from it.
    async fn identify(
        &mut self,
        known: &HashMap<String, Known>,
        mapping: &Mapping,
        opts: &IntegrationOptions,
    ) -> Result<(), SyncError> {
        let integration_id = self.run.integration_id;
        let t = now();
        // After a run of this integration that did not finish, converge what it may have left:
        // computers created but never linked, and computers whose agents it retired.
        let previous_clean = self
            .db
            .list_sync_runs(Some(integration_id), 2)
            .await?
            .into_iter()
            .find(|r| r.id != self.run.id)
            .is_some_and(|r| r.state == SyncRunState::Succeeded);
        if !previous_clean {
            self.db.delete_orphan_computers().await?;
        }
        // Agents that wait for an admin's ManualDecision are not asked about again.
        let waiting = self.db.agents_with_open_decisions(integration_id).await?;
        let mut clock = std::time::Instant::now();
        let rows = self.db.identity_rows(true).await?;
        // Which integrations hold live agents of each computer, and its tenant.
        let mut computer_tenant: HashMap<i64, i64> = HashMap::new();
        let mut computer_integrations: HashMap<i64, HashSet<i64>> = HashMap::new();
        let mut index = IdentityIndex::new();
        for r in rows {
            if let (Some(c), Some(tenant)) = (r.computer_id, r.tenant_id) {
                computer_tenant.insert(c, tenant);
                if r.state != AgentState::Retired {
                    computer_integrations
                        .entry(c)
                        .or_default()
                        .insert(r.integration_id);
                }
            }
            index.insert(KnownAgent {
                agent_id: r.agent_id,
                integration_id: r.integration_id,
                computer_id: r.computer_id,
                tenant_id: r.tenant_id,
                live: r.state == AgentState::Active,
                missing: r.state == AgentState::Missing,
                ids: HardwareIds::from_raw(
                    &r.hostname,
                    r.serial.as_deref(),
                    r.smbios_uuid.as_deref(),
                    &r.macs,
                ),
            });
        }

        self.lap("identify.load", &mut clock);
        // Deterministic order: the same input decides the same way on every run.
        let mut agents: Vec<&Known> = known.values().collect();
        agents.sort_by_key(|k| k.id);
        let mut links: Vec<AgentLink> = Vec::new();
        let mut new_computers: Vec<NewComputerFor> = Vec::new();
        let mut decisions: Vec<NewDecision> = Vec::new();
        let mut updates: Vec<ComputerUpdate> = Vec::new();
        for k in agents {
            if k.lifecycle != Lifecycle::Active || waiting.contains(&k.id) {
                continue;
            }
            let tenant = k
                .facts
                .client_external_id
                .as_deref()
                .and_then(|c| mapping.tenant_of.get(c).copied());
            let Some(tenant) = tenant else {
                self.counts.waiting_for_mapping += 1;
                continue;
            };
            if let Some(c) = k.computer_id {
                // Rule 1: the same Agent. Its computer follows its tenant when no other
                // integration's agent holds the computer elsewhere.
                let sole = computer_integrations
                    .get(&c)
                    .is_none_or(|s| s.iter().all(|i| *i == integration_id));
                let moved = computer_tenant.get(&c).is_some_and(|t| *t != tenant) && sole;
                if moved {
                    self.counts.computers_moved += 1;
                }
                if moved || self.touched.contains(&k.id) {
                    let keep = computer_tenant.get(&c).copied().unwrap_or(tenant);
                    let tenant = if moved { tenant } else { keep };
                    updates.push(computer_update(c, tenant, &k.facts));
                }
                continue;
            }
            let incoming = Incoming {
                agent_id: k.id,
                integration_id,
                tenant_id: Some(tenant),
                allow_duplicates: opts.allow_duplicates,
                ids: HardwareIds::from_raw(
                    &k.facts.hostname,
                    k.facts.serial.as_deref(),
                    k.facts.smbios_uuid.as_deref(),
                    &k.facts.macs,
                ),
            };
            match identify(&incoming, &index) {
                Identification::Link {
                    computer_id,
                    rule,
                    evidence,
                    reinstall,
                } => {
                    match rule {
                        Rule::SmbiosUuid => self.counts.identified_smbios_uuid += 1,
                        Rule::Serial => self.counts.identified_serial += 1,
                        Rule::Mac => self.counts.identified_mac += 1,
                        _ => {}
                    }
                    if reinstall {
                        self.counts.reinstalls += 1;
                    }
                    let mut ev = serde_json::to_value(&evidence).unwrap_or_default();
                    ev["reinstall"] = json!(reinstall);
                    ev["explanation"] = json!(evidence.explain());
                    links.push(AgentLink {
                        agent_id: k.id,
                        computer_id,
                        rule: rule.as_str().into(),
                        evidence: ev,
                        decided_by: "sync".into(),
                        clone_of: None,
                    });
                    index.update_computer(k.id, Some(computer_id));
                    if links.len() >= WRITE_BATCH {
                        self.flush_links(&mut links, t).await?;
                    }
                }
                Identification::NewComputer { evidence, clone_of } => {
                    self.counts.new_computers += 1;
                    if !clone_of.is_empty() {
                        self.counts.clones += 1;
                    }
                    let mut ev = serde_json::to_value(&evidence).unwrap_or_default();
                    ev["explanation"] = json!(evidence.explain());
                    let flag = (!clone_of.is_empty())
                        .then(|| serde_json::to_string(&clone_of).unwrap_or_default());
                    new_computers.push((
                        k.id,
                        NewComputer {
                            tenant_id: tenant,
                            name: k.facts.hostname.clone(),
                            serial: k.facts.serial.clone(),
                            smbios_uuid: k.facts.smbios_uuid.clone(),
                            os: k.facts.os.clone(),
                            last_contact_at: k.facts.last_contact,
                        },
                        ev,
                        flag,
                    ));
                    // Written as the loop goes, so memory stays bounded at 100,000 agents.
                    if new_computers.len() >= WRITE_BATCH {
                        self.create_new_computers(&mut new_computers, &mut links, &mut index, t)
                            .await?;
                    }
                }
                Identification::Manual {
                    kind,
                    candidate_computer_id,
                    reason,
                    evidence,
                } => {
                    self.counts.manual_decisions += 1;
                    let mut ev = serde_json::to_value(&evidence).unwrap_or_default();
                    ev["explanation"] = json!(evidence.explain());
                    decisions.push(NewDecision {
                        agent_id: k.id,
                        candidate_computer_id,
                        kind: kind.as_str().into(),
                        reason,
                        evidence: ev,
                    });
                }
            }
        }

        self.lap("identify.decide", &mut clock);
        self.create_new_computers(&mut new_computers, &mut links, &mut index, t)
            .await?;
        self.flush_links(&mut links, t).await?;
        for chunk in decisions.chunks(WRITE_BATCH) {
            self.counts.rows_written += self.db.raise_decisions(chunk, t).await?;
        }
        for chunk in updates.chunks(WRITE_BATCH) {
            let n = self.db.update_computers(chunk, t).await?;
            self.counts.computers_updated += n;
            self.counts.rows_written += n;
        }
        self.lap("identify.write", &mut clock);
        let c = &self.counts;
        let agents_changed = c.missing
            + c.retired
            + c.returned
            + c.new_computers
            + c.computers_moved
            + c.identified_smbios_uuid
            + c.identified_serial
            + c.identified_mac
            > 0;
        if agents_changed || !previous_clean {
            let retired = self.db.retire_computers_without_live_agents(t).await?;
            let revived = self.db.revive_computers_with_live_agents(t).await?;
            self.counts.computers_retired += retired;
            self.counts.rows_written += retired + revived;
        }
        self.lap("identify.tidy", &mut clock);
        Ok(())
    }

    /// Creates the pending new computers and queues their links; a crash in between leaves
    /// orphans that the next run deletes before identifying again.
    async fn create_new_computers(
        &mut self,
        pending: &mut Vec<NewComputerFor>,
        links: &mut Vec<AgentLink>,
        index: &mut IdentityIndex,
        t: Timestamp,
    ) -> Result<(), SyncError> {
        if pending.is_empty() {
            return Ok(());
        }
        let (rows, rest): (Vec<NewComputer>, Vec<_>) = std::mem::take(pending)
            .into_iter()
            .map(|(agent, c, ev, flag)| (c, (agent, ev, flag)))
            .unzip();
        let ids = self.db.create_computers(&rows, t).await?;
        self.counts.rows_written += ids.len() as u64;
        for ((agent_id, evidence, clone_of), computer_id) in rest.into_iter().zip(ids) {
            index.update_computer(agent_id, Some(computer_id));
            links.push(AgentLink {
                agent_id,
                computer_id,
                rule: Rule::New.as_str().into(),
                evidence,
                decided_by: "sync".into(),
                clone_of,
            });
        }
        if links.len() >= WRITE_BATCH {
            self.flush_links(links, t).await?;
        }
        Ok(())
    }

    async fn flush_links(
        &mut self,
        links: &mut Vec<AgentLink>,
        t: Timestamp,
    ) -> Result<(), SyncError> {
        if links.is_empty() {
            return Ok(());
        }
        let n = self.db.link_agents(links, t).await?;
        // The link and its evidence row.
        self.counts.rows_written += n * 2;
        links.clear();
        Ok(())
    }
}

/// An Agent's new computer before it is created: agent id, row, evidence, clone flag.
type NewComputerFor = (i64, NewComputer, serde_json::Value, Option<String>);

fn computer_update(id: i64, tenant_id: i64, f: &AgentFacts) -> ComputerUpdate {
    ComputerUpdate {
        id,
        tenant_id,
        name: f.hostname.clone(),
        serial: f.serial.clone(),
        smbios_uuid: f.smbios_uuid.clone(),
        os: f.os.clone(),
        last_contact_at: f.last_contact,
    }
}

fn lifecycle_name(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Active => "active",
        Lifecycle::Missing { .. } => "missing",
        Lifecycle::Retired => "retired",
    }
}
