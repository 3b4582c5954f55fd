//! Agents: one device record as one RMM reports it. The sync engine loads a compact snapshot per
//! run, decides in pure code, then writes in batches; every write reports the rows it changed, and
//! writing facts that did not change writes nothing.
use crate::batch::WriteTx;
use crate::batch::{Arg, Sql, WriteTxn, rows_per_chunk};
use crate::computers::NewComputer;
use crate::{Db, StoreError, StoreResult, parse_col};
use futures::TryStreamExt;
use rmmbridge_core::{IntegrationKind, Timestamp};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    Active,
    /// No longer reported by its RMM; retired after a grace period.
    Missing,
    /// Kept for rediscovery only.
    Retired,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Active => "active",
            AgentState::Missing => "missing",
            AgentState::Retired => "retired",
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(AgentState::Active),
            "missing" => Ok(AgentState::Missing),
            "retired" => Ok(AgentState::Retired),
            _ => Err(format!("unknown agent state {s:?}")),
        }
    }
}

/// One agent as stored, with the external id of the RmmClient it is filed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSnapshot {
    pub id: i64,
    pub integration_id: i64,
    pub external_id: String,
    pub rmm_client_id: Option<i64>,
    pub rmm_client_external_id: Option<String>,
    pub computer_id: Option<i64>,
    /// The tenant of its computer.
    pub computer_tenant_id: Option<i64>,
    pub hostname: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub macs: Vec<String>,
    pub os: Option<String>,
    pub device_class: Option<String>,
    pub last_contact_at: Option<Timestamp>,
    pub state: AgentState,
    pub missing_since: Option<Timestamp>,
    pub fingerprint: String,
    /// Set when identification flagged the agent as a clone: which hardware id it shares (JSON text).
    pub clone_of: Option<String>,
    pub first_seen_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The facts identification compares, for every agent of every integration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRow {
    pub agent_id: i64,
    pub integration_id: i64,
    pub computer_id: Option<i64>,
    /// The tenant of the agent's computer.
    pub tenant_id: Option<i64>,
    pub state: AgentState,
    pub hostname: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub macs: Vec<String>,
}

/// The facts of one reported device, as the sync engine wants them stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentWrite {
    pub external_id: String,
    /// The RmmClient (of the same integration) the device is filed under; an unknown id stores none.
    pub rmm_client_external_id: Option<String>,
    pub hostname: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub macs: Vec<String>,
    pub os: Option<String>,
    pub device_class: Option<String>,
    pub last_contact_at: Option<Timestamp>,
    pub fingerprint: String,
}

/// What [`Db::upsert_agents`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentUpsert {
    /// The id of every written or already-current agent, by external id, in input order.
    pub ids: Vec<(String, i64)>,
    pub inserted: u64,
    pub updated: u64,
    /// Rows whose stored facts were already identical: not written.
    pub unchanged: u64,
}

impl AgentUpsert {
    pub fn rows_written(&self) -> u64 {
        self.inserted + self.updated
    }
}

/// Identification's verdict for one agent: the computer it is, and why.
#[derive(Clone, Debug)]
pub struct AgentLink {
    pub agent_id: i64,
    pub computer_id: i64,
    pub rule: String,
    /// JSON object, serialised once by whoever decided (a sync writes 100,000 of them).
    pub evidence: Box<RawValue>,
    pub decided_by: String,
    pub clone_of: Option<String>,
}

/// The evidence row that explains an agent's current link.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub rule: String,
    pub evidence: Value,
    pub decided_by: String,
    pub at: Timestamp,
}

/// An agent of a computer, with its integration and why it is linked there.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputerAgent {
    pub agent: AgentSnapshot,
    pub integration_name: String,
    pub integration_kind: IntegrationKind,
    pub evidence: Option<Evidence>,
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: i64,
    integration_id: i64,
    external_id: String,
    rmm_client_id: Option<i64>,
    rmm_client_external_id: Option<String>,
    computer_id: Option<i64>,
    computer_tenant_id: Option<i64>,
    hostname: String,
    serial: Option<String>,
    smbios_uuid: Option<String>,
    macs: Json<Vec<String>>,
    os: Option<String>,
    device_class: Option<String>,
    last_contact_at: Option<i64>,
    state: String,
    missing_since: Option<i64>,
    fingerprint: String,
    clone_of: Option<String>,
    first_seen_at: i64,
    updated_at: i64,
}

