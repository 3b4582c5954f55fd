//! The words of DESIGN.md §2 that every layer shares.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An instant as Unix milliseconds: stored as BIGINT in both databases so ordering is numeric, never textual.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0 + secs * 1000)
    }
    pub fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

/// What a user may do. Ordered: every role can do what the roles below it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Technician,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Technician, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Technician => "technician",
            Role::Viewer => "viewer",
        }
    }

    /// True when this role includes the permissions of `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Role {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "technician" => Ok(Role::Technician),
            "viewer" => Ok(Role::Viewer),
            _ => Err(ParseEnumError {
                what: "role",
                value: s.to_owned(),
                expected: "admin, technician, viewer",
            }),
        }
    }
}

/// The RMM platform an integration talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationKind {
    Ncentral,
    Ninjaone,
}

impl IntegrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationKind::Ncentral => "ncentral",
            IntegrationKind::Ninjaone => "ninjaone",
        }
    }
}

impl fmt::Display for IntegrationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationKind {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ncentral" => Ok(IntegrationKind::Ncentral),
            "ninjaone" => Ok(IntegrationKind::Ninjaone),
            _ => Err(ParseEnumError {
                what: "integration kind",
                value: s.to_owned(),
                expected: "ncentral, ninjaone",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin.allows(Role::Technician));
        assert!(Role::Technician.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Technician));
        assert!(!Role::Technician.allows(Role::Admin));
    }

    #[test]
    fn roles_and_kinds_round_trip_through_text() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert_eq!(" Admin ".parse::<Role>().unwrap(), Role::Admin);
        let err = "root".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("admin, technician, viewer"));
        assert_eq!(
            "NinjaOne".parse::<IntegrationKind>().unwrap(),
            IntegrationKind::Ninjaone
        );
    }
}
