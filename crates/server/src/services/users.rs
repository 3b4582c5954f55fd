//! Users: creation, roles, tenant limits, passwords. Every change is audited.

use super::audit::{self, Actor};
use crate::auth::password::{self, PasswordError};
use crate::error::ApiError;
use crate::state::now;
use rmmbridge_core::Role;
use rmmbridge_store::{Db, NewUser, StoreError, User};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("a username is 1 to 64 characters: letters, digits, and . _ - @ (got {0:?})")]
    BadUsername(String),
    #[error("user {0:?} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Password(p) => ApiError::BadRequest(p.to_string()),
            UserError::BadUsername(_) => ApiError::BadRequest(e.to_string()),
            UserError::NotFound(_) => ApiError::NotFound("user"),
            UserError::Store(s) => s.into(),
        }
    }
}

fn check_username(name: &str) -> Result<String, UserError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(UserError::BadUsername(name.to_owned()))
    }
}

pub async fn create_user(
    db: &Db,
    actor: &Actor,
    username: &str,
    role: Role,
    password: &str,
) -> Result<User, UserError> {
    let username = check_username(username)?;
    password::check_policy(password)?;
    let password_hash = password::hash_password(password)?;
    let user = db
        .create_user(&NewUser {
            username,
            role,
            password_hash,
            now: now(),
        })
        .await?;
    audit::record(
        db,
        actor,
        "user.create",
        Some(("user", user.id.to_string())),
        json!({"username": user.username, "role": role}),
    )
    .await?;
    Ok(user)
}

pub async fn find(db: &Db, username: &str) -> Result<User, UserError> {
    db.user_by_username(username)
        .await?
        .ok_or_else(|| UserError::NotFound(username.to_owned()))
}

/// Sets a new password and signs the user out everywhere.
pub async fn reset_password(
    db: &Db,
    actor: &Actor,
    user: &User,
    new_password: &str,
) -> Result<(), UserError> {
    password::check_policy(new_password)?;
    let hash = password::hash_password(new_password)?;
    db.set_password_hash(user.id, &hash, now()).await?;
    let sessions = db.delete_user_sessions(user.id).await?;
    audit::record(
        db,
        actor,
        "user.password_reset",
        Some(("user", user.id.to_string())),
        json!({"username": user.username, "sessions_ended": sessions}),
    )
    .await?;
    Ok(())
}

pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub tenants: Option<Vec<i64>>,
}

pub async fn update_user(
    db: &Db,
    actor: &Actor,
    user: &User,
    change: UserChange,
) -> Result<(), UserError> {
    let t = now();
    if let Some(role) = change.role {
        db.set_user_role(user.id, role, t).await?;
    }
    if let Some(disabled) = change.disabled {
        db.set_user_disabled(user.id, disabled, t).await?;
        if disabled {
            db.delete_user_sessions(user.id).await?;
        }
    }
    if let Some(tenants) = &change.tenants {
        db.set_user_tenants(user.id, tenants).await?;
    }
    audit::record(
        db,
        actor,
        "user.update",
        Some(("user", user.id.to_string())),
        json!({"username": user.username, "role": change.role, "disabled": change.disabled, "tenants": change.tenants}),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(
            check_username(" Alice@MSP.example ").unwrap(),
            "alice@msp.example"
        );
        assert!(check_username("").is_err());
        assert!(check_username("bob smith").is_err());
        assert!(check_username(&"x".repeat(65)).is_err());
    }
}
