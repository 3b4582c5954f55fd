//! `/api/v1/decisions`: ManualDecisions, the identifications the hub will not guess, and their
//! resolution by an admin (merge into a candidate, or keep separate).
use super::computers::{self, AgentView, ComputerView};
use super::extract::{ApiJson, ApiQuery};
use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::services::audit::Actor;
use crate::services::decisions::{self as svc, Action};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use rmmbridge_core::Role;
use rmmbridge_core::identify::Evidence as IdEvidence;
use rmmbridge_store::{Db, DecisionFilter, DecisionRow, TenantScope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionListParams {
    /// `open` (default), `resolved` or `all`.
    pub state: Option<String>,
    /// 1 to 1000, default 200.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DecisionView {
    pub id: i64,
    /// `ambiguous`, `hostname_only`, `conflict`, `reinstall_or_clone`.
    pub kind: String,
    /// `open` or `resolved`.
    pub state: String,
    /// What is to be decided, for a person.
    pub reason: String,
    /// The evidence as a sentence, integrations named.
    pub why: String,
    pub agent_id: i64,
    pub agent_hostname: String,
    pub integration_id: i64,
    pub tenant_id: Option<i64>,
    /// The Computers the admin may merge the agent into, the proposed one first.
    pub candidate_computer_ids: Vec<i64>,
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    /// `merge` or `keep_separate`.
    pub resolution: Option<String>,
}

pub fn view(d: DecisionRow, names: &HashMap<i64, String>) -> DecisionView {
    let parsed: IdEvidence = serde_json::from_value(d.evidence.clone()).unwrap_or_default();
    let why = parsed.explain_with(|i| {
        names
            .get(&i)
            .cloned()
            .unwrap_or_else(|| format!("integration {i}"))
    });
    DecisionView {
        candidate_computer_ids: svc::candidates(&d),
        id: d.id,
        kind: d.kind,
        state: if d.resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        }
        .into(),
        reason: d.reason,
        why,
        agent_id: d.agent_id,
        agent_hostname: d.agent_hostname,
        integration_id: d.integration_id,
        tenant_id: d.tenant_id,
        evidence: d.evidence,
        created_at: d.created_at.0,
        resolved_at: d.resolved_at.map(|t| t.0),
        resolved_by: d.resolved_by,
        resolution: d.resolution.map(|r| r.as_str().to_owned()),
    }
}

/// Integration names by id, for the decisions' sentences.
pub async fn names(db: &Db) -> ApiResult<HashMap<i64, String>> {
    Ok(db
        .list_integrations()
        .await?
        .into_iter()
        .map(|i| (i.id, i.name))
        .collect())
}

#[utoipa::path(get, path = "/api/v1/decisions", tag = "decisions", params(DecisionListParams),
    responses((status = 200, body = [DecisionView]), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list_decisions(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(p): ApiQuery<DecisionListParams>,
) -> ApiResult<Json<Vec<DecisionView>>> {
    let filter = parse_filter(p.state.as_deref())?;
    let rows = state
        .db
        .list_decisions(
            &user.tenants,
            filter,
            super::clamp_limit(p.limit, 200, 1000),
        )
        .await?;
    let names = names(&state.db).await?;
    Ok(Json(rows.into_iter().map(|d| view(d, &names)).collect()))
}

/// `open` (the default), `resolved` or `all`.
pub fn parse_filter(state: Option<&str>) -> ApiResult<DecisionFilter> {
    match state.unwrap_or("open") {
        "open" => Ok(DecisionFilter::Open),
        "resolved" => Ok(DecisionFilter::Resolved),
        "all" => Ok(DecisionFilter::All),
        other => Err(ApiError::BadRequest(format!(
            "unknown state {other:?}; expected open, resolved or all"
        ))),
    }
}

/// A candidate Computer with the agents that already report it, to compare with the agent.
#[derive(Serialize, ToSchema)]
pub struct CandidateView {
    #[serde(flatten)]
    pub computer: ComputerView,
    pub agents: Vec<AgentView>,
}

#[derive(Serialize, ToSchema)]
pub struct DecisionDetail {
    #[serde(flatten)]
    pub decision: DecisionView,
    /// The agent to decide about.
    pub agent: AgentView,
    /// The candidates the caller may see.
    pub candidates: Vec<CandidateView>,
}

#[utoipa::path(get, path = "/api/v1/decisions/{id}", tag = "decisions",
    responses((status = 200, body = DecisionDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_decision(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<DecisionDetail>> {
    let db = &state.db;
    let d = db
        .decision_by_id(id, &user.tenants)
        .await?
        .ok_or(ApiError::NotFound("manual decision"))?;
    Ok(Json(detail(db, d, &names(db).await?, &user.tenants).await?))
}

/// A decision (already checked to be in `scope`) with its agent and the candidates `scope` sees;
/// for the API and the UI.
pub async fn detail(
    db: &Db,
    d: DecisionRow,
    names: &HashMap<i64, String>,
    scope: &TenantScope,
) -> ApiResult<DecisionDetail> {
    let agent_id = d.agent_id;
    let candidate_ids = svc::candidates(&d);
    let decision = view(d, names);
    // The decision is in the caller's tenants; the agent it is about comes with it.
    let agent = db
        .agent_by_id(agent_id)
        .await?
        .ok_or(ApiError::NotFound("agent"))?;
    let agent = computers::agent_detail(db, agent).await?.agent;
    let mut candidates = Vec::new();
    for c in candidate_ids {
        // Outside the caller's tenants, or gone: not offered.
        if let Some(detail) = computers::computer_detail(db, c, scope).await? {
            candidates.push(CandidateView {
                computer: detail.computer,
                agents: detail.agents,
            });
        }
    }
    Ok(DecisionDetail {
        decision,
        agent,
        candidates,
    })
}

/// `{"action":"merge","computer_id":N}` or `{"action":"keep_separate"}`.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResolveBody {
    /// The agent is this candidate computer.
    Merge { computer_id: i64 },
    /// The agent is a computer of its own; the sync will not ask again.
    KeepSeparate,
}

#[derive(Serialize, ToSchema)]
pub struct ResolvedView {
    #[serde(flatten)]
    pub decision: DecisionView,
    /// The computer the agent is linked to now.
    pub computer_id: i64,
}

#[utoipa::path(post, path = "/api/v1/decisions/{id}/resolve", tag = "decisions", request_body = ResolveBody,
    responses((status = 200, body = ResolvedView), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn resolve_decision(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> ApiResult<Json<ResolvedView>> {
    user.require(Role::Technician)?;
    let action = match body {
        ResolveBody::Merge { computer_id } => Action::Merge { computer_id },
        ResolveBody::KeepSeparate => Action::KeepSeparate,
    };
    let r = svc::resolve(&state.db, &Actor::from(&user), &user.tenants, id, action).await?;
    Ok(Json(ResolvedView {
        decision: view(r.decision, &names(&state.db).await?),
        computer_id: r.computer_id,
    }))
}
