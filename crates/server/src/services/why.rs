//! "Why": stored Identification rules and evidence turned into sentences a technician reads.
//! Pure: the caller hands in what was stored and how to name integrations.
use rmmbridge_core::identify::{Evidence, normalise_mac, normalise_serial, normalise_uuid};
use serde_json::Value;
use std::collections::BTreeSet;

/// One Agent of a Computer, as the computer-level sentence compares them.
#[derive(Clone, Debug)]
pub struct AgentIds<'a> {
    pub integration_name: &'a str,
    pub hostname: &'a str,
    pub serial: Option<&'a str>,
    pub smbios_uuid: Option<&'a str>,
    pub macs: &'a [String],
}

/// Why one Agent is linked to its Computer: the rule's sentence, from the stored rule, evidence
/// and decider. `integration` names an integration id ("N-central"); `None` for unknown ones.
pub fn link_sentence(
    rule: &str,
    evidence: &Value,
    decided_by: &str,
    integration: &dyn Fn(i64) -> Option<String>,
) -> String {
    let name = |id: i64| integration(id).unwrap_or_else(|| format!("integration {id}"));
    let by = if decided_by == "sync" {
        "the sync".to_owned()
    } else {
        decided_by.to_owned()
    };
    match rule {
        "manual" => {
            let id = evidence.get("decision_id").and_then(Value::as_i64);
            let what = match evidence.get("resolution").and_then(Value::as_str) {
                Some("merge") => "merged it into this computer",
                Some("keep_separate") => "kept it as a computer of its own",
                _ => "decided it",
            };
            let decision = id
                .map(|i| format!(" resolving ManualDecision {i}"))
                .unwrap_or_default();
            let reason = evidence
                .get("reason")
                .and_then(Value::as_str)
                .map(|r| format!(" (the sync asked: {r})"))
                .unwrap_or_default();
            format!("{by} {what}{decision}{reason}")
        }
        "manual_merge" => {
            let from = evidence.get("merged_from").and_then(Value::as_i64);
            match from {
                Some(f) => format!("Moved here when {by} merged computer {f} into this one"),
                None => format!("Moved here by a merge {by} made"),
            }
        }
        _ => {
            let parsed: Evidence = serde_json::from_value(evidence.clone()).unwrap_or_default();
            let known_rule = matches!(
                rule,
                "smbios_uuid" | "serial" | "mac" | "hostname" | "new" | "same_agent"
            );
            let mut s = if known_rule {
                parsed.explain_with(name)
            } else {
                // A rule this version does not know: show what was stored.
                evidence
                    .get("explanation")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("Rule {rule}"))
            };
            if evidence.get("reinstall").and_then(Value::as_bool) == Some(true) {
                let old = parsed
                    .matched_agent_id
                    .map(|a| format!("agent #{a}"))
                    .unwrap_or_else(|| "an agent".into());
                s.push_str(&format!(
                    "; a reinstall: it replaces {old}, which went missing in the same integration"
                ));
            }
            format!("{s} (decided by {by})")
        }
    }
}

