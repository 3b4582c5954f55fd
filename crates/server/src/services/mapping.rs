//! Client mapping (DESIGN.md §3 items 4 and 5): import an integration's RmmClients, map each onto
//! a Tenant (Auto-match, Match, Create, Exclude, Include, Create unmatched), look at the Preview,
//! then Finish. Shared by the API, the CLI and the UI.
//!
//! Every edit changes the *pending* ClientLink only; Finish ([`ClientMapping::apply`]) applies all
//! pending links of the integration in one transaction, audits each change in it, and starts a
//! device sync when a client became newly mapped. Only identical names after normalisation are
//! matched automatically; near names and device evidence are suggestions, never applied.
//!
//! With the integration option `sites_as_clients` off, sites (N-central sites, NinjaOne
//! locations) are still stored (the sync engine files their devices under the company), but
//! they are no mapping rows of their own: lists, Auto-match, Create unmatched and the Preview skip
//! them, and editing one is refused with a message.
//!
//! Access (enforced by the callers, see `api/clients.rs`): anyone signed in may read; a
//! tenant-limited user sees only rows without a tenant or mapped to its tenants, and only its
//! tenants as suggestions. Changes need the technician role *and* a user not limited to tenants,
//! because Auto-match, Create and Finish act on every tenant of the hub.
use crate::services::audit::Actor;
use crate::services::integrations::IntegrationOptions;
use crate::services::integrations::connectors::Connectors;
use crate::services::sync::{SyncError, SyncService};
use crate::state::now;
use rmmbridge_core::names::{MatchKind, NameSuggestion, TenantIndex, evidence_suggestion};
use rmmbridge_core::rmm::RmmClientKind;
use rmmbridge_rmm::{Connector, RmmError};
use rmmbridge_store::{
    AppliedLinks, ClientEvidence, ClientLinkChange, ClientLinkRow, ClientLinkState, ClientRefresh,
    Db, Integration, NewAuditEntry, Provenance, StoreError, TenantScope,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use utoipa::ToSchema;

/// Suggestions shown per client, best first.
pub const SUGGESTIONS_PER_CLIENT: usize = 3;

/// Longest tenant name (the API's rule for tenants).
const MAX_TENANT_NAME: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the RMM did not list its clients: {0}. Verify the integration's credentials (POST /api/v1/integrations/{{id}}/verify) and refresh again"
    )]
    Rmm(#[from] RmmError),
}

impl From<SyncError> for MappingError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::NotFound => MappingError::NotFound("integration"),
            SyncError::AlreadyRunning(m) | SyncError::Invalid(m) => MappingError::Invalid(m),
            SyncError::Store(s) => MappingError::Store(s),
            SyncError::Rmm(r) => MappingError::Rmm(r),
        }
    }
}

impl From<MappingError> for crate::error::ApiError {
    fn from(e: MappingError) -> Self {
        use crate::error::ApiError;
        match e {
            MappingError::NotFound(what) => ApiError::NotFound(what),
            MappingError::Invalid(m) => ApiError::BadRequest(m),
            MappingError::Store(s) => s.into(),
            e @ MappingError::Rmm(_) => ApiError::BadRequest(e.to_string()),
        }
    }
}

pub type MappingResult<T> = Result<T, MappingError>;

/// Fetches the RMM's client list and brings the stored RmmClients in line with it (renames
/// followed by external id, vanished clients marked). The sync engine's `clients` stage and the
/// explicit refresh both go through here.
pub async fn refresh_from(
    db: &Db,
    connectors: &Connectors,
    integration_id: i64,
    connector: &dyn Connector,
) -> Result<ClientRefresh, SyncError> {
    let clients = connector.list_clients().await;
    connectors.record_tokens(integration_id, connector).await;
    let clients = clients?;
    Ok(db
        .refresh_rmm_clients(integration_id, &clients, now())
        .await?)
}

// -------------------------------------------------------------------------------------------
// Views
// -------------------------------------------------------------------------------------------

/// Which clients a list shows, by their pending state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum View {
    #[default]
    All,
    /// Not mapped yet (pending state `unmatched`).
    Unmatched,
    /// Matched to a tenant, or a tenant will be created at Finish.
    Matched,
    /// Excluded: their devices are not imported. Include brings them back.
    Excluded,
}

impl View {
    pub fn includes(self, state: ClientLinkState) -> bool {
        match self {
            View::All => true,
            View::Unmatched => state == ClientLinkState::Unmatched,
            View::Matched => matches!(state, ClientLinkState::Matched | ClientLinkState::Create),
            View::Excluded => state == ClientLinkState::Excluded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            View::All => "all",
            View::Unmatched => "unmatched",
            View::Matched => "matched",
            View::Excluded => "excluded",
        }
    }
}

impl FromStr for View {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(View::All),
            "unmatched" => Ok(View::Unmatched),
            "matched" => Ok(View::Matched),
            "excluded" => Ok(View::Excluded),
            _ => Err(format!(
                "unknown view {s:?}: use all, unmatched, matched or excluded"
            )),
        }
    }
}

/// A tenant offered for a client, with why. Never applied without a person.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct SuggestionView {
    pub tenant_id: i64,
    pub tenant_name: String,
    /// 0..=1, comparable across kinds.
    pub confidence: f64,
    pub reason: String,
    /// `exact` (Auto-match would take it, or several tenants share the name), `loose`, `fuzzy`,
    /// `evidence`.
    pub kind: String,
}