impl TryFrom<AgentRow> for AgentSnapshot {
    type Error = StoreError;
    fn try_from(r: AgentRow) -> StoreResult<Self> {
        Ok(AgentSnapshot {
            id: r.id,
            integration_id: r.integration_id,
            external_id: r.external_id,
            rmm_client_id: r.rmm_client_id,
            rmm_client_external_id: r.rmm_client_external_id,
            computer_id: r.computer_id,
            computer_tenant_id: r.computer_tenant_id,
            hostname: r.hostname,
            serial: r.serial,
            smbios_uuid: r.smbios_uuid,
            macs: r.macs.0,
            os: r.os,
            device_class: r.device_class,
            last_contact_at: r.last_contact_at.map(Timestamp),
            state: parse_col("agents.state", &r.state)?,
            missing_since: r.missing_since.map(Timestamp),
            fingerprint: r.fingerprint,
            clone_of: r.clone_of,
            first_seen_at: Timestamp(r.first_seen_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

const AGENT_SELECT: &str = "SELECT a.id, a.integration_id, a.external_id, a.rmm_client_id,
        rc.external_id AS rmm_client_external_id, a.computer_id, c.tenant_id AS computer_tenant_id,
        a.hostname, a.serial, a.smbios_uuid, a.macs, a.os, a.device_class, a.last_contact_at,
        a.state, a.missing_since, a.fingerprint, a.clone_of, a.first_seen_at, a.updated_at
     FROM agents a LEFT JOIN rmm_clients rc ON rc.id = a.rmm_client_id
     LEFT JOIN computers c ON c.id = a.computer_id";

#[derive(sqlx::FromRow)]
struct IdentityDbRow {
    agent_id: i64,
    integration_id: i64,
    computer_id: Option<i64>,
    tenant_id: Option<i64>,
    state: String,
    hostname: String,
    serial: Option<String>,
    smbios_uuid: Option<String>,
    macs: Json<Vec<String>>,
}

#[derive(sqlx::FromRow)]
struct ComputerAgentRow {
    #[sqlx(flatten)]
    agent: AgentRow,
    integration_name: String,
    integration_kind: String,
    rule: Option<String>,
    evidence: Option<Json<Value>>,
    evidence_by: Option<String>,
    evidence_at: Option<i64>,
}

/// [`Db::create_and_link_computers`] inside `tx`; on an error the caller drops `tx`, so no
/// computer is kept without its agent.
pub(crate) async fn create_and_link_in(
    tx: &mut WriteTxn,
    new: Vec<(NewComputer, AgentLink)>,
    links: &[AgentLink],
    now: Timestamp,
) -> StoreResult<(Vec<i64>, u64)> {
    let (rows, mut all): (Vec<NewComputer>, Vec<AgentLink>) = new.into_iter().unzip();
    let ids = crate::computers::insert_computers_in(tx, &rows, now).await?;
    drop(rows);
    for (l, id) in all.iter_mut().zip(&ids) {
        l.computer_id = *id;
    }
    let new_agents: Vec<i64> = all.iter().map(|l| l.agent_id).collect();
    all.extend_from_slice(links);
    let changed: std::collections::HashSet<i64> =
        link_agents_in(tx, &all, now).await?.into_iter().collect();
    if new_agents.iter().any(|a| !changed.contains(a)) {
        // A new computer's agent is gone (its integration was deleted meanwhile).
        return Err(StoreError::NotFound { what: "agent" });
    }
    Ok((ids, changed.len() as u64))
}

/// Links agents inside `tx`; returns the agents whose link changed (an agent that does not exist
/// is not among them).
pub(crate) async fn link_agents_in(
    tx: &mut WriteTxn,
    links: &[AgentLink],
    now: Timestamp,
) -> StoreResult<Vec<i64>> {
    let links = dedupe_last(links, |l| l.agent_id);
    let changed = with_tx!(tx, |t| {
        let mut changed: Vec<&AgentLink> = Vec::new();
        for chunk in links.chunks(rows_per_chunk(&*t, 3)) {
            let mut sql = Sql::new(
                "UPDATE agents SET computer_id = v.column2, clone_of = v.column3, updated_at = $1
                 FROM (VALUES ",
            );
            sql.args.push(Arg::Int(now.0));
            for (i, l) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(l.agent_id)).push(", ");
                sql.bind(Arg::Int(l.computer_id)).push(", ");
                sql.bind(Arg::OptText(l.clone_of.as_deref())).push(")");
            }
            sql.push(
                ") AS v WHERE agents.id = v.column1
                   AND (agents.computer_id IS DISTINCT FROM v.column2
                        OR agents.clone_of IS DISTINCT FROM v.column3)
                 RETURNING agents.id",
            );
            let ids: std::collections::HashSet<i64> =
                bind_args!(&*t, sqlx::query_scalar::<_, i64>, sql)
                    .fetch_all(&mut **t)
                    .await
                    .map_err(computer_fk_error)?
                    .into_iter()
                    .collect();
            changed.extend(chunk.iter().filter(|l| ids.contains(&l.agent_id)));
        }
        Ok::<_, StoreError>(changed)
    })?;
    insert_evidence_in(tx, &changed, now).await?;
    Ok(changed.iter().map(|l| l.agent_id).collect())
}

/// The evidence rows of links just made, one per link.
pub(crate) async fn insert_evidence_in(
    tx: &mut WriteTxn,
    links: &[&AgentLink],
    now: Timestamp,
) -> StoreResult<()> {
    with_tx!(tx, |t| {
        for chunk in links.chunks(rows_per_chunk(&*t, 5)) {
            let mut sql = Sql::new(
                "INSERT INTO identification_evidence (agent_id, computer_id, rule, evidence,
                 decided_by, at) VALUES ",
            );
            sql.args.push(Arg::Int(now.0));
            for (i, l) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(l.agent_id)).push(", ");
                sql.bind(Arg::Int(l.computer_id)).push(", ");
                sql.bind(Arg::Text(&l.rule)).push(", ");
                sql.bind(Arg::RawJson(&l.evidence)).push(", ");
                sql.bind(Arg::Text(&l.decided_by)).push(", $1)");
            }
            bind_args!(&*t, sqlx::query, sql)
                .execute(&mut **t)
                .await
                .map_err(computer_fk_error)?;
        }
        Ok(())
    })
}

/// The integration's RmmClients by external id, read once rather than looked up per row.
pub(crate) async fn client_ids_in(
    tx: &mut WriteTxn,
    integration_id: i64,
) -> StoreResult<HashMap<String, i64>> {
    Ok(with_tx!(tx, |t| {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT external_id, id FROM rmm_clients WHERE integration_id = $1",
        )
        .bind(integration_id)
        .fetch_all(&mut **t)
        .await?
        .into_iter()
        .collect()
    }))
}

