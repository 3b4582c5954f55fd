//! The body of an integration, parsed into types once, at the edge: a value of these types is valid.
use rmmbridge_core::IntegrationKind;
use rmmbridge_rmm::http::{HttpSettings, TlsTrust};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Secret fields an admin may set, per kind. `refresh_token` is written only by consent.
pub fn secret_fields(kind: IntegrationKind) -> &'static [&'static str] {
    match kind {
        IntegrationKind::Ncentral => &["jwt", "password", "mfa_secret"],
        IntegrationKind::Ninjaone => &["client_secret"],
    }
}

/// Stored by the hub itself, never accepted from a request.
pub const REFRESH_TOKEN: &str = "refresh_token";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFields {
    /// SHA-256 of a self-signed server certificate, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_sha256: Option<String>,
    /// A private CA in PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcentralFields {
    pub server_url: String,
    /// The API user's username, for the MFA / password check (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A repository script item that runs PowerShell (optional until script runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_item_id: Option<String>,
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    #[serde(flatten)]
    pub tls: TlsFields,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NinjaGrantKind {
    /// A Web app with consent: everything, script runs included.
    #[default]
    AuthorizationCode,
    /// An API Services app: reading only.
    ClientCredentials,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NinjaFields {
    /// `app`, `us2`, `eu`, `ca`, `oc`, `fed`, or the instance URL.
    pub instance: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_id: Option<String>,
    #[serde(default)]
    pub grant: NinjaGrantKind,
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    #[serde(flatten)]
    pub tls: TlsFields,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntegrationSettings {
    Ncentral(NcentralFields),
    Ninjaone(NinjaFields),
}

/// Options shared by both kinds (DESIGN.md §3 item 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationOptions {
    /// Import devices, not only clients.
    pub device_sync: bool,
    /// N-central sites and NinjaOne locations become clients of their own (Passportal's "Asset Creation").
    pub sites_as_clients: bool,
    /// Agents of this integration skip cross-integration matching (Passportal's "Ignore sync requirements").
    pub allow_duplicates: bool,
    /// Minutes between scheduled syncs; 0 turns the schedule off ("sync now" only).
    pub sync_interval_minutes: u32,
    /// Days an agent may stay missing before it is retired.
    pub missing_grace_days: u32,
}

impl Default for IntegrationOptions {
    fn default() -> Self {
        IntegrationOptions {
            device_sync: true,
            sites_as_clients: false,
            allow_duplicates: false,
            sync_interval_minutes: 60,
            missing_grace_days: 14,
        }
    }
}

fn clean(v: &mut Option<String>) {
    if let Some(s) = v {
        let t = s.trim();
        if t.is_empty() {
            *v = None;
        } else if t.len() != s.len() {
            *v = Some(t.to_owned());
        }
    }
}

fn check_tls(tls: &mut TlsFields) -> Result<(), String> {
    clean(&mut tls.pinned_sha256);
    clean(&mut tls.ca_pem);
    if let Some(pin) = &tls.pinned_sha256 {
        let hex: String = pin.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("settings.pinned_sha256 must be a SHA-256 fingerprint: 64 hex digits, colons allowed (e.g. from `openssl x509 -noout -fingerprint -sha256`)".into());
        }
    }
    if let Some(pem) = &tls.ca_pem
        && !pem.contains("-----BEGIN CERTIFICATE-----")
    {
        return Err(
            "settings.ca_pem must be a PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        );
    }
    Ok(())
}

fn check_in_flight(n: Option<usize>) -> Result<(), String> {
    match n {
        Some(n) if !(1..=50).contains(&n) => Err(format!(
            "settings.max_in_flight is {n}; it must be 1 to 50 (N-central allows 3 to 50 requests in flight per endpoint)"
        )),
        _ => Ok(()),
    }
}

impl IntegrationSettings {
    /// Parses and checks the `settings` object of a request for `kind`.
    pub fn parse(kind: IntegrationKind, v: &Value) -> Result<IntegrationSettings, String> {
        let what = |e: serde_json::Error| format!("settings: {e}");
        match kind {
            IntegrationKind::Ncentral => {
                let mut f: NcentralFields = serde_json::from_value(v.clone()).map_err(what)?;
                f.server_url = f.server_url.trim().trim_end_matches('/').to_owned();
                rmmbridge_rmm::http::parse_base_url(&f.server_url)
                    .map_err(|e| format!("settings.server_url: {e}"))?;
                clean(&mut f.username);
                clean(&mut f.script_item_id);
                check_tls(&mut f.tls)?;
                check_in_flight(f.max_in_flight)?;
                Ok(IntegrationSettings::Ncentral(f))
            }
            IntegrationKind::Ninjaone => {
                let mut f: NinjaFields = serde_json::from_value(v.clone()).map_err(what)?;
                f.instance = f.instance.trim().trim_end_matches('/').to_owned();
                rmmbridge_rmm::ninjaone::instance_url(&f.instance).map_err(|e| {
                    format!("settings.instance: {e} (use a region: app, us2, eu, ca, oc, fed, or your instance's https URL)")
                })?;
                f.client_id = f.client_id.trim().to_owned();
                if f.client_id.is_empty() {
                    return Err("settings.client_id is required: the client id of your NinjaOne API app (Administration > Apps > API > Client App IDs)".into());
                }
                clean(&mut f.script_id);
                if let Some(id) = &f.script_id
                    && !id.chars().all(|c| c.is_ascii_digit())
                {
                    return Err(format!(
                        "settings.script_id {id:?} must be the number at the end of the helper script's URL in NinjaOne"
                    ));
                }
                check_tls(&mut f.tls)?;
                check_in_flight(f.max_in_flight)?;
                Ok(IntegrationSettings::Ninjaone(f))
            }
        }
    }

    pub fn kind(&self) -> IntegrationKind {
        match self {
            IntegrationSettings::Ncentral(_) => IntegrationKind::Ncentral,
            IntegrationSettings::Ninjaone(_) => IntegrationKind::Ninjaone,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            IntegrationSettings::Ncentral(f) => serde_json::to_value(f),
            IntegrationSettings::Ninjaone(f) => serde_json::to_value(f),
        }
        .unwrap_or(Value::Null)
    }

    pub fn tls(&self) -> TlsTrust {
        let t = match self {
            IntegrationSettings::Ncentral(f) => &f.tls,
            IntegrationSettings::Ninjaone(f) => &f.tls,
        };
        TlsTrust {
            pinned_sha256: t.pinned_sha256.clone(),
            ca_pem: t.ca_pem.clone(),
        }
    }

    pub fn http(&self) -> HttpSettings {
        let n = match self {
            IntegrationSettings::Ncentral(f) => f.max_in_flight,
            IntegrationSettings::Ninjaone(f) => f.max_in_flight,
        };
        HttpSettings {
            max_in_flight: n.unwrap_or(4),
            ..Default::default()
        }
    }

    /// Whether a change from `self` to `new` invalidates a NinjaOne consent.
    pub fn consent_changes(&self, new: &IntegrationSettings) -> bool {
        match (self, new) {
            (IntegrationSettings::Ninjaone(a), IntegrationSettings::Ninjaone(b)) => {
                a.instance != b.instance || a.client_id != b.client_id || a.grant != b.grant
            }
            _ => false,
        }
    }
}

impl IntegrationOptions {
    pub fn parse(v: &Value) -> Result<IntegrationOptions, String> {
        let o: IntegrationOptions = if v.is_null() {
            IntegrationOptions::default()
        } else {
            serde_json::from_value(v.clone()).map_err(|e| format!("options: {e}"))?
        };
        if o.sync_interval_minutes != 0 && o.sync_interval_minutes < 5 {
            return Err(
                "options.sync_interval_minutes must be 0 (no schedule) or at least 5".into(),
            );
        }
        if o.missing_grace_days > 3650 {
            return Err("options.missing_grace_days must be at most 3650".into());
        }
        Ok(o)
    }

    /// Stored options, tolerant of older rows that lack newer keys.
    pub fn from_stored(v: &Value) -> IntegrationOptions {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_parsed_into_types_with_named_errors() {
        let s = IntegrationSettings::parse(
            IntegrationKind::Ncentral,
            &json!({"server_url": " https://nc.example.com/ ", "username": ""}),
        )
        .unwrap();
        let IntegrationSettings::Ncentral(f) = &s else {
            panic!()
        };
        assert_eq!(f.server_url, "https://nc.example.com");
        assert_eq!(f.username, None);

        let e = IntegrationSettings::parse(
            IntegrationKind::Ncentral,
            &json!({"server_url": "http://nc.example.com"}),
        )
        .unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = IntegrationSettings::parse(
            IntegrationKind::Ncentral,
            &json!({"server_url": "https://x", "sever": 1}),
        )
        .unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let e = IntegrationSettings::parse(
            IntegrationKind::Ncentral,
            &json!({"server_url": "https://x", "pinned_sha256": "abc"}),
        )
        .unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        let e = IntegrationSettings::parse(
            IntegrationKind::Ninjaone,
            &json!({"instance": "eu", "client_id": " "}),
        )
        .unwrap_err();
        assert!(e.contains("client_id is required"), "{e}");
        let e = IntegrationSettings::parse(
            IntegrationKind::Ninjaone,
            &json!({"instance": "eu", "client_id": "c", "script_id": "abc"}),
        )
        .unwrap_err();
        assert!(e.contains("number at the end"), "{e}");
    }

    #[test]
    fn a_new_client_id_or_instance_needs_new_consent() {
        let a = IntegrationSettings::parse(
            IntegrationKind::Ninjaone,
            &json!({"instance": "eu", "client_id": "c"}),
        )
        .unwrap();
        let b = IntegrationSettings::parse(
            IntegrationKind::Ninjaone,
            &json!({"instance": "eu", "client_id": "c", "script_id": "7"}),
        )
        .unwrap();
        let c = IntegrationSettings::parse(
            IntegrationKind::Ninjaone,
            &json!({"instance": "us2", "client_id": "c"}),
        )
        .unwrap();
        assert!(!a.consent_changes(&b));
        assert!(a.consent_changes(&c));
    }

    #[test]
    fn options_have_defaults_and_limits() {
        let o = IntegrationOptions::parse(&json!({"sites_as_clients": true})).unwrap();
        assert!(o.sites_as_clients && o.device_sync && o.sync_interval_minutes == 60);
        assert!(IntegrationOptions::parse(&json!({"sync_interval_minutes": 2})).is_err());
        assert!(IntegrationOptions::parse(&json!({"devices": true})).is_err());
    }
}
