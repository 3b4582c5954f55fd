//! Users of the hub, their roles and tenant limits.
use crate::batch::WriteTx;
use crate::{Db, StoreError, StoreResult, parse_col};
use rmmbridge_core::{Role, Timestamp};
use sqlx::AssertSqlSafe;

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// An Argon2id PHC string; never a password.
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    pub password_hash: String,
    pub now: Timestamp,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            role: parse_col("users.role", &r.role)?,
            disabled: r.disabled,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            last_login_at: r.last_login_at.map(Timestamp),
        })
    }
}

const COLUMNS: &str =
    "id, username, password_hash, role, disabled, created_at, updated_at, last_login_at";

impl Db {
    pub async fn create_user(&self, u: &NewUser) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users (username, password_hash, role, disabled, created_at, updated_at)
             VALUES ($1, $2, $3, FALSE, $4, $4) RETURNING {COLUMNS}"
        );
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql.as_str()))
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(u.role.as_str())
                .bind(u.now.0)
                .fetch_one(p)
                .await
        })
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict { .. } => StoreError::Conflict {
                what: format!("a user named {:?} already exists", u.username),
            },
            other => other,
        })?;
        row.try_into()
    }

    pub async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(User::try_from).transpose()
    }

    /// Usernames are stored lower-case; the lookup is too.
    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
        let name = username.trim().to_ascii_lowercase();
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql.as_str()))
                .bind(&name)
                .fetch_optional(p)
                .await?
        });
        row.map(User::try_from).transpose()
    }

    pub async fn list_users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY username");
        let rows = with_db!(self, |p| sqlx::query_as::<_, UserRow>(AssertSqlSafe(
            sql.as_str()
        ))
        .fetch_all(p)
        .await?);
        rows.into_iter().map(User::try_from).collect()
    }

    pub async fn count_users(&self) -> StoreResult<i64> {
        Ok(with_db!(self, |p| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                .fetch_one(p)
                .await?
        }))
    }

    async fn update_user_field(
        &self,
        sql: &str,
        id: i64,
        bind: Bound<'_>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = with_db!(self, |p| {
            let q = sqlx::query(AssertSqlSafe(sql));
            let q = match bind {
                Bound::Text(t) => q.bind(t),
                Bound::Bool(b) => q.bind(b),
            };
            q.bind(now.0).bind(id).execute(p).await?.rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NotFound { what: "user" });
        }
        Ok(())
    }

    pub async fn set_password_hash(&self, id: i64, hash: &str, now: Timestamp) -> StoreResult<()> {
        self.update_user_field(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
            id,
            Bound::Text(hash),
            now,
        )
        .await
    }

    pub async fn set_user_role(&self, id: i64, role: Role, now: Timestamp) -> StoreResult<()> {
        self.update_user_field(
            "UPDATE users SET role = $1, updated_at = $2 WHERE id = $3",
            id,
            Bound::Text(role.as_str()),
            now,
        )
        .await
    }

    pub async fn set_user_disabled(
        &self,
        id: i64,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.update_user_field(
            "UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3",
            id,
            Bound::Bool(disabled),
            now,
        )
        .await
    }

    pub async fn record_login(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                .bind(now.0)
                .bind(id)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The tenants a user is limited to; empty means no limit.
    pub async fn user_tenants(&self, user_id: i64) -> StoreResult<Vec<i64>> {
        Ok(with_db!(self, |p| {
            sqlx::query_scalar::<_, i64>(
                "SELECT tenant_id FROM user_tenants WHERE user_id = $1 ORDER BY tenant_id",
            )
            .bind(user_id)
            .fetch_all(p)
            .await?
        }))
    }

    /// Replaces the user's tenant limits in one transaction; an unknown tenant id is a not-found error.
    pub async fn set_user_tenants(&self, user_id: i64, tenant_ids: &[i64]) -> StoreResult<()> {
        with_db!(self, |p| {
            let mut tx = p.begin_write().await?;
            sqlx::query("DELETE FROM user_tenants WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            for t in tenant_ids {
                let exists =
                    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM tenants WHERE id = $1")
                        .bind(t)
                        .fetch_one(&mut *tx)
                        .await?;
                if exists == 0 {
                    return Err(StoreError::NotFound { what: "tenant" });
                }
                sqlx::query(
                    "INSERT INTO user_tenants (user_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(user_id)
                .bind(t)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

enum Bound<'a> {
    Text(&'a str),
    Bool(bool),
}
