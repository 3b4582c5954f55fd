//! Sync runs: the list, and one run with its stages, counts and error. A running run's page refreshes
//! itself (a few lines of our own script; without JavaScript a `<noscript>` refresh does the same).
use super::integrations::{NoticeQuery, kind_label};
use super::{Nav, UiError, UiResult, fmt_secs, fmt_time, notice_text, render};
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::state::{AppState, now};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use rmmbridge_core::plan::RunCounts;
use rmmbridge_store::{SyncRun, SyncRunState};
use serde::Deserialize;
use std::collections::HashMap;

pub struct RunRow {
    pub id: i64,
    pub integration_id: i64,
    pub integration: String,
    pub state: String,
    pub stage: String,
    pub started: String,
    pub took: String,
    pub triggered_by: String,
    pub fetched: u64,
    pub new: u64,
    pub changed: u64,
    pub missing: u64,
    pub error: String,
}

fn counts(run: &SyncRun) -> RunCounts {
    serde_json::from_value(run.counts.clone()).unwrap_or_default()
}

fn took(run: &SyncRun) -> String {
    let end = run.finished_at.unwrap_or(now());
    fmt_secs((end.0 - run.started_at.0) / 1000)
}

fn row(run: SyncRun, names: &HashMap<i64, String>) -> RunRow {
    let c = counts(&run);
    RunRow {
        id: run.id,
        integration_id: run.integration_id,
        integration: names
            .get(&run.integration_id)
            .cloned()
            .unwrap_or_else(|| format!("integration {}", run.integration_id)),
        state: run.state.to_string(),
        stage: run.stage.clone(),
        started: fmt_time(run.started_at.0),
        took: took(&run),
        triggered_by: run.triggered_by.clone(),
        fetched: c.fetched,
        new: c.new,
        changed: c.changed,
        missing: c.missing,
        error: run.error.unwrap_or_default(),
    }
}

async fn integration_names(state: &AppState) -> UiResult<HashMap<i64, String>> {
    Ok(state
        .db
        .list_integrations()
        .await?
        .into_iter()
        .map(|i| (i.id, format!("{} ({})", i.name, kind_label(i.kind))))
        .collect())
}

#[derive(Template)]
#[template(path = "sync_runs/list.html")]
struct ListPage {
    nav: Nav,
    runs: Vec<RunRow>,
    filter: Option<(i64, String)>,
    any_running: bool,
}

#[derive(Deserialize)]
pub struct ListQuery {
    integration: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> UiResult<Response> {
    let names = integration_names(&state).await?;
    let runs: Vec<RunRow> = state
        .db
        .list_sync_runs(q.integration, 100)
        .await?
        .into_iter()
        .map(|r| row(r, &names))
        .collect();
    Ok(render(&ListPage {
        nav: Nav::for_user(&user).at("sync"),
        any_running: runs.iter().any(|r| r.state == "running"),
        filter: q
            .integration
            .map(|id| (id, names.get(&id).cloned().unwrap_or_default())),
        runs,
    }))
}

/// One stage of a run, as the progress strip shows it.
pub struct Stage {
    pub name: &'static str,
    pub label: &'static str,
    /// `done`, `current`, `pending`, `failed`.
    pub state: &'static str,
}

const STAGES: [(&str, &str); 4] = [
    ("clients", "Clients"),
    ("devices", "Devices"),
    ("lifecycle", "Lifecycle"),
    ("identify", "Identify"),
];

fn stages(run: &SyncRun) -> Vec<Stage> {
    let current = STAGES.iter().position(|(n, _)| *n == run.stage);
    STAGES
        .iter()
        .enumerate()
        .map(|(i, (name, label))| Stage {
            name,
            label,
            state: match (run.state, current) {
                (SyncRunState::Succeeded, _) => "done",
                (SyncRunState::Running, Some(c)) if i < c => "done",
                (SyncRunState::Running, Some(c)) if i == c => "current",
                (SyncRunState::Running, _) => "pending",
                // A finished failed run is stored with stage `done`; the counts tell how far it got.
                (_, _) => "failed",
            },
        })
        .collect()
}

#[derive(Template)]
#[template(path = "sync_runs/detail.html")]
struct DetailPage {
    nav: Nav,
    run: RunRow,
    running: bool,
    stages: Vec<Stage>,
    groups: Vec<(&'static str, Vec<(&'static str, u64)>)>,
    plan: Vec<(String, i64)>,
    heartbeat: String,
    finished: String,
    notice: Option<&'static str>,
}

fn groups(c: &RunCounts) -> Vec<(&'static str, Vec<(&'static str, u64)>)> {
    vec![
        (
            "Devices fetched",
            vec![
                ("Pages", c.pages),
                ("Devices fetched", c.fetched),
                ("Skipped (excluded clients)", c.skipped_excluded),
                ("Waiting for client mapping", c.waiting_for_mapping),
            ],
        ),
        (
            "Device plan",
            vec![
                ("New", c.new),
                ("Changed", c.changed),
                ("Moved", c.moved),
                ("Unchanged", c.unchanged),
                ("Returned", c.returned),
                ("Missing", c.missing),
                ("Retired", c.retired),
            ],
        ),
        (
            "Identification",
            vec![
                ("By SMBIOS UUID", c.identified_smbios_uuid),
                ("By serial", c.identified_serial),
                ("By MAC", c.identified_mac),
                ("Reinstalls", c.reinstalls),
                ("Clones", c.clones),
                ("New computers", c.new_computers),
                ("Manual decisions", c.manual_decisions),
            ],
        ),
        (
            "Computers",
            vec![
                ("Moved", c.computers_moved),
                ("Updated", c.computers_updated),
                ("Retired", c.computers_retired),
                ("Rows written", c.rows_written),
            ],
        ),
    ]
}

pub async fn detail(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<NoticeQuery>,
) -> UiResult<Response> {
    let run = state
        .db
        .sync_run(id)
        .await?
        .ok_or(UiError::from(ApiError::NotFound("sync run")))?;
    let names = integration_names(&state).await?;
    let c = counts(&run);
    let page = DetailPage {
        nav: Nav::for_user(&user).at("sync"),
        running: run.state == SyncRunState::Running,
        stages: stages(&run),
        groups: groups(&c),
        plan: state.db.plan_item_counts(run.id).await?,
        heartbeat: fmt_secs((now().0 - run.heartbeat_at.0) / 1000),
        finished: run.finished_at.map(|t| fmt_time(t.0)).unwrap_or_default(),
        notice: notice_text(q.notice.as_deref()),
        run: row(run, &names),
    };
    Ok(render(&page))
}
