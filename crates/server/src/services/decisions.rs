//! Resolving ManualDecisions: "merge" links the Agent to the candidate Computer the admin chose,
//! "keep separate" gives it a Computer of its own. Either way the Agent ends up linked, with an
//! evidence row naming the admin and the decision, so the sync (which only identifies unlinked
//! Agents) never asks again.
use crate::error::ApiError;
use crate::services::audit::{self, Actor};
use crate::state::now;
use rmmbridge_core::identify::Rule;
use rmmbridge_store::{
    AgentLink, Db, DecisionEffect, DecisionRow, NewComputer, Resolution, StoreError, TenantScope,
};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("manual decision not found")]
    NotFound,
    #[error("{0}")]
    AlreadyResolved(String),
    #[error("{0}")]
    NotPossible(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::NotFound => ApiError::NotFound("manual decision"),
            DecisionError::AlreadyResolved(m) | DecisionError::Conflict(m) => ApiError::Conflict(m),
            DecisionError::NotPossible(m) => ApiError::Unprocessable(m),
            DecisionError::Store(s) => s.into(),
        }
    }
}

type Result<T> = std::result::Result<T, DecisionError>;

/// What the admin chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Merge { computer_id: i64 },
    KeepSeparate,
}

/// A resolved decision and the Computer its Agent is now linked to.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub decision: DecisionRow,
    pub computer_id: i64,
}

