//! Tenants: creating one (admins), validated and audited once for the API and the UI.
use crate::error::ApiError;
use crate::services::audit::{self, Actor};
use crate::state::now;
use rmmbridge_store::{Db, StoreError, Tenant};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Invalid(m) => ApiError::BadRequest(m),
            TenantError::Store(s) => s.into(),
        }
    }
}

/// Creates a tenant named `name` (trimmed, 1 to 200 characters; unique) and audits it.
pub async fn create(db: &Db, actor: &Actor, name: &str) -> Result<Tenant, TenantError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(TenantError::Invalid(
            "a tenant name is 1 to 200 characters".into(),
        ));
    }
    let tenant = db.create_tenant(name, now()).await?;
    audit::record(
        db,
        actor,
        "tenant.create",
        Some(("tenant", tenant.id.to_string())),
        json!({"name": tenant.name}),
    )
    .await?;
    Ok(tenant)
}