/// Who decided a pending link, and when.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ProvenanceView {
    /// `auto` or `manual`.
    pub source: String,
    pub by: Option<String>,
    pub at: Option<i64>,
    pub reason: Option<String>,
}

/// One RmmClient with its ClientLink, pending and applied.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ClientRow {
    /// The RmmClient's id in the hub.
    pub id: i64,
    pub external_id: String,
    pub name: String,
    /// `company` or `site`.
    pub kind: String,
    pub parent_external_id: Option<String>,
    /// Set when the RMM no longer lists the client; the link is kept.
    pub vanished_at: Option<i64>,
    /// Pending state: `unmatched`, `matched`, `create`, `excluded`.
    pub state: String,
    /// Pending tenant (for `create`: none yet, see `tenant_name`).
    pub tenant_id: Option<i64>,
    /// Pending tenant's name; for `create`, the name the new tenant will get.
    pub tenant_name: Option<String>,
    /// What Finish last applied: `unmatched`, `matched`, `excluded`.
    pub applied_state: String,
    pub applied_tenant_id: Option<i64>,
    pub applied_tenant_name: Option<String>,
    /// Finish would change this link.
    pub pending: bool,
    pub provenance: Option<ProvenanceView>,
    /// The best suggestion, for unmatched clients.
    pub suggestion: Option<SuggestionView>,
    /// Up to three suggestions, best first (the first is `suggestion`).
    pub suggestions: Vec<SuggestionView>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ViewCounts {
    pub all: u64,
    pub unmatched: u64,
    pub matched: u64,
    pub excluded: u64,
    /// Rows Finish would change.
    pub pending: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ClientList {
    pub integration_id: i64,
    pub view: View,
    /// Off: sites are folded into their company and not listed.
    pub sites_as_clients: bool,
    /// Counts over every visible client, whatever the view.
    pub counts: ViewCounts,
    pub clients: Vec<ClientRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RenameView {
    pub external_id: String,
    pub old_name: String,
    pub new_name: String,
}

/// What a refresh of the client list changed; external ids throughout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RefreshReport {
    pub integration_id: i64,
    pub added: Vec<String>,
    /// Followed by external id: the same RmmClient under a new name, its link kept.
    pub renamed: Vec<RenameView>,
    pub reshaped: Vec<String>,
    pub vanished: Vec<String>,
    pub returned: Vec<String>,
    pub unchanged: u64,
}

/// The result of a bulk edit (Auto-match, Create unmatched).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct BulkResult {
    pub integration_id: i64,
    /// Links whose pending state was changed.
    pub changed: u64,
    pub clients: Vec<ClientRow>,
}

/// One pending change in the Preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PreviewRow {
    pub client_id: i64,
    pub external_id: String,
    pub name: String,
    pub from_state: String,
    pub from_tenant_id: Option<i64>,
    pub from_tenant_name: Option<String>,
    pub to_state: String,
    pub tenant_id: Option<i64>,
    pub tenant_name: Option<String>,
    /// For `to_create`: a tenant of that name exists and will be used instead of a new one.
    pub reuses_tenant: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PreviewCounts {
    pub to_create: u64,
    pub to_match: u64,
    pub to_exclude: u64,
    /// Applied links taken back to unmatched (their devices stop being identified).
    pub to_unmatch: u64,
    pub unchanged: u64,
}

/// What Finish will do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Preview {
    pub integration_id: i64,
    pub counts: PreviewCounts,
    pub to_create: Vec<PreviewRow>,
    pub to_match: Vec<PreviewRow>,
    pub to_exclude: Vec<PreviewRow>,
    pub to_unmatch: Vec<PreviewRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppliedCounts {
    /// Tenants created (not counting existing tenants reused by name).
    pub created_tenants: u64,
    pub reused_tenants: u64,
    pub matched: u64,
    pub excluded: u64,
    pub unmatched: u64,
    pub unchanged: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CreatedTenantView {
    pub client_id: i64,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub reused: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppliedChangeView {
    pub client_id: i64,
    pub external_id: String,
    pub name: String,
    pub from_state: String,
    pub from_tenant_id: Option<i64>,
    pub to_state: String,
    pub to_tenant_id: Option<i64>,
}

/// What Finish did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApplyReport {
    pub integration_id: i64,
    pub applied: AppliedCounts,
    pub created_tenants: Vec<CreatedTenantView>,
    pub changes: Vec<AppliedChangeView>,
    /// Clients that became mapped (or mapped to another tenant): their devices are imported next.
    pub newly_mapped_client_ids: Vec<i64>,
    /// The device sync started for the newly mapped clients; follow it at `/api/v1/sync-runs/{id}`.
    pub sync_run_id: Option<i64>,
    /// Why no sync was started although clients became mapped.
    pub sync_note: Option<String>,
}

/// Whether Finish starts the device sync itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncAfter {
    /// In the background (API, UI).
    Background,
    /// Not at all: the caller runs it (CLI `apply --sync`) or says how to.
    Caller,
}

/// One edit of a single client's pending link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAction {
    Match { tenant_id: i64 },
    Create,
    Exclude,
    Include,
}

