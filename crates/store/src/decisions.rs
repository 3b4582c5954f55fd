//! ManualDecisions: identifications the hub will not guess (reinstall vs clone vs new machine).
//! The store records them and resolves each in one transaction with what it does to its Agent.
use crate::agents::{AgentLink, create_and_link_in, link_agents_in};
use crate::audit::{NewAuditEntry, append_audit_in};
use crate::batch::WriteTx;
use crate::batch::{Arg, Sql, rows_per_chunk};
use crate::computers::{NewComputer, merge_computers_in};
use crate::{Db, StoreError, StoreResult, TenantScope, parse_col};
use rmmbridge_core::Timestamp;
use serde_json::Value;
use sqlx::types::Json;
use std::fmt;
use std::str::FromStr;

/// What resolving a decision does to its Agent.
#[derive(Clone, Debug)]
pub enum DecisionEffect {
    /// It stays on the computer it has.
    Keep { computer_id: i64 },
    /// It is linked to this computer.
    Link(AgentLink),
    /// It gets a computer of its own (the link's `computer_id` is ignored).
    CreateAndLink(NewComputer, AgentLink),
    /// Its computer `from` is the same machine as `into`: merged.
    Merge { from: i64, into: i64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewDecision {
    pub agent_id: i64,
    pub candidate_computer_id: Option<i64>,
    /// What is to be decided, e.g. `reinstall_or_new`, `hostname_only`, `clone`.
    pub kind: String,
    pub reason: String,
    pub evidence: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// The agent is the candidate computer.
    Merge,
    /// The agent is a computer of its own.
    KeepSeparate,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Merge => "merge",
            Resolution::KeepSeparate => "keep_separate",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resolution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "merge" => Ok(Resolution::Merge),
            "keep_separate" => Ok(Resolution::KeepSeparate),
            _ => Err(format!(
                "unknown resolution {s:?}; expected merge or keep_separate"
            )),
        }
    }
}

/// Which decisions [`Db::list_decisions`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionFilter {
    Open,
    Resolved,
    All,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRow {
    pub id: i64,
    pub agent_id: i64,
    pub agent_hostname: String,
    pub integration_id: i64,
    /// The agent's current computer, if identification linked it anywhere yet.
    pub agent_computer_id: Option<i64>,
    pub candidate_computer_id: Option<i64>,
    pub candidate_computer_name: Option<String>,
    /// The tenant the decision belongs to: the candidate's, else the agent's computer's, else
    /// the applied tenant of the agent's RmmClient. Scoping uses it.
    pub tenant_id: Option<i64>,
    pub kind: String,
    pub reason: String,
    pub evidence: Value,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub resolution: Option<Resolution>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    agent_id: i64,
    agent_hostname: String,
    integration_id: i64,
    agent_computer_id: Option<i64>,
    candidate_computer_id: Option<i64>,
    candidate_computer_name: Option<String>,
    tenant_id: Option<i64>,
    kind: String,
    reason: String,
    evidence: Json<Value>,
    created_at: i64,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
    resolution: Option<String>,
}

impl TryFrom<Row> for DecisionRow {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Self> {
        Ok(DecisionRow {
            id: r.id,
            agent_id: r.agent_id,
            agent_hostname: r.agent_hostname,
            integration_id: r.integration_id,
            agent_computer_id: r.agent_computer_id,
            candidate_computer_id: r.candidate_computer_id,
            candidate_computer_name: r.candidate_computer_name,
            tenant_id: r.tenant_id,
            kind: r.kind,
            reason: r.reason,
            evidence: r.evidence.0,
            created_at: Timestamp(r.created_at),
            resolved_at: r.resolved_at.map(Timestamp),
            resolved_by: r.resolved_by,
            resolution: r
                .resolution
                .as_deref()
                .map(|s| parse_col("manual_decisions.resolution", s))
                .transpose()?,
        })
    }
}

const TENANT_EXPR: &str = "COALESCE(cc.tenant_id, ac.tenant_id, cl.applied_tenant_id)";

