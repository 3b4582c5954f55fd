//! Integrations (one connection to one RMM instance) and their sealed secret fields.
//! The store only ever sees sealed secret values; sealing is the server's vault's job.
use crate::{Db, StoreError, StoreResult, parse_col};
use rmmbridge_core::{IntegrationKind, Timestamp};
use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

#[derive(Clone, Debug)]
pub struct Integration {
    pub id: i64,
    pub kind: IntegrationKind,
    pub name: String,
    pub settings: Value,
    pub options: Value,
    /// `new`, `healthy`, `needs_consent`, `failing`.
    pub status: String,
    pub status_message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug)]
pub struct NewIntegration {
    pub kind: IntegrationKind,
    pub name: String,
    pub settings: Value,
    pub options: Value,
    pub now: Timestamp,
}

/// Fields left `None` are kept.
#[derive(Debug, Default)]
pub struct IntegrationChange {
    pub name: Option<String>,
    pub settings: Option<Value>,
    pub options: Option<Value>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    kind: String,
    name: String,
    settings: Json<Value>,
    options: Json<Value>,
    status: String,
    status_message: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<Row> for Integration {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Self> {
        Ok(Integration {
            id: r.id,
            kind: parse_col("integrations.kind", &r.kind)?,
            name: r.name,
            settings: r.settings.0,
            options: r.options.0,
            status: r.status,
            status_message: r.status_message,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

const COLUMNS: &str =
    "id, kind, name, settings, options, status, status_message, created_at, updated_at";

fn name_conflict(name: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            what: format!("an integration named {name:?} already exists"),
        },
        other => other,
    }
}

impl Db {
    pub async fn create_integration(&self, i: &NewIntegration) -> StoreResult<Integration> {
        let sql = format!(
            "INSERT INTO integrations (kind, name, settings, options, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'new', $5, $5) RETURNING {COLUMNS}"
        );
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(i.kind.as_str())
                .bind(&i.name)
                .bind(Json(&i.settings))
                .bind(Json(&i.options))
                .bind(i.now.0)
                .fetch_one(p)
                .await
        })
        .map_err(name_conflict(&i.name))?;
        row.try_into()
    }

    pub async fn integration_by_id(&self, id: i64) -> StoreResult<Option<Integration>> {
        let sql = format!("SELECT {COLUMNS} FROM integrations WHERE id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(p)
                .await?
        });
        row.map(Integration::try_from).transpose()
    }

    pub async fn list_integrations(&self) -> StoreResult<Vec<Integration>> {
        let sql = format!("SELECT {COLUMNS} FROM integrations ORDER BY name, id");
        let rows = with_db!(self, |p| sqlx::query_as::<_, Row>(AssertSqlSafe(
            sql.as_str()
        ))
        .fetch_all(p)
        .await?);
        rows.into_iter().map(Integration::try_from).collect()
    }

    pub async fn update_integration(
        &self,
        id: i64,
        change: &IntegrationChange,
        now: Timestamp,
    ) -> StoreResult<Integration> {
        let sql = format!(
            "UPDATE integrations SET name = COALESCE($1, name), settings = COALESCE($2, settings),
             options = COALESCE($3, options), updated_at = $4 WHERE id = $5 RETURNING {COLUMNS}"
        );
        let name = change.name.as_deref().unwrap_or_default();
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(AssertSqlSafe(sql.as_str()))
                .bind(change.name.as_deref())
                .bind(change.settings.as_ref().map(Json))
                .bind(change.options.as_ref().map(Json))
                .bind(now.0)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(name_conflict(name))?;
        row.ok_or(StoreError::NotFound {
            what: "integration",
        })?
        .try_into()
    }

    pub async fn set_integration_status(
        &self,
        id: i64,
        status: &str,
        message: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let found = with_db!(self, |p| {
            sqlx::query(
                "UPDATE integrations SET status = $1, status_message = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(status)
            .bind(message)
            .bind(now.0)
            .bind(id)
            .execute(p)
            .await?
            .rows_affected()
        });
        if found == 0 {
            return Err(StoreError::NotFound {
                what: "integration",
            });
        }
        Ok(())
    }

    /// Deletes the integration with its secrets, clients and agents (foreign keys cascade).
    pub async fn delete_integration(&self, id: i64) -> StoreResult<()> {
        let found = with_db!(self, |p| {
            sqlx::query("DELETE FROM integrations WHERE id = $1")
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        if found == 0 {
            return Err(StoreError::NotFound {
                what: "integration",
            });
        }
        Ok(())
    }

    /// Stores a sealed value, replacing any earlier one of the same field.
    pub async fn put_secret(
        &self,
        integration_id: i64,
        field: &str,
        sealed: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query(
                "INSERT INTO integration_secrets (integration_id, field, sealed, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (integration_id, field)
                 DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )
            .bind(integration_id)
            .bind(field)
            .bind(sealed)
            .bind(now.0)
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound {
                what: "integration",
            },
            _ => e.into(),
        })?;
        Ok(())
    }

    pub async fn get_secret(
        &self,
        integration_id: i64,
        field: &str,
    ) -> StoreResult<Option<String>> {
        Ok(with_db!(self, |p| {
            sqlx::query_scalar::<_, String>(
                "SELECT sealed FROM integration_secrets WHERE integration_id = $1 AND field = $2",
            )
            .bind(integration_id)
            .bind(field)
            .fetch_optional(p)
            .await?
        }))
    }

    pub async fn delete_secret(&self, integration_id: i64, field: &str) -> StoreResult<bool> {
        Ok(with_db!(self, |p| {
            sqlx::query("DELETE FROM integration_secrets WHERE integration_id = $1 AND field = $2")
                .bind(integration_id)
                .bind(field)
                .execute(p)
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// Which secret fields are set, with when; never the values.
    pub async fn secret_fields(
        &self,
        integration_id: i64,
    ) -> StoreResult<Vec<(String, Timestamp)>> {
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT field, updated_at FROM integration_secrets WHERE integration_id = $1 ORDER BY field",
            )
            .bind(integration_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(|(f, t)| (f, Timestamp(t))).collect())
    }

    /// How many sealed values exist: a new master key must never be generated over them.
    pub async fn count_sealed_secrets(&self) -> StoreResult<i64> {
        Ok(with_db!(self, |p| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM integration_secrets")
                .fetch_one(p)
                .await?
        }))
    }
}
