//! The dashboard: integrations with status, last sync and credential warnings; counts of tenants,
//! computers and manual decisions waiting (all within the user's tenant scope).
use super::integrations::{Row, rows};
use super::{Nav, UiResult, render};
use crate::auth::CurrentUser;
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    tenants: usize,
    computers: i64,
    decisions: i64,
    integrations: Vec<Row>,
    attention: usize,
}

pub async fn dashboard(State(state): State<AppState>, user: CurrentUser) -> UiResult<Response> {
    let integrations = rows(&state).await?;
    let healthy = integrations
        .iter()
        .filter(|r| r.status == "healthy" && r.warnings.is_empty())
        .count();
    Ok(render(&DashboardPage {
        nav: Nav::for_user(&user).at("dashboard"),
        tenants: state.db.list_tenants(&user.tenants).await?.len(),
        computers: state.db.count_computers(&user.tenants).await?,
        decisions: state.db.count_open_decisions(&user.tenants).await?,
        attention: integrations.len() - healthy,
        integrations,
    }))
}
