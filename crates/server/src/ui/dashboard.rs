use super::{Nav, render};
use crate::auth::CurrentUser;
use crate::error::ApiResult;
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;

pub struct IntegrationRow {
    pub name: String,
    pub kind: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    tenants: usize,
    users: i64,
    integrations: Vec<IntegrationRow>,
}

pub async fn dashboard(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Response> {
    let tenants = state.db.list_tenants(&user.tenants).await?.len();
    let integrations = state
        .db
        .list_integrations()
        .await?
        .into_iter()
        .map(|i| IntegrationRow {
            name: i.name,
            kind: i.kind.to_string(),
            status: i.status,
        })
        .collect();
    Ok(render(&DashboardPage {
        nav: Nav::for_user(&user),
        tenants,
        users: state.db.count_users().await?,
        integrations,
    }))
}
