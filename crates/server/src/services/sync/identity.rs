//! Identification inside a sync run (DESIGN.md §4), kept in memory for the whole run so that most
//! Agents are identified while the device pages still stream in, not in a second pass after them.
//!
//! A new Agent can be decided as soon as it is written, except when the decision may depend on
//! this integration's Agents that the run has not seen yet: whether an old Agent with the same
//! hardware id is live (a clone) or gone (a reinstall) is only known once the fetch is complete.
//! Those wait for the `identify` stage, as do Agents whose copy turned up later in the run and
//! whose early decision used the shared id (they are decided again with the full picture).
use super::SyncError;
use rmmbridge_core::Timestamp;
use rmmbridge_core::identify::{
    Evidence, HardwareIds, Identification, IdentityIndex, Incoming, KnownAgent, Rule, identify,
    same_integration_holders,
};
use rmmbridge_core::plan::{AgentFacts, RunCounts};
use rmmbridge_store::{
    AgentLink, AgentState, ComputerUpdate, Db, IdKind, NewComputer, NewDecision, SyncBatch,
    SyncRunState,
};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Writes queued before they go to the database in one batch.
const WRITE_BATCH: usize = 10_000;

/// How an Agent was decided in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decided {
    Linked { computer_id: i64, rule: Rule },
    New,
    Manual,
}

/// An Agent's new computer before it is created: agent id, the computer's reserved id, row,
/// evidence, clone flag.
type NewComputerFor = (i64, i64, NewComputer, Box<RawValue>, Option<String>);

/// One integration's view of identification for the length of a run.
pub(super) struct RunIdentity {
    integration_id: i64,
    run_id: i64,
    allow_duplicates: bool,
    loaded: bool,
    index: IdentityIndex,
    /// Which integrations hold live agents of each computer.
    computer_integrations: HashMap<i64, HashSet<i64>>,
    /// Agents waiting for an admin's ManualDecision: not asked about again.
    waiting: HashSet<i64>,
    /// This integration's Agents stored before the run that the RMM has not reported yet.
    unreported: HashSet<i64>,
    decided: HashMap<i64, Decided>,
    /// Decided early, then a copy sharing their hardware ids arrived: decided again at the end.
    revisit: BTreeSet<i64>,
    /// Clone flags of Agents that became new computers this run, and copies found after them.
    clone_of: HashMap<i64, Vec<i64>>,
    later_copies: BTreeMap<i64, BTreeSet<i64>>,
    new_computers: Vec<NewComputerFor>,
    links: Vec<AgentLink>,
    unlinks: Vec<i64>,
    decisions: Vec<NewDecision>,
    updates: Vec<ComputerUpdate>,
    /// Ids reserved for this run's new Agents and new computers ([`rmmbridge_store::ids`]).
    agent_ids: VecDeque<i64>,
    computer_ids: VecDeque<i64>,
}

/// An Agent to identify: its id, the tenant its client is mapped to, its facts.
pub(super) struct Candidate<'a> {
    pub agent_id: i64,
    pub tenant_id: i64,
    pub facts: &'a AgentFacts,
}

impl RunIdentity {
    /// `own`: this integration's Agents before the run. The index is loaded on first use, so a
    /// run with nothing to identify never reads it.
    pub async fn new(
        db: &Db,
        integration_id: i64,
        run_id: i64,
        allow_duplicates: bool,
        own: impl IntoIterator<Item = i64>,
    ) -> Result<Self, SyncError> {
        let waiting = db.agents_with_open_decisions(integration_id).await?;
        Ok(Self::fresh(
            integration_id,
            run_id,
            allow_duplicates,
            own,
            waiting,
        ))
    }

    fn fresh(
        integration_id: i64,
        run_id: i64,
        allow_duplicates: bool,
        own: impl IntoIterator<Item = i64>,
        waiting: HashSet<i64>,
    ) -> Self {
        RunIdentity {
            integration_id,
            run_id,
            allow_duplicates,
            loaded: false,
            index: IdentityIndex::new(),
            computer_integrations: HashMap::new(),
            waiting,
            unreported: own.into_iter().collect(),
            decided: HashMap::new(),
            revisit: BTreeSet::new(),
            clone_of: HashMap::new(),
            later_copies: BTreeMap::new(),
            new_computers: Vec::new(),
            links: Vec::new(),
            unlinks: Vec::new(),
            decisions: Vec::new(),
            updates: Vec::new(),
            agent_ids: VecDeque::new(),
            computer_ids: VecDeque::new(),
        }
    }