/// [`Db::upsert_agents`] inside `tx`. A row that turns out to be new takes one of the ids reserved
/// for the chunk; the ids of rows that were updated instead stay unused.
pub(crate) async fn upsert_agents_in(
    tx: &mut WriteTxn,
    integration_id: i64,
    clients: &HashMap<String, i64>,
    agents: &[AgentWrite],
    now: Timestamp,
) -> StoreResult<AgentUpsert> {
    let agents = dedupe_last(agents, |a| a.external_id.as_str());
    let overriding = crate::batch::overriding_identity(tx);
    let mut out = AgentUpsert::default();
    let per = with_tx!(tx, |t| rows_per_chunk(&*t, 11));
    for chunk in agents.chunks(per) {
        let ids = crate::ids::reserve_in(tx, crate::ids::IdKind::Agents, chunk.len()).await?;
        with_tx!(tx, |t| {
            let mut sql = Sql::new(
                "INSERT INTO agents (id, integration_id, external_id, rmm_client_id, hostname, serial,
                 smbios_uuid, macs, os, device_class, last_contact_at, fingerprint, first_seen_at,
                 updated_at)",
            );
            sql.push(overriding).push(" VALUES ");
            sql.args.push(Arg::Int(integration_id));
            sql.args.push(Arg::Int(now.0));
            for (i, (a, id)) in chunk.iter().zip(&ids).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(*id)).push(", $1, ");
                sql.bind(Arg::Text(&a.external_id)).push(", ");
                agent_values(&mut sql, a, clients);
                sql.push(", $2, $2)");
            }
            sql.push(
                " ON CONFLICT (integration_id, external_id) DO UPDATE SET
                   rmm_client_id = excluded.rmm_client_id, hostname = excluded.hostname,
                   serial = excluded.serial, smbios_uuid = excluded.smbios_uuid,
                   macs = excluded.macs, os = excluded.os, device_class = excluded.device_class,
                   last_contact_at = excluded.last_contact_at,
                   fingerprint = excluded.fingerprint, updated_at = excluded.updated_at
                 WHERE agents.rmm_client_id IS DISTINCT FROM excluded.rmm_client_id
                    OR agents.hostname IS DISTINCT FROM excluded.hostname
                    OR agents.serial IS DISTINCT FROM excluded.serial
                    OR agents.smbios_uuid IS DISTINCT FROM excluded.smbios_uuid
                    OR agents.macs IS DISTINCT FROM excluded.macs
                    OR agents.os IS DISTINCT FROM excluded.os
                    OR agents.device_class IS DISTINCT FROM excluded.device_class
                    OR agents.last_contact_at IS DISTINCT FROM excluded.last_contact_at
                    OR agents.fingerprint IS DISTINCT FROM excluded.fingerprint
                 RETURNING external_id, id, first_seen_at",
            );
            // first_seen_at is only set by an insert: it tells new rows from updated ones.
            let written: HashMap<String, (i64, bool)> =
                bind_args!(&*t, sqlx::query_as::<_, (String, i64, i64)>, sql)
                    .fetch_all(&mut **t)
                    .await?
                    .into_iter()
                    .map(|(ext, id, first_seen)| (ext, (id, first_seen == now.0)))
                    .collect();
            // Rows left as they were return nothing: their ids are looked up (rarely any).
            let unchanged: Vec<&&AgentWrite> = chunk
                .iter()
                .filter(|a| !written.contains_key(&a.external_id))
                .collect();
            let mut existing: HashMap<String, i64> = HashMap::new();
            if !unchanged.is_empty() {
                let mut sel = Sql::new(
                    "SELECT external_id, id FROM agents WHERE integration_id = $1 AND external_id IN (",
                );
                sel.args.push(Arg::Int(integration_id));
                sel.bind_list(unchanged.iter().map(|a| Arg::Text(&a.external_id)));
                sel.push(")");
                existing = bind_args!(&*t, sqlx::query_as::<_, (String, i64)>, sel)
                    .fetch_all(&mut **t)
                    .await?
                    .into_iter()
                    .collect();
            }
            for a in chunk {
                let ext = a.external_id.as_str();
                let id = match (written.get(ext), existing.get(ext)) {
                    (Some(&(id, true)), _) => {
                        out.inserted += 1;
                        id
                    }
                    (Some(&(id, false)), _) => {
                        out.updated += 1;
                        id
                    }
                    (None, Some(&id)) => {
                        out.unchanged += 1;
                        id
                    }
                    (None, None) => {
                        return Err(StoreError::Corrupt(format!(
                            "agent {ext:?} was neither found nor written"
                        )));
                    }
                };
                out.ids.push((a.external_id.clone(), id));
            }
        });
    }
    Ok(out)
}

