//! Client mapping pages (DESIGN.md §3 items 4 and 5): `/mapping` (every integration with its
//! mapping counts), `/integrations/{id}/clients` (the views All / Unmatched / Matched / Excluded,
//! the toolbar and one row per RmmClient with its suggestions and per-row actions) and
//! `/integrations/{id}/preview` (what Finish does, and the Finish button).
//!
//! Every action calls [`crate::services::mapping::ClientMapping`], the same use cases as the API
//! and the CLI; the access rule (technician, not limited to tenants) is the API's.
use super::integrations::kind_label;
use super::{Nav, UiError, UiResult, fmt_time, render, see_other};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::services::audit::Actor;
use crate::services::mapping::{
    ClientAction, ClientMapping, ClientRow, MappingError, Preview, PreviewRow, SuggestionView,
    SyncAfter, View, ViewCounts,
};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmmbridge_core::Role;
use rmmbridge_store::TenantScope;
use serde::Deserialize;
use std::collections::HashMap;

impl From<MappingError> for UiError {
    fn from(e: MappingError) -> Self {
        UiError {
            error: e.into(),
            nav: None,
        }
    }
}

fn mapping(state: &AppState) -> ClientMapping<'_> {
    ClientMapping {
        db: &state.db,
        connectors: &state.connectors,
        sync: &state.sync,
    }
}

/// May this user change mappings? (The API's rule: technician, not limited to tenants.)
fn can_map(user: &CurrentUser) -> bool {
    user.role.allows(Role::Technician) && user.tenants == TenantScope::All
}

/// The API's access rule for mapping changes, refused with the 403 page.
fn mapper(user: &CurrentUser) -> UiResult<Actor> {
    crate::api::clients::require_mapper(user).map_err(|error| UiError {
        error,
        nav: Some(Box::new(Nav::for_user(user).at("mapping"))),
    })
}

fn parse_view(v: Option<&str>) -> View {
    v.and_then(|v| v.parse().ok()).unwrap_or_default()
}

pub struct Head {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
}

async fn head(state: &AppState, id: i64) -> UiResult<Head> {
    let i = state
        .db
        .integration_by_id(id)
        .await?
        .ok_or(ApiError::NotFound("integration"))?;
    Ok(Head {
        id: i.id,
        name: i.name,
        kind: kind_label(i.kind),
    })
}

// -------------------------------------------------------------------------------------- overview

pub struct OverviewRow {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
    pub counts: ViewCounts,
}

#[derive(Template)]
#[template(path = "mapping/overview.html")]
struct OverviewPage {
    nav: Nav,
    rows: Vec<OverviewRow>,
}

/// `GET /mapping`: every integration with its mapping counts, linking to its mapping page.
pub async fn overview(State(state): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let m = mapping(&state);
    let mut rows = Vec::new();
    for i in state.db.list_integrations().await? {
        // The counts cover every visible client whatever the view; the Excluded view computes no
        // suggestions, so it is the cheap way to get them.
        let list = m.list(i.id, View::Excluded, &user.tenants).await?;
        rows.push(OverviewRow {
            id: i.id,
            name: i.name,
            kind: kind_label(i.kind),
            counts: list.counts,
        });
    }
    Ok(render(&OverviewPage {
        nav: Nav::for_user(&user).at("mapping"),
        rows,
    }))
}

// ------------------------------------------------------------------------------------ clients page

pub struct Tab {
    pub key: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub active: bool,
}

pub struct UiRow {
    pub id: i64,
    pub name: String,
    pub external_id: String,
    pub is_site: bool,
    /// The parent company's name (or external id) of a site.
    pub parent: Option<String>,
    pub vanished: Option<String>,
    /// Pending state: `unmatched`, `matched`, `create`, `excluded`.
    pub state: String,
    pub state_label: &'static str,
    /// Finish would change this row.
    pub pending: bool,
    /// The pending tenant (for `create`: the name the new tenant gets).
    pub tenant: Option<String>,
    /// What Finish last applied, in words.
    pub applied: String,
    pub suggestions: Vec<SuggestionView>,
    pub provenance: Option<Provenance>,
}

/// Who decided a pending link (auto or manual), when, and why.
pub struct Provenance {
    pub source: String,
    pub by: String,
    pub at: Option<String>,
    pub why: String,
}