fn select() -> String {
    format!(
        "SELECT d.id, d.agent_id, a.hostname AS agent_hostname, a.integration_id,
            a.computer_id AS agent_computer_id, d.candidate_computer_id,
            cc.name AS candidate_computer_name, {TENANT_EXPR} AS tenant_id, d.kind, d.reason,
            d.evidence, d.created_at, d.resolved_at, d.resolved_by, d.resolution
         FROM manual_decisions d
         JOIN agents a ON a.id = d.agent_id
         LEFT JOIN computers cc ON cc.id = d.candidate_computer_id
         LEFT JOIN computers ac ON ac.id = a.computer_id
         LEFT JOIN client_links cl ON cl.rmm_client_id = a.rmm_client_id"
    )
}

impl Db {
    /// Raises decisions; one already open for the same agent and kind is kept as it is (the
    /// partial unique index `manual_decisions_one_open`). Returns how many were new.
    pub async fn raise_decisions(
        &self,
        decisions: &[NewDecision],
        now: Timestamp,
    ) -> StoreResult<u64> {
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            let mut raised = 0;
            for chunk in decisions.chunks(rows_per_chunk(p, 5)) {
                let mut sql = Sql::new(
                    "INSERT INTO manual_decisions (agent_id, candidate_computer_id, kind, reason,
                     evidence, created_at) VALUES ",
                );
                sql.args.push(Arg::Int(now.0));
                for (i, d) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    sql.bind(Arg::Int(d.agent_id)).push(", ");
                    sql.bind(Arg::OptInt(d.candidate_computer_id)).push(", ");
                    sql.bind(Arg::Text(&d.kind)).push(", ");
                    sql.bind(Arg::Text(&d.reason)).push(", ");
                    sql.bind(Arg::Json(&d.evidence)).push(", $1)");
                }
                sql.push(" ON CONFLICT (agent_id, kind) WHERE resolved_at IS NULL DO NOTHING");
                raised += bind_args!(p, sqlx::query, sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                            StoreError::NotFound {
                                what: "agent or computer",
                            }
                        }
                        _ => e.into(),
                    })?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(raised)
        })
    }

    /// Open decisions in scope, oldest first.
    pub async fn open_decisions(
        &self,
        scope: &TenantScope,
        limit: i64,
    ) -> StoreResult<Vec<DecisionRow>> {
        let mut sql = Sql::new(select());
        sql.push(" WHERE d.resolved_at IS NULL");
        sql.scope(TENANT_EXPR, scope);
        sql.push(" ORDER BY d.id LIMIT ")
            .bind(Arg::Int(limit.clamp(1, 1000)));
        let rows = with_db!(self, |p| {
            bind_args!(p, sqlx::query_as::<_, Row>, sql)
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(DecisionRow::try_from).collect()
    }

    /// Decisions in scope: open ones or all (oldest first), or resolved ones (newest resolution
    /// first).
    pub async fn list_decisions(
        &self,
        scope: &TenantScope,
        filter: DecisionFilter,
        limit: i64,
    ) -> StoreResult<Vec<DecisionRow>> {
        let mut sql = Sql::new(select());
        match filter {
            DecisionFilter::Open => sql.push(" WHERE d.resolved_at IS NULL"),
            DecisionFilter::Resolved => sql.push(" WHERE d.resolved_at IS NOT NULL"),
            DecisionFilter::All => sql.push(" WHERE 1 = 1"),
        };
        sql.scope(TENANT_EXPR, scope);
        match filter {
            DecisionFilter::Resolved => sql.push(" ORDER BY d.resolved_at DESC, d.id DESC LIMIT "),
            _ => sql.push(" ORDER BY d.id LIMIT "),
        };
        sql.bind(Arg::Int(limit.clamp(1, 1000)));
        let rows = with_db!(self, |p| {
            bind_args!(p, sqlx::query_as::<_, Row>, sql)
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(DecisionRow::try_from).collect()
    }

    /// A decision, or `None` when it does not exist or is outside the scope.
    pub async fn decision_by_id(
        &self,
        id: i64,
        scope: &TenantScope,
    ) -> StoreResult<Option<DecisionRow>> {
        let mut sql = Sql::new(select());
        sql.push(" WHERE d.id = ").bind(Arg::Int(id));
        sql.scope(TENANT_EXPR, scope);
        let row = with_db!(self, |p| {
            bind_args!(p, sqlx::query_as::<_, Row>, sql)
                .fetch_optional(p)
                .await?
        });
        row.map(DecisionRow::try_from).transpose()
    }

    /// Resolves an open decision and does what it says, in one transaction with its audit
    /// entry: the Agent keeps its computer, is linked to one, gets a new one, or its computer is
    /// merged into another. A decision already resolved is a conflict (someone else was faster)
    /// and changes nothing. Returns the decision and the computer the Agent is now on.
    pub async fn resolve_decision(
        &self,
        id: i64,
        resolution: Resolution,
        by: &str,
        now: Timestamp,
        effect: &DecisionEffect,
        audit: impl FnOnce(i64) -> NewAuditEntry,
    ) -> StoreResult<(DecisionRow, i64)> {
        let mut tx = self.begin_write_txn().await?;
        let claimed = with_tx!(&mut tx, |t| {
            sqlx::query(
                "UPDATE manual_decisions SET resolved_at = $1, resolved_by = $2, resolution = $3
                 WHERE id = $4 AND resolved_at IS NULL",
            )
            .bind(now.0)
            .bind(by)
            .bind(resolution.as_str())
            .bind(id)
            .execute(&mut **t)
            .await?
            .rows_affected()
        });
        if claimed == 0 {
            drop(tx);
            return Err(match self.decision_by_id(id, &TenantScope::All).await? {
                None => StoreError::NotFound {
                    what: "manual decision",
                },
                Some(r) => StoreError::Conflict {
                    what: format!(
                        "manual decision {id} was already resolved ({}) by {}",
                        r.resolution.map(|r| r.as_str()).unwrap_or("?"),
                        r.resolved_by.as_deref().unwrap_or("?")
                    ),
                },
            });
        }
        let computer_id = match effect {
            DecisionEffect::Keep { computer_id } => *computer_id,
            DecisionEffect::Link(link) => {
                link_agents_in(&mut tx, std::slice::from_ref(link), now).await?;
                link.computer_id
            }
            DecisionEffect::CreateAndLink(computer, link) => {
                // The agent gone: the transaction is dropped, the decision stays open.
                let (ids, _) =
                    create_and_link_in(&mut tx, vec![(computer.clone(), link.clone())], &[], now)
                        .await?;
                ids[0]
            }
            DecisionEffect::Merge { from, into } => {
                merge_computers_in(&mut tx, *from, *into, by, now).await?;
                *into
            }
        };
        append_audit_in(&mut tx, &audit(computer_id)).await?;
        tx.commit().await?;
        let row =
            self.decision_by_id(id, &TenantScope::All)
                .await?
                .ok_or(StoreError::NotFound {
                    what: "manual decision",
                })?;
        Ok((row, computer_id))
    }

    pub async fn count_open_decisions(&self, scope: &TenantScope) -> StoreResult<i64> {
        let mut sql = Sql::new(
            "SELECT COUNT(*) FROM manual_decisions d
             JOIN agents a ON a.id = d.agent_id
             LEFT JOIN computers cc ON cc.id = d.candidate_computer_id
             LEFT JOIN computers ac ON ac.id = a.computer_id
             LEFT JOIN client_links cl ON cl.rmm_client_id = a.rmm_client_id
             WHERE d.resolved_at IS NULL",
        );
        sql.scope(TENANT_EXPR, scope);
        Ok(with_db!(self, |p| {
            bind_args!(p, sqlx::query_scalar::<_, i64>, sql)
                .fetch_one(p)
                .await?
        }))
    }
}
