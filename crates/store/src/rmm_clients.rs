//! RmmClients (a client as one RMM sees it) and their ClientLinks (how each maps onto a tenant).
//!
//! The pending mapping (`state`, `tenant_id`) is what the admin edits; the applied mapping
//! (`applied_state`, `applied_tenant_id`) is what Finish last applied. The preview compares them.
use crate::batch::WriteTx;
use crate::batch::{Arg, Sql, rows_per_chunk};
use crate::{Db, NewAuditEntry, StoreError, StoreResult, parse_col};
use rmmbridge_core::Timestamp;
use rmmbridge_core::rmm::{RmmClient, RmmClientKind};
use sqlx::AssertSqlSafe;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// The mapping state of one RmmClient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientLinkState {
    Unmatched,
    Matched,
    /// A tenant named after the client will be created (or reused) at Finish.
    Create,
    Excluded,
}

impl ClientLinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientLinkState::Unmatched => "unmatched",
            ClientLinkState::Matched => "matched",
            ClientLinkState::Create => "create",
            ClientLinkState::Excluded => "excluded",
        }
    }
}

impl fmt::Display for ClientLinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClientLinkState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "unmatched" => ClientLinkState::Unmatched,
            "matched" => ClientLinkState::Matched,
            "create" => ClientLinkState::Create,
            "excluded" => ClientLinkState::Excluded,
            _ => return Err(format!("unknown client link state {s:?}")),
        })
    }
}

/// Who decided a link: the auto-matcher or a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provenance {
    Auto,
    Manual,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Auto => "auto",
            Provenance::Manual => "manual",
        }
    }
}

impl FromStr for Provenance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Provenance::Auto),
            "manual" => Ok(Provenance::Manual),
            _ => Err(format!("unknown provenance {s:?}")),
        }
    }
}

pub(crate) fn kind_str(k: RmmClientKind) -> &'static str {
    match k {
        RmmClientKind::Company => "company",
        RmmClientKind::Site => "site",
    }
}

fn parse_kind(s: &str) -> StoreResult<RmmClientKind> {
    match s {
        "company" => Ok(RmmClientKind::Company),
        "site" => Ok(RmmClientKind::Site),
        _ => Err(StoreError::Corrupt(format!("rmm_clients.kind holds {s:?}"))),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRename {
    pub external_id: String,
    pub old_name: String,
    pub new_name: String,
}

/// What one refresh of an integration's client list changed; external ids throughout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientRefresh {
    pub added: Vec<String>,
    /// Followed by external id: the same RmmClient under a new name.
    pub renamed: Vec<ClientRename>,
    /// Kind or parent changed (a site moved to another company, ...).
    pub reshaped: Vec<String>,
    /// No longer listed by the RMM: `vanished_at` is set, the link is kept.
    pub vanished: Vec<String>,
    /// Listed again after having vanished.
    pub returned: Vec<String>,
    pub unchanged: u64,
}

impl ClientRefresh {
    /// Rows the refresh wrote; zero when the RMM reported nothing new.
    pub fn changes(&self) -> usize {
        self.added.len()
            + self.renamed.len()
            + self.reshaped.len()
            + self.vanished.len()
            + self.returned.len()
    }
}

/// One RmmClient with its link, pending and applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLinkRow {
    /// The RmmClient's id.
    pub id: i64,
    pub integration_id: i64,
    pub external_id: String,
    pub parent_external_id: Option<String>,
    pub kind: RmmClientKind,
    pub name: String,
    pub first_seen_at: Timestamp,
    pub vanished_at: Option<Timestamp>,
    pub state: ClientLinkState,
    pub tenant_id: Option<i64>,
    pub tenant_name: Option<String>,
    pub provenance: Option<Provenance>,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub reason: Option<String>,
    pub applied_at: Option<Timestamp>,
    pub applied_by: Option<String>,
    /// What Finish last applied; `None` before the first Finish (the same as unmatched).
    pub applied_state: Option<ClientLinkState>,
    pub applied_tenant_id: Option<i64>,
    pub applied_tenant_name: Option<String>,
}

impl ClientLinkRow {
    /// True when the pending mapping differs from the applied one (Finish would change it).
    pub fn is_pending(&self) -> bool {
        let applied = self.applied_state.unwrap_or(ClientLinkState::Unmatched);
        self.state == ClientLinkState::Create
            || applied != self.state
            || (self.state == ClientLinkState::Matched && self.applied_tenant_id != self.tenant_id)
    }
}