impl UiRow {
    pub fn is_suggested(&self, tenant_id: &i64) -> bool {
        self.suggestions.iter().any(|s| s.tenant_id == *tenant_id)
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "unmatched" => "Unmatched",
        "matched" => "Matched",
        "create" => "Create tenant",
        "excluded" => "Excluded",
        _ => "Unknown",
    }
}

fn applied_words(r: &ClientRow) -> String {
    match (r.applied_state.as_str(), &r.applied_tenant_name) {
        ("matched", Some(t)) => format!("matched to {t}"),
        (s, _) => s.to_owned(),
    }
}

fn ui_row(r: ClientRow, names: &HashMap<String, String>) -> UiRow {
    UiRow {
        is_site: r.kind == "site",
        parent: r
            .parent_external_id
            .as_ref()
            .map(|p| names.get(p).cloned().unwrap_or_else(|| p.clone())),
        vanished: r.vanished_at.map(fmt_time),
        state_label: state_label(&r.state),
        applied: applied_words(&r),
        provenance: r.provenance.as_ref().map(|p| Provenance {
            source: p.source.clone(),
            by: p.by.clone().unwrap_or_default(),
            at: p.at.map(fmt_time),
            why: p.reason.clone().unwrap_or_default(),
        }),
        id: r.id,
        name: r.name,
        external_id: r.external_id,
        state: r.state,
        pending: r.pending,
        tenant: r.tenant_name,
        suggestions: r.suggestions,
    }
}

#[derive(Template)]
#[template(path = "mapping/clients.html")]
struct ClientsPage {
    nav: Nav,
    i: Head,
    view: &'static str,
    tabs: Vec<Tab>,
    counts: ViewCounts,
    rows: Vec<UiRow>,
    /// Rows hidden by the name filter.
    filtered_out: usize,
    q: String,
    tenants: Vec<(i64, String)>,
    can_map: bool,
    sites_as_clients: bool,
    notice: Option<String>,
    error: Option<String>,
}

impl ClientsPage {
    fn pct(&self, s: &SuggestionView) -> String {
        format!("{:.0}%", s.confidence * 100.0)
    }
}

#[derive(Deserialize, Default)]
pub struct ClientsQuery {
    view: Option<String>,
    /// Name or external id contains (case-insensitive).
    q: Option<String>,
    notice: Option<String>,
    n: Option<u64>,
    added: Option<u64>,
    renamed: Option<u64>,
    vanished: Option<u64>,
    returned: Option<u64>,
}

/// The message after a redirect; unknown codes show nothing.
fn clients_notice(q: &ClientsQuery) -> Option<String> {
    let n = q.n.unwrap_or(0);
    let s = |n: u64| if n == 1 { "" } else { "s" };
    Some(match q.notice.as_deref()? {
        "refreshed" => format!(
            "Refreshed from the RMM: {} added, {} renamed, {} no longer listed, {} listed again.",
            q.added.unwrap_or(0),
            q.renamed.unwrap_or(0),
            q.vanished.unwrap_or(0),
            q.returned.unwrap_or(0)
        ),
        "auto_matched" if n == 0 => "Auto-match found no unmatched client whose name is identical to exactly one tenant's. Near names and device evidence are offered as suggestions: accept them, or match, create or exclude each client.".into(),
        "auto_matched" => format!("Auto-match matched {n} client{} by identical name. Nothing is applied until Finish.", s(n)),
        "created_unmatched" if n == 0 => "No unmatched client was left to create a tenant for.".into(),
        "created_unmatched" => format!("{n} unmatched client{} will get a tenant of their own at Finish.", s(n)),
        "matched" => "Client matched. Nothing is applied until Finish.".into(),
        "create" => "A tenant named after the client will be created at Finish.".into(),
        "excluded" => "Client excluded: its devices will not be imported. The Excluded view brings it back.".into(),
        "included" => "Client back to unmatched.".into(),
        "nothing" => "Nothing changed: every link is already applied.".into(),
        "applied" => format!("Finish applied {n} change{}.", s(n)),
        "applied_no_devices" => format!("Finish applied {n} change{}. Device sync is off for this integration, so no devices are imported; turn the option on to import them.", s(n)),
        "applied_sync_failed" => format!("Finish applied {n} change{}, but the device sync did not start; use \"Sync now\" on the integration.", s(n)),
        _ => return None,
    })
}

