//! The device sync engine (DESIGN.md §3 item 6, §4). One run, in stages:
//!
//! 1. `clients`: refresh the RMM's client list, so devices filed under new clients resolve.
//! 2. `devices`: stream the device pages (fetching runs ahead in its own task), compare each device
//!    with the stored Agent in pure code ([`plan::diff`]) and hand only new and changed Agents, in
//!    batches, to a [`Writer`] task that stores them in order. Devices of excluded clients are not
//!    stored. While the writer stores one batch, the batch before is identified against an
//!    in-memory index of every Agent the hub knows ([`RunIdentity`]), unless the decision depends on
//!    Agents the run has not seen yet.
//! 3. `lifecycle`: only after a *complete* fetch: unreported Agents go missing, missing ones past
//!    the grace period are retired; reported ones return.
//! 4. `identify`: the unlinked live Agents not decided yet (and the few early decisions a later
//!    copy put in doubt) are identified; computers follow their Agents' tenant and facts.
//!
//! Every write is idempotent and each stage re-derives its work from the database, so a run that
//! was killed half-way is converged by the next one: no duplicates, the same final state.
use super::SyncError;
use super::identity::{Candidate, PendingWrites, RunIdentity, Written, lap, previous_run_clean};
use crate::services::integrations::IntegrationOptions;
use crate::services::integrations::connectors::Connectors;
use crate::state::now;
use futures::StreamExt;
use rmmbridge_core::Timestamp;
use rmmbridge_core::plan::{self, AgentFacts, Lifecycle, PlanAction, RunCounts};
use rmmbridge_core::rmm::{RmmClientKind, RmmDevice};
use rmmbridge_rmm::Connector;
use rmmbridge_store::{
    AgentSnapshot, AgentState, AgentWrite, ClientLinkState, Db, NewPlanItem, SyncRun, SyncRunState,
};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A run whose heartbeat is older than this is abandoned by the next run.
pub const STALE_AFTER_S: i64 = 120;

/// Agents written per transaction: big enough to amortise the commit, small enough that a crash
/// loses little and progress stays live.
const WRITE_BATCH: usize = 10_000;

