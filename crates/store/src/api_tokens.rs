//! API tokens for `/api/v1`. The token itself is shown once; only its SHA-256 is stored.
use crate::{Db, StoreError, StoreResult};
use rmmbridge_core::Timestamp;
use sqlx::AssertSqlSafe;

#[derive(Clone, Debug)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    /// The first characters of the token, so a user can tell tokens apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug)]
pub struct NewApiToken {
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub prefix: String,
    pub now: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    user_id: i64,
    name: String,
    token_hash: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<Row> for ApiToken {
    fn from(r: Row) -> Self {
        ApiToken {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            token_hash: r.token_hash,
            prefix: r.prefix,
            created_at: Timestamp(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp),
            expires_at: r.expires_at.map(Timestamp),
            revoked_at: r.revoked_at.map(Timestamp),
        }
    }
}

const COLUMNS: &str =
    "id, user_id, name, token_hash, prefix, created_at, last_used_at, expires_at, revoked_at";

impl Db {
    pub async fn create_api_token(&self, t: &NewApiToken) -> StoreResult<ApiToken> {
        let sql = format!(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(t.user_id)
                .bind(&t.name)
                .bind(&t.token_hash)
                .bind(&t.prefix)
                .bind(t.now.0)
                .bind(t.expires_at.map(|e| e.0))
                .fetch_one(p)
                .await?
        });
        Ok(row.into())
    }

    pub async fn api_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(token_hash)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(ApiToken::from))
    }

    /// Every token, or only those of one user; newest first.
    pub async fn list_api_tokens(&self, user_id: Option<i64>) -> StoreResult<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE ($1 IS NULL OR user_id = $1) ORDER BY id DESC"
        );
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(user_id)
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(ApiToken::from).collect())
    }

    pub async fn touch_api_token(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now.0)
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Revoking twice keeps the first revocation time.
    pub async fn revoke_api_token(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        let found = with_db!(self, |p| {
            sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now.0)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        if found == 0 {
            return Err(StoreError::NotFound { what: "API token" });
        }
        Ok(())
    }
}