async fn clients_page(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    view: View,
    q: &str,
    notice: Option<String>,
    error: Option<String>,
) -> UiResult<ClientsPage> {
    let i = head(state, id).await?;
    let list = mapping(state).list(id, view, &user.tenants).await?;
    let names: HashMap<String, String> = if list.sites_as_clients {
        state
            .db
            .list_client_links(id)
            .await?
            .into_iter()
            .map(|r| (r.external_id, r.name))
            .collect()
    } else {
        HashMap::new()
    };
    let needle = q.trim().to_lowercase();
    let total = list.clients.len();
    let rows: Vec<UiRow> = list
        .clients
        .into_iter()
        .filter(|r| {
            needle.is_empty()
                || r.name.to_lowercase().contains(&needle)
                || r.external_id.to_lowercase().contains(&needle)
        })
        .map(|r| ui_row(r, &names))
        .collect();
    let c = &list.counts;
    let tabs = [
        (View::All, "All", c.all),
        (View::Unmatched, "Unmatched", c.unmatched),
        (View::Matched, "Matched", c.matched),
        (View::Excluded, "Excluded", c.excluded),
    ]
    .into_iter()
    .map(|(v, label, count)| Tab {
        key: v.as_str(),
        label,
        count,
        active: v == view,
    })
    .collect();
    let can_map = can_map(user);
    let tenants = if can_map {
        state
            .db
            .list_tenants(&user.tenants)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect()
    } else {
        Vec::new()
    };
    Ok(ClientsPage {
        nav: Nav::for_user(user).at("mapping"),
        i,
        view: view.as_str(),
        tabs,
        counts: list.counts,
        filtered_out: total - rows.len(),
        rows,
        q: q.to_owned(),
        tenants,
        can_map,
        sites_as_clients: list.sites_as_clients,
        notice,
        error,
    })
}

/// `GET /integrations/{id}/clients`.
pub async fn clients(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<ClientsQuery>,
) -> UiResult<Response> {
    let view = parse_view(q.view.as_deref());
    let notice = clients_notice(&q);
    let page = clients_page(
        &state,
        &user,
        id,
        view,
        q.q.as_deref().unwrap_or(""),
        notice,
        None,
    )
    .await?;
    Ok(render(&page))
}

/// A refused edit (a vanished client, a site folded into its company, the RMM unreachable): the
/// page again with the reason, as a 400. Missing things stay the 404 page.
async fn refused(
    state: &AppState,
    user: &CurrentUser,
    id: i64,
    view: View,
    e: MappingError,
) -> UiResult<Response> {
    match e {
        e @ (MappingError::Invalid(_) | MappingError::Rmm(_)) => {
            let msg = super::capitalize(&e.to_string());
            let page = clients_page(state, user, id, view, "", None, Some(msg)).await?;
            Ok((StatusCode::BAD_REQUEST, render(&page)).into_response())
        }
        e => Err(e.into()),
    }
}