/// The ten reported columns of an agent row, from rmm_client_id to fingerprint.
pub(crate) fn agent_values<'a>(
    sql: &mut Sql<'a>,
    a: &'a AgentWrite,
    clients: &HashMap<String, i64>,
) {
    let client = a
        .rmm_client_external_id
        .as_deref()
        .and_then(|e| clients.get(e).copied());
    sql.bind(Arg::OptInt(client)).push(", ");
    sql.bind(Arg::Text(&a.hostname)).push(", ");
    sql.bind(Arg::OptText(a.serial.as_deref())).push(", ");
    sql.bind(Arg::OptText(a.smbios_uuid.as_deref())).push(", ");
    sql.bind(Arg::Strings(&a.macs)).push(", ");
    sql.bind(Arg::OptText(a.os.as_deref())).push(", ");
    sql.bind(Arg::OptText(a.device_class.as_deref())).push(", ");
    sql.bind(Arg::OptInt(a.last_contact_at.map(|t| t.0)))
        .push(", ");
    sql.bind(Arg::Text(&a.fingerprint));
}

pub(crate) fn computer_fk_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound {
            what: "computer or agent",
        },
        _ => e.into(),
    }
}

/// Later entries for the same key win; order of first appearance is kept.
fn dedupe_last<'a, T, K: std::hash::Hash + Eq + 'a>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut pos: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<&T> = Vec::new();
    for it in items {
        match pos.get(&key(it)) {
            Some(&i) => out[i] = it,
            None => {
                pos.insert(key(it), out.len());
                out.push(it);
            }
        }
    }
    out
}

