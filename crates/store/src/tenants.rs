//! Tenants: the hub's own record of the MSP's client companies.
use crate::{Db, StoreError, StoreResult};
use rmmbridge_core::Timestamp;

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Which tenants a user may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantScope {
    All,
    Only(Vec<i64>),
}

impl TenantScope {
    pub fn allows(&self, tenant_id: i64) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(ids) => ids.contains(&tenant_id),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Tenant {
    fn from(r: Row) -> Self {
        Tenant {
            id: r.id,
            name: r.name,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

impl Db {
    pub async fn create_tenant(&self, name: &str, now: Timestamp) -> StoreResult<Tenant> {
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(
                "INSERT INTO tenants (name, created_at, updated_at) VALUES ($1, $2, $2)
                 RETURNING id, name, created_at, updated_at",
            )
            .bind(name)
            .bind(now.0)
            .fetch_one(p)
            .await
        })
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict { .. } => StoreError::Conflict {
                what: format!("a tenant named {name:?} already exists"),
            },
            other => other,
        })?;
        Ok(row.into())
    }

    pub async fn tenant_by_id(&self, id: i64) -> StoreResult<Option<Tenant>> {
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(
                "SELECT id, name, created_at, updated_at FROM tenants WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await?
        });
        Ok(row.map(Tenant::from))
    }

    /// The tenants in scope, by name.
    pub async fn list_tenants(&self, scope: &TenantScope) -> StoreResult<Vec<Tenant>> {
        let rows = with_db!(self, |p| {
            sqlx::query_as::<_, Row>(
                "SELECT id, name, created_at, updated_at FROM tenants ORDER BY name, id",
            )
            .fetch_all(p)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(Tenant::from)
            .filter(|t| scope.allows(t.id))
            .collect())
    }
}
