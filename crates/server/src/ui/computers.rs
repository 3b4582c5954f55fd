//! Computers: the searchable, keyset-paged list (the API's cursor; never OFFSET) and one computer
//! with every Agent that reports it, the rule and evidence of each link, the "why" sentence and
//! its history. Scoped by the user's tenants: another tenant's computer is a 404 page.
use super::integrations::kind_label;
use super::{Nav, UiError, UiResult, fmt_opt_time, fmt_time, render};
use crate::api::computers::{self as read, AgentView, ComputerListParams, ComputerView, LinkView};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rmmbridge_core::IntegrationKind;
use rmmbridge_store::Db;
use serde::Deserialize;
use std::collections::HashMap;

/// Rows per page of the list.
pub const PAGE_SIZE: i64 = 50;

/// One RMM reporting a computer, as a badge.
pub struct RmmBadge {
    /// `ncentral` or `ninjaone` (the CSS class).
    pub kind: String,
    pub label: &'static str,
    /// The integration's name (the tooltip).
    pub name: String,
}

/// Integrations by id: kind and name.
pub async fn integrations(db: &Db) -> UiResult<HashMap<i64, (IntegrationKind, String)>> {
    Ok(db
        .list_integrations()
        .await?
        .into_iter()
        .map(|i| (i.id, (i.kind, i.name)))
        .collect())
}

pub fn badge(kind: IntegrationKind, name: &str) -> RmmBadge {
    RmmBadge {
        kind: kind.to_string(),
        label: kind_label(kind),
        name: name.to_owned(),
    }
}

pub struct Row {
    pub id: i64,
    pub name: String,
    pub tenant_id: i64,
    pub tenant: String,
    pub serial: String,
    pub os: String,
    pub rmms: Vec<RmmBadge>,
    pub last_contact: String,
    pub state: String,
}

/// Table rows for a page of computers, each with a badge per integration reporting it (one query
/// for the whole page).
pub async fn rows(db: &Db, items: Vec<ComputerView>) -> UiResult<Vec<Row>> {
    let integrations = integrations(db).await?;
    let ids: Vec<i64> = items.iter().map(|c| c.id).collect();
    let mut rmms: HashMap<i64, Vec<RmmBadge>> = HashMap::new();
    for (computer, integration) in db.integrations_of_computers(&ids).await? {
        if let Some((kind, name)) = integrations.get(&integration) {
            rmms.entry(computer).or_default().push(badge(*kind, name));
        }
    }
    Ok(items
        .into_iter()
        .map(|c| Row {
            rmms: rmms.remove(&c.id).unwrap_or_default(),
            id: c.id,
            name: c.name,
            tenant_id: c.tenant_id,
            tenant: c.tenant_name,
            serial: c.serial.unwrap_or_default(),
            os: c.os.unwrap_or_default(),
            last_contact: fmt_opt_time(c.last_contact_at),
            state: c.state,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "computers/list.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<Row>,
    total: i64,
    /// 1-based position of the first row shown.
    from: u64,
    to: u64,
    q: String,
    tenant: Option<i64>,
    tenant_name: Option<String>,
    state: String,
    tenants: Vec<(i64, String)>,
    next: Option<String>,
    first: Option<String>,
}

/// The list's query string. `at` only numbers the rows shown (how many came before); paging itself
/// is the opaque keyset `cursor`, so a page costs the same at row 99,950 as at row 1.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    at: u64,
}

/// The list's URL for these filters, at `cursor`.
fn list_url(q: &str, tenant: Option<i64>, state: &str, cursor: Option<(&str, u64)>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !q.is_empty() {
        pairs.push(("q", q.to_owned()));
    }
    if let Some(t) = tenant {
        pairs.push(("tenant", t.to_string()));
    }
    if state != "active" {
        pairs.push(("state", state.to_owned()));
    }
    if let Some((c, at)) = cursor {
        pairs.push(("cursor", c.to_owned()));
        pairs.push(("at", at.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        "/computers".into()
    } else {
        format!("/computers?{query}")
    }
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(lq): Query<ListQuery>,
) -> UiResult<Response> {
    let db = &state.db;
    let tenant =
        match lq.tenant.trim() {
            "" => None,
            t => Some(t.parse::<i64>().map_err(|_| {
                UiError::from(ApiError::BadRequest(format!("unknown tenant {t:?}")))
            })?),
        };
    let q = lq.q.trim().to_owned();
    let state_filter = match lq.state.as_str() {
        "" => "active".to_owned(),
        s => s.to_owned(),
    };
    let page = read::search(
        db,
        &user.tenants,
        ComputerListParams {
            tenant_id: tenant,
            q: Some(q.clone()).filter(|q| !q.is_empty()),
            state: Some(state_filter.clone()),
            limit: Some(PAGE_SIZE),
            cursor: Some(lq.cursor.clone()).filter(|c| !c.is_empty()),
        },
    )
    .await?;
    let tenants: Vec<(i64, String)> = db
        .list_tenants(&user.tenants)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let shown = page.items.len() as u64;
    let at = if lq.cursor.is_empty() { 0 } else { lq.at };
    let rows = rows(db, page.items).await?;
    Ok(render(&ListPage {
        nav: Nav::for_user(&user).at("computers"),
        rows,
        total: page.total,
        from: if shown == 0 { 0 } else { at + 1 },
        to: at + shown,
        next: page
            .next_cursor
            .as_deref()
            .map(|c| list_url(&q, tenant, &state_filter, Some((c, at + shown)))),
        first: (!lq.cursor.is_empty()).then(|| list_url(&q, tenant, &state_filter, None)),
        tenant_name: tenant.and_then(|t| {
            tenants
                .iter()
                .find(|(id, _)| *id == t)
                .map(|(_, n)| n.clone())
        }),
        tenants,
        q,
        tenant,
        state: state_filter,
    }))
}

/// How one Agent is linked, for a person.
pub struct Link {
    pub rule: String,
    pub why: String,
    /// The stored evidence: the values compared.
    pub evidence: Vec<(String, String)>,
    pub decided_by: String,
    pub at: String,
}

fn link(l: &LinkView) -> Link {
    Link {
        rule: l.rule.clone(),
        why: l.why.clone(),
        evidence: evidence_pairs(&l.evidence),
        decided_by: l.decided_by.clone(),
        at: fmt_time(l.at),
    }
}

/// The stored evidence as key/value pairs, values compact (`explanation` is the sentence already
/// shown, so it is left out).
pub fn evidence_pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    let Some(obj) = v.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .filter(|(k, v)| *k != "explanation" && !v.is_null())
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.replace('_', " "), value)
        })
        .collect()
}