/// Why a Computer's Agents are one machine: the hardware ids they share and who reports them,
/// e.g. "Same SMBIOS UUID 4C4C… and serial ABC reported by N-central and NinjaOne".
pub fn computer_sentence(agents: &[AgentIds<'_>]) -> String {
    let integrations: BTreeSet<&str> = agents.iter().map(|a| a.integration_name).collect();
    let reporters = join_and(&integrations.iter().copied().collect::<Vec<_>>());
    match agents.len() {
        0 => return "No agent reports this computer any more".into(),
        1 => {
            return format!(
                "Reported only by {reporters} (agent {:?}): no other agent shares its hardware ids",
                agents[0].hostname
            );
        }
        _ => {}
    }
    let shared_one = |values: Vec<Option<String>>| -> Option<String> {
        let mut all = values.into_iter();
        let first = all.next()??;
        all.all(|v| v.as_deref() == Some(first.as_str()))
            .then_some(first)
    };
    let uuid = shared_one(
        agents
            .iter()
            .map(|a| a.smbios_uuid.and_then(normalise_uuid))
            .collect(),
    );
    let serial = shared_one(
        agents
            .iter()
            .map(|a| a.serial.and_then(normalise_serial))
            .collect(),
    );
    let mut macs: Option<BTreeSet<String>> = None;
    for a in agents {
        let these: BTreeSet<String> = a.macs.iter().filter_map(|m| normalise_mac(m)).collect();
        macs = Some(match macs {
            None => these,
            Some(m) => m.intersection(&these).cloned().collect(),
        });
    }
    let macs: Vec<String> = macs.unwrap_or_default().into_iter().collect();
    let mut parts = Vec::new();
    if let Some(u) = uuid {
        parts.push(format!("SMBIOS UUID {u}"));
    }
    if let Some(s) = serial {
        parts.push(format!("serial {s}"));
    }
    match macs.len() {
        0 => {}
        1 => parts.push(format!("MAC address {}", macs[0])),
        _ => parts.push(format!("MAC addresses {}", macs.join(", "))),
    }
    let who = if integrations.len() == 1 {
        format!("{} agents of {reporters}", agents.len())
    } else {
        reporters
    };
    if parts.is_empty() {
        format!(
            "{} agents reported by {who} share no hardware id: they were linked by an admin's decision or by a rule shown on each agent",
            agents.len()
        )
    } else {
        format!("Same {} reported by {who}", join_and(&parts))
    }
}

fn join_and<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(id: i64) -> Option<String> {
        match id {
            1 => Some("N-central".into()),
            2 => Some("NinjaOne".into()),
            _ => None,
        }
    }

    const UUID: &str = "4C4C4544-0042-3510-8052-B4C04F564433";

    #[test]
    fn shared_uuid_and_serial_name_both_rmms() {
        let macs_a = vec!["00:1A:2B:3C:4D:5E".to_owned()];
        let macs_b = vec![
            "00-1a-2b-3c-4d-5e".to_owned(),
            "10:20:30:40:50:60".to_owned(),
        ];
        let agents = [
            AgentIds {
                integration_name: "N-central",
                hostname: "WS-01",
                serial: Some("ABC123"),
                smbios_uuid: Some(UUID),
                macs: &macs_a,
            },
            AgentIds {
                integration_name: "NinjaOne",
                hostname: "ws-01",
                serial: Some("abc123"),
                smbios_uuid: Some(&UUID.to_lowercase()),
                macs: &macs_b,
            },
        ];
        let s = computer_sentence(&agents);
        let uuid = normalise_uuid(UUID).unwrap();
        let serial = normalise_serial("ABC123").unwrap();
        let mac = normalise_mac("00:1A:2B:3C:4D:5E").unwrap();
        assert_eq!(
            s,
            format!(
                "Same SMBIOS UUID {uuid}, serial {serial} and MAC address {mac} reported by N-central and NinjaOne"
            )
        );
    }

    #[test]
    fn junk_and_differing_ids_are_not_claimed_as_shared() {
        let none: Vec<String> = Vec::new();
        let agents = [
            AgentIds {
                integration_name: "N-central",
                hostname: "A",
                serial: Some("To Be Filled By O.E.M."),
                smbios_uuid: Some("00000000-0000-0000-0000-000000000000"),
                macs: &none,
            },
            AgentIds {
                integration_name: "NinjaOne",
                hostname: "A",
                serial: Some("To Be Filled By O.E.M."),
                smbios_uuid: Some("00000000-0000-0000-0000-000000000000"),
                macs: &none,
            },
        ];
        assert_eq!(
            computer_sentence(&agents),
            "2 agents reported by N-central and NinjaOne share no hardware id: they were linked by an admin's decision or by a rule shown on each agent"
        );
        assert_eq!(
            computer_sentence(&agents[..1]),
            "Reported only by N-central (agent \"A\"): no other agent shares its hardware ids"
        );
    }

    #[test]
    fn stored_rule_evidence_reads_as_a_sentence_with_integration_names() {
        // What the sync stores for a UUID link (core Evidence plus its own keys).
        let ev = json!({
            "rule": "smbios_uuid", "value": "4c4c4544-0042", "hostname_a": "WS-01",
            "hostname_b": "ws-01", "matched_agent_id": 7, "integration_id": 1,
            "candidate_computer_ids": [3], "reinstall": false, "explanation": "ignored"
        });
        assert_eq!(
            link_sentence("smbios_uuid", &ev, "sync", &names),
            "Same SMBIOS UUID 4c4c4544-0042 as agent #7 of N-central (decided by the sync)"
        );
        let ev = json!({
            "rule": "serial", "value": "ABC", "hostname_a": "WS-01", "hostname_b": "WS-01",
            "matched_agent_id": 9, "integration_id": 5, "reinstall": true
        });
        assert_eq!(
            link_sentence("serial", &ev, "sync", &names),
            "Same serial number ABC as agent #9 of integration 5, hostnames \"WS-01\" and \"WS-01\" agree; \
             a reinstall: it replaces agent #9, which went missing in the same integration (decided by the sync)"
        );
    }

    #[test]
    fn admin_decisions_and_merges_name_the_admin() {
        let ev = json!({"decision_id": 4, "resolution": "keep_separate", "reason": "twin"});
        assert_eq!(
            link_sentence("manual", &ev, "alice", &names),
            "alice kept it as a computer of its own resolving ManualDecision 4 (the sync asked: twin)"
        );
        let ev = json!({"decision_id": 5, "resolution": "merge"});
        assert_eq!(
            link_sentence("manual", &ev, "bob", &names),
            "bob merged it into this computer resolving ManualDecision 5"
        );
        let ev = json!({"merged_from": 12, "merged_into": 3});
        assert_eq!(
            link_sentence("manual_merge", &ev, "bob", &names),
            "Moved here when bob merged computer 12 into this one"
        );
        assert_eq!(
            link_sentence("future_rule", &json!({"explanation": "x"}), "sync", &names),
            "x (decided by the sync)"
        );
    }
}