impl ClientAction {
    fn verb(self) -> &'static str {
        match self {
            ClientAction::Match { .. } => "match",
            ClientAction::Create => "create",
            ClientAction::Exclude => "exclude",
            ClientAction::Include => "include",
        }
    }
}

// -------------------------------------------------------------------------------------------
// Pure parts
// -------------------------------------------------------------------------------------------

/// A mapping row of its own: companies always, sites only when they are separate clients.
pub fn is_mapping_row(kind: RmmClientKind, sites_as_clients: bool) -> bool {
    kind == RmmClientKind::Company || sites_as_clients
}

/// What a tenant-limited user may see of a row: rows without tenants, or whose pending and
/// applied tenants are all theirs.
pub fn row_in_scope(row: &ClientLinkRow, scope: &TenantScope) -> bool {
    [row.tenant_id, row.applied_tenant_id]
        .into_iter()
        .flatten()
        .all(|t| scope.allows(t))
}

/// The name of the tenant Create makes for a client: the trimmed client name.
pub fn tenant_name_for(client_name: &str) -> Result<String, String> {
    let name = client_name.trim();
    if name.is_empty() {
        return Err("the client's name is empty, so no tenant can be named after it; create the tenant yourself (POST /api/v1/tenants) and match the client to it".into());
    }
    if name.chars().count() > MAX_TENANT_NAME {
        return Err(format!(
            "the client's name is longer than {MAX_TENANT_NAME} characters, the limit for a tenant name; create the tenant yourself (POST /api/v1/tenants) and match the client to it"
        ));
    }
    Ok(name.to_owned())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn view_of(s: NameSuggestion, tenant_names: &HashMap<i64, String>) -> Option<SuggestionView> {
    Some(SuggestionView {
        tenant_name: tenant_names.get(&s.tenant_id)?.clone(),
        tenant_id: s.tenant_id,
        confidence: round3(s.confidence),
        reason: s.reason,
        kind: s.kind.as_str().to_owned(),
    })
}

/// Suggestions for one client, best first: the automatic match when there is one (Auto-match
/// will take it), else near names and device evidence merged, one per tenant, at most `limit`.
/// `evidence` holds this client's rows; tenants missing from `tenant_names` (out of scope) are
/// dropped.
pub fn suggestions_for(
    name: &str,
    index: &TenantIndex,
    evidence: &[&ClientEvidence],
    tenant_names: &HashMap<i64, String>,
    limit: usize,
) -> Vec<SuggestionView> {
    if let Some(t) = index.exact(name) {
        return view_of(
            NameSuggestion {
                tenant_id: t,
                confidence: 1.0,
                kind: MatchKind::Exact,
                reason: "identical name after normalisation (case, spacing, Unicode form): Auto-match will match it".into(),
            },
            tenant_names,
        )
        .into_iter()
        .collect();
    }
    let mut all: Vec<NameSuggestion> = index.suggest(name, limit);
    all.extend(evidence.iter().map(|e| {
        evidence_suggestion(
            e.tenant_id,
            &e.tenant_name,
            e.shared_devices,
            e.client_devices,
        )
    }));
    all.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.tenant_id.cmp(&b.tenant_id))
    });
    let mut seen = std::collections::HashSet::new();
    all.into_iter()
        .filter(|s| seen.insert(s.tenant_id))
        .filter_map(|s| view_of(s, tenant_names))
        .take(limit)
        .collect()
}

/// The pending links Auto-match sets: unmatched, still listed clients whose name is identical
/// (after normalisation) to exactly one tenant's.
pub fn auto_matches<'a>(
    rows: impl IntoIterator<Item = &'a ClientLinkRow>,
    index: &TenantIndex,
) -> Vec<(i64, i64)> {
    rows.into_iter()
        .filter(|r| r.state == ClientLinkState::Unmatched && r.vanished_at.is_none())
        .filter_map(|r| index.exact(&r.name).map(|t| (r.id, t)))
        .collect()
}

fn applied_state(r: &ClientLinkRow) -> ClientLinkState {
    r.applied_state.unwrap_or(ClientLinkState::Unmatched)
}

/// The Preview of these rows. `tenant_exists` says whether a tenant of a given name exists (a
/// Create then reuses it).
pub fn preview_of<'a>(
    integration_id: i64,
    rows: impl IntoIterator<Item = &'a ClientLinkRow>,
    tenant_exists: impl Fn(&str) -> bool,
) -> Preview {
    let mut p = Preview {
        integration_id,
        ..Default::default()
    };
    for r in rows {
        if !r.is_pending() {
            p.counts.unchanged += 1;
            continue;
        }
        let from = applied_state(r);
        let mut row = PreviewRow {
            client_id: r.id,
            external_id: r.external_id.clone(),
            name: r.name.clone(),
            from_state: from.to_string(),
            from_tenant_id: r.applied_tenant_id,
            from_tenant_name: r.applied_tenant_name.clone(),
            to_state: r.state.to_string(),
            tenant_id: r.tenant_id,
            tenant_name: r.tenant_name.clone(),
            reuses_tenant: false,
        };
        match r.state {
            ClientLinkState::Create => {
                let name = r.name.trim().to_owned();
                row.reuses_tenant = tenant_exists(&name);
                row.tenant_name = Some(name);
                p.counts.to_create += 1;
                p.to_create.push(row);
            }
            ClientLinkState::Matched => {
                p.counts.to_match += 1;
                p.to_match.push(row);
            }
            ClientLinkState::Excluded => {
                p.counts.to_exclude += 1;
                p.to_exclude.push(row);
            }
            ClientLinkState::Unmatched => {
                p.counts.to_unmatch += 1;
                p.to_unmatch.push(row);
            }
        }
    }
    p
}

