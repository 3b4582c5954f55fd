//! The append-only audit log. The schema refuses updates and deletes (triggers on both backends).
use crate::batch::WriteTxn;
use crate::{Db, StoreResult};
use rmmbridge_core::Timestamp;
use serde_json::Value;
use sqlx::types::Json;

#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub details: Value,
    pub ip: Option<String>,
}

#[derive(Debug)]
pub struct NewAuditEntry {
    pub at: Timestamp,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub details: Value,
    pub ip: Option<String>,
}

#[derive(Debug, Default)]
pub struct AuditQuery {
    /// Only entries older than this id: pages backwards from the newest.
    pub before_id: Option<i64>,
    /// Clamped to 1..=500.
    pub limit: i64,
    pub action: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: i64,
    actor_user_id: Option<i64>,
    actor: String,
    action: String,
    target_kind: Option<String>,
    target_id: Option<String>,
    details: Json<Value>,
    ip: Option<String>,
}

impl Db {
    pub async fn append_audit(&self, e: &NewAuditEntry) -> StoreResult<i64> {
        let mut tx = self.begin_write_txn().await?;
        let id = append_audit_in(&mut tx, e).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Newest first.
    pub async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(
                "SELECT id, at, actor_user_id, actor, action, target_kind, target_id, details, ip
                 FROM audit_log
                 WHERE ($1 IS NULL OR id < $1) AND ($2 IS NULL OR action = $2)
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(q.before_id)
            .bind(&q.action)
            .bind(q.limit.clamp(1, 500))
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: Timestamp(r.at),
                actor_user_id: r.actor_user_id,
                actor: r.actor,
                action: r.action,
                target_kind: r.target_kind,
                target_id: r.target_id,
                details: r.details.0,
                ip: r.ip,
            })
            .collect())
    }
}

/// Appends an audit entry inside `tx`, so it lands with the change it records.
pub(crate) async fn append_audit_in(tx: &mut WriteTxn, e: &NewAuditEntry) -> StoreResult<i64> {
    Ok(with_tx!(tx, |t| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO audit_log (at, actor_user_id, actor, action, target_kind, target_id, details, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(e.at.0)
        .bind(e.actor_user_id)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target_kind)
        .bind(&e.target_id)
        .bind(Json(&e.details))
        .bind(&e.ip)
        .fetch_one(&mut **t)
        .await?
    }))
}
