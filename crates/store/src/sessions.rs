//! Browser sessions. Only a SHA-256 of the cookie value is stored.
use crate::{Db, StoreResult};
use rmmbridge_core::Timestamp;

#[derive(Clone, Debug)]
pub struct Session {
    pub id_hash: String,
    pub user_id: i64,
    /// The per-session token every form and unsafe request must echo.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_seen_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id_hash: String,
    user_id: i64,
    csrf_token: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
}

impl Db {
    pub async fn create_session(&self, s: &Session) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, last_seen_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.id_hash)
            .bind(s.user_id)
            .bind(&s.csrf_token)
            .bind(s.created_at.0)
            .bind(s.expires_at.0)
            .bind(s.last_seen_at.0)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn session_by_hash(&self, id_hash: &str) -> StoreResult<Option<Session>> {
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, SessionRow>(
                "SELECT id_hash, user_id, csrf_token, created_at, expires_at, last_seen_at
                 FROM sessions WHERE id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(|r| Session {
            id_hash: r.id_hash,
            user_id: r.user_id,
            csrf_token: r.csrf_token,
            created_at: Timestamp(r.created_at),
            expires_at: Timestamp(r.expires_at),
            last_seen_at: Timestamp(r.last_seen_at),
        }))
    }

    /// Slides the expiry forward on activity.
    pub async fn touch_session(
        &self,
        id_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id_hash = $3",
            )
            .bind(now.0)
            .bind(expires_at.0)
            .bind(id_hash)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Signs a user out everywhere; returns how many sessions ended.
    pub async fn delete_user_sessions(&self, user_id: i64) -> StoreResult<u64> {
        Ok(with_db!(self, |p| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }

    pub async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(self, |p| {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now.0)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