/// The audit entries of one Finish: one per changed link, one per created tenant. Nothing for a
/// Finish that changed nothing.
pub fn apply_audit(
    integration_id: i64,
    actor: &Actor,
    at: rmmbridge_core::Timestamp,
    out: &AppliedLinks,
) -> Vec<NewAuditEntry> {
    let entry = |action: &str, kind: &str, id: i64, details| NewAuditEntry {
        at,
        actor_user_id: actor.user_id,
        actor: actor.name.clone(),
        action: action.to_owned(),
        target_kind: Some(kind.to_owned()),
        target_id: Some(id.to_string()),
        details,
        ip: actor.ip.clone(),
    };
    let mut entries: Vec<NewAuditEntry> = out
        .created_tenants
        .iter()
        .filter(|c| !c.reused)
        .map(|c| {
            entry(
                "tenant.create",
                "tenant",
                c.tenant_id,
                json!({"name": c.tenant_name, "from_rmm_client_id": c.rmm_client_id, "integration_id": integration_id}),
            )
        })
        .collect();
    entries.extend(out.changes.iter().map(|c| {
        entry(
            "client_link.apply",
            "rmm_client",
            c.rmm_client_id,
            json!({
                "integration_id": integration_id,
                "name": c.name,
                "external_id": c.external_id,
                "from_state": c.from_state.as_str(),
                "from_tenant_id": c.from_tenant_id,
                "to_state": c.to_state.as_str(),
                "to_tenant_id": c.to_tenant_id,
            }),
        )
    }));
    entries
}

fn provenance_of(r: &ClientLinkRow) -> Option<ProvenanceView> {
    r.provenance.map(|p| ProvenanceView {
        source: p.as_str().to_owned(),
        by: r.decided_by.clone(),
        at: r.decided_at.map(|t| t.0),
        reason: r.reason.clone(),
    })
}

/// The API/CLI shape of one row (suggestions filled in by the caller).
pub fn client_row(r: &ClientLinkRow, suggestions: Vec<SuggestionView>) -> ClientRow {
    let tenant_name = match r.state {
        ClientLinkState::Create => Some(r.name.trim().to_owned()),
        _ => r.tenant_name.clone(),
    };
    ClientRow {
        id: r.id,
        external_id: r.external_id.clone(),
        name: r.name.clone(),
        kind: match r.kind {
            RmmClientKind::Company => "company",
            RmmClientKind::Site => "site",
        }
        .to_owned(),
        parent_external_id: r.parent_external_id.clone(),
        vanished_at: r.vanished_at.map(|t| t.0),
        state: r.state.to_string(),
        tenant_id: r.tenant_id,
        tenant_name,
        applied_state: applied_state(r).to_string(),
        applied_tenant_id: r.applied_tenant_id,
        applied_tenant_name: r.applied_tenant_name.clone(),
        pending: r.is_pending(),
        provenance: provenance_of(r),
        suggestion: suggestions.first().cloned(),
        suggestions,
    }
}

fn counts_of<'a>(rows: impl IntoIterator<Item = &'a ClientLinkRow>) -> ViewCounts {
    let mut c = ViewCounts::default();
    for r in rows {
        c.all += 1;
        for (view, n) in [
            (View::Unmatched, &mut c.unmatched),
            (View::Matched, &mut c.matched),
            (View::Excluded, &mut c.excluded),
        ] {
            if view.includes(r.state) {
                *n += 1;
            }
        }
        if r.is_pending() {
            c.pending += 1;
        }
    }
    c
}

// -------------------------------------------------------------------------------------------
// Use cases
// -------------------------------------------------------------------------------------------

/// The client-mapping use cases over the hub's database, connectors and sync service.
pub struct ClientMapping<'a> {
    pub db: &'a Db,
    pub connectors: &'a Connectors,
    pub sync: &'a Arc<SyncService>,
}