/// Pages fetched ahead of the engine: more than a write batch, so fetching never waits for a
/// batch being stored.
const PAGES_AHEAD: usize = 16;

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
    computer_tenant: Option<i64>,
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
        computer_tenant: a.computer_tenant_id,
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

    /// The tenant an Agent's client is mapped to, if it is.
    fn tenant_of_facts(&self, f: &AgentFacts) -> Option<i64> {
        f.client_external_id
            .as_deref()
            .and_then(|c| self.tenant_of.get(c).copied())
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
        self.counts.add_ms(step, ms);
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
        let previous_clean = previous_run_clean(self.db, integration_id, self.run.id).await?;
        let mut known: HashMap<String, Known> = self
            .db
            .agent_snapshot(integration_id)
            .await?
            .into_iter()
            .map(facts_of)
            .collect();
        let mut identity = RunIdentity::new(
            self.db,
            integration_id,
            opts.allow_duplicates,
            known.values().map(|k| k.id),
        )
        .await?;
        let fetched = self
            .fetch_and_write(connector.clone(), &mapping, &mut known, &mut identity)
            .await;
        connectors.record_tokens(integration_id, &*connector).await;
        fetched?;

        self.stage("lifecycle").await?;
        self.lifecycle(&mut known, &mut identity, &opts).await?;

        self.stage("identify").await?;
        self.identify(&known, &mapping, &mut identity, previous_clean)
            .await?;
        Ok(())
    }

    /// Stage 2. Every device the RMM reports counts as reported (excluded clients' devices too:
    /// they are not absent, only not wanted).
    async fn fetch_and_write(
        &mut self,
        connector: Arc<dyn Connector>,
        mapping: &Mapping,
        known: &mut HashMap<String, Known>,
        identity: &mut RunIdentity,
    ) -> Result<(), SyncError> {
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
        let mut writer = Writer::start(
            self.db.dedicated_writer().await?,
            self.db.clone(),
            self.run.integration_id,
            self.run.id,
        );
        let mut writes: Vec<(AgentWrite, Option<NewPlanItem>)> = Vec::new();
        let mut outcome = Ok(());
        loop {
            // How long the engine waits for the RMM: near zero when writing is the slower side.
            let waited = std::time::Instant::now();
            let Some(page) = rx.recv().await else { break };
            lap(&mut self.counts, "devices.wait", waited);
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
                if let Some(k) = known.get(&d.external_id) {
                    identity.reported(k.id);
                }
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
                self.write(&mut writes, known, mapping, identity, &mut writer)
                    .await?;
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
                writer.progress(counts, t).await?;
            }
        }
        drop(rx);
        let _ = fetcher.await;
        // What was fetched before a failure is still stored: the next run starts from there.
        self.write(&mut writes, known, mapping, identity, &mut writer)
            .await?;
        self.drain(known, mapping, identity, writer).await?;
        outcome
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

    /// Hands a batch of Agent writes to the writer and, while the writer stores it, takes in
    /// the batch before (identifies it and hands identification's writes on).
    async fn write(
        &mut self,
        writes: &mut Vec<(AgentWrite, Option<NewPlanItem>)>,
        known: &mut HashMap<String, Known>,
        mapping: &Mapping,
        identity: &mut RunIdentity,
        writer: &mut Writer,
    ) -> Result<(), SyncError> {
        if writes.is_empty() {
            return Ok(());
        }
        let (agents, items): (Vec<AgentWrite>, Vec<Option<NewPlanItem>>) =
            std::mem::take(writes).into_iter().unzip();
        let items = items.into_iter().flatten().collect();
        let stored = writer.agents(agents, items).await?;
        if let Some(previous) = writer.in_flight.replace(stored) {
            self.absorb(previous, known, mapping, identity, writer)
                .await?;
        }
        Ok(())
    }

    /// Everything handed to the writer is stored (or the writer's error is returned).
    async fn drain(
        &mut self,
        known: &mut HashMap<String, Known>,
        mapping: &Mapping,
        identity: &mut RunIdentity,
        mut writer: Writer,
    ) -> Result<(), SyncError> {
        if let Some(previous) = writer.in_flight.take() {
            self.absorb(previous, known, mapping, identity, &mut writer)
                .await?;
        }
        if let Some(w) = identity.take_writes(true) {
            writer.identity(w).await?;
        }
        for done in writer.finish().await? {
            identity.written(done, &mut self.counts);
        }
        Ok(())
    }

    /// A stored batch: its ids go into `known` and the index, its new Agents are identified.
    async fn absorb(
        &mut self,
        stored: tokio::sync::oneshot::Receiver<AgentsStored>,
        known: &mut HashMap<String, Known>,
        mapping: &Mapping,
        identity: &mut RunIdentity,
        writer: &mut Writer,
    ) -> Result<(), SyncError> {
        let Ok(AgentsStored {
            agents,
            upsert,
            rows_written,
            ms,
        }) = stored.await
        else {
            // The writer stopped: its error says why.
            return Err(writer.failure().await);
        };
        self.counts.rows_written += rows_written;
        for (step, v) in ms {
            self.counts.add_ms(step, v);
        }
        // Computers created for earlier batches, so the index links to them.
        for done in writer.done_so_far() {
            identity.written(done, &mut self.counts);
        }
        let ids: HashMap<&str, i64> = upsert.ids.iter().map(|(e, id)| (e.as_str(), *id)).collect();
        let started = std::time::Instant::now();
        let mut written: Vec<String> = Vec::with_capacity(agents.len());
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
                Some(k) => {
                    identity.update_agent(id, &facts);
                    k.facts = facts;
                }
                None => {
                    identity.add_agent(id, &facts);
                    known.insert(
                        a.external_id.clone(),
                        Known {
                            id,
                            lifecycle: Lifecycle::Active,
                            computer_id: None,
                            computer_tenant: None,
                            facts,
                        },
                    );
                }
            }
            written.push(a.external_id);
        }
        // Identified once the whole batch is in the index, so two copies in one batch see each other:
        // the batch's unlinked live Agents of mapped clients that nothing decided yet.
        let candidates: Vec<(&Known, i64)> = written
            .iter()
            .filter_map(|ext| known.get(ext))
            .filter(|k| {
                k.lifecycle == Lifecycle::Active
                    && k.computer_id.is_none()
                    && !identity.is_waiting(k.id)
                    && !identity.is_settled(k.id)
            })
            .filter_map(|k| Some((k, mapping.tenant_of_facts(&k.facts)?)))
            .collect();
        if !candidates.is_empty() {
            identity.ensure_loaded(self.db, &mut self.counts).await?;
        }
        for (k, tenant_id) in candidates {
            let c = Candidate {
                agent_id: k.id,
                tenant_id,
                facts: &k.facts,
            };
            identity.decide_early(&c, &mut self.counts);
        }
        lap(&mut self.counts, "devices.identify", started);
        if let Some(w) = identity.take_writes(false) {
            writer.identity(w).await?;
        }
        Ok(())
    }

    /// Stage 3, after a complete fetch only.
    async fn lifecycle(
        &mut self,
        known: &mut HashMap<String, Known>,
        identity: &mut RunIdentity,
        opts: &IntegrationOptions,
    ) -> Result<(), SyncError> {
        let t = now();
        let grace_ms = i64::from(opts.missing_grace_days) * 86_400_000;
        let mut states = Vec::new();
        let mut items = Vec::new();
        for (ext, k) in known.iter_mut() {
            let Some((next, action)) =
                plan::next_lifecycle(k.lifecycle, identity.was_reported(k.id), t, grace_ms)
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
            identity.set_state(
                k.id,
                state == AgentState::Active,
                state == AgentState::Missing,
            );
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

    /// Stage 4: the Agents not decided while the pages streamed in, and the computers that
    /// follow their Agents.
    async fn identify(
        &mut self,
        known: &HashMap<String, Known>,
        mapping: &Mapping,
        identity: &mut RunIdentity,
        previous_clean: bool,
    ) -> Result<(), SyncError> {
        let t = now();
        let mut clock = std::time::Instant::now();
        // Deterministic order: the same input decides the same way on every run.
        let mut agents: Vec<&Known> = known
            .values()
            .filter(|k| {
                k.lifecycle == Lifecycle::Active
                    && !identity.is_settled(k.id)
                    && !identity.is_waiting(k.id)
            })
            .collect();
        agents.sort_by_key(|k| k.id);
        for k in agents {
            let Some(tenant_id) = mapping.tenant_of_facts(&k.facts) else {
                self.counts.waiting_for_mapping += 1;
                continue;
            };
            let c = Candidate {
                agent_id: k.id,
                tenant_id,
                facts: &k.facts,
            };
            match k.computer_id {
                Some(computer) if !identity.is_revisit(k.id) => {
                    if k.computer_tenant.is_some_and(|t| t != tenant_id) {
                        identity.ensure_loaded(self.db, &mut self.counts).await?;
                    }
                    let changed = self.touched.contains(&k.id);
                    identity.follow(computer, k.computer_tenant, &c, changed, &mut self.counts)
                }
                _ => {
                    identity.ensure_loaded(self.db, &mut self.counts).await?;
                    identity.decide_late(&c, &mut self.counts);
                }
            }
            identity.flush(self.db, t, false, &mut self.counts).await?;
        }
        self.lap("identify.decide", &mut clock);
        identity.finish(self.db, t, &mut self.counts).await?;
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
}

/// A stored batch of Agents: the writes back (the engine keeps their facts), the ids.
struct AgentsStored {
    agents: Vec<AgentWrite>,
    upsert: rmmbridge_store::AgentUpsert,
    rows_written: u64,
    ms: Vec<(&'static str, u64)>,
}

enum WriteJob {
    Agents {
        agents: Vec<AgentWrite>,
        items: Vec<NewPlanItem>,
        reply: tokio::sync::oneshot::Sender<AgentsStored>,
    },
    Identity(PendingWrites),
    /// The run's counts and heartbeat, in order with its writes.
    Progress(serde_json::Value, Timestamp),
}

/// The database side of the devices stage, in a task of its own: batches are stored in the order
/// they are handed over while the engine plans and identifies the next ones. SQLite has one
/// writer at a time anyway; this keeps it busy.
struct Writer {
    jobs: tokio::sync::mpsc::Sender<WriteJob>,
    done: tokio::sync::mpsc::UnboundedReceiver<Written>,
    task: tokio::task::JoinHandle<Result<(), SyncError>>,
    /// The batch being stored, not taken in yet.
    in_flight: Option<tokio::sync::oneshot::Receiver<AgentsStored>>,
}

impl Writer {
    /// `db` is the writer's own handle ([`Db::dedicated_writer`]), `shared` the pool it came from.
    fn start(db: Db, shared: Db, integration_id: i64, run_id: i64) -> Writer {
        // Few batches are ever queued (the engine takes each stored batch in before handing over
        // the one after next); the room is for progress jobs, so they never hold the engine up.
        let (jobs, mut rx) = tokio::sync::mpsc::channel::<WriteJob>(8);
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let t = now();
                match job {
                    WriteJob::Agents {
                        agents,
                        mut items,
                        reply,
                    } => {
                        let started = std::time::Instant::now();
                        let upsert = db.upsert_agents(integration_id, &agents, t).await?;
                        let mut ms = vec![("write.agents", started.elapsed().as_millis() as u64)];
                        let ids: HashMap<&str, i64> =
                            upsert.ids.iter().map(|(e, id)| (e.as_str(), *id)).collect();
                        for it in &mut items {
                            it.agent_id = ids.get(it.external_id.as_str()).copied();
                        }
                        let started = std::time::Instant::now();
                        let plan_rows = db.add_plan_items(run_id, &items).await?;
                        ms.push(("write.plan", started.elapsed().as_millis() as u64));
                        let rows_written = upsert.rows_written() + plan_rows;
                        let _ = reply.send(AgentsStored {
                            agents,
                            upsert,
                            rows_written,
                            ms,
                        });
                    }
                    WriteJob::Identity(w) => {
                        let _ = done_tx.send(w.apply(&db, t).await?);
                    }
                    WriteJob::Progress(counts, at) => {
                        db.update_sync_run(run_id, "devices", &counts, at).await?;
                    }
                }
            }
            db.release_writer(&shared).await;
            Ok(())
        });
        Writer {
            jobs,
            done,
            task,
            in_flight: None,
        }
    }

    async fn agents(
        &mut self,
        agents: Vec<AgentWrite>,
        items: Vec<NewPlanItem>,
    ) -> Result<tokio::sync::oneshot::Receiver<AgentsStored>, SyncError> {
        let (reply, stored) = tokio::sync::oneshot::channel();
        let job = WriteJob::Agents {
            agents,
            items,
            reply,
        };
        if self.jobs.send(job).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(stored)
    }

    async fn progress(&mut self, counts: serde_json::Value, t: Timestamp) -> Result<(), SyncError> {
        if self.jobs.send(WriteJob::Progress(counts, t)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    async fn identity(&mut self, w: PendingWrites) -> Result<(), SyncError> {
        if self.jobs.send(WriteJob::Identity(w)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Identification writes stored so far.
    fn done_so_far(&mut self) -> Vec<Written> {
        received(&mut self.done)
    }

    /// Why the writer stopped.
    async fn failure(&mut self) -> SyncError {
        match joined(&mut self.task).await {
            Err(e) => e,
            Ok(()) => SyncError::Invalid("the sync's database writer stopped early".into()),
        }
    }

    /// Waits until everything handed over is stored; returns the last identification writes.
    async fn finish(self) -> Result<Vec<Written>, SyncError> {
        let Writer {
            jobs,
            mut done,
            mut task,
            ..
        } = self;
        // No more jobs: the task ends once it has stored what is queued.
        drop(jobs);
        joined(&mut task).await?;
        Ok(received(&mut done))
    }
}

/// The writer task's outcome.
async fn joined(
    task: &mut tokio::task::JoinHandle<Result<(), SyncError>>,
) -> Result<(), SyncError> {
    match task.await {
        Ok(outcome) => outcome,
        Err(e) => Err(SyncError::Invalid(format!(
            "the sync's database writer failed: {e}"
        ))),
    }
}

fn received(done: &mut tokio::sync::mpsc::UnboundedReceiver<Written>) -> Vec<Written> {
    let mut out = Vec::new();
    while let Ok(w) = done.try_recv() {
        out.push(w);
    }
    out
}

fn lifecycle_name(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Active => "active",
        Lifecycle::Missing { .. } => "missing",
        Lifecycle::Retired => "retired",
    }
}
