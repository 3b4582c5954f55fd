//! The device plan of a sync run, in pure code: what changed between a stored Agent and the device
//! its RMM reports now (field by field), and where an Agent is in its lifecycle
//! (active → missing → grace period → retired, identity kept for rediscovery).
use crate::Timestamp;
use crate::rmm::RmmDevice;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Last contact moves on every check-in; writing it each sync would make a no-change resync rewrite
/// every row. It is stored again only once it has moved by more than this.
pub const LAST_CONTACT_RESOLUTION_MS: i64 = 60 * 60 * 1000;

/// The facts of one Agent that a sync compares and stores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFacts {
    pub hostname: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    pub macs: Vec<String>,
    pub os: Option<String>,
    pub device_class: Option<String>,
    /// The RmmClient the device is filed under (its site when sites are clients of their own).
    pub client_external_id: Option<String>,
    pub last_contact: Option<Timestamp>,
}

impl AgentFacts {
    /// The facts of a reported device, filed under `client` (see [`filed_under`]).
    pub fn from_device(d: &RmmDevice, client: Option<String>) -> AgentFacts {
        let mut macs = d.macs.clone();
        macs.sort();
        macs.dedup();
        AgentFacts {
            hostname: d.hostname.trim().to_owned(),
            serial: d.serial.clone(),
            smbios_uuid: d.smbios_uuid.clone(),
            macs,
            os: d.os.clone(),
            device_class: d.device_class.clone(),
            client_external_id: client,
            last_contact: d.last_contact,
        }
    }

    /// A short stable hash of the facts that matter (not last contact), stored with the Agent so a
    /// change is visible without comparing every column.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            Some(self.hostname.as_str()),
            self.serial.as_deref(),
            self.smbios_uuid.as_deref(),
            self.os.as_deref(),
            self.device_class.as_deref(),
            self.client_external_id.as_deref(),
        ] {
            // A tag per field keeps `None` apart from `Some("")`.
            match part {
                Some(v) => {
                    h.update([1]);
                    h.update(v.as_bytes());
                }
                None => h.update([0]),
            }
            h.update([0xff]);
        }
        for m in &self.macs {
            h.update(m.as_bytes());
            h.update([0xfe]);
        }
        hex::encode(&h.finalize()[..8])
    }
}

/// Which RmmClient a device is filed under: its site when sites are clients of their own and the
/// site is known, otherwise its company.
pub fn filed_under(
    d: &RmmDevice,
    sites_as_clients: bool,
    site_known: impl Fn(&str) -> bool,
) -> String {
    match &d.site_external_id {
        Some(site) if sites_as_clients && site_known(site) => site.clone(),
        _ => d.client_external_id.clone(),
    }
}

/// One changed field, as the plan shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn push(out: &mut Vec<FieldDiff>, field: &'static str, a: Option<&str>, b: Option<&str>) {
    if a != b {
        out.push(FieldDiff {
            field,
            from: a.map(str::to_owned),
            to: b.map(str::to_owned),
        });
    }
}

/// Field-level differences from `old` to `new`; empty when nothing worth writing changed. Last
/// contact counts only once it moved by more than [`LAST_CONTACT_RESOLUTION_MS`].
pub fn diff(old: &AgentFacts, new: &AgentFacts) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    push(
        &mut out,
        "hostname",
        Some(&old.hostname),
        Some(&new.hostname),
    );
    push(
        &mut out,
        "serial",
        old.serial.as_deref(),
        new.serial.as_deref(),
    );
    push(
        &mut out,
        "smbios_uuid",
        old.smbios_uuid.as_deref(),
        new.smbios_uuid.as_deref(),
    );
    if old.macs != new.macs {
        out.push(FieldDiff {
            field: "macs",
            from: Some(old.macs.join(", ")),
            to: Some(new.macs.join(", ")),
        });
    }
    push(&mut out, "os", old.os.as_deref(), new.os.as_deref());
    push(
        &mut out,
        "device_class",
        old.device_class.as_deref(),
        new.device_class.as_deref(),
    );
    push(
        &mut out,
        "client",
        old.client_external_id.as_deref(),
        new.client_external_id.as_deref(),
    );
    let contact_moved = match (old.last_contact, new.last_contact) {
        (Some(a), Some(b)) => (b.0 - a.0).abs() > LAST_CONTACT_RESOLUTION_MS,
        (a, b) => a != b,
    };
    if contact_moved {
        push(
            &mut out,
            "last_contact",
            old.last_contact.map(|t| t.0.to_string()).as_deref(),
            new.last_contact.map(|t| t.0.to_string()).as_deref(),
        );
    }
    out
}