    /// Ids reserved by the writer for later batches.
    pub fn add_reserved(&mut self, agents: Vec<i64>, computers: Vec<i64>) {
        self.agent_ids.extend(agents);
        self.computer_ids.extend(computers);
    }

    /// Makes sure `agents` Agent ids and `computers` computer ids are at hand, reserving the
    /// missing ones now (`ahead` more of each when some are missing, so that the batches after
    /// this one find theirs already reserved by the writer and never wait for its lock).
    pub async fn top_up(
        &mut self,
        db: &Db,
        agents: usize,
        computers: usize,
        ahead: usize,
    ) -> Result<(), SyncError> {
        if self.agent_ids.len() < agents {
            let n = agents - self.agent_ids.len() + ahead;
            self.agent_ids
                .extend(db.reserve_ids(IdKind::Agents, n).await?);
        }
        if self.computer_ids.len() < computers {
            let n = computers - self.computer_ids.len() + ahead;
            self.computer_ids
                .extend(db.reserve_ids(IdKind::Computers, n).await?);
        }
        Ok(())
    }

    /// A reserved id for a new Agent ([`RunIdentity::top_up`] first).
    pub fn take_agent_id(&mut self) -> Option<i64> {
        self.agent_ids.pop_front()
    }

    pub fn agent_ids_left(&self) -> usize {
        self.agent_ids.len()
    }

    pub fn computer_ids_left(&self) -> usize {
        self.computer_ids.len()
    }

