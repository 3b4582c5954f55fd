//! ManualDecisions: the queue (open or resolved), each with its agent, the reason, the candidates
//! and the evidence; technicians and admins resolve one with "Merge into <computer>" or "Keep
//! separate" (POST, then back to the queue with what happened). A decision someone else resolved
//! first is shown as an error naming who.
use super::computers::{Agent, agent, evidence_pairs};
use super::{Nav, UiError, UiResult, fmt_time, render, see_other};
use crate::api::decisions::{self as read, DecisionView};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::services::audit::Actor;
use crate::services::decisions::{self as svc, Action, DecisionError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use rmmbridge_core::Role;
use rmmbridge_store::{DecisionFilter, TenantScope};
use serde::Deserialize;

/// Decisions shown per view (the oldest open ones first is the store's order).
const SHOWN: i64 = 25;

pub struct Candidate {
    pub id: i64,
    pub name: String,
    pub tenant: String,
    pub serial: String,
    pub smbios_uuid: String,
    pub state: String,
    pub agents: Vec<Agent>,
}

pub struct Decision {
    pub id: i64,
    pub kind: String,
    pub reason: String,
    pub why: String,
    pub open: bool,
    pub created: String,
    pub resolved: String,
    pub resolved_by: String,
    pub resolution: String,
    pub agent: Agent,
    /// The computer the agent is linked to now, if any.
    pub agent_computer: Option<i64>,
    pub candidates: Vec<Candidate>,
    pub evidence: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "decisions.html")]
struct Page {
    nav: Nav,
    view: &'static str,
    decisions: Vec<Decision>,
    open_total: i64,
    can_resolve: bool,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    view: String,
    /// A decision just resolved through the form: say what happened.
    resolved: Option<i64>,
}

fn decision(d: read::DecisionDetail) -> Decision {
    let DecisionView {
        id,
        kind,
        state,
        reason,
        why,
        evidence,
        created_at,
        resolved_at,
        resolved_by,
        resolution,
        ..
    } = d.decision;
    let agent_computer = d.agent.computer_id;
    Decision {
        id,
        kind: kind.replace('_', " "),
        reason,
        why,
        open: state == "open",
        created: fmt_time(created_at),
        resolved: resolved_at.map(fmt_time).unwrap_or_default(),
        resolved_by: resolved_by.unwrap_or_default(),
        resolution: resolution.unwrap_or_default().replace('_', " "),
        agent: agent(d.agent),
        agent_computer,
        candidates: d
            .candidates
            .into_iter()
            .map(|c| Candidate {
                id: c.computer.id,
                name: c.computer.name,
                tenant: c.computer.tenant_name,
                serial: c.computer.serial.unwrap_or_default(),
                smbios_uuid: c.computer.smbios_uuid.unwrap_or_default(),
                state: c.computer.state,
                agents: c.agents.into_iter().map(agent).collect(),
            })
            .collect(),
        evidence: evidence_pairs(&evidence),
    }
}

async fn page(state: &AppState, user: &CurrentUser, view: &str) -> UiResult<Page> {
    let db = &state.db;
    let (view, filter) = match view {
        "resolved" => ("resolved", DecisionFilter::Resolved),
        _ => ("open", DecisionFilter::Open),
    };
    let names = read::names(db).await?;
    let mut decisions = Vec::new();
    for d in db.list_decisions(&user.tenants, filter, SHOWN).await? {
        decisions.push(decision(read::detail(db, d, &names, &user.tenants).await?));
    }
    Ok(Page {
        nav: Nav::for_user(user).at("decisions"),
        view,
        decisions,
        open_total: db.count_open_decisions(&user.tenants).await?,
        can_resolve: user.role.allows(Role::Technician),
        notice: None,
        error: None,
    })
}

/// "ManualDecision 7 resolved by alice: WS-01 merged into computer WS-01 (Contoso)."
async fn resolved_notice(
    state: &AppState,
    scope: &TenantScope,
    id: i64,
) -> UiResult<Option<String>> {
    let db = &state.db;
    let Some(d) = db.decision_by_id(id, scope).await? else {
        return Ok(None);
    };
    let (Some(by), Some(resolution)) = (&d.resolved_by, d.resolution) else {
        return Ok(None);
    };
    let computer = match db
        .agent_by_id(d.agent_id)
        .await?
        .and_then(|a| a.computer_id)
    {
        Some(c) => db.computer_by_id(c, scope).await?,
        None => None,
    };
    let into = computer
        .map(|c| format!("computer {} ({})", c.name, c.tenant_name))
        .unwrap_or_else(|| "its computer".into());
    let what = match resolution.as_str() {
        "merge" => format!("agent {} merged into {into}", d.agent_hostname),
        _ => format!("agent {} kept separate as {into}", d.agent_hostname),
    };
    Ok(Some(format!(
        "ManualDecision {id} resolved by {by}: {what}."
    )))
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> UiResult<Response> {
    let mut p = page(&state, &user, &q.view).await?;
    if let Some(id) = q.resolved {
        p.notice = resolved_notice(&state, &user.tenants, id).await?;
    }
    Ok(render(&p))
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    action: String,
    computer_id: Option<i64>,
}

pub async fn resolve(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<ResolveForm>,
) -> UiResult<Response> {
    super::require(&user, Role::Technician)?;
    let action = match (form.action.as_str(), form.computer_id) {
        ("merge", Some(computer_id)) => Action::Merge { computer_id },
        ("keep_separate", _) => Action::KeepSeparate,
        _ => {
            return Err(ApiError::BadRequest(
                "choose \"Merge into\" a candidate or \"Keep separate\"".into(),
            )
            .into());
        }
    };
    match svc::resolve(&state.db, &Actor::from(&user), &user.tenants, id, action).await {
        Ok(_) => Ok(see_other(&format!("/decisions?resolved={id}"))),
        Err(DecisionError::NotFound) => Err(UiError {
            error: ApiError::NotFound("manual decision"),
            nav: Some(Box::new(Nav::for_user(&user).at("decisions"))),
        }),
        Err(DecisionError::Store(e)) => Err(e.into()),
        // Already resolved by someone else, not a candidate, client unmapped: the queue again,
        // with the reason at the top.
        Err(e) => {
            let error = ApiError::from(e);
            let mut p = page(&state, &user, "open").await?;
            p.error = Some(format!("ManualDecision {id} was not changed: {error}"));
            Ok((error.status(), render(&p)).into_response())
        }
    }
}

impl From<DecisionError> for UiError {
    fn from(e: DecisionError) -> Self {
        UiError {
            error: e.into(),
            nav: None,
        }
    }
}