/// A new pending mapping for one client. `tenant_id` is required for `Matched` and ignored
/// (stored empty) for every other state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLinkChange {
    pub state: ClientLinkState,
    pub tenant_id: Option<i64>,
    pub provenance: Provenance,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTenant {
    pub rmm_client_id: i64,
    pub tenant_id: i64,
    pub tenant_name: String,
    /// A tenant of that name already existed and was used instead of creating one.
    pub reused: bool,
}

/// One link whose applied mapping Finish changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedLinkChange {
    pub rmm_client_id: i64,
    pub external_id: String,
    pub name: String,
    pub from_state: ClientLinkState,
    pub from_tenant_id: Option<i64>,
    pub to_state: ClientLinkState,
    pub to_tenant_id: Option<i64>,
}

/// What Finish did. A second Finish with no edits in between reports no changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedLinks {
    pub created_tenants: Vec<CreatedTenant>,
    /// Links now applied as matched that were not (or were matched to another tenant).
    pub matched: u64,
    pub excluded: u64,
    /// Links taken back to unmatched.
    pub unmatched: u64,
    pub unchanged: u64,
    pub changes: Vec<AppliedLinkChange>,
    /// RmmClients that became mapped (or mapped to another tenant): start device import for these.
    pub newly_mapped_client_ids: Vec<i64>,
}

/// An applied mapping, for the sync engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedClient {
    pub rmm_client_id: i64,
    pub external_id: String,
    pub tenant_id: i64,
}

/// Device evidence for mapping one RmmClient: `shared_devices` of its `client_devices` live
/// Agents have the same real SMBIOS UUID or serial as an Agent of another integration that is
/// already a Computer of `tenant_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEvidence {
    pub rmm_client_id: i64,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub shared_devices: u32,
    pub client_devices: u32,
}

#[derive(sqlx::FromRow)]
struct ExistingClient {
    id: i64,
    external_id: String,
    parent_external_id: Option<String>,
    kind: String,
    name: String,
    vanished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: i64,
    integration_id: i64,
    external_id: String,
    parent_external_id: Option<String>,
    kind: String,
    name: String,
    first_seen_at: i64,
    vanished_at: Option<i64>,
    state: String,
    tenant_id: Option<i64>,
    tenant_name: Option<String>,
    provenance: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    reason: Option<String>,
    applied_at: Option<i64>,
    applied_by: Option<String>,
    applied_state: Option<String>,
    applied_tenant_id: Option<i64>,
    applied_tenant_name: Option<String>,
}

impl TryFrom<LinkRow> for ClientLinkRow {
    type Error = StoreError;
    fn try_from(r: LinkRow) -> StoreResult<Self> {
        Ok(ClientLinkRow {
            id: r.id,
            integration_id: r.integration_id,
            external_id: r.external_id,
            parent_external_id: r.parent_external_id,
            kind: parse_kind(&r.kind)?,
            name: r.name,
            first_seen_at: Timestamp(r.first_seen_at),
            vanished_at: r.vanished_at.map(Timestamp),
            state: parse_col("client_links.state", &r.state)?,
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name,
            provenance: r
                .provenance
                .as_deref()
                .map(|p| parse_col("client_links.provenance", p))
                .transpose()?,
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(Timestamp),
            reason: r.reason,
            applied_at: r.applied_at.map(Timestamp),
            applied_by: r.applied_by,
            applied_state: r
                .applied_state
                .as_deref()
                .map(|s| parse_col("client_links.applied_state", s))
                .transpose()?,
            applied_tenant_id: r.applied_tenant_id,
            applied_tenant_name: r.applied_tenant_name,
        })
    }
}

const LINK_SELECT: &str =
    "SELECT r.id, r.integration_id, r.external_id, r.parent_external_id, r.kind, r.name,
        r.first_seen_at, r.vanished_at, l.state, l.tenant_id, t.name AS tenant_name, l.provenance,
        l.decided_by, l.decided_at, l.reason, l.applied_at, l.applied_by, l.applied_state,
        l.applied_tenant_id, at.name AS applied_tenant_name
     FROM rmm_clients r
     JOIN client_links l ON l.rmm_client_id = r.id
     LEFT JOIN tenants t ON t.id = l.tenant_id
     LEFT JOIN tenants at ON at.id = l.applied_tenant_id";