    /// Loads every Agent the hub knows, then this run's Agents as the run sees them: `run_agents`
    /// are the Agents this run wrote or is writing, some of them not stored yet.
    pub async fn ensure_loaded<'f>(
        &mut self,
        db: &Db,
        counts: &mut RunCounts,
        run_agents: impl Iterator<Item = (i64, &'f AgentFacts)>,
    ) -> Result<(), SyncError> {
        if self.loaded {
            return Ok(());
        }
        let started = std::time::Instant::now();
        for r in db.identity_rows(true).await? {
            if let Some(c) = r.computer_id
                && r.state != AgentState::Retired
            {
                self.computer_integrations
                    .entry(c)
                    .or_default()
                    .insert(r.integration_id);
            }
            self.index.insert(KnownAgent {
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
        for (agent_id, facts) in run_agents {
            let ids = hardware_ids(facts);
            match self.index.get(agent_id) {
                Some(mut a) => {
                    a.ids = ids;
                    self.index.insert(a);
                }
                None => self.index.insert(self.unlinked(agent_id, ids)),
            }
        }
        self.loaded = true;
        lap(counts, "identity.load", started);
        Ok(())
    }

    /// The RMM reported this stored Agent in the current run.
    pub fn reported(&mut self, agent_id: i64) {
        self.unreported.remove(&agent_id);
    }

    /// Whether a stored Agent was reported in this run (after a complete fetch: whether it is gone).
    pub fn was_reported(&self, agent_id: i64) -> bool {
        !self.unreported.contains(&agent_id)
    }

    /// An Agent the run just created: live, not linked yet.
    pub fn add_agent(&mut self, agent_id: i64, facts: &AgentFacts) {
        // Before the index is loaded, loading adds it (as one of the run's Agents).
        if !self.loaded {
            return;
        }
        let ids = self.revisit_holders_of(agent_id, hardware_ids(facts));
        let agent = self.unlinked(agent_id, ids);
        self.index.insert(agent);
    }

    /// One of this integration's Agents as the index holds it before it is decided.
    fn unlinked(&self, agent_id: i64, ids: HardwareIds) -> KnownAgent {
        KnownAgent {
            agent_id,
            integration_id: self.integration_id,
            computer_id: None,
            tenant_id: None,
            live: true,
            missing: false,
            ids,
        }
    }

    /// A stored Agent whose facts the RMM changed.
    pub fn update_agent(&mut self, agent_id: i64, facts: &AgentFacts) {
        if !self.loaded {
            return;
        }
        let ids = self.revisit_holders_of(agent_id, hardware_ids(facts));
        if let Some(mut a) = self.index.get(agent_id) {
            a.ids = ids;
            self.index.insert(a);
        }
    }

    /// Agents linked earlier in this run through a hardware id this Agent (with `ids`, handed
    /// back) turns out to share: a shared id may be a clone's, so they are decided again once the
    /// fetch is complete.
    fn revisit_holders_of(&mut self, agent_id: i64, ids: HardwareIds) -> HardwareIds {
        if self.decided.is_empty() {
            return ids;
        }
        let incoming = Incoming {
            agent_id,
            integration_id: self.integration_id,
            tenant_id: None,
            allow_duplicates: self.allow_duplicates,
            ids,
        };
        for h in same_integration_holders(&incoming, &self.index) {
            if let Some(Decided::Linked { .. }) = self.decided.get(&h) {
                self.revisit.insert(h);
            }
        }
        incoming.ids
    }

    /// A lifecycle transition of the lifecycle stage.
    pub fn set_state(&mut self, agent_id: i64, live: bool, missing: bool) {
        if !self.loaded {
            return;
        }
        self.index.update_state(agent_id, live, missing);
    }

    /// Waits for a ManualDecision.
    pub fn is_waiting(&self, agent_id: i64) -> bool {
        self.waiting.contains(&agent_id)
    }

    /// Already decided in this run, and not to be decided again.
    pub fn is_settled(&self, agent_id: i64) -> bool {
        self.decided.contains_key(&agent_id) && !self.revisit.contains(&agent_id)
    }

    /// Decided early, but to be decided again now that the fetch is complete.
    pub fn is_revisit(&self, agent_id: i64) -> bool {
        self.revisit.contains(&agent_id)
    }

    /// Identifies an unlinked Agent while the pages stream in, unless the decision depends on
    /// Agents of this integration the run has not seen yet. Returns whether it was decided.
    pub fn decide_early(&mut self, c: &Candidate, counts: &mut RunCounts) -> bool {
        let incoming = self.incoming(c);
        if !self.unreported.is_empty() {
            let holders = same_integration_holders(&incoming, &self.index);
            if holders.iter().any(|h| self.unreported.contains(h)) {
                return false;
            }
        }
        self.decide(c, incoming, counts)
    }

    /// Identifies an unlinked Agent (or, for one decided early, decides it again).
    pub fn decide_late(&mut self, c: &Candidate, counts: &mut RunCounts) {
        let incoming = self.incoming(c);
        // Undecided only without a reserved computer id (the engine tops up first): the Agent
        // stays unlinked and the next run decides it.
        self.decide(c, incoming, counts);
    }

    fn incoming(&self, c: &Candidate) -> Incoming {
        // The index holds the Agent's ids as of its current facts: normalised once, when the
        // Agent was added or changed.
        let ids = match self.index.get(c.agent_id) {
            Some(a) => a.ids,
            None => hardware_ids(c.facts),
        };
        Incoming {
            agent_id: c.agent_id,
            integration_id: self.integration_id,
            tenant_id: Some(c.tenant_id),
            allow_duplicates: self.allow_duplicates,
            ids,
        }
    }

    /// Returns whether the Agent was decided.
    fn decide(&mut self, c: &Candidate, incoming: Incoming, counts: &mut RunCounts) -> bool {
        let outcome = identify(&incoming, &self.index);
        // A new computer's id is reserved ahead; without one the Agent stays undecided.
        let new_id = match outcome {
            Identification::NewComputer { .. } => match self.computer_ids.pop_front() {
                Some(id) => Some(id),
                None => return false,
            },
            _ => None,
        };
        let earlier = if self.revisit.remove(&c.agent_id) {
            self.decided.get(&c.agent_id).copied()
        } else {
            None
        };
        if let Some(Decided::Linked { computer_id, rule }) = earlier {
            if matches!(outcome, Identification::Link { computer_id: now, .. } if now == computer_id)
            {
                return true;
            }
            // The early link no longer stands: its count goes, the new decision counts, and a
            // link not written yet is not written at all.
            self.links.retain(|l| l.agent_id != c.agent_id);
            match rule {
                Rule::SmbiosUuid => counts.identified_smbios_uuid -= 1,
                Rule::Serial => counts.identified_serial -= 1,
                Rule::Mac => counts.identified_mac -= 1,
                _ => {}
            }
        }
        match outcome {
            Identification::Link {
                computer_id,
                rule,
                evidence,
                reinstall,
            } => {
                match rule {
                    Rule::SmbiosUuid => counts.identified_smbios_uuid += 1,
                    Rule::Serial => counts.identified_serial += 1,
                    Rule::Mac => counts.identified_mac += 1,
                    _ => {}
                }
                if reinstall {
                    counts.reinstalls += 1;
                }
                let ev = stored_evidence(&evidence, Some(reinstall));
                self.links.push(AgentLink {
                    agent_id: c.agent_id,
                    computer_id,
                    rule: rule.as_str().into(),
                    evidence: ev,
                    decided_by: "sync".into(),
                    clone_of: None,
                });
                self.index.update_computer(c.agent_id, Some(computer_id));
                self.decided
                    .insert(c.agent_id, Decided::Linked { computer_id, rule });
            }
            Identification::NewComputer { evidence, clone_of } => {
                counts.new_computers += 1;
                if !clone_of.is_empty() {
                    counts.clones += 1;
                }
                for original in &clone_of {
                    if self.decided.get(original) == Some(&Decided::New) {
                        self.later_copies
                            .entry(*original)
                            .or_default()
                            .insert(c.agent_id);
                    }
                }
                let ev = stored_evidence(&evidence, None);
                let flag = (!clone_of.is_empty())
                    .then(|| serde_json::to_string(&clone_of).unwrap_or_default());
                if !clone_of.is_empty() {
                    self.clone_of.insert(c.agent_id, clone_of);
                }
                let f = c.facts;
                let computer_id = new_id.unwrap_or_default();
                self.index.update_computer(c.agent_id, Some(computer_id));
                self.new_computers.push((
                    c.agent_id,
                    computer_id,
                    NewComputer {
                        tenant_id: c.tenant_id,
                        name: f.hostname.clone(),
                        serial: f.serial.clone(),
                        smbios_uuid: f.smbios_uuid.clone(),
                        os: f.os.clone(),
                        last_contact_at: f.last_contact,
                    },
                    ev,
                    flag,
                ));
                self.decided.insert(c.agent_id, Decided::New);
            }
            Identification::Manual {
                kind,
                candidate_computer_id,
                reason,
                evidence,
            } => {
                counts.manual_decisions += 1;
                let mut ev = serde_json::to_value(&evidence).unwrap_or_default();
                ev["explanation"] = json!(evidence.explain());
                self.decisions.push(NewDecision {
                    agent_id: c.agent_id,
                    candidate_computer_id,
                    kind: kind.as_str().into(),
                    reason,
                    evidence: ev,
                });
                if earlier.is_some() {
                    self.unlinks.push(c.agent_id);
                    self.index.update_computer(c.agent_id, None);
                }
                self.waiting.insert(c.agent_id);
                self.decided.insert(c.agent_id, Decided::Manual);
            }
        }
        true
    }

    /// Rule 1 for an Agent that is linked already: its computer follows its tenant (when no other
    /// integration's agent holds the computer elsewhere) and, when the Agent changed, its facts.
    /// `computer_tenant`: the computer's tenant now. Needs the index when the tenants differ.
    pub fn follow(
        &mut self,
        computer_id: i64,
        computer_tenant: Option<i64>,
        c: &Candidate,
        changed: bool,
        counts: &mut RunCounts,
    ) {
        let moved = computer_tenant.is_some_and(|t| t != c.tenant_id)
            && self
                .computer_integrations
                .get(&computer_id)
                .is_none_or(|s| s.iter().all(|i| *i == self.integration_id));
        if moved {
            counts.computers_moved += 1;
        }
        if moved || changed {
            let tenant = if moved {
                c.tenant_id
            } else {
                computer_tenant.unwrap_or(c.tenant_id)
            };
            let f = c.facts;
            self.updates.push(ComputerUpdate {
                id: computer_id,
                tenant_id: tenant,
                name: f.hostname.clone(),
                serial: f.serial.clone(),
                smbios_uuid: f.smbios_uuid.clone(),
                os: f.os.clone(),
                last_contact_at: f.last_contact,
            });
        }
    }

    /// What was decided so far, to be written, once enough is queued (or everything, with `all`).
    pub fn take_writes(&mut self, all: bool) -> Option<PendingWrites> {
        let queued = self.new_computers.len()
            + self.links.len()
            + self.unlinks.len()
            + self.decisions.len()
            + self.updates.len();
        if queued == 0 || (!all && queued < WRITE_BATCH) {
            return None;
        }
        let mut links: Vec<AgentLink> =
            Vec::with_capacity(self.new_computers.len() + self.links.len());
        let mut computers = Vec::with_capacity(self.new_computers.len());
        for (agent_id, computer_id, c, evidence, clone_of) in
            std::mem::take(&mut self.new_computers)
        {
            computers.push((computer_id, c));
            links.push(AgentLink {
                agent_id,
                computer_id,
                rule: Rule::New.as_str().into(),
                evidence,
                decided_by: "sync".into(),
                clone_of,
            });
        }
        // After the new computers' links: a later decision for the same Agent wins.
        links.append(&mut self.links);
        Some(PendingWrites {
            batch: SyncBatch {
                computers,
                links,
                ..Default::default()
            },
            unlinks: std::mem::take(&mut self.unlinks),
            decisions: std::mem::take(&mut self.decisions),
            updates: std::mem::take(&mut self.updates),
        })
    }

    /// Takes in what a [`PendingWrites::apply`] (or the devices stage's writer) did.
    pub fn written(&mut self, w: Written, counts: &mut RunCounts) {
        counts.rows_written += w.rows_written;
        counts.computers_updated += w.computers_updated;
        for (step, ms) in w.ms {
            counts.add_ms(step, ms);
        }
    }

    /// Writes what is due now, in the caller's task.
    pub async fn flush(
        &mut self,
        db: &Db,
        t: Timestamp,
        all: bool,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        if let Some(w) = self.take_writes(all) {
            let done = w.apply(db, self.integration_id, self.run_id, t).await?;
            self.written(done, counts);
        }
        Ok(())
    }

    /// The last writes of a run: everything queued, and the clone flags of Agents whose copies
    /// were found after them (so both of a pair are flagged, whichever came first).
    pub async fn finish(
        &mut self,
        db: &Db,
        t: Timestamp,
        counts: &mut RunCounts,
    ) -> Result<(), SyncError> {
        self.flush(db, t, true, counts).await?;
        let flags: Vec<(i64, Option<String>)> = std::mem::take(&mut self.later_copies)
            .into_iter()
            .map(|(agent, copies)| {
                let mut all: BTreeSet<i64> = self
                    .clone_of
                    .get(&agent)
                    .map(|c| c.iter().copied().collect())
                    .unwrap_or_default();
                all.extend(copies);
                let list: Vec<i64> = all.into_iter().collect();
                (
                    agent,
                    Some(serde_json::to_string(&list).unwrap_or_default()),
                )
            })
            .collect();
        if !flags.is_empty() {
            counts.rows_written += db.set_clone_flags(&flags, t).await?;
        }
        Ok(())
    }
}

/// Identification's writes of one batch: new computers (under reserved ids) and the links to
/// them, other links, unlinks, decisions and computer updates. Owned, so a writer task can apply
/// them while the engine goes on; the devices stage adds the batch's Agents to `batch`.
#[derive(Default)]
pub(super) struct PendingWrites {
    pub batch: SyncBatch,
    unlinks: Vec<i64>,
    decisions: Vec<NewDecision>,
    updates: Vec<ComputerUpdate>,
}

/// What [`PendingWrites::apply`] did.
#[derive(Default)]
pub(super) struct Written {
    pub rows_written: u64,
    pub computers_updated: u64,
    pub ms: Vec<(&'static str, u64)>,
    /// Ids the batch reserved for later batches: Agents, computers.
    pub reserved: (Vec<i64>, Vec<i64>),
}

impl PendingWrites {
    /// Writes the batch in one transaction (a new computer is never stored without the Agent
    /// that caused it), then what needs the Agents stored: unlinks, decisions, computer updates.
    pub async fn apply(
        self,
        db: &Db,
        integration_id: i64,
        run_id: i64,
        t: Timestamp,
    ) -> Result<Written, SyncError> {
        let b = db
            .write_sync_batch(integration_id, run_id, &self.batch, t)
            .await?;
        let mut out = Written {
            rows_written: b.rows_written,
            computers_updated: 0,
            ms: b.ms,
            reserved: (b.agent_ids, b.computer_ids),
        };
        if !self.unlinks.is_empty() {
            out.rows_written += db.unlink_agents(&self.unlinks, t).await?;
        }
        if !self.decisions.is_empty() {
            out.rows_written += db.raise_decisions(&self.decisions, t).await?;
        }
        if !self.updates.is_empty() {
            let n = db.update_computers(&self.updates, t).await?;
            out.computers_updated += n;
            out.rows_written += n;
        }
        Ok(out)
    }
}

/// Whether the run before this one of the integration ended cleanly; if not, the computers'
/// retirement is re-checked at the end even when this run changes no Agent. (Nothing else needs
/// mending: a new computer is stored in one transaction with its first link.)
pub(super) async fn previous_run_clean(
    db: &Db,
    integration_id: i64,
    run_id: i64,
) -> Result<bool, SyncError> {
    Ok(db
        .list_sync_runs(Some(integration_id), 2)
        .await?
        .into_iter()
        .find(|r| r.id != run_id)
        .is_some_and(|r| r.state == SyncRunState::Succeeded))
}

/// Adds the time since `started` to a step's total, for `bench sync`.
pub(super) fn lap(counts: &mut RunCounts, step: &str, started: std::time::Instant) {
    counts.add_ms(step, started.elapsed().as_millis() as u64);
}

/// Evidence as a link stores it: the rule's facts, whether it was a reinstall (links only) and
/// the sentence that explains it, serialised straight to text (no `Value` tree per Agent).
fn stored_evidence(evidence: &Evidence, reinstall: Option<bool>) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Stored<'a> {
        #[serde(flatten)]
        evidence: &'a Evidence,
        #[serde(skip_serializing_if = "Option::is_none")]
        reinstall: Option<bool>,
        explanation: String,
    }
    let stored = Stored {
        evidence,
        reinstall,
        explanation: evidence.explain(),
    };
    serde_json::value::to_raw_value(&stored)
        .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("{} is JSON"))
}

fn hardware_ids(f: &AgentFacts) -> HardwareIds {
    HardwareIds::from_raw(
        &f.hostname,
        f.serial.as_deref(),
        f.smbios_uuid.as_deref(),
        &f.macs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: i64 = 1;
    const OTHER: i64 = 2;
    const TENANT: i64 = 10;

    const UUID: &str = "4c4c4544-0051-3510-8052-b4c04f4b4e32";

    fn facts(host: &str, serial: &str) -> AgentFacts {
        AgentFacts {
            hostname: host.into(),
            serial: (!serial.is_empty()).then(|| serial.into()),
            smbios_uuid: None,
            macs: Vec::new(),
            os: None,
            device_class: None,
            client_external_id: Some("c1".into()),
            last_contact: None,
        }
    }

    fn stored(
        agent_id: i64,
        integration_id: i64,
        computer_id: Option<i64>,
        f: &AgentFacts,
    ) -> KnownAgent {
        KnownAgent {
            agent_id,
            integration_id,
            computer_id,
            tenant_id: computer_id.map(|_| TENANT),
            live: true,
            missing: false,
            ids: hardware_ids(f),
        }
    }

    /// A run of integration OWN whose index holds `agents` (as loaded at the start).
    fn run(own_before: &[i64], agents: Vec<KnownAgent>) -> RunIdentity {
        let mut r = RunIdentity::fresh(OWN, 1, false, own_before.iter().copied(), HashSet::new());
        r.add_reserved(Vec::new(), (1000..1100).collect());
        for a in agents {
            r.index.insert(a);
        }
        r.loaded = true;
        r
    }

    fn candidate(agent_id: i64, f: &AgentFacts) -> Candidate<'_> {
        Candidate {
            agent_id,
            tenant_id: TENANT,
            facts: f,
        }
    }

    #[test]
    fn a_new_agent_waits_while_an_own_agent_with_its_serial_is_unreported() {
        // A reinstall keeps its name; the RMM gives the new agent a new id.
        let old = facts("PC-1", "5CD1234XYZ");
        let mut r = run(&[1], vec![stored(1, OWN, Some(100), &old)]);
        let new = facts("PC-1", "5CD1234XYZ");
        r.add_agent(2, &new);
        let mut counts = RunCounts::default();
        assert!(
            !r.decide_early(&candidate(2, &new), &mut counts),
            "reinstall or clone: not known yet"
        );
        assert!(r.take_writes(true).is_none());

        // The old agent never came (the lifecycle stage marked it missing): a reinstall.
        r.set_state(1, false, true);
        r.decide_late(&candidate(2, &new), &mut counts);
        assert_eq!((counts.identified_serial, counts.reinstalls), (1, 1));
        let w = r.take_writes(true).unwrap();
        assert_eq!(w.batch.links.len(), 1);
        assert_eq!(w.batch.links[0].computer_id, 100);
        assert!(w.batch.computers.is_empty());
    }

    #[test]
    fn an_early_link_is_decided_again_when_a_later_copy_shares_its_uuid() {
        let with_uuid = |host: &str| AgentFacts {
            smbios_uuid: Some(UUID.into()),
            ..facts(host, "")
        };
        // Another integration knows the machine (another name there) as computer 100.
        let mut r = run(&[], vec![stored(9, OTHER, Some(100), &with_uuid("PC-X"))]);
        let mut counts = RunCounts::default();
        let shared = with_uuid("PC-A");
        r.add_agent(1, &shared);
        assert!(r.decide_early(&candidate(1, &shared), &mut counts));
        assert_eq!(counts.identified_smbios_uuid, 1);
        assert!(r.is_settled(1));

        // A copy of the same image, another name, in a later batch: the UUID is a clone's.
        let copy = with_uuid("PC-B");
        r.add_agent(2, &copy);
        assert!(r.is_revisit(1) && !r.is_settled(1));
        assert!(r.decide_early(&candidate(2, &copy), &mut counts));
        r.decide_late(&candidate(1, &shared), &mut counts);
        assert_eq!(
            counts.identified_smbios_uuid, 0,
            "the early link no longer counts"
        );
        assert_eq!((counts.new_computers, counts.clones), (2, 2));
        let w = r.take_writes(true).unwrap();
        let flags: Vec<(i64, Option<String>)> = w
            .batch
            .links
            .iter()
            .map(|l| (l.agent_id, l.clone_of.clone()))
            .collect();
        assert_eq!(flags, [(2, Some("[1]".into())), (1, Some("[2]".into()))]);
    }

    #[test]
    fn the_first_of_two_copies_is_flagged_when_the_second_arrives_later() {
        let a = facts("PC-A", "5CD1234XYZ");
        let b = facts("PC-B", "5CD1234XYZ");
        let mut r = run(&[], Vec::new());
        let mut counts = RunCounts::default();
        r.add_agent(1, &a);
        assert!(r.decide_early(&candidate(1, &a), &mut counts));
        r.add_agent(2, &b);
        assert!(r.decide_early(&candidate(2, &b), &mut counts));
        assert_eq!(counts.new_computers, 2);
        assert_eq!(
            r.later_copies
                .get(&1)
                .map(|c| c.iter().copied().collect::<Vec<_>>()),
            Some(vec![2])
        );
    }
}
