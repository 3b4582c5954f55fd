//! `/api/v1/computers` and `/api/v1/agents/{id}`: Computers with every Agent that reports them
//! and why each was linked. A tenant-limited user sees only its tenants' (others' are 404).
use super::extract::{ApiQuery, decode_cursor, encode_cursor};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::services::why::{self, AgentIds};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use rmmbridge_store::{
    AgentSnapshot, ComputerCursor, ComputerQuery, ComputerRow, Db, Evidence, TenantScope,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ComputerListParams {
    /// Only this tenant's computers.
    pub tenant_id: Option<i64>,
    /// Name or serial number, any part of it, case-insensitive.
    pub q: Option<String>,
    /// `active` (default), `retired` or `all`.
    pub state: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ComputerView {
    pub id: i64,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub name: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub os: Option<String>,
    /// `active` or `retired` (no live agent left, or merged into another computer).
    pub state: String,
    pub last_contact_at: Option<i64>,
    /// Agents that are not retired.
    pub agent_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub retired_at: Option<i64>,
}

impl From<ComputerRow> for ComputerView {
    fn from(c: ComputerRow) -> Self {
        ComputerView {
            id: c.id,
            tenant_id: c.tenant_id,
            tenant_name: c.tenant_name,
            name: c.name,
            serial: c.serial,
            smbios_uuid: c.smbios_uuid,
            os: c.os,
            state: if c.retired_at.is_some() {
                "retired"
            } else {
                "active"
            }
            .into(),
            last_contact_at: c.last_contact_at.map(|t| t.0),
            agent_count: c.agent_count,
            created_at: c.created_at.0,
            updated_at: c.updated_at.0,
            retired_at: c.retired_at.map(|t| t.0),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ComputerPage {
    pub items: Vec<ComputerView>,
    /// Every computer matching the filter, on all pages.
    pub total: i64,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The keyset behind a computer cursor.
#[derive(Serialize, Deserialize)]
struct Keyset {
    n: String,
    i: i64,
}

#[utoipa::path(get, path = "/api/v1/computers", tag = "computers", params(ComputerListParams),
    responses((status = 200, body = ComputerPage), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list_computers(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(p): ApiQuery<ComputerListParams>,
) -> ApiResult<Json<ComputerPage>> {
    Ok(Json(search(&state.db, &user.tenants, p).await?))
}

/// One page of the computer list within `scope` (the API's and the UI's): filter, keyset cursor,
/// total count.
pub async fn search(
    db: &Db,
    scope: &TenantScope,
    p: ComputerListParams,
) -> ApiResult<ComputerPage> {
    let (include_retired, retired_only) = match p.state.as_deref().unwrap_or("active") {
        "active" => (false, false),
        "retired" => (true, true),
        "all" => (true, false),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown state {other:?}; expected active, retired or all"
            )));
        }
    };
    let after = p
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(decode_cursor::<Keyset>)
        .transpose()?
        .map(|k| ComputerCursor { name: k.n, id: k.i });
    let page = db
        .search_computers(&ComputerQuery {
            scope: scope.clone(),
            tenant_id: p.tenant_id,
            q: p.q,
            include_retired,
            retired_only,
            limit: super::clamp_limit(p.limit, 50, 500),
            offset: 0,
            after,
        })
        .await?;
    Ok(ComputerPage {
        items: page.items.into_iter().map(ComputerView::from).collect(),
        total: page.total,
        next_cursor: page
            .next
            .map(|c| encode_cursor(&Keyset { n: c.name, i: c.id })),
    })
}

/// How an Agent came to be linked to a Computer.
#[derive(Serialize, ToSchema)]
pub struct LinkView {
    pub computer_id: i64,
    /// `smbios_uuid`, `serial`, `mac`, `new`, `manual` (an admin's decision), `manual_merge`.
    pub rule: String,
    /// The values compared, as identification stored them.
    #[schema(value_type = Object)]
    pub evidence: Value,
    /// `sync` or the admin's name.
    pub decided_by: String,
    pub at: i64,
    /// The same, as a sentence.
    pub why: String,
}

#[derive(Serialize, ToSchema)]
pub struct AgentView {
    pub id: i64,
    pub integration_id: i64,
    pub integration_name: String,
    /// `ncentral` or `ninjaone`.
    pub integration_kind: String,
    pub external_id: String,
    pub rmm_client_id: Option<i64>,
    pub rmm_client_external_id: Option<String>,
    pub rmm_client_name: Option<String>,
    pub hostname: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub macs: Vec<String>,
    pub os: Option<String>,
    pub device_class: Option<String>,
    /// `active`, `missing` or `retired`.
    pub state: String,
    pub last_contact_at: Option<i64>,
    pub missing_since: Option<i64>,
    pub first_seen_at: i64,
    /// `None` while the agent waits for a ManualDecision (or for its client to be mapped).
    pub computer_id: Option<i64>,
    /// Set when identification kept it apart from live agents with the same hardware ids.
    pub clone_of: Option<String>,
    /// The Identification of its current link.
    pub identification: Option<LinkView>,
}

/// Integration names by id, for sentences.
async fn integration_names(db: &Db) -> ApiResult<HashMap<i64, (String, String)>> {
    Ok(db
        .list_integrations()
        .await?
        .into_iter()
        .map(|i| (i.id, (i.name, i.kind.to_string())))
        .collect())
}

fn link_view(computer_id: i64, e: &Evidence, names: &HashMap<i64, (String, String)>) -> LinkView {
    let name = |id: i64| names.get(&id).map(|n| n.0.clone());
    LinkView {
        computer_id,
        why: why::link_sentence(&e.rule, &e.evidence, &e.decided_by, &name),
        rule: e.rule.clone(),
        evidence: e.evidence.clone(),
        decided_by: e.decided_by.clone(),
        at: e.at.0,
    }
}

fn agent_view(
    a: AgentSnapshot,
    evidence: Option<&Evidence>,
    client_name: Option<String>,
    names: &HashMap<i64, (String, String)>,
) -> AgentView {
    let (integration_name, integration_kind) =
        names.get(&a.integration_id).cloned().unwrap_or_default();
    AgentView {
        identification: match (a.computer_id, evidence) {
            (Some(c), Some(e)) => Some(link_view(c, e, names)),
            _ => None,
        },
        id: a.id,
        integration_id: a.integration_id,
        integration_name,
        integration_kind,
        external_id: a.external_id,
        rmm_client_id: a.rmm_client_id,
        rmm_client_external_id: a.rmm_client_external_id,
        rmm_client_name: client_name,
        hostname: a.hostname,
        serial: a.serial,
        smbios_uuid: a.smbios_uuid,
        macs: a.macs,
        os: a.os,
        device_class: a.device_class,
        state: a.state.to_string(),
        last_contact_at: a.last_contact_at.map(|t| t.0),
        missing_since: a.missing_since.map(|t| t.0),
        first_seen_at: a.first_seen_at.0,
        computer_id: a.computer_id,
        clone_of: a.clone_of,
    }
}

/// RmmClient names by id, for the given integrations.
async fn client_names(db: &Db, integrations: &[i64]) -> ApiResult<HashMap<i64, String>> {
    let mut out = HashMap::new();
    for &i in integrations {
        for l in db.list_client_links(i).await? {
            out.insert(l.id, l.name);
        }
    }
    Ok(out)
}

/// One entry of a computer's history: an Identification of one of its agents.
#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    pub agent_id: i64,
    #[serde(flatten)]
    pub link: LinkView,
}

#[derive(Serialize, ToSchema)]
pub struct ComputerDetail {
    #[serde(flatten)]
    pub computer: ComputerView,
    /// Why these agents are one machine.
    pub why: String,
    /// Every agent linked to it, live ones first, each with the rule that linked it.
    pub agents: Vec<AgentView>,
    /// Every Identification of its agents, newest first: links, merges, admin decisions.
    pub history: Vec<HistoryEntry>,
}

#[utoipa::path(get, path = "/api/v1/computers/{id}", tag = "computers",
    responses((status = 200, body = ComputerDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_computer(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ComputerDetail>> {
    computer_detail(&state.db, id, &user.tenants)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("computer"))
}

/// A computer with its agents, why and history; `None` when absent or outside `scope`.
pub async fn computer_detail(
    db: &Db,
    id: i64,
    scope: &TenantScope,
) -> ApiResult<Option<ComputerDetail>> {
    let Some(computer) = db.computer_by_id(id, scope).await? else {
        return Ok(None);
    };
    let agents = db.agents_of_computer(id).await?;
    let names = integration_names(db).await?;
    let mut integrations: Vec<i64> = agents.iter().map(|a| a.agent.integration_id).collect();
    integrations.sort_unstable();
    integrations.dedup();
    let clients = client_names(db, &integrations).await?;

    let live: Vec<AgentIds<'_>> = agents
        .iter()
        .filter(|a| a.agent.state != rmmbridge_store::AgentState::Retired)
        .map(|a| AgentIds {
            integration_name: &a.integration_name,
            hostname: &a.agent.hostname,
            serial: a.agent.serial.as_deref(),
            smbios_uuid: a.agent.smbios_uuid.as_deref(),
            macs: &a.agent.macs,
        })
        .collect();
    let why = why::computer_sentence(&live);

    let mut history = Vec::new();
    for a in &agents {
        for (computer_id, e) in db.agent_evidence(a.agent.id).await? {
            if computer_id == id {
                history.push(HistoryEntry {
                    agent_id: a.agent.id,
                    link: link_view(computer_id, &e, &names),
                });
            }
        }
    }
    history.sort_by(|a, b| b.link.at.cmp(&a.link.at).then(b.agent_id.cmp(&a.agent_id)));

    let agents = agents
        .into_iter()
        .map(|a| {
            let client = a.agent.rmm_client_id.and_then(|c| clients.get(&c).cloned());
            agent_view(a.agent, a.evidence.as_ref(), client, &names)
        })
        .collect();
    Ok(Some(ComputerDetail {
        computer: computer.into(),
        why,
        agents,
        history,
    }))
}

/// Whether a user may see an agent: through its computer's tenant, else (unlinked) through the
/// tenant its RmmClient is mapped to.
pub async fn agent_visible(db: &Db, scope: &TenantScope, a: &AgentSnapshot) -> ApiResult<bool> {
    if *scope == TenantScope::All {
        return Ok(true);
    }
    if let Some(c) = a.computer_id {
        return Ok(db.computer_by_id(c, scope).await?.is_some());
    }
    let Some(client) = a.rmm_client_id else {
        return Ok(false);
    };
    Ok(db
        .client_link(client)
        .await?
        .and_then(|l| l.applied_tenant_id)
        .is_some_and(|t| scope.allows(t)))
}

#[derive(Serialize, ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: AgentView,
    /// Every Identification of this agent, newest first.
    pub history: Vec<LinkView>,
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "computers",
    responses((status = 200, body = AgentDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_agent(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<AgentDetail>> {
    let db = &state.db;
    let agent = db
        .agent_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    if !agent_visible(db, &user.tenants, &agent).await? {
        return Err(ApiError::NotFound("agent"));
    }
    Ok(Json(agent_detail(db, agent).await?))
}

/// An agent with its current Identification and history (no scope check: the caller's).
pub async fn agent_detail(db: &Db, agent: AgentSnapshot) -> ApiResult<AgentDetail> {
    let id = agent.id;
    let names = integration_names(db).await?;
    let evidence = db.agent_evidence(id).await?;
    let current = agent
        .computer_id
        .and_then(|c| evidence.iter().find(|(ec, _)| *ec == c).map(|(_, e)| e));
    let client = match agent.rmm_client_id {
        Some(c) => db.client_link(c).await?.map(|l| l.name),
        None => None,
    };
    let history = evidence
        .iter()
        .map(|(c, e)| link_view(*c, e, &names))
        .collect();
    let view = agent_view(agent, current, client, &names);
    Ok(AgentDetail {
        agent: view,
        history,
    })
}