#[derive(sqlx::FromRow)]
struct ApplyRow {
    rmm_client_id: i64,
    external_id: String,
    name: String,
    state: String,
    tenant_id: Option<i64>,
    applied_state: Option<String>,
    applied_tenant_id: Option<i64>,
}

fn link_fk_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            StoreError::NotFound { what: "tenant" }
        }
        _ => e.into(),
    }
}

fn check_change(c: &ClientLinkChange) -> StoreResult<Option<i64>> {
    match (c.state, c.tenant_id) {
        (ClientLinkState::Matched, None) => Err(StoreError::Conflict {
            what: "a matched client link needs a tenant".into(),
        }),
        (ClientLinkState::Matched, t) => Ok(t),
        _ => Ok(None),
    }
}

impl Db {
    /// Brings the stored client list of an integration in line with what the RMM listed, in one
    /// transaction. Clients are keyed by external id: a new name is a rename, never a new client.
    /// New clients get an `unmatched` link; unlisted ones get `vanished_at` (and lose it when they
    /// come back). Unchanged clients are not written.
    pub async fn refresh_rmm_clients(
        &self,
        integration_id: i64,
        clients: &[RmmClient],
        now: Timestamp,
    ) -> StoreResult<ClientRefresh> {
        let mut seen = HashSet::new();
        let listed: Vec<&RmmClient> = clients
            .iter()
            .filter(|c| seen.insert(c.external_id.as_str()))
            .collect();
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let existing = sqlx::query_as::<_, ExistingClient>(
                "SELECT id, external_id, parent_external_id, kind, name, vanished_at
                 FROM rmm_clients WHERE integration_id = $1",
            )
            .bind(integration_id)
            .fetch_all(&mut *tx)
            .await?;
            let by_ext: HashMap<&str, &ExistingClient> = existing
                .iter()
                .map(|e| (e.external_id.as_str(), e))
                .collect();
            let mut out = ClientRefresh::default();
            let mut new = Vec::new();
            for c in &listed {
                let Some(e) = by_ext.get(c.external_id.as_str()) else {
                    new.push(*c);
                    out.added.push(c.external_id.clone());
                    continue;
                };
                let renamed = e.name != c.name;
                let reshaped = e.kind != kind_str(c.kind)
                    || e.parent_external_id.as_deref() != c.parent_external_id.as_deref();
                let returned = e.vanished_at.is_some();
                if renamed {
                    out.renamed.push(ClientRename {
                        external_id: c.external_id.clone(),
                        old_name: e.name.clone(),
                        new_name: c.name.clone(),
                    });
                }
                if reshaped {
                    out.reshaped.push(c.external_id.clone());
                }
                if returned {
                    out.returned.push(c.external_id.clone());
                }
                if !(renamed || reshaped || returned) {
                    out.unchanged += 1;
                    continue;
                }
                sqlx::query(
                    "UPDATE rmm_clients SET name = $1, kind = $2, parent_external_id = $3,
                     vanished_at = NULL, last_seen_at = $4 WHERE id = $5",
                )
                .bind(&c.name)
                .bind(kind_str(c.kind))
                .bind(c.parent_external_id.as_deref())
                .bind(now.0)
                .bind(e.id)
                .execute(&mut *tx)
                .await?;
            }
            for e in &existing {
                if e.vanished_at.is_none() && !seen.contains(e.external_id.as_str()) {
                    sqlx::query("UPDATE rmm_clients SET vanished_at = $1 WHERE id = $2")
                        .bind(now.0)
                        .bind(e.id)
                        .execute(&mut *tx)
                        .await?;
                    out.vanished.push(e.external_id.clone());
                }
            }
            for chunk in new.chunks(rows_per_chunk(p, 4)) {
                let mut sql = Sql::new(
                    "INSERT INTO rmm_clients (integration_id, external_id, parent_external_id, kind, name,
                     first_seen_at, last_seen_at) VALUES ",
                );
                // $1 and $2, used by every row; `bind` would also append their placeholders.
                sql.args.push(Arg::Int(integration_id));
                sql.args.push(Arg::Int(now.0));
                for (i, c) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "($1, " } else { ", ($1, " });
                    sql.bind(Arg::Text(&c.external_id)).push(", ");
                    sql.bind(Arg::OptText(c.parent_external_id.as_deref()))
                        .push(", ");
                    sql.bind(Arg::Text(kind_str(c.kind))).push(", ");
                    sql.bind(Arg::Text(&c.name)).push(", $2, $2)");
                }
                bind_args!(p, sqlx::query, sql).execute(&mut *tx).await?;
            }
            if !new.is_empty() {
                sqlx::query(
                    "INSERT INTO client_links (rmm_client_id, state)
                     SELECT r.id, 'unmatched' FROM rmm_clients r
                     WHERE r.integration_id = $1
                       AND NOT EXISTS (SELECT 1 FROM client_links l WHERE l.rmm_client_id = r.id)",
                )
                .bind(integration_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Every client of the integration with its pending and applied mapping, by name.
    pub async fn list_client_links(&self, integration_id: i64) -> StoreResult<Vec<ClientLinkRow>> {
        let sql = format!("{LINK_SELECT} WHERE r.integration_id = $1 ORDER BY r.name, r.id");
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, LinkRow>(AssertSqlSafe(sql.as_str()))
                .bind(integration_id)
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(ClientLinkRow::try_from).collect()
    }

    pub async fn client_link(&self, rmm_client_id: i64) -> StoreResult<Option<ClientLinkRow>> {
        let sql = format!("{LINK_SELECT} WHERE r.id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, LinkRow>(AssertSqlSafe(sql.as_str()))
                .bind(rmm_client_id)
                .fetch_optional(p)
                .await?
        });
        row.map(ClientLinkRow::try_from).transpose()
    }

    /// Sets the pending mapping of one client (Finish applies it).
    pub async fn set_client_link(
        &self,
        rmm_client_id: i64,
        change: &ClientLinkChange,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.set_client_links(&[(rmm_client_id, change.clone())], now)
            .await
            .map(|_| ())
    }

    /// Sets the pending mappings of many clients in one transaction; all or none. Returns the
    /// number of links written.
    pub async fn set_client_links(
        &self,
        changes: &[(i64, ClientLinkChange)],
        now: Timestamp,
    ) -> StoreResult<u64> {
        let checked = changes
            .iter()
            .map(|(id, c)| check_change(c).map(|t| (*id, c, t)))
            .collect::<StoreResult<Vec<_>>>()?;
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let mut written = 0;
            for (id, c, tenant) in &checked {
                let n = sqlx::query(
                    "UPDATE client_links SET state = $1, tenant_id = $2, provenance = $3,
                     decided_by = $4, reason = $5, decided_at = $6 WHERE rmm_client_id = $7",
                )
                .bind(c.state.as_str())
                .bind(*tenant)
                .bind(c.provenance.as_str())
                .bind(c.decided_by.as_deref())
                .bind(c.reason.as_deref())
                .bind(now.0)
                .bind(*id)
                .execute(&mut *tx)
                .await
                .map_err(link_fk_error)?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound { what: "RMM client" });
                }
                written += n;
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Finish: applies every pending mapping of the integration in one transaction. `create`
    /// links get a tenant named after the client (an existing tenant of that exact name is used)
    /// and become matched. Idempotent: a second call changes nothing and reports no changes.
    pub async fn apply_client_links(
        &self,
        integration_id: i64,
        actor: &str,
        now: Timestamp,
    ) -> StoreResult<AppliedLinks> {
        self.apply_client_links_audited(integration_id, actor, now, |_| Vec::new())
            .await
    }

    /// [`Db::apply_client_links`] that also appends the audit entries `audit` makes of the
    /// result, in the same transaction: either both are stored or neither.
    pub async fn apply_client_links_audited<F>(
        &self,
        integration_id: i64,
        actor: &str,
        now: Timestamp,
        audit: F,
    ) -> StoreResult<AppliedLinks>
    where
        F: FnOnce(&AppliedLinks) -> Vec<NewAuditEntry>,
    {
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let rows = sqlx::query_as::<_, ApplyRow>(
                "SELECT l.rmm_client_id, r.external_id, r.name, l.state, l.tenant_id,
                        l.applied_state, l.applied_tenant_id
                 FROM client_links l JOIN rmm_clients r ON r.id = l.rmm_client_id
                 WHERE r.integration_id = $1 ORDER BY r.name, r.id",
            )
            .bind(integration_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut out = AppliedLinks::default();
            let mut tenants_by_name: HashMap<String, i64> = HashMap::new();
            for r in rows {
                let mut state: ClientLinkState = parse_col("client_links.state", &r.state)?;
                let mut tenant = r.tenant_id;
                if state == ClientLinkState::Create {
                    // RMM names can carry padding spaces; the tenant is named after the trimmed name.
                    let tenant_name = r.name.trim().to_owned();
                    let (tid, reused) = match tenants_by_name.get(&tenant_name) {
                        Some(t) => (*t, true),
                        None => {
                            let inserted = sqlx::query_scalar::<_, i64>(
                                "INSERT INTO tenants (name, created_at, updated_at) VALUES ($1, $2, $2)
                                 ON CONFLICT (name) DO NOTHING RETURNING id",
                            )
                            .bind(&tenant_name)
                            .bind(now.0)
                            .fetch_optional(&mut *tx)
                            .await?;
                            match inserted {
                                Some(t) => (t, false),
                                None => (
                                    sqlx::query_scalar::<_, i64>(
                                        "SELECT id FROM tenants WHERE name = $1",
                                    )
                                    .bind(&tenant_name)
                                    .fetch_one(&mut *tx)
                                    .await?,
                                    true,
                                ),
                            }
                        }
                    };
                    tenants_by_name.insert(tenant_name.clone(), tid);
                    sqlx::query(
                        "UPDATE client_links SET state = 'matched', tenant_id = $1 WHERE rmm_client_id = $2",
                    )
                    .bind(tid)
                    .bind(r.rmm_client_id)
                    .execute(&mut *tx)
                    .await?;
                    out.created_tenants.push(CreatedTenant {
                        rmm_client_id: r.rmm_client_id,
                        tenant_id: tid,
                        tenant_name,
                        reused,
                    });
                    state = ClientLinkState::Matched;
                    tenant = Some(tid);
                }
                if state != ClientLinkState::Matched {
                    tenant = None;
                }
                let from_state = match r.applied_state.as_deref() {
                    Some(s) => parse_col("client_links.applied_state", s)?,
                    None => ClientLinkState::Unmatched,
                };
                let from_tenant = r.applied_tenant_id;
                if (from_state, from_tenant) == (state, tenant) {
                    out.unchanged += 1;
                    continue;
                }
                sqlx::query(
                    "UPDATE client_links SET applied_state = $1, applied_tenant_id = $2,
                     applied_at = $3, applied_by = $4 WHERE rmm_client_id = $5",
                )
                .bind(state.as_str())
                .bind(tenant)
                .bind(now.0)
                .bind(actor)
                .bind(r.rmm_client_id)
                .execute(&mut *tx)
                .await?;
                match state {
                    ClientLinkState::Matched => {
                        out.matched += 1;
                        out.newly_mapped_client_ids.push(r.rmm_client_id);
                    }
                    ClientLinkState::Excluded => out.excluded += 1,
                    _ => out.unmatched += 1,
                }
                out.changes.push(AppliedLinkChange {
                    rmm_client_id: r.rmm_client_id,
                    external_id: r.external_id,
                    name: r.name,
                    from_state,
                    from_tenant_id: from_tenant,
                    to_state: state,
                    to_tenant_id: tenant,
                });
            }
            let mut tx = crate::batch::WriteTxn::from(tx);
            for e in audit(&out) {
                crate::audit::append_audit_in(&mut tx, &e).await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Evidence suggestions for every client of the integration with live Agents: which tenants
    /// their devices already belong to through other integrations, by (client, tenant), most shared
    /// devices first. Agents are compared on normalised SMBIOS UUID and serial; junk values, which
    /// thousands of machines share and which prove nothing, are ignored before comparing (in SQL a
    /// join on them would pair every holder with every other).
    pub async fn client_evidence(&self, integration_id: i64) -> StoreResult<Vec<ClientEvidence>> {
        use futures::TryStreamExt;
        use rmmbridge_core::identify::{normalise_serial, normalise_uuid};
        // Every real id of another integration's live, linked Agent -> the tenants it is under.
        let mut by_uuid: HashMap<String, HashSet<i64>> = HashMap::new();
        let mut by_serial: HashMap<String, HashSet<i64>> = HashMap::new();
        let mut tenant_names: HashMap<i64, String> = HashMap::new();
        let own: Vec<(i64, i64, Option<String>, Option<String>)>;
        let totals = with_db!(self, |p| {
            let mut others = sqlx::query_as::<_, (Option<String>, Option<String>, i64, String)>(
                "SELECT b.serial, b.smbios_uuid, c.tenant_id, t.name
                 FROM agents b
                 JOIN computers c ON c.id = b.computer_id AND c.retired_at IS NULL
                 JOIN tenants t ON t.id = c.tenant_id
                 WHERE b.integration_id <> $1 AND b.state <> 'retired'",
            )
            .bind(integration_id)
            .fetch(p);
            while let Some((serial, uuid, tenant_id, name)) = others.try_next().await? {
                if let Some(u) = uuid.as_deref().and_then(normalise_uuid) {
                    by_uuid.entry(u).or_default().insert(tenant_id);
                }
                if let Some(s) = serial.as_deref().and_then(normalise_serial) {
                    by_serial.entry(s).or_default().insert(tenant_id);
                }
                tenant_names.entry(tenant_id).or_insert(name);
            }
            drop(others);
            own = sqlx::query_as::<_, (i64, i64, Option<String>, Option<String>)>(
                "SELECT rmm_client_id, id, serial, smbios_uuid FROM agents
                 WHERE integration_id = $1 AND rmm_client_id IS NOT NULL AND state <> 'retired'",
            )
            .bind(integration_id)
            .fetch_all(p)
            .await?;
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT rmm_client_id, COUNT(*) FROM agents
                 WHERE integration_id = $1 AND rmm_client_id IS NOT NULL AND state <> 'retired'
                 GROUP BY rmm_client_id",
            )
            .bind(integration_id)
            .fetch_all(p)
            .await?
        });
        let totals: HashMap<i64, i64> = totals.into_iter().collect();
        let mut shared: HashMap<(i64, i64), (String, HashSet<i64>)> = HashMap::new();
        for (rmm_client_id, agent_id, serial, uuid) in own {
            let mut tenants: HashSet<i64> = HashSet::new();
            if let Some(t) = uuid
                .as_deref()
                .and_then(normalise_uuid)
                .and_then(|u| by_uuid.get(&u))
            {
                tenants.extend(t);
            }
            if let Some(t) = serial
                .as_deref()
                .and_then(normalise_serial)
                .and_then(|s| by_serial.get(&s))
            {
                tenants.extend(t);
            }
            for tenant_id in tenants {
                shared
                    .entry((rmm_client_id, tenant_id))
                    .or_insert_with(|| {
                        (
                            tenant_names.get(&tenant_id).cloned().unwrap_or_default(),
                            HashSet::new(),
                        )
                    })
                    .1
                    .insert(agent_id);
            }
        }
        let mut out: Vec<ClientEvidence> = shared
            .into_iter()
            .map(|((rmm_client_id, tenant_id), (tenant_name, agents))| {
                let client_devices = totals.get(&rmm_client_id).copied().unwrap_or_default();
                ClientEvidence {
                    rmm_client_id,
                    tenant_id,
                    tenant_name,
                    shared_devices: u32::try_from(agents.len()).unwrap_or(u32::MAX),
                    client_devices: u32::try_from(client_devices).unwrap_or(u32::MAX),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (
                a.rmm_client_id,
                std::cmp::Reverse(a.shared_devices),
                a.tenant_id,
            )
                .cmp(&(
                    b.rmm_client_id,
                    std::cmp::Reverse(b.shared_devices),
                    b.tenant_id,
                ))
        });
        Ok(out)
    }

    /// The applied matched mappings of an integration: which clients' devices to import, into
    /// which tenant.
    pub async fn mapped_clients(&self, integration_id: i64) -> StoreResult<Vec<MappedClient>> {
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, (i64, String, i64)>(
                "SELECT r.id, r.external_id, l.applied_tenant_id
                 FROM rmm_clients r JOIN client_links l ON l.rmm_client_id = r.id
                 WHERE r.integration_id = $1 AND l.applied_state = 'matched'
                   AND l.applied_tenant_id IS NOT NULL
                 ORDER BY r.external_id",
            )
            .bind(integration_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(rmm_client_id, external_id, tenant_id)| MappedClient {
                rmm_client_id,
                external_id,
                tenant_id,
            })
            .collect())
    }
}