impl Db {
    /// Agents of one integration that wait for a ManualDecision: the sync engine leaves them
    /// alone until an admin decides, instead of asking the same question every run.
    pub async fn agents_with_open_decisions(
        &self,
        integration_id: i64,
    ) -> StoreResult<std::collections::HashSet<i64>> {
        let ids = with_db!(self, |p| {
            sqlx::query_scalar::<_, i64>(
                "SELECT DISTINCT d.agent_id FROM manual_decisions d JOIN agents a ON a.id = d.agent_id
                 WHERE d.resolved_at IS NULL AND a.integration_id = $1",
            )
            .bind(integration_id)
            .fetch_all(p)
            .await?
        });
        Ok(ids.into_iter().collect())
    }

    /// Every agent of one integration, for the sync engine's plan.
    pub async fn agent_snapshot(&self, integration_id: i64) -> StoreResult<Vec<AgentSnapshot>> {
        let mut all = Vec::new();
        self.agent_snapshot_each(integration_id, |a| all.push(a))
            .await?;
        Ok(all)
    }

    /// [`Db::agent_snapshot`] handed over one agent at a time, so a caller that builds its own
    /// index never holds the whole list as well (100,000 agents: ~30 MB).
    pub async fn agent_snapshot_each(
        &self,
        integration_id: i64,
        mut each: impl FnMut(AgentSnapshot) + Send,
    ) -> StoreResult<()> {
        let sql = format!("{AGENT_SELECT} WHERE a.integration_id = $1 ORDER BY a.id");
        with_db!(self, |p| {
            let mut rows = sqlx::query_as::<_, AgentRow>(AssertSqlSafe(sql.as_str()))
                .bind(integration_id)
                .fetch(p);
            while let Some(r) = rows.try_next().await? {
                each(AgentSnapshot::try_from(r)?);
            }
            Ok(())
        })
    }

