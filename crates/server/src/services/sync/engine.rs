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
        // The RMM's pages start streaming now, while the stored Agents load (a resync's snapshot of
        // 100,000 Agents takes seconds); PAGES_AHEAD bounds what waits in memory.
        let pages = Pages::start(connector.clone());
        let previous_clean = previous_run_clean(self.db, integration_id, self.run.id).await?;
        let mut known: HashMap<String, Known> = HashMap::new();
        self.db
            .agent_snapshot_each(integration_id, |a| {
                let (external_id, k) = facts_of(a);
                known.insert(external_id, k);
            })
            .await?;
        let mut identity = RunIdentity::new(
            self.db,
            integration_id,
            self.run.id,
            opts.allow_duplicates,
            known.values().map(|k| k.id),
        )
        .await?;
        let fetched = self
            .fetch_and_write(pages, &mapping, &mut known, &mut identity)
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
        pages: Pages,
        mapping: &Mapping,
        known: &mut HashMap<String, Known>,
        identity: &mut RunIdentity,
    ) -> Result<(), SyncError> {
        let Pages {
            pages: mut rx,
            fetcher,
        } = pages;
        let mut writer = Writer::start(
            self.db.dedicated_writer().await?,
            self.db.clone(),
            self.run.integration_id,
            self.run.id,
        );
        let mut batch = Batch::default();
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
            // Ids for the page's new Agents, before they are planned (most were reserved by
            // the writer along with an earlier batch).
            let new = devices
                .iter()
                .filter(|d| !known.contains_key(&d.external_id))
                .count();
            if new > identity.agent_ids_left() {
                identity
                    .top_up(self.db, new, 0, reserve_ahead(new, devices.len()))
                    .await?;
            }
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
                self.plan_device(d.external_id, new, known, identity, &mut batch)?;
            }
            if batch.len() >= WRITE_BATCH {
                self.write(&mut batch, known, mapping, identity, &mut writer)
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
        self.write(&mut batch, known, mapping, identity, &mut writer)
            .await?;
        self.drain(identity, writer).await?;
        outcome
    }

    /// Plans one device into `batch`: a new Agent (under a reserved id), a changed one, or
    /// nothing when nothing changed. `known` and the identity index take the new facts at once,
    /// so identification sees the batch before it is stored.
    fn plan_device(
        &mut self,
        external_id: String,
        mut new: AgentFacts,
        known: &mut HashMap<String, Known>,
        identity: &mut RunIdentity,
        batch: &mut Batch,
    ) -> Result<(), SyncError> {
        let Some(k) = known.get_mut(&external_id) else {
            let id = identity.take_agent_id().ok_or_else(|| {
                SyncError::Invalid("no reserved agent id was left for a new agent".into())
            })?;
            self.counts.new += 1;
            identity.add_agent(id, &new);
            self.touched.insert(id);
            // Its "new" plan item is written with it (`SyncBatch::plan_items` holds the others).
            batch.new_agents.push((id, agent_write(&external_id, &new)));
            batch.agents.push(external_id.clone());
            known.insert(
                external_id,
                Known {
                    id,
                    lifecycle: Lifecycle::Active,
                    computer_id: None,
                    computer_tenant: None,
                    facts: new,
                },
            );
            return Ok(());
        };
        // Keep the stored last contact while it is within the resolution, so the row stays equal.
        if let (Some(old), Some(now)) = (k.facts.last_contact, new.last_contact)
            && (now.0 - old.0).abs() <= plan::LAST_CONTACT_RESOLUTION_MS
        {
            new.last_contact = Some(old);
        }
        let diffs = plan::diff(&k.facts, &new);
        if diffs.is_empty() {
            self.counts.unchanged += 1;
            return Ok(());
        }
        let action = if diffs.iter().any(|d| d.field == "client") {
            self.counts.moved += 1;
            PlanAction::Moved
        } else {
            self.counts.changed += 1;
            PlanAction::Changed
        };
        batch.plan_items.push(NewPlanItem {
            external_id: external_id.clone(),
            agent_id: Some(k.id),
            action: action.as_str().into(),
            diffs: serde_json::to_value(&diffs).unwrap_or_default(),
        });
        identity.update_agent(k.id, &new);
        self.touched.insert(k.id);
        batch.changed_agents.push(agent_write(&external_id, &new));
        batch.agents.push(external_id);
        k.facts = new;
        Ok(())
    }

    /// Identifies a planned batch and hands it, with identification's writes, to the writer;
    /// while the writer stores it, takes in the batch before (its counts and the ids it reserved).
    async fn write(
        &mut self,
        batch: &mut Batch,
        known: &HashMap<String, Known>,
        mapping: &Mapping,
        identity: &mut RunIdentity,
        writer: &mut Writer,
    ) -> Result<(), SyncError> {
        if batch.len() == 0 {
            return Ok(());
        }
        let b = std::mem::take(batch);
        let started = std::time::Instant::now();
        // Identified once the whole batch is in the index, so two copies in one batch see each other:
        // the batch's unlinked live Agents of mapped clients that nothing decided yet.
        let candidates: Vec<(&Known, i64)> = b
            .agents
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
            let touched = &self.touched;
            let run_agents = known
                .values()
                .filter(|k| touched.contains(&k.id))
                .map(|k| (k.id, &k.facts));
            identity
                .ensure_loaded(self.db, &mut self.counts, run_agents)
                .await?;
            let n = candidates.len();
            if n > identity.computer_ids_left() {
                identity
                    .top_up(self.db, 0, n, reserve_ahead(n, b.len()))
                    .await?;
            }
        }
        let computers_before = identity.computer_ids_left();
        for (k, tenant_id) in candidates {
            let c = Candidate {
                agent_id: k.id,
                tenant_id,
                facts: &k.facts,
            };
            identity.decide_early(&c, &mut self.counts);
        }
        lap(&mut self.counts, "devices.identify", started);
        let mut w = identity.take_writes(true).unwrap_or_default();
        // The next batches will look like this one: what it used is reserved again for them.
        w.batch.reserve_agents = b.new_agents.len();
        w.batch.reserve_computers = computers_before - identity.computer_ids_left();
        w.batch.new_agents = b.new_agents;
        w.batch.changed_agents = b.changed_agents;
        w.batch.plan_items = b.plan_items;
        let stored = writer.batch(w).await?;
        if let Some(previous) = writer.in_flight.replace(stored) {
            self.take_in(previous, identity, writer).await?;
        }
        Ok(())
    }

    /// Everything handed to the writer is stored (or the writer's error is returned).
    async fn drain(
        &mut self,
        identity: &mut RunIdentity,
        mut writer: Writer,
    ) -> Result<(), SyncError> {
        if let Some(previous) = writer.in_flight.take() {
            self.take_in(previous, identity, &mut writer).await?;
        }
        writer.finish().await
    }

    /// A stored batch: its counts, and the ids it reserved for the batches after.
    async fn take_in(
        &mut self,
        stored: tokio::sync::oneshot::Receiver<Written>,
        identity: &mut RunIdentity,
        writer: &mut Writer,
    ) -> Result<(), SyncError> {
        let Ok(mut w) = stored.await else {
            // The writer stopped: its error says why.
            return Err(writer.failure().await);
        };
        let (agents, computers) = std::mem::take(&mut w.reserved);
        identity.add_reserved(agents, computers);
        identity.written(w, &mut self.counts);
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
        // Ids for the computers this stage may create: at most one per unlinked mapped Agent.
        let undecided = agents
            .iter()
            .filter(|k| k.computer_id.is_none() || identity.is_revisit(k.id))
            .filter(|k| mapping.tenant_of_facts(&k.facts).is_some())
            .count();
        if undecided > identity.computer_ids_left() {
            identity.top_up(self.db, 0, undecided, 0).await?;
        }
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
                        identity
                            .ensure_loaded(self.db, &mut self.counts, std::iter::empty())
                            .await?;
                    }
                    let changed = self.touched.contains(&k.id);
                    identity.follow(computer, k.computer_tenant, &c, changed, &mut self.counts)
                }
                _ => {
                    identity
                        .ensure_loaded(self.db, &mut self.counts, std::iter::empty())
                        .await?;
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

/// The RMM's device pages, fetched ahead by a task of their own. Dropped unread, the task stops
/// at its next page.
struct Pages {
    pages: tokio::sync::mpsc::Receiver<Result<Vec<RmmDevice>, rmmbridge_rmm::RmmError>>,
    fetcher: tokio::task::JoinHandle<()>,
}

impl Pages {
    fn start(connector: Arc<dyn Connector>) -> Pages {
        let (tx, pages) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let fetcher = tokio::spawn(async move {
            let mut stream = connector.devices();
            while let Some(page) = stream.next().await {
                let failed = page.is_err();
                if tx.send(page).await.is_err() || failed {
                    break;
                }
            }
        });
        Pages { pages, fetcher }
    }
}

/// One batch of the devices stage as the engine plans it.
#[derive(Default)]
struct Batch {
    new_agents: Vec<(i64, AgentWrite)>,
    changed_agents: Vec<AgentWrite>,
    plan_items: Vec<NewPlanItem>,
    /// External ids of the batch's Agents, new and changed: those identification looks at.
    agents: Vec<String>,
}

impl Batch {
    fn len(&self) -> usize {
        self.new_agents.len() + self.changed_agents.len()
    }
}

/// The row written for an Agent with these facts.
fn agent_write(external_id: &str, f: &AgentFacts) -> AgentWrite {
    AgentWrite {
        fingerprint: f.fingerprint(),
        external_id: external_id.to_owned(),
        rmm_client_external_id: f.client_external_id.clone(),
        hostname: f.hostname.clone(),
        serial: f.serial.clone(),
        smbios_uuid: f.smbios_uuid.clone(),
        macs: f.macs.clone(),
        os: f.os.clone(),
        device_class: f.device_class.clone(),
        last_contact_at: f.last_contact,
    }
}

/// Ids to reserve beyond those needed now. A page or batch that is mostly new is a first import:
/// the next two batches' ids are reserved with it, after which each stored batch reserves the
/// ids of the one after next. A few new devices in a resync reserve just what they need.
fn reserve_ahead(needed: usize, seen: usize) -> usize {
    if needed * 2 > seen && needed >= 100 {
        2 * WRITE_BATCH
    } else {
        0
    }
}

enum WriteJob {
    Batch {
        writes: PendingWrites,
        reply: tokio::sync::oneshot::Sender<Written>,
    },
    /// The run's counts and heartbeat, in order with its writes.
    Progress(serde_json::Value, Timestamp),
}

/// The database side of the devices stage, in a task of its own: batches are stored in the order
/// they are handed over while the engine plans and identifies the next ones. SQLite has one
/// writer at a time anyway; this keeps it busy.
struct Writer {
    jobs: tokio::sync::mpsc::Sender<WriteJob>,
    task: tokio::task::JoinHandle<Result<(), SyncError>>,
    /// The batch being stored, not taken in yet.
    in_flight: Option<tokio::sync::oneshot::Receiver<Written>>,
}

impl Writer {
    /// `db` is the writer's own handle ([`Db::dedicated_writer`]), `shared` the pool it came from.
    fn start(db: Db, shared: Db, integration_id: i64, run_id: i64) -> Writer {
        // Few batches are ever queued (the engine takes each stored batch in before handing over
        // the one after next); the room is for progress jobs, so they never hold the engine up.
        let (jobs, mut rx) = tokio::sync::mpsc::channel::<WriteJob>(8);
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let t = now();
                match job {
                    WriteJob::Batch { writes, reply } => {
                        let _ = reply.send(writes.apply(&db, integration_id, run_id, t).await?);
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
            task,
            in_flight: None,
        }
    }

    async fn batch(
        &mut self,
        writes: PendingWrites,
    ) -> Result<tokio::sync::oneshot::Receiver<Written>, SyncError> {
        let (reply, stored) = tokio::sync::oneshot::channel();
        if self
            .jobs
            .send(WriteJob::Batch { writes, reply })
            .await
            .is_err()
        {
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

    /// Why the writer stopped.
    async fn failure(&mut self) -> SyncError {
        match joined(&mut self.task).await {
            Err(e) => e,
            Ok(()) => SyncError::Invalid("the sync's database writer stopped early".into()),
        }
    }

    /// Waits until everything handed over is stored.
    async fn finish(self) -> Result<(), SyncError> {
        let Writer { jobs, mut task, .. } = self;
        // No more jobs: the task ends once it has stored what is queued.
        drop(jobs);
        joined(&mut task).await
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

fn lifecycle_name(l: Lifecycle) -> &'static str {
    match l {
        Lifecycle::Active => "active",
        Lifecycle::Missing { .. } => "missing",
        Lifecycle::Retired => "retired",
    }
}