/// The Computers a decision offers, the proposed one first: the single candidate, then every
/// Computer the deciding rule pointed at (an ambiguous identifier names several).
pub fn candidates(d: &DecisionRow) -> Vec<i64> {
    let mut out: Vec<i64> = d.candidate_computer_id.into_iter().collect();
    let listed = d
        .evidence
        .get("candidate_computer_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64);
    for c in listed {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

pub async fn resolve(
    db: &Db,
    actor: &Actor,
    scope: &TenantScope,
    id: i64,
    action: Action,
) -> Result<Resolved> {
    let d = db
        .decision_by_id(id, scope)
        .await?
        .ok_or(DecisionError::NotFound)?;
    if d.resolved_at.is_some() {
        return Err(already_resolved(&d));
    }
    let agent = db
        .agent_by_id(d.agent_id)
        .await?
        .ok_or(DecisionError::NotFound)?;

    // Check everything before claiming the decision.
    let tenant_for_new = match action {
        Action::Merge { computer_id } => {
            let offered = candidates(&d);
            // A candidate outside the caller's tenants is not offered to them.
            let visible = db.computer_by_id(computer_id, scope).await?;
            match visible {
                Some(c) if offered.contains(&computer_id) => {
                    if c.retired_at.is_some() {
                        return Err(DecisionError::NotPossible(format!(
                            "computer {computer_id} ({}) is retired; it cannot take the agent",
                            c.name
                        )));
                    }
                }
                _ => {
                    let list: Vec<String> = offered.iter().map(i64::to_string).collect();
                    return Err(DecisionError::NotPossible(format!(
                        "computer {computer_id} is not a candidate of manual decision {id}; the candidates are: {}",
                        if list.is_empty() {
                            "none (keep it separate)".to_owned()
                        } else {
                            list.join(", ")
                        }
                    )));
                }
            }
            None
        }
        Action::KeepSeparate if agent.computer_id.is_some() => None,
        Action::KeepSeparate => {
            let client = agent.rmm_client_external_id.as_deref();
            let mapped = db.mapped_clients(agent.integration_id).await?;
            let tenant = mapped
                .iter()
                .find(|m| Some(m.external_id.as_str()) == client)
                .map(|m| m.tenant_id)
                .ok_or_else(|| {
                    DecisionError::Conflict(format!(
                        "agent {} ({}) is filed under an RMM client that is not mapped to a tenant any more; map the client, then decide",
                        agent.id, agent.hostname
                    ))
                })?;
            Some(tenant)
        }
    };

    let resolution = match action {
        Action::Merge { .. } => Resolution::Merge,
        Action::KeepSeparate => Resolution::KeepSeparate,
    };
    let t = now();
    let evidence = json!({
        "decision_id": id,
        "resolution": resolution.as_str(),
        "kind": d.kind,
        "reason": d.reason,
        "decision_evidence": d.evidence,
    });
    let link = |computer_id: i64, clone_of: Option<String>| AgentLink {
        agent_id: agent.id,
        computer_id,
        rule: Rule::Manual.as_str().into(),
        evidence: serde_json::value::to_raw_value(&evidence).expect("a JSON value serialises"),
        decided_by: actor.name.clone(),
        clone_of,
    };
    let effect = match (action, agent.computer_id) {
        // The agent already has a computer: the two computers are one machine.
        (Action::Merge { computer_id: into }, Some(from)) if from != into => {
            DecisionEffect::Merge { from, into }
        }
        (Action::Merge { computer_id }, _) => DecisionEffect::Link(link(computer_id, None)),
        (Action::KeepSeparate, Some(own)) => DecisionEffect::Keep { computer_id: own },
        (Action::KeepSeparate, None) => {
            // Kept apart from a live twin with the same hardware ids: flag it as a clone, as
            // the sync does for the clones it separates itself.
            let clone_of = d
                .evidence
                .get("clone_of")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .map(|a| Value::Array(a.clone()).to_string());
            DecisionEffect::CreateAndLink(
                NewComputer {
                    tenant_id: tenant_for_new.expect("checked above"),
                    name: agent.hostname.clone(),
                    serial: agent.serial.clone(),
                    smbios_uuid: agent.smbios_uuid.clone(),
                    os: agent.os.clone(),
                    last_contact_at: agent.last_contact_at,
                },
                link(0, clone_of),
            )
        }
    };
    // Claims the decision and does what it says, with its audit entry, in one transaction: a
    // second resolver gets a conflict and changes nothing.
    let (decision, computer_id) = db
        .resolve_decision(id, resolution, &actor.name, t, &effect, |computer_id| {
            audit::entry(
                actor,
                "decision.resolve",
                Some(("manual_decision", id.to_string())),
                json!({
                    "resolution": resolution.as_str(),
                    "agent_id": agent.id,
                    "computer_id": computer_id,
                    "kind": d.kind,
                }),
            )
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict { what } => DecisionError::AlreadyResolved(what),
            other => other.into(),
        })?;
    Ok(Resolved {
        decision,
        computer_id,
    })
}

fn already_resolved(d: &DecisionRow) -> DecisionError {
    DecisionError::AlreadyResolved(format!(
        "manual decision {} was already resolved ({}) by {}",
        d.id,
        d.resolution.map(|r| r.as_str()).unwrap_or("?"),
        d.resolved_by.as_deref().unwrap_or("?")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmmbridge_core::Timestamp;

    fn decision(candidate: Option<i64>, evidence: Value) -> DecisionRow {
        DecisionRow {
            id: 1,
            agent_id: 2,
            agent_hostname: "WS".into(),
            integration_id: 3,
            agent_computer_id: None,
            candidate_computer_id: candidate,
            candidate_computer_name: None,
            tenant_id: None,
            kind: "ambiguous".into(),
            reason: String::new(),
            evidence,
            created_at: Timestamp(0),
            resolved_at: None,
            resolved_by: None,
            resolution: None,
        }
    }

    #[test]
    fn candidates_are_the_proposed_computer_then_the_rules_list() {
        assert_eq!(
            candidates(&decision(
                Some(7),
                json!({"candidate_computer_ids": [5, 7, 9]})
            )),
            vec![7, 5, 9]
        );
        assert_eq!(
            candidates(&decision(None, json!({"candidate_computer_ids": [4, 8]}))),
            vec![4, 8]
        );
        assert_eq!(candidates(&decision(None, json!({}))), Vec::<i64>::new());
    }
}
