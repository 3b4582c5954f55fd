//! The append-only audit log: who changed what, from where.

use crate::auth::CurrentUser;
use crate::state::now;
use rmmbridge_store::{Db, NewAuditEntry, StoreError};
use serde_json::Value;

/// Who performed an action.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    /// The local command line: whoever can run it can read the database anyway.
    pub fn cli() -> Actor {
        Actor {
            user_id: None,
            name: "cli".into(),
            ip: None,
        }
    }

    pub fn system(name: &str) -> Actor {
        Actor {
            user_id: None,
            name: name.into(),
            ip: None,
        }
    }
}

impl From<&CurrentUser> for Actor {
    fn from(u: &CurrentUser) -> Self {
        Actor {
            user_id: Some(u.id),
            name: u.username.clone(),
            ip: u.ip.clone(),
        }
    }
}

/// What was acted on, e.g. `("user", "42")`.
pub type Target<'a> = Option<(&'a str, String)>;

pub async fn record(
    db: &Db,
    actor: &Actor,
    action: &str,
    target: Target<'_>,
    details: Value,
) -> Result<i64, StoreError> {
    db.append_audit(&entry(actor, action, target, details))
        .await
}

/// The audit entry `record` would append, for store methods that append it in their own
/// transaction.
pub fn entry(actor: &Actor, action: &str, target: Target<'_>, details: Value) -> NewAuditEntry {
    let (target_kind, target_id) = match target {
        Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
        None => (None, None),
    };
    NewAuditEntry {
        at: now(),
        actor_user_id: actor.user_id,
        actor: actor.name.clone(),
        action: action.to_owned(),
        target_kind,
        target_id,
        details,
        ip: actor.ip.clone(),
    }
}
