//! Tenants: the list (the user's tenants, with their computer counts) with an admin's "create
//! tenant" form, and one tenant with its first computers and the RMM clients mapped onto it.
use super::computers::{RmmBadge, Row, badge, integrations, rows};
use super::{Nav, UiError, UiResult, fmt_time, render, see_other};
use crate::api::computers::{self as read, ComputerListParams};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::services::audit::Actor;
use crate::services::tenants::{self as svc, TenantError};
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmmbridge_core::Role;
use rmmbridge_core::rmm::RmmClientKind;
use rmmbridge_store::{ClientLinkState, StoreError};
use serde::Deserialize;
use std::collections::HashMap;

pub struct TenantRow {
    pub id: i64,
    pub name: String,
    pub computers: i64,
    pub created: String,
}

#[derive(Template)]
#[template(path = "tenants/list.html")]
struct ListPage {
    nav: Nav,
    tenants: Vec<TenantRow>,
    can_create: bool,
    form_name: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    created: Option<String>,
}

async fn list_page(state: &AppState, user: &CurrentUser) -> UiResult<ListPage> {
    let counts: HashMap<i64, i64> = state
        .db
        .count_computers_by_tenant(&user.tenants)
        .await?
        .into_iter()
        .collect();
    let tenants = state
        .db
        .list_tenants(&user.tenants)
        .await?
        .into_iter()
        .map(|t| TenantRow {
            computers: counts.get(&t.id).copied().unwrap_or(0),
            id: t.id,
            name: t.name,
            created: fmt_time(t.created_at.0),
        })
        .collect();
    Ok(ListPage {
        nav: Nav::for_user(user).at("tenants"),
        tenants,
        can_create: user.role.allows(Role::Admin),
        form_name: String::new(),
        error: None,
        notice: None,
    })
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> UiResult<Response> {
    let mut page = list_page(&state, &user).await?;
    page.notice = q.created.map(|n| format!("Tenant {n:?} created."));
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    axum::Form(form): axum::Form<CreateForm>,
) -> UiResult<Response> {
    super::require(&user, Role::Admin)?;
    match svc::create(&state.db, &Actor::from(&user), &form.name).await {
        Ok(t) => {
            let q = serde_urlencoded::to_string([("created", t.name.as_str())]).unwrap_or_default();
            Ok(see_other(&format!("/tenants?{q}")))
        }
        Err(e @ (TenantError::Invalid(_) | TenantError::Store(StoreError::Conflict { .. }))) => {
            let mut page = list_page(&state, &user).await?;
            page.form_name = form.name;
            let status = match e {
                TenantError::Invalid(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            page.error = Some(super::capitalize(&ApiError::from(e).to_string()));
            Ok((status, render(&page)).into_response())
        }
        Err(e) => Err(ApiError::from(e).into()),
    }
}

pub struct ClientRow {
    pub integration_id: i64,
    pub rmm: RmmBadge,
    pub integration: String,
    pub name: String,
    pub kind: &'static str,
    pub external_id: String,
    /// `matched` (applied), or what is pending before Finish.
    pub state: String,
    pub how: String,
}

#[derive(Template)]
#[template(path = "tenants/detail.html")]
struct DetailPage {
    nav: Nav,
    id: i64,
    name: String,
    created: String,
    total: i64,
    computers: Vec<Row>,
    clients: Vec<ClientRow>,
}

pub async fn detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> UiResult<Response> {
    let not_found = || UiError {
        error: ApiError::NotFound("tenant"),
        nav: Some(Box::new(Nav::for_user(&user).at("tenants"))),
    };
    // Outside the user's tenants: 404, as if it did not exist.
    if !user.sees_tenant(id) {
        return Err(not_found());
    }
    let db = &state.db;
    let tenant = db.tenant_by_id(id).await?.ok_or_else(not_found)?;
    let page = read::search(
        db,
        &user.tenants,
        ComputerListParams {
            tenant_id: Some(id),
            q: None,
            state: None,
            limit: Some(25),
            cursor: None,
        },
    )
    .await?;
    let computers = rows(db, page.items).await?;
    let integrations = integrations(db).await?;
    let mut integration_ids: Vec<(&i64, &(rmmbridge_core::IntegrationKind, String))> =
        integrations.iter().collect();
    integration_ids.sort_by(|a, b| a.1.1.cmp(&b.1.1).then(a.0.cmp(b.0)));
    let mut clients = Vec::new();
    for (iid, (kind, iname)) in integration_ids {
        for l in db.list_client_links(*iid).await? {
            let applied = l.applied_state == Some(ClientLinkState::Matched)
                && l.applied_tenant_id == Some(id);
            let pending = l.state == ClientLinkState::Matched && l.tenant_id == Some(id);
            if !applied && !pending {
                continue;
            }
            let state = match (applied, pending) {
                (true, true) => "matched".to_owned(),
                (true, false) => format!("matched; pending change to {}", l.state),
                (false, _) => "matched when Finish is applied".to_owned(),
            };
            let how = match (&l.provenance, &l.decided_by) {
                (Some(p), Some(by)) => format!("{} by {by}", p.as_str()),
                (Some(p), None) => p.as_str().to_owned(),
                _ => String::new(),
            };
            clients.push(ClientRow {
                integration_id: *iid,
                rmm: badge(*kind, iname),
                integration: iname.clone(),
                name: l.name,
                kind: match l.kind {
                    RmmClientKind::Company => "client",
                    RmmClientKind::Site => "site",
                },
                external_id: l.external_id,
                state,
                how,
            });
        }
    }
    Ok(render(&DetailPage {
        nav: Nav::for_user(&user).at("tenants"),
        id: tenant.id,
        name: tenant.name,
        created: fmt_time(tenant.created_at.0),
        total: page.total,
        computers,
        clients,
    }))
}

impl From<TenantError> for UiError {
    fn from(e: TenantError) -> Self {
        UiError {
            error: e.into(),
            nav: None,
        }
    }
}