impl ClientMapping<'_> {
    async fn integration(&self, id: i64) -> MappingResult<(Integration, IntegrationOptions)> {
        let i = self
            .db
            .integration_by_id(id)
            .await?
            .ok_or(MappingError::NotFound("integration"))?;
        let opts = IntegrationOptions::from_stored(&i.options);
        Ok((i, opts))
    }

    /// The mapping rows of an integration (sites folded away unless they are clients).
    async fn rows(&self, id: i64, opts: &IntegrationOptions) -> MappingResult<Vec<ClientLinkRow>> {
        Ok(self
            .db
            .list_client_links(id)
            .await?
            .into_iter()
            .filter(|r| is_mapping_row(r.kind, opts.sites_as_clients))
            .collect())
    }

    /// Fetches the RMM's clients now (what a sync's first stage does).
    pub async fn refresh(&self, id: i64, actor: &Actor) -> MappingResult<RefreshReport> {
        let (integration, _) = self.integration(id).await?;
        let connector = self.connectors.get(&integration).await?;
        let r = refresh_from(self.db, self.connectors, id, &*connector).await?;
        if r.changes() > 0 {
            crate::services::audit::record(
                self.db,
                actor,
                "rmm_clients.refresh",
                Some(("integration", id.to_string())),
                json!({"added": r.added.len(), "renamed": r.renamed.len(), "reshaped": r.reshaped.len(),
                       "vanished": r.vanished.len(), "returned": r.returned.len()}),
            )
            .await?;
        }
        Ok(RefreshReport {
            integration_id: id,
            added: r.added,
            renamed: r
                .renamed
                .into_iter()
                .map(|x| RenameView {
                    external_id: x.external_id,
                    old_name: x.old_name,
                    new_name: x.new_name,
                })
                .collect(),
            reshaped: r.reshaped,
            vanished: r.vanished,
            returned: r.returned,
            unchanged: r.unchanged,
        })
    }

    /// The clients of one view with their links and, for unmatched ones, suggestions from the
    /// tenants in `scope`.
    pub async fn list(
        &self,
        id: i64,
        view: View,
        scope: &TenantScope,
    ) -> MappingResult<ClientList> {
        let (_, opts) = self.integration(id).await?;
        let rows: Vec<ClientLinkRow> = self
            .rows(id, &opts)
            .await?
            .into_iter()
            .filter(|r| row_in_scope(r, scope))
            .collect();
        let tenants: Vec<(i64, String)> = self
            .db
            .list_tenants(scope)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let names: HashMap<i64, String> = tenants.iter().cloned().collect();
        let index = TenantIndex::new(&tenants);
        let wants_suggestions = rows
            .iter()
            .any(|r| view.includes(r.state) && r.state == ClientLinkState::Unmatched);
        let evidence = if wants_suggestions {
            self.db.client_evidence(id).await?
        } else {
            Vec::new()
        };
        let mut evidence_of: HashMap<i64, Vec<&ClientEvidence>> = HashMap::new();
        for e in evidence.iter().filter(|e| scope.allows(e.tenant_id)) {
            evidence_of.entry(e.rmm_client_id).or_default().push(e);
        }
        let clients = rows
            .iter()
            .filter(|r| view.includes(r.state))
            .map(|r| {
                let s = if r.state == ClientLinkState::Unmatched {
                    let ev = evidence_of.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
                    suggestions_for(&r.name, &index, ev, &names, SUGGESTIONS_PER_CLIENT)
                } else {
                    Vec::new()
                };
                client_row(r, s)
            })
            .collect();
        Ok(ClientList {
            integration_id: id,
            view,
            sites_as_clients: opts.sites_as_clients,
            counts: counts_of(&rows),
            clients,
        })
    }

    /// Auto-match all: every unmatched client whose name is identical to exactly one tenant's
    /// (after normalisation) gets that tenant, provenance auto. Near names are left alone.
    pub async fn auto_match(&self, id: i64, actor: &Actor) -> MappingResult<BulkResult> {
        let (_, opts) = self.integration(id).await?;
        let rows = self.rows(id, &opts).await?;
        let tenants: Vec<(i64, String)> = self
            .db
            .list_tenants(&TenantScope::All)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let index = TenantIndex::new(&tenants);
        let changes: Vec<(i64, ClientLinkChange)> = auto_matches(&rows, &index)
            .into_iter()
            .map(|(client, tenant)| {
                (
                    client,
                    ClientLinkChange {
                        state: ClientLinkState::Matched,
                        tenant_id: Some(tenant),
                        provenance: Provenance::Auto,
                        decided_by: Some(actor.name.clone()),
                        reason: Some("identical name after normalisation".into()),
                    },
                )
            })
            .collect();
        self.bulk(id, actor, "client_links.auto_match", changes)
            .await
    }

    /// Create unmatched: every unmatched, still listed client gets a tenant named after it at
    /// Finish.
    pub async fn create_unmatched(&self, id: i64, actor: &Actor) -> MappingResult<BulkResult> {
        let (_, opts) = self.integration(id).await?;
        let rows = self.rows(id, &opts).await?;
        let changes: Vec<(i64, ClientLinkChange)> = rows
            .iter()
            .filter(|r| r.state == ClientLinkState::Unmatched && r.vanished_at.is_none())
            .filter(|r| tenant_name_for(&r.name).is_ok())
            .map(|r| {
                (
                    r.id,
                    ClientLinkChange {
                        state: ClientLinkState::Create,
                        tenant_id: None,
                        provenance: Provenance::Manual,
                        decided_by: Some(actor.name.clone()),
                        reason: Some("create unmatched".into()),
                    },
                )
            })
            .collect();
        self.bulk(id, actor, "client_links.create_unmatched", changes)
            .await
    }

    async fn bulk(
        &self,
        id: i64,
        actor: &Actor,
        action: &str,
        changes: Vec<(i64, ClientLinkChange)>,
    ) -> MappingResult<BulkResult> {
        let changed = if changes.is_empty() {
            0
        } else {
            self.db.set_client_links(&changes, now()).await?
        };
        if changed > 0 {
            let ids: Vec<i64> = changes.iter().map(|(c, _)| *c).collect();
            crate::services::audit::record(
                self.db,
                actor,
                action,
                Some(("integration", id.to_string())),
                json!({"clients": ids, "changed": changed}),
            )
            .await?;
        }
        let touched: std::collections::HashSet<i64> = changes.iter().map(|(c, _)| *c).collect();
        let clients = self
            .db
            .list_client_links(id)
            .await?
            .iter()
            .filter(|r| touched.contains(&r.id))
            .map(|r| client_row(r, Vec::new()))
            .collect();
        Ok(BulkResult {
            integration_id: id,
            changed,
            clients,
        })
    }

    /// Match, Create, Exclude or Include one client (its pending link; Finish applies it).
    pub async fn set(
        &self,
        id: i64,
        client_id: i64,
        action: ClientAction,
        actor: &Actor,
    ) -> MappingResult<ClientRow> {
        let (_, opts) = self.integration(id).await?;
        let row = self
            .db
            .client_link(client_id)
            .await?
            .ok_or(MappingError::NotFound("RMM client"))?;
        if row.integration_id != id {
            return Err(MappingError::Invalid(format!(
                "RMM client {client_id} belongs to integration {}, not {id}; use /api/v1/integrations/{}/clients/{client_id}/{}",
                row.integration_id,
                row.integration_id,
                action.verb()
            )));
        }
        if !is_mapping_row(row.kind, opts.sites_as_clients) {
            return Err(MappingError::Invalid(format!(
                "{:?} is a site, and this integration files sites under their company (option sites_as_clients is off): map the company, or turn sites_as_clients on to map sites on their own",
                row.name
            )));
        }
        let manual = |state, tenant_id, reason: String| ClientLinkChange {
            state,
            tenant_id,
            provenance: Provenance::Manual,
            decided_by: Some(actor.name.clone()),
            reason: Some(reason),
        };
        let change = match action {
            ClientAction::Match { tenant_id } => {
                self.refuse_vanished(&row, "match")?;
                let tenant = self.db.tenant_by_id(tenant_id).await?.ok_or_else(|| {
                    MappingError::Invalid(format!(
                        "tenant {tenant_id} does not exist; list tenants with GET /api/v1/tenants, or use .../clients/{client_id}/create to create one named after the client"
                    ))
                })?;
                manual(
                    ClientLinkState::Matched,
                    Some(tenant.id),
                    format!("matched to {:?}", tenant.name),
                )
            }
            ClientAction::Create => {
                self.refuse_vanished(&row, "create a tenant for")?;
                let name = tenant_name_for(&row.name).map_err(MappingError::Invalid)?;
                manual(
                    ClientLinkState::Create,
                    None,
                    format!("create tenant {name:?}"),
                )
            }
            ClientAction::Exclude => manual(ClientLinkState::Excluded, None, "excluded".into()),
            ClientAction::Include => {
                manual(ClientLinkState::Unmatched, None, "included again".into())
            }
        };
        self.db.set_client_link(client_id, &change, now()).await?;
        crate::services::audit::record(
            self.db,
            actor,
            &format!("client_link.{}", action.verb()),
            Some(("rmm_client", client_id.to_string())),
            json!({"integration_id": id, "name": row.name, "state": change.state.as_str(), "tenant_id": change.tenant_id}),
        )
        .await?;
        let row = self
            .db
            .client_link(client_id)
            .await?
            .ok_or(MappingError::NotFound("RMM client"))?;
        Ok(client_row(&row, Vec::new()))
    }

    fn refuse_vanished(&self, row: &ClientLinkRow, what: &str) -> MappingResult<()> {
        if row.vanished_at.is_some() {
            return Err(MappingError::Invalid(format!(
                "{:?} is no longer listed by the RMM, so there is nothing to {what}; refresh the clients if it was restored, or exclude it",
                row.name
            )));
        }
        Ok(())
    }

    /// What Finish would do now.
    pub async fn preview(&self, id: i64, scope: &TenantScope) -> MappingResult<Preview> {
        let (_, opts) = self.integration(id).await?;
        let rows = self.rows(id, &opts).await?;
        let tenants: std::collections::HashSet<String> = self
            .db
            .list_tenants(&TenantScope::All)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        Ok(preview_of(
            id,
            rows.iter().filter(|r| row_in_scope(r, scope)),
            |n| tenants.contains(n),
        ))
    }

    /// Finish: applies every pending link in one transaction with its audit entries; a second
    /// Finish changes and audits nothing. With [`SyncAfter::Background`], starts a device sync
    /// when a client became newly mapped.
    pub async fn apply(
        &self,
        id: i64,
        actor: &Actor,
        sync: SyncAfter,
    ) -> MappingResult<ApplyReport> {
        let (_, opts) = self.integration(id).await?;
        // Sites folded into their company are stored links too; they are no mapping rows, so
        // they are not counted as unchanged.
        let folded: std::collections::HashSet<i64> = self
            .db
            .list_client_links(id)
            .await?
            .into_iter()
            .filter(|r| !is_mapping_row(r.kind, opts.sites_as_clients))
            .map(|r| r.id)
            .collect();
        let at = now();
        let out = self
            .db
            .apply_client_links_audited(id, &actor.name, at, |out| apply_audit(id, actor, at, out))
            .await?;
        let mut report = ApplyReport {
            integration_id: id,
            applied: AppliedCounts {
                created_tenants: out.created_tenants.iter().filter(|c| !c.reused).count() as u64,
                reused_tenants: out.created_tenants.iter().filter(|c| c.reused).count() as u64,
                matched: out.matched,
                excluded: out.excluded,
                unmatched: out.unmatched,
                unchanged: out.unchanged.saturating_sub(
                    folded
                        .iter()
                        .filter(|f| !out.changes.iter().any(|c| c.rmm_client_id == **f))
                        .count() as u64,
                ),
            },
            created_tenants: out
                .created_tenants
                .iter()
                .map(|c| CreatedTenantView {
                    client_id: c.rmm_client_id,
                    tenant_id: c.tenant_id,
                    tenant_name: c.tenant_name.clone(),
                    reused: c.reused,
                })
                .collect(),
            changes: out
                .changes
                .iter()
                .map(|c| AppliedChangeView {
                    client_id: c.rmm_client_id,
                    external_id: c.external_id.clone(),
                    name: c.name.clone(),
                    from_state: c.from_state.to_string(),
                    from_tenant_id: c.from_tenant_id,
                    to_state: c.to_state.to_string(),
                    to_tenant_id: c.to_tenant_id,
                })
                .collect(),
            newly_mapped_client_ids: out.newly_mapped_client_ids.clone(),
            sync_run_id: None,
            sync_note: None,
        };
        if out.newly_mapped_client_ids.is_empty() {
            return Ok(report);
        }
        if !opts.device_sync {
            report.sync_note = Some(
                "device sync is off for this integration, so no devices are imported; turn on the device_sync option to import them".into(),
            );
            return Ok(report);
        }
        match sync {
            SyncAfter::Caller => {
                report.sync_note = Some(format!(
                    "newly mapped clients' devices are imported by the next sync: run `rmmbridge sync --integration {id}`"
                ));
            }
            SyncAfter::Background => match self.sync.start(id, &actor.name).await {
                Ok(run) => {
                    crate::services::audit::record(
                        self.db,
                        actor,
                        "sync.start",
                        Some(("integration", id.to_string())),
                        json!({"run_id": run.id, "reason": "finish"}),
                    )
                    .await?;
                    report.sync_run_id = Some(run.id);
                }
                Err(SyncError::AlreadyRunning(m)) => {
                    report.sync_note = Some(format!(
                        "{m}; it may not include the newly mapped clients, so sync again when it has finished"
                    ));
                }
                Err(e) => {
                    report.sync_note = Some(format!(
                        "the mapping was applied, but the device sync did not start: {e}"
                    ));
                }
            },
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmmbridge_core::Timestamp;

    fn row(id: i64, name: &str, state: ClientLinkState, tenant: Option<i64>) -> ClientLinkRow {
        ClientLinkRow {
            id,
            integration_id: 1,
            external_id: format!("ext-{id}"),
            parent_external_id: None,
            kind: RmmClientKind::Company,
            name: name.into(),
            first_seen_at: Timestamp(0),
            vanished_at: None,
            state,
            tenant_id: tenant,
            tenant_name: tenant.map(|t| format!("T{t}")),
            provenance: None,
            decided_by: None,
            decided_at: None,
            reason: None,
            applied_at: None,
            applied_by: None,
            applied_state: None,
            applied_tenant_id: None,
            applied_tenant_name: None,
        }
    }

    fn tenants() -> Vec<(i64, String)> {
        vec![
            (1, "Acme Dental".into()),
            (2, "Bolt Logistics GmbH".into()),
            (3, "Twin".into()),
            (4, "twin".into()),
        ]
    }

    #[test]
    fn views_select_by_pending_state() {
        use ClientLinkState::*;
        let shown = |v: View| {
            [Unmatched, Matched, Create, Excluded]
                .into_iter()
                .filter(|s| v.includes(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(View::All), vec![Unmatched, Matched, Create, Excluded]);
        assert_eq!(shown(View::Unmatched), vec![Unmatched]);
        assert_eq!(shown(View::Matched), vec![Matched, Create]);
        assert_eq!(shown(View::Excluded), vec![Excluded]);
        assert_eq!("excluded".parse::<View>(), Ok(View::Excluded));
        assert!("mapped".parse::<View>().unwrap_err().contains("unmatched"));
    }

    #[test]
    fn sites_are_rows_only_when_they_are_clients() {
        assert!(is_mapping_row(RmmClientKind::Company, false));
        assert!(!is_mapping_row(RmmClientKind::Site, false));
        assert!(is_mapping_row(RmmClientKind::Site, true));
    }

    #[test]
    fn auto_match_takes_only_identical_names_of_one_tenant() {
        let index = TenantIndex::new(&tenants());
        let mut gone = row(5, "Acme Dental", ClientLinkState::Unmatched, None);
        gone.vanished_at = Some(Timestamp(1));
        let rows = vec![
            row(1, "  ACME   dental ", ClientLinkState::Unmatched, None),
            // Near names are suggestions only.
            row(2, "Bolt Logistics", ClientLinkState::Unmatched, None),
            // Two tenants share the name: a guess, so no match.
            row(3, "TWIN", ClientLinkState::Unmatched, None),
            // Already decided.
            row(4, "Acme Dental", ClientLinkState::Excluded, None),
            gone,
        ];
        assert_eq!(auto_matches(&rows, &index), vec![(1, 1)]);
    }

    #[test]
    fn suggestions_merge_names_and_evidence_one_per_tenant() {
        let index = TenantIndex::new(&tenants());
        let names: HashMap<i64, String> = tenants().into_iter().collect();
        let s = suggestions_for("Bolt Logistics", &index, &[], &names, 3);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].tenant_id, s[0].kind.as_str()), (2, "loose"));
        assert_eq!(s[0].confidence, 0.95);
        assert!(s[0].reason.contains("legal suffix"), "{}", s[0].reason);

        let ev = ClientEvidence {
            rmm_client_id: 9,
            tenant_id: 1,
            tenant_name: "Acme Dental".into(),
            shared_devices: 20,
            client_devices: 20,
        };
        let s = suggestions_for("Bolt Logistics", &index, &[&ev], &names, 3);
        // 20 of 20 devices: 0.98 * 20/21 = 0.933, just below the loose name match (0.95).
        assert_eq!(
            s.iter()
                .map(|x| (x.tenant_id, x.kind.as_str()))
                .collect::<Vec<_>>(),
            vec![(2, "loose"), (1, "evidence")]
        );
        assert_eq!(s[1].confidence, 0.933);
        assert!(
            s[1].reason.starts_with("20 of 20 devices"),
            "{}",
            s[1].reason
        );

        // Out-of-scope tenants (missing from the names) are never offered.
        let only_bolt: HashMap<i64, String> = [(2, "Bolt Logistics GmbH".to_owned())].into();
        let s = suggestions_for("Bolt Logistics", &index, &[&ev], &only_bolt, 3);
        assert_eq!(s.iter().map(|x| x.tenant_id).collect::<Vec<_>>(), vec![2]);

        // The automatic match is the one suggestion, marked exact.
        let s = suggestions_for("acme dental", &index, &[], &names, 3);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].tenant_id, s[0].kind.as_str(), s[0].confidence),
            (1, "exact", 1.0)
        );
    }

    #[test]
    fn tenant_names_are_trimmed_and_checked() {
        assert_eq!(tenant_name_for("  Acme  ").unwrap(), "Acme");
        assert!(tenant_name_for("   ").is_err());
        assert!(tenant_name_for(&"x".repeat(201)).is_err());
    }

    #[test]
    fn preview_sorts_pending_links_into_kinds() {
        use ClientLinkState::*;
        let mut applied_match = row(1, "Same", Matched, Some(1));
        applied_match.applied_state = Some(Matched);
        applied_match.applied_tenant_id = Some(1);
        let mut moved = row(2, "Moved", Matched, Some(2));
        moved.applied_state = Some(Matched);
        moved.applied_tenant_id = Some(1);
        let mut unmapped = row(3, "Back", Unmatched, None);
        unmapped.applied_state = Some(Excluded);
        let rows = vec![
            applied_match,
            moved,
            unmapped,
            row(4, " Fresh ", Create, None),
            row(5, "Existing", Create, None),
            row(6, "Gone", Excluded, None),
            row(7, "Untouched", Unmatched, None),
        ];
        let p = preview_of(1, &rows, |n| n == "Existing");
        assert_eq!(
            p.counts,
            PreviewCounts {
                to_create: 2,
                to_match: 1,
                to_exclude: 1,
                to_unmatch: 1,
                unchanged: 2,
            }
        );
        assert_eq!(p.to_create[0].tenant_name.as_deref(), Some("Fresh"));
        assert!(!p.to_create[0].reuses_tenant);
        assert!(p.to_create[1].reuses_tenant);
        assert_eq!(p.to_match[0].from_tenant_id, Some(1));
        assert_eq!(p.to_match[0].tenant_id, Some(2));
        assert_eq!(p.to_unmatch[0].from_state, "excluded");
    }

    #[test]
    fn limited_users_see_rows_without_tenants_or_with_theirs() {
        let scope = TenantScope::Only(vec![1]);
        let mut r = row(1, "A", ClientLinkState::Unmatched, None);
        assert!(row_in_scope(&r, &scope));
        r.tenant_id = Some(1);
        assert!(row_in_scope(&r, &scope));
        r.applied_tenant_id = Some(2);
        assert!(!row_in_scope(&r, &scope));
        assert!(row_in_scope(&r, &TenantScope::All));
    }

    #[test]
    fn finish_audits_each_change_and_each_new_tenant() {
        use rmmbridge_store::{AppliedLinkChange, CreatedTenant};
        let actor = Actor::cli();
        assert!(apply_audit(1, &actor, Timestamp(5), &AppliedLinks::default()).is_empty());
        let out = AppliedLinks {
            created_tenants: vec![
                CreatedTenant {
                    rmm_client_id: 7,
                    tenant_id: 3,
                    tenant_name: "New".into(),
                    reused: false,
                },
                CreatedTenant {
                    rmm_client_id: 8,
                    tenant_id: 1,
                    tenant_name: "Old".into(),
                    reused: true,
                },
            ],
            changes: vec![AppliedLinkChange {
                rmm_client_id: 7,
                external_id: "e7".into(),
                name: "New".into(),
                from_state: ClientLinkState::Unmatched,
                from_tenant_id: None,
                to_state: ClientLinkState::Matched,
                to_tenant_id: Some(3),
            }],
            ..Default::default()
        };
        let e = apply_audit(1, &actor, Timestamp(5), &out);
        assert_eq!(
            e.iter()
                .map(|x| (x.action.as_str(), x.target_id.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                ("tenant.create", Some("3")),
                ("client_link.apply", Some("7"))
            ]
        );
        assert_eq!(e[1].details["to_tenant_id"], 3);
    }
}
