//! The audit log (admins): newest first, filtered by action, paged backwards by id.
use super::{Nav, UiResult, fmt_time, render, require};
use crate::auth::CurrentUser;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use rmmbridge_core::Role;
use rmmbridge_store::AuditQuery;
use serde::Deserialize;

const PAGE: i64 = 100;

pub struct Entry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    entries: Vec<Entry>,
    action: String,
    older: Option<i64>,
}

#[derive(Deserialize)]
pub struct AuditParams {
    before: Option<i64>,
    action: Option<String>,
}

pub async fn audit(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(p): Query<AuditParams>,
) -> UiResult<Response> {
    require(&user, Role::Admin)?;
    let action = p
        .action
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    let rows = state
        .db
        .list_audit(&AuditQuery {
            before_id: p.before,
            limit: PAGE,
            action: action.clone(),
        })
        .await?;
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    let entries = rows
        .into_iter()
        .map(|e| Entry {
            id: e.id,
            at: fmt_time(e.at.0),
            actor: e.actor,
            action: e.action,
            target: match (e.target_kind, e.target_id) {
                (Some(k), Some(i)) => format!("{k} {i}"),
                (Some(k), None) => k,
                _ => String::new(),
            },
            details: match &e.details {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                d => d.to_string(),
            },
            ip: e.ip.unwrap_or_default(),
        })
        .collect();
    Ok(render(&AuditPage {
        nav: Nav::for_user(&user).at("audit"),
        entries,
        action: action.unwrap_or_default(),
        older,
    }))
}
