//! What a connector reports, in the hub's words, whichever RMM it came from.
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Whether an RMM client is a company (N-central customer, NinjaOne organization) or one of its
/// sites (N-central site, NinjaOne location).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RmmClientKind {
    Company,
    Site,
}

/// A client as one RMM sees it. Its key is the external id within the integration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmmClient {
    pub external_id: String,
    pub kind: RmmClientKind,
    /// The company of a site.
    pub parent_external_id: Option<String>,
    pub name: String,
}

/// One device record as one RMM reports it: the raw facts identification works from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmmDevice {
    pub external_id: String,
    /// The company the device belongs to.
    pub client_external_id: String,
    /// Its site or location, when the RMM has one.
    pub site_external_id: Option<String>,
    pub hostname: String,
    pub serial: Option<String>,
    pub smbios_uuid: Option<String>,
    /// As the RMM printed them; normalisation is identification's job.
    pub macs: Vec<String>,
    pub os: Option<String>,
    pub device_class: Option<String>,
    pub last_contact: Option<Timestamp>,
    pub online: Option<bool>,
}

/// A trimmed value, or `None` for empty and the placeholders RMMs use for "no value".
pub fn present(value: Option<&str>) -> Option<String> {
    let v = value?.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("null") || v == "-"
    {
        None
    } else {
        Some(v.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_absent_values() {
        assert_eq!(present(Some(" ABC123 ")).as_deref(), Some("ABC123"));
        for empty in [
            None,
            Some(""),
            Some("None"),
            Some("  "),
            Some("-"),
            Some("null"),
        ] {
            assert_eq!(present(empty), None, "{empty:?}");
        }
    }
}