/// What the plan does with one Agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    New,
    Changed,
    /// Filed under another RmmClient than before.
    Moved,
    /// Reported again after it had gone missing or was retired.
    Returned,
    Missing,
    Retired,
}

impl PlanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::New => "new",
            PlanAction::Changed => "changed",
            PlanAction::Moved => "moved",
            PlanAction::Returned => "returned",
            PlanAction::Missing => "missing",
            PlanAction::Retired => "retired",
        }
    }
}

/// An Agent's place in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Active,
    Missing { since: Timestamp },
    Retired,
}

/// The next lifecycle state of an Agent after a *complete* fetch (an aborted fetch proves nothing
/// about absence), and the plan action when it changes. `None`: nothing to write.
pub fn next_lifecycle(
    current: Lifecycle,
    reported: bool,
    now: Timestamp,
    grace_ms: i64,
) -> Option<(Lifecycle, PlanAction)> {
    match (current, reported) {
        (Lifecycle::Active, true) => None,
        (Lifecycle::Missing { .. } | Lifecycle::Retired, true) => {
            Some((Lifecycle::Active, PlanAction::Returned))
        }
        (Lifecycle::Active, false) => {
            Some((Lifecycle::Missing { since: now }, PlanAction::Missing))
        }
        (Lifecycle::Missing { since }, false) if now.0 - since.0 >= grace_ms => {
            Some((Lifecycle::Retired, PlanAction::Retired))
        }
        (Lifecycle::Missing { .. } | Lifecycle::Retired, false) => None,
    }
}

/// The plan counts a run reports, stage by stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunCounts {
    pub pages: u64,
    pub fetched: u64,
    /// Devices of excluded clients: not stored.
    pub skipped_excluded: u64,
    pub new: u64,
    pub changed: u64,
    pub moved: u64,
    pub unchanged: u64,
    pub returned: u64,
    pub missing: u64,
    pub retired: u64,
    pub identified_smbios_uuid: u64,
    pub identified_serial: u64,
    pub identified_mac: u64,
    pub reinstalls: u64,
    pub new_computers: u64,
    pub clones: u64,
    pub manual_decisions: u64,
    /// Agents of clients that are not mapped yet: stored, not identified.
    pub waiting_for_mapping: u64,
    pub computers_moved: u64,
    pub computers_updated: u64,
    pub computers_retired: u64,
    /// Every database row the run wrote (agents, computers, evidence, decisions, plan items).
    pub rows_written: u64,
    /// Wall time of each stage, in milliseconds.
    #[serde(default)]
    pub stage_ms: std::collections::BTreeMap<String, u64>,
}

impl RunCounts {
    /// Adds `ms` to a stage's (or step's) wall time.
    pub fn add_ms(&mut self, step: &str, ms: u64) {
        *self.stage_ms.entry(step.to_owned()).or_default() += ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> AgentFacts {
        AgentFacts {
            hostname: "PC-01".into(),
            serial: Some("ABC".into()),
            smbios_uuid: None,
            macs: vec!["00:11:22:33:44:55".into()],
            os: Some("Windows 11".into()),
            device_class: Some("workstation".into()),
            client_external_id: Some("7".into()),
            last_contact: Some(Timestamp(1_000_000)),
        }
    }

    #[test]
    fn identical_facts_have_no_diff_and_the_same_fingerprint() {
        assert!(diff(&facts(), &facts()).is_empty());
        assert_eq!(facts().fingerprint(), facts().fingerprint());
        assert_eq!(facts().fingerprint().len(), 16);
    }

    #[test]
    fn last_contact_only_counts_beyond_the_resolution() {
        let mut later = facts();
        later.last_contact = Some(Timestamp(1_000_000 + LAST_CONTACT_RESOLUTION_MS));
        assert!(diff(&facts(), &later).is_empty());
        assert_eq!(facts().fingerprint(), later.fingerprint());
        later.last_contact = Some(Timestamp(1_000_001 + LAST_CONTACT_RESOLUTION_MS));
        let d = diff(&facts(), &later);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "last_contact");
    }

