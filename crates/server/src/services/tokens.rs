//! API tokens: shown once at creation, stored as a SHA-256 only.

use super::audit::{self, Actor};
use crate::auth::CurrentUser;
use crate::auth::tokens;
use crate::state::now;
use rmmbridge_core::Role;
use rmmbridge_store::{ApiToken, Db, NewApiToken, StoreError};
use serde_json::json;

pub struct CreatedToken {
    pub record: ApiToken,
    /// The only copy of the token; it cannot be shown again.
    pub token: String,
}

pub async fn create_token(
    db: &Db,
    actor: &Actor,
    user_id: i64,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<CreatedToken, StoreError> {
    let token = tokens::new_api_token();
    let t = now();
    let record = db
        .create_api_token(&NewApiToken {
            user_id,
            name: name.trim().to_owned(),
            token_hash: tokens::sha256_hex(&token),
            prefix: tokens::display_prefix(&token),
            now: t,
            expires_at: expires_in_days.map(|d| t.plus_secs(i64::from(d) * 86_400)),
        })
        .await?;
    audit::record(
        db,
        actor,
        "token.create",
        Some(("api_token", record.id.to_string())),
        json!({"name": record.name, "user_id": user_id, "prefix": record.prefix}),
    )
    .await?;
    Ok(CreatedToken { record, token })
}

/// Token `id` if `user` may see and revoke it: their own, or anyone's for an admin. Someone else's
/// token is `None`, as if it did not exist.
pub async fn token_for(
    db: &Db,
    user: &CurrentUser,
    id: i64,
) -> Result<Option<ApiToken>, StoreError> {
    Ok(db
        .list_api_tokens(None)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .filter(|t| t.user_id == user.id || user.role.allows(Role::Admin)))
}

pub async fn revoke_token(db: &Db, actor: &Actor, token: &ApiToken) -> Result<(), StoreError> {
    db.revoke_api_token(token.id, now()).await?;
    audit::record(
        db,
        actor,
        "token.revoke",
        Some(("api_token", token.id.to_string())),
        json!({"name": token.name, "user_id": token.user_id, "prefix": token.prefix}),
    )
    .await?;
    Ok(())
}