    pub async fn agent_by_id(&self, id: i64) -> StoreResult<Option<AgentSnapshot>> {
        let sql = format!("{AGENT_SELECT} WHERE a.id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, AgentRow>(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(AgentSnapshot::try_from).transpose()
    }

    /// The identity facts of every agent of every integration, in one query: what identification
    /// compares a new agent against. Retired agents only when asked (rediscovery).
    pub async fn identity_rows(&self, include_retired: bool) -> StoreResult<Vec<IdentityRow>> {
        with_db!(self, |p| {
            sqlx::query_as::<_, IdentityDbRow>(
                "SELECT a.id AS agent_id, a.integration_id, a.computer_id, c.tenant_id, a.state,
                        a.hostname, a.serial, a.smbios_uuid, a.macs
                 FROM agents a LEFT JOIN computers c ON c.id = a.computer_id
                 WHERE $1 OR a.state <> 'retired'",
            )
            .bind(include_retired)
            .fetch(p)
            .map_err(StoreError::from)
            .and_then(|r| async move {
                Ok(IdentityRow {
                    agent_id: r.agent_id,
                    integration_id: r.integration_id,
                    computer_id: r.computer_id,
                    tenant_id: r.tenant_id,
                    state: parse_col("agents.state", &r.state)?,
                    hostname: r.hostname,
                    serial: r.serial,
                    smbios_uuid: r.smbios_uuid,
                    macs: r.macs.0,
                })
            })
            .try_collect()
            .await
        })
    }

    /// Inserts new agents and updates changed ones, keyed by (integration, external id), in one
    /// transaction of multi-row statements. An agent whose stored facts equal the written ones is
    /// not written. State and computer link are not touched here (see [`Db::set_agent_states`],
    /// [`Db::link_agents`]); a new agent starts `active` and unlinked. A repeated external id:
    /// the last one wins.
    pub async fn upsert_agents(
        &self,
        integration_id: i64,
        agents: &[AgentWrite],
        now: Timestamp,
    ) -> StoreResult<AgentUpsert> {
        let mut tx = self.begin_write_txn().await?;
        let clients = client_ids_in(&mut tx, integration_id).await?;
        let out = upsert_agents_in(&mut tx, integration_id, &clients, agents, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Sets state and `missing_since` of many agents; rows already in that state are not written.
    /// Returns the number of agents changed.
    pub async fn set_agent_states(
        &self,
        states: &[(i64, AgentState, Option<Timestamp>)],
        now: Timestamp,
    ) -> StoreResult<u64> {
        let states = dedupe_last(states, |s| s.0);
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let mut written = 0;
            for chunk in states.chunks(rows_per_chunk(p, 3)) {
                let mut sql = Sql::new(
                    "UPDATE agents SET state = v.column2, missing_since = v.column3, updated_at = $1
                     FROM (VALUES ",
                );
                sql.args.push(Arg::Int(now.0));
                for (i, (id, state, since)) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    sql.bind(Arg::Int(*id)).push(", ");
                    sql.bind(Arg::Text(state.as_str())).push(", ");
                    sql.bind(Arg::OptInt(since.map(|t| t.0))).push(")");
                }
                sql.push(
                    ") AS v WHERE agents.id = v.column1
                       AND (agents.state IS DISTINCT FROM v.column2
                            OR agents.missing_since IS DISTINCT FROM v.column3)",
                );
                written += bind_args!(p, sqlx::query, sql)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Links agents to computers and records each decision's rule and evidence, in one
    /// transaction. An agent already linked to that computer with the same clone flag is left
    /// alone (no evidence row either). Returns the number of agents whose link changed.
    pub async fn link_agents(&self, links: &[AgentLink], now: Timestamp) -> StoreResult<u64> {
        let mut tx = self.begin_write_txn().await?;
        let changed = link_agents_in(&mut tx, links, now).await?;
        tx.commit().await?;
        Ok(changed.len() as u64)
    }

    /// Creates a computer for each Agent in `new` and links the Agent to it (`computer_id` of
    /// its link is ignored), together with `links`, in one transaction: a computer is never
    /// stored without the Agent that caused it, so nothing can take it for an orphan. Returns the
    /// new computers' ids in input order and the number of links that changed.
    pub async fn create_and_link_computers(
        &self,
        new: Vec<(NewComputer, AgentLink)>,
        links: &[AgentLink],
        now: Timestamp,
    ) -> StoreResult<(Vec<i64>, u64)> {
        let mut tx = self.begin_write_txn().await?;
        let out = create_and_link_in(&mut tx, new, links, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Sets the clone flag (JSON list of agent ids, or none) of linked agents whose copy turned up
    /// later in the same sync; rows already flagged so are not written. Returns rows changed.
    pub async fn set_clone_flags(
        &self,
        flags: &[(i64, Option<String>)],
        now: Timestamp,
    ) -> StoreResult<u64> {
        let flags = dedupe_last(flags, |f| f.0);
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let mut written = 0;
            for chunk in flags.chunks(rows_per_chunk(p, 2)) {
                let mut sql = Sql::new(
                    "UPDATE agents SET clone_of = v.column2, updated_at = $1 FROM (VALUES ",
                );
                sql.args.push(Arg::Int(now.0));
                for (i, (id, flag)) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    sql.bind(Arg::Int(*id)).push(", ");
                    sql.bind(Arg::OptText(flag.as_deref())).push(")");
                }
                sql.push(
                    ") AS v WHERE agents.id = v.column1 AND agents.clone_of IS DISTINCT FROM v.column2",
                );
                written += bind_args!(p, sqlx::query, sql)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Takes agents off their computers (they now wait for a ManualDecision). Returns rows changed.
    pub async fn unlink_agents(&self, agent_ids: &[i64], now: Timestamp) -> StoreResult<u64> {
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let mut written = 0;
            for chunk in agent_ids.chunks(rows_per_chunk(p, 1)) {
                let mut sql = Sql::new(
                    "UPDATE agents SET computer_id = NULL, clone_of = NULL, updated_at = $1 WHERE computer_id IS NOT NULL AND id IN (",
                );
                sql.args.push(Arg::Int(now.0));
                sql.bind_list(chunk.iter().map(|id| Arg::Int(*id)));
                sql.push(")");
                written += bind_args!(p, sqlx::query, sql)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// The agents of a computer (retired ones last), each with its integration and the latest
    /// evidence of its link to this computer.
    pub async fn agents_of_computer(&self, computer_id: i64) -> StoreResult<Vec<ComputerAgent>> {
        let sql = "SELECT a.id, a.integration_id, a.external_id, a.rmm_client_id,
                rc.external_id AS rmm_client_external_id, a.computer_id,
                (SELECT c.tenant_id FROM computers c WHERE c.id = a.computer_id) AS computer_tenant_id,
                a.hostname, a.serial, a.smbios_uuid, a.macs, a.os, a.device_class,
                a.last_contact_at, a.state, a.missing_since, a.fingerprint, a.clone_of,
                a.first_seen_at, a.updated_at, i.name AS integration_name, i.kind AS integration_kind,
                e.rule, e.evidence, e.decided_by AS evidence_by, e.at AS evidence_at
             FROM agents a
             JOIN integrations i ON i.id = a.integration_id
             LEFT JOIN rmm_clients rc ON rc.id = a.rmm_client_id
             LEFT JOIN identification_evidence e ON e.id = (
                 SELECT MAX(e2.id) FROM identification_evidence e2
                 WHERE e2.agent_id = a.id AND e2.computer_id = a.computer_id)
             WHERE a.computer_id = $1
             ORDER BY CASE a.state WHEN 'active' THEN 0 WHEN 'missing' THEN 1 ELSE 2 END, i.name, a.id";
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, ComputerAgentRow>(sql)
                .bind(computer_id)
                .fetch_all(p)
                .await?
        });
        rows.into_iter()
            .map(|r| {
                let evidence = match (r.rule, r.evidence, r.evidence_by, r.evidence_at) {
                    (Some(rule), Some(ev), Some(by), Some(at)) => Some(Evidence {
                        rule,
                        evidence: ev.0,
                        decided_by: by,
                        at: Timestamp(at),
                    }),
                    _ => None,
                };
                Ok(ComputerAgent {
                    integration_kind: parse_col("integrations.kind", &r.integration_kind)?,
                    integration_name: r.integration_name,
                    agent: r.agent.try_into()?,
                    evidence,
                })
            })
            .collect()
    }

    /// The full evidence history of one agent, newest first: every identification ever made.
    pub async fn agent_evidence(&self, agent_id: i64) -> StoreResult<Vec<(i64, Evidence)>> {
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, (i64, String, Json<Value>, String, i64)>(
                "SELECT computer_id, rule, evidence, decided_by, at FROM identification_evidence
                 WHERE agent_id = $1 ORDER BY id DESC",
            )
            .bind(agent_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(c, rule, ev, by, at)| {
                (
                    c,
                    Evidence {
                        rule,
                        evidence: ev.0,
                        decided_by: by,
                        at: Timestamp(at),
                    },
                )
            })
            .collect())
    }
}