fn back(id: i64, view: View, query: &str, anchor: Option<i64>) -> Response {
    let anchor = anchor.map(|c| format!("#client-{c}")).unwrap_or_default();
    see_other(&format!(
        "/integrations/{id}/clients?view={}&{query}{anchor}",
        view.as_str()
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ToolbarForm {
    view: String,
}

/// `POST /integrations/{id}/clients/refresh`: Refresh from RMM.
pub async fn refresh(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::Form(f): axum::Form<ToolbarForm>,
) -> UiResult<Response> {
    let actor = mapper(&user)?;
    let view = parse_view(Some(&f.view));
    match mapping(&state).refresh(id, &actor).await {
        Ok(r) => Ok(back(
            id,
            view,
            &format!(
                "notice=refreshed&added={}&renamed={}&vanished={}&returned={}",
                r.added.len(),
                r.renamed.len(),
                r.vanished.len(),
                r.returned.len()
            ),
            None,
        )),
        Err(e) => refused(&state, &user, id, view, e).await,
    }
}

/// `POST /integrations/{id}/clients/auto-match`: Auto-match all (identical names only).
pub async fn auto_match(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::Form(f): axum::Form<ToolbarForm>,
) -> UiResult<Response> {
    let actor = mapper(&user)?;
    let view = parse_view(Some(&f.view));
    match mapping(&state).auto_match(id, &actor).await {
        Ok(r) => Ok(back(
            id,
            view,
            &format!("notice=auto_matched&n={}", r.changed),
            None,
        )),
        Err(e) => refused(&state, &user, id, view, e).await,
    }
}

/// `POST /integrations/{id}/clients/create-unmatched`: a tenant for every unmatched client.
pub async fn create_unmatched(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::Form(f): axum::Form<ToolbarForm>,
) -> UiResult<Response> {
    let actor = mapper(&user)?;
    let view = parse_view(Some(&f.view));
    match mapping(&state).create_unmatched(id, &actor).await {
        Ok(r) => Ok(back(
            id,
            view,
            &format!("notice=created_unmatched&n={}", r.changed),
            None,
        )),
        Err(e) => refused(&state, &user, id, view, e).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RowForm {
    /// `match`, `create`, `exclude` or `include`.
    action: String,
    /// For `match`: the tenant's id (the picker's value).
    tenant_id: String,
    view: String,
}

/// `POST /integrations/{id}/clients/{client_id}`: one row's Match / Accept, Create, Exclude,
/// Include (or Unmatch, which is Include on a matched row).
pub async fn set_client(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, client_id)): Path<(i64, i64)>,
    axum::Form(f): axum::Form<RowForm>,
) -> UiResult<Response> {
    let actor = mapper(&user)?;
    let view = parse_view(Some(&f.view));
    let (action, code) = match f.action.as_str() {
        "match" => match f.tenant_id.trim().parse() {
            Ok(tenant_id) => (ClientAction::Match { tenant_id }, "matched"),
            Err(_) => {
                let e = MappingError::Invalid("choose a tenant to match the client to".into());
                return refused(&state, &user, id, view, e).await;
            }
        },
        "create" => (ClientAction::Create, "create"),
        "exclude" => (ClientAction::Exclude, "excluded"),
        "include" => (ClientAction::Include, "included"),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown action {other:?}: use match, create, exclude or include"
            ))
            .into());
        }
    };
    match mapping(&state).set(id, client_id, action, &actor).await {
        Ok(_) => Ok(back(id, view, &format!("notice={code}"), Some(client_id))),
        Err(e) => refused(&state, &user, id, view, e).await,
    }
}

// ------------------------------------------------------------------------------------ preview

#[derive(Template)]
#[template(path = "mapping/preview.html")]
struct PreviewPage {
    nav: Nav,
    i: Head,
    p: Preview,
    total: u64,
    can_map: bool,
}

impl PreviewPage {
    fn now_words(&self, r: &PreviewRow) -> String {
        match (r.from_state.as_str(), &r.from_tenant_name) {
            ("matched", Some(t)) => format!("matched to {t}"),
            (s, _) => s.to_owned(),
        }
    }
}

/// `GET /integrations/{id}/preview`: what Finish will do.
pub async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let i = head(&state, id).await?;
    let p = mapping(&state).preview(id, &user.tenants).await?;
    let c = &p.counts;
    Ok(render(&PreviewPage {
        nav: Nav::for_user(&user).at("mapping"),
        total: c.to_create + c.to_match + c.to_exclude + c.to_unmatch,
        i,
        p,
        can_map: can_map(&user),
    }))
}

/// `POST /integrations/{id}/apply`: Finish. Applies every pending link in one transaction, then
/// shows the device sync it started, or the mapping page with what happened.
pub async fn apply(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let actor = mapper(&user)?;
    let report = mapping(&state)
        .apply(id, &actor, SyncAfter::Background)
        .await?;
    let n = report.changes.len();
    if let Some(run) = report.sync_run_id {
        return Ok(see_other(&format!(
            "/sync-runs/{run}?notice=mapping_applied"
        )));
    }
    if n == 0 {
        return Ok(back(id, View::All, "notice=nothing", None));
    }
    if report.newly_mapped_client_ids.is_empty() {
        return Ok(back(id, View::All, &format!("notice=applied&n={n}"), None));
    }
    // Clients became mapped but no sync started: one already running, device sync off, or a failure.
    if let Some(run) = state.db.running_sync_run(id).await? {
        return Ok(see_other(&format!(
            "/sync-runs/{}?notice=already_running",
            run.id
        )));
    }
    let device_sync = crate::services::integrations::IntegrationOptions::from_stored(
        &state
            .db
            .integration_by_id(id)
            .await?
            .ok_or(ApiError::NotFound("integration"))?
            .options,
    )
    .device_sync;
    let code = if device_sync {
        "applied_sync_failed"
    } else {
        "applied_no_devices"
    };
    Ok(back(id, View::All, &format!("notice={code}&n={n}"), None))
}
