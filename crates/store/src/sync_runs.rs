//! SyncRuns (one import pass of one integration) and the device plan each run applied.
//! At most one run per integration is `running`: the database enforces it
//! (`sync_runs_one_running`), so two instances sharing PostgreSQL cannot both sync.
use crate::batch::{Arg, Sql, rows_per_chunk};
use crate::{Db, StoreError, StoreResult, parse_col};
use rmmbridge_core::Timestamp;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncRunState {
    Running,
    Succeeded,
    Failed,
    /// Its worker stopped sending heartbeats (a crash); a later run converges instead.
    Abandoned,
}

impl SyncRunState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncRunState::Running => "running",
            SyncRunState::Succeeded => "succeeded",
            SyncRunState::Failed => "failed",
            SyncRunState::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for SyncRunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncRunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(SyncRunState::Running),
            "succeeded" => Ok(SyncRunState::Succeeded),
            "failed" => Ok(SyncRunState::Failed),
            "abandoned" => Ok(SyncRunState::Abandoned),
            _ => Err(format!("unknown sync run state {s:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncRun {
    pub id: i64,
    pub integration_id: i64,
    /// `clients`, `devices`, `full`, `incremental`, `webhook`, ...
    pub kind: String,
    pub state: SyncRunState,
    pub stage: String,
    pub counts: Value,
    pub error: Option<String>,
    pub triggered_by: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewPlanItem {
    pub external_id: String,
    pub agent_id: Option<i64>,
    /// `new`, `changed`, `moved`, `missing`, `retired`, `returned`, ...
    pub action: String,
    pub diffs: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlanItem {
    pub id: i64,
    pub run_id: i64,
    pub external_id: String,
    pub agent_id: Option<i64>,
    pub action: String,
    pub diffs: Value,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    integration_id: i64,
    kind: String,
    state: String,
    stage: String,
    counts: Json<Value>,
    error: Option<String>,
    triggered_by: String,
    started_at: i64,
    heartbeat_at: i64,
    finished_at: Option<i64>,
}

impl TryFrom<Row> for SyncRun {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Self> {
        Ok(SyncRun {
            id: r.id,
            integration_id: r.integration_id,
            kind: r.kind,
            state: parse_col("sync_runs.state", &r.state)?,
            stage: r.stage,
            counts: r.counts.0,
            error: r.error,
            triggered_by: r.triggered_by,
            started_at: Timestamp(r.started_at),
            heartbeat_at: Timestamp(r.heartbeat_at),
            finished_at: r.finished_at.map(Timestamp),
        })
    }
}

const COLUMNS: &str = "id, integration_id, kind, state, stage, counts, error, triggered_by, started_at, heartbeat_at, finished_at";

impl Db {
    /// Starts a run in stage `starting`. Fails with a conflict naming the running run when the
    /// integration already has one.
    pub async fn start_sync_run(
        &self,
        integration_id: i64,
        kind: &str,
        triggered_by: &str,
        now: Timestamp,
    ) -> StoreResult<SyncRun> {
        let sql = format!(
            "INSERT INTO sync_runs (integration_id, kind, state, stage, counts, triggered_by, started_at, heartbeat_at)
             VALUES ($1, $2, 'running', 'starting', $3, $4, $5, $5) RETURNING {COLUMNS}"
        );
        let empty = json!({});
        let res = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(integration_id)
                .bind(kind)
                .bind(Json(&empty))
                .bind(triggered_by)
                .bind(now.0)
                .fetch_one(p)
                .await
        });
        match res {
            Ok(r) => r.try_into(),
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                Err(StoreError::NotFound {
                    what: "integration",
                })
            }
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict { .. } => {
                    let running = self.running_sync_run(integration_id).await?;
                    Err(StoreError::Conflict {
                        what: match running {
                            Some(r) => format!(
                                "sync run {} of this integration is already running ({} sync, stage {}, started by {} at {} ms)",
                                r.id, r.kind, r.stage, r.triggered_by, r.started_at.0
                            ),
                            None => "a sync run of this integration is already running".into(),
                        },
                    })
                }
                other => Err(other),
            },
        }
    }

    pub async fn running_sync_run(&self, integration_id: i64) -> StoreResult<Option<SyncRun>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE integration_id = $1 AND state = 'running'"
        );
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(integration_id)
                .fetch_optional(p)
                .await?
        });
        row.map(SyncRun::try_from).transpose()
    }

    /// Marks every running run whose last heartbeat is older than `heartbeat_older_than` as
    /// abandoned (its worker crashed or lost the database); returns them.
    pub async fn abandon_stale_runs(
        &self,
        heartbeat_older_than: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<SyncRun>> {
        let sql = format!(
            "UPDATE sync_runs SET state = 'abandoned', finished_at = $1,
               error = COALESCE(error, 'abandoned: no heartbeat since ' || CAST(heartbeat_at AS TEXT) || ' ms')
             WHERE state = 'running' AND heartbeat_at < $2 RETURNING {COLUMNS}"
        );
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(now.0)
                .bind(heartbeat_older_than.0)
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(SyncRun::try_from).collect()
    }

    /// Heartbeat and progress of a running run. A run that is no longer running (abandoned by
    /// another instance, finished) is a conflict: its worker must stop.
    pub async fn update_sync_run(
        &self,
        id: i64,
        stage: &str,
        counts: &Value,
        now: Timestamp,
    ) -> StoreResult<()> {
        let n = with_db!(self, |p| {
            sqlx::query(
                "UPDATE sync_runs SET stage = $1, counts = $2, heartbeat_at = $3
                 WHERE id = $4 AND state = 'running'",
            )
            .bind(stage)
            .bind(Json(counts))
            .bind(now.0)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        if n == 0 {
            return Err(self.not_running(id).await);
        }
        Ok(())
    }

    /// Ends a running run as `Succeeded` or `Failed`.
    pub async fn finish_sync_run(
        &self,
        id: i64,
        state: SyncRunState,
        counts: &Value,
        error: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<SyncRun> {
        if !matches!(state, SyncRunState::Succeeded | SyncRunState::Failed) {
            return Err(StoreError::Conflict {
                what: format!("a sync run cannot be finished as {state}"),
            });
        }
        let sql = format!(
            "UPDATE sync_runs SET state = $1, stage = 'done', counts = $2, error = $3,
               heartbeat_at = $4, finished_at = $4
             WHERE id = $5 AND state = 'running' RETURNING {COLUMNS}"
        );
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(state.as_str())
                .bind(Json(counts))
                .bind(error)
                .bind(now.0)
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        match row {
            Some(r) => r.try_into(),
            None => Err(self.not_running(id).await),
        }
    }

    async fn not_running(&self, id: i64) -> StoreError {
        match self.sync_run(id).await {
            Ok(Some(r)) => StoreError::Conflict {
                what: format!("sync run {id} is {} and no longer running", r.state),
            },
            Ok(None) => StoreError::NotFound { what: "sync run" },
            Err(e) => e,
        }
    }

    pub async fn sync_run(&self, id: i64) -> StoreResult<Option<SyncRun>> {
        let sql = format!("SELECT {COLUMNS} FROM sync_runs WHERE id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(SyncRun::try_from).transpose()
    }

    /// Newest first, of one integration or all.
    pub async fn list_sync_runs(
        &self,
        integration_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<SyncRun>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sync_runs WHERE ($1 IS NULL OR integration_id = $1)
             ORDER BY id DESC LIMIT $2"
        );
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(integration_id)
                .bind(limit.clamp(1, 500))
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(SyncRun::try_from).collect()
    }

    pub async fn last_sync_run(&self, integration_id: i64) -> StoreResult<Option<SyncRun>> {
        Ok(self
            .list_sync_runs(Some(integration_id), 1)
            .await?
            .into_iter()
            .next())
    }

    /// Stores (part of) a run's device plan with multi-row inserts; returns rows written.
    pub async fn add_plan_items(&self, run_id: i64, items: &[NewPlanItem]) -> StoreResult<u64> {
        let mut tx = self.begin_write_txn().await?;
        let written = add_plan_items_in(&mut tx, run_id, items).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// A keyset page of a run's plan, optionally of one action, in insertion order: the items
    /// after plan item `after_id` (0 for the first page).
    pub async fn plan_items(
        &self,
        run_id: i64,
        action: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<PlanItem>> {
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, (i64, i64, String, Option<i64>, String, Json<Value>)>(
                "SELECT id, run_id, external_id, agent_id, action, diffs FROM sync_plan_items
                 WHERE run_id = $1 AND ($2 IS NULL OR action = $2) AND id > $3
                 ORDER BY id LIMIT $4",
            )
            .bind(run_id)
            .bind(action)
            .bind(after_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, run_id, external_id, agent_id, action, diffs)| PlanItem {
                    id,
                    run_id,
                    external_id,
                    agent_id,
                    action,
                    diffs: diffs.0,
                },
            )
            .collect())
    }

    /// How many plan items of each action a run has, by action.
    pub async fn plan_item_counts(&self, run_id: i64) -> StoreResult<Vec<(String, i64)>> {
        Ok(with_db!(self, |p| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT action, COUNT(*) FROM sync_plan_items WHERE run_id = $1
                 GROUP BY action ORDER BY action",
            )
            .bind(run_id)
            .fetch_all(p)
            .await?
        }))
    }
}

/// [`Db::add_plan_items`] inside `tx`.
pub(crate) async fn add_plan_items_in(
    tx: &mut crate::batch::WriteTxn,
    run_id: i64,
    items: &[NewPlanItem],
) -> StoreResult<u64> {
    with_tx!(tx, |t| {
        let mut written = 0;
        for chunk in items.chunks(rows_per_chunk(&*t, 4)) {
            let mut sql = Sql::new(
                "INSERT INTO sync_plan_items (run_id, external_id, agent_id, action, diffs) VALUES ",
            );
            sql.args.push(Arg::Int(run_id));
            for (i, it) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "($1, " } else { ", ($1, " });
                sql.bind(Arg::Text(&it.external_id)).push(", ");
                sql.bind(Arg::OptInt(it.agent_id)).push(", ");
                sql.bind(Arg::Text(&it.action)).push(", ");
                sql.bind(Arg::Json(&it.diffs)).push(")");
            }
            written += bind_args!(&*t, sqlx::query, sql)
                .execute(&mut **t)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                        StoreError::NotFound {
                            what: "sync run or agent",
                        }
                    }
                    _ => e.into(),
                })?
                .rows_affected();
        }
        Ok(written)
    })
}