    #[test]
    fn every_changed_field_is_named_with_old_and_new_values() {
        let mut new = facts();
        new.hostname = "PC-02".into();
        new.serial = None;
        new.client_external_id = Some("8".into());
        let d = diff(&facts(), &new);
        let fields: Vec<&str> = d.iter().map(|f| f.field).collect();
        assert_eq!(fields, ["hostname", "serial", "client"]);
        assert_eq!(d[0].from.as_deref(), Some("PC-01"));
        assert_eq!(d[0].to.as_deref(), Some("PC-02"));
        assert_eq!(d[1].to, None);
        assert_ne!(facts().fingerprint(), new.fingerprint());
    }

    #[test]
    fn an_absent_value_and_an_empty_one_fingerprint_differently() {
        let mut a = facts();
        a.serial = None;
        let mut b = facts();
        b.serial = Some(String::new());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn mac_order_from_the_rmm_does_not_matter() {
        let mut d = RmmDevice {
            external_id: "1".into(),
            client_external_id: "7".into(),
            site_external_id: Some("s1".into()),
            hostname: " PC-01 ".into(),
            serial: None,
            smbios_uuid: None,
            macs: vec!["b".into(), "a".into()],
            os: None,
            device_class: None,
            last_contact: None,
            online: None,
        };
        let a = AgentFacts::from_device(&d, None);
        d.macs.reverse();
        assert_eq!(a, AgentFacts::from_device(&d, None));
        assert_eq!(a.hostname, "PC-01");
    }

    #[test]
    fn devices_are_filed_under_their_site_only_when_sites_are_clients() {
        let d = RmmDevice {
            external_id: "1".into(),
            client_external_id: "7".into(),
            site_external_id: Some("s1".into()),
            hostname: "x".into(),
            serial: None,
            smbios_uuid: None,
            macs: vec![],
            os: None,
            device_class: None,
            last_contact: None,
            online: None,
        };
        assert_eq!(filed_under(&d, true, |_| true), "s1");
        assert_eq!(filed_under(&d, false, |_| true), "7");
        assert_eq!(filed_under(&d, true, |_| false), "7", "unknown site");
    }

    #[test]
    fn lifecycle_goes_missing_then_retired_after_the_grace_period_and_returns() {
        let grace = 10_000;
        let t0 = Timestamp(100_000);
        assert_eq!(next_lifecycle(Lifecycle::Active, true, t0, grace), None);
        let (missing, a) = next_lifecycle(Lifecycle::Active, false, t0, grace).unwrap();
        assert_eq!(a, PlanAction::Missing);
        assert_eq!(missing, Lifecycle::Missing { since: t0 });
        assert_eq!(
            next_lifecycle(missing, false, Timestamp(t0.0 + grace - 1), grace),
            None,
            "still within the grace period"
        );
        assert_eq!(
            next_lifecycle(missing, false, Timestamp(t0.0 + grace), grace),
            Some((Lifecycle::Retired, PlanAction::Retired))
        );
        assert_eq!(next_lifecycle(Lifecycle::Retired, false, t0, grace), None);
        for back in [missing, Lifecycle::Retired] {
            assert_eq!(
                next_lifecycle(back, true, t0, grace),
                Some((Lifecycle::Active, PlanAction::Returned))
            );
        }
    }
}