pub struct Agent {
    pub id: i64,
    pub rmm: RmmBadge,
    pub integration_id: i64,
    pub integration: String,
    pub client: String,
    pub external_id: String,
    pub hostname: String,
    pub serial: String,
    pub smbios_uuid: String,
    pub macs: String,
    pub os: String,
    pub state: String,
    pub last_contact: String,
    pub clone_of: String,
    pub link: Option<Link>,
}

pub fn agent(a: AgentView) -> Agent {
    let kind = a
        .integration_kind
        .parse::<IntegrationKind>()
        .unwrap_or(IntegrationKind::Ncentral);
    Agent {
        rmm: badge(kind, &a.integration_name),
        link: a.identification.as_ref().map(link),
        id: a.id,
        integration_id: a.integration_id,
        integration: a.integration_name,
        client: a.rmm_client_name.unwrap_or_default(),
        external_id: a.external_id,
        hostname: a.hostname,
        serial: a.serial.unwrap_or_default(),
        smbios_uuid: a.smbios_uuid.unwrap_or_default(),
        macs: a.macs.join(", "),
        os: a.os.unwrap_or_default(),
        state: a.state,
        last_contact: fmt_opt_time(a.last_contact_at),
        clone_of: a.clone_of.unwrap_or_default(),
    }
}

pub struct HistoryRow {
    pub agent_id: i64,
    pub hostname: String,
    pub link: Link,
}

#[derive(Template)]
#[template(path = "computers/detail.html")]
struct DetailPage {
    nav: Nav,
    id: i64,
    name: String,
    tenant_id: i64,
    tenant: String,
    serial: String,
    smbios_uuid: String,
    os: String,
    state: String,
    last_contact: String,
    created: String,
    retired: String,
    why: String,
    agents: Vec<Agent>,
    history: Vec<HistoryRow>,
}

pub async fn detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let d = read::computer_detail(&state.db, id, &user.tenants)
        .await?
        .ok_or_else(|| UiError {
            error: ApiError::NotFound("computer"),
            nav: Some(Box::new(Nav::for_user(&user).at("computers"))),
        })?;
    let hostnames: HashMap<i64, String> = d
        .agents
        .iter()
        .map(|a| (a.id, a.hostname.clone()))
        .collect();
    let c = d.computer;
    Ok(render(&DetailPage {
        nav: Nav::for_user(&user).at("computers"),
        id: c.id,
        name: c.name,
        tenant_id: c.tenant_id,
        tenant: c.tenant_name,
        serial: c.serial.unwrap_or_default(),
        smbios_uuid: c.smbios_uuid.unwrap_or_default(),
        os: c.os.unwrap_or_default(),
        state: c.state,
        last_contact: fmt_opt_time(c.last_contact_at),
        created: fmt_time(c.created_at),
        retired: c.retired_at.map(fmt_time).unwrap_or_default(),
        why: d.why,
        agents: d.agents.into_iter().map(agent).collect(),
        history: d
            .history
            .iter()
            .map(|h| HistoryRow {
                agent_id: h.agent_id,
                hostname: hostnames.get(&h.agent_id).cloned().unwrap_or_default(),
                link: link(&h.link),
            })
            .collect(),
    }))
}
