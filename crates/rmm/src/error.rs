//! What can go wrong talking to an RMM, each with what to do about it.
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum RmmError {
    /// The settings cannot work (bad URL, bad fingerprint, missing secret).
    #[error("{0}")]
    Config(String),
    /// The RMM refused the credentials; `remedy` says what the admin should do.
    #[error("{message}; {remedy}")]
    Auth { message: String, remedy: String },
    /// NinjaOne consent is gone (revoked, expired or never given): someone must consent again.
    #[error(
        "NinjaOne needs consent again: {0}. Open the integration and choose \"Provide consent\""
    )]
    NeedsConsent(String),
    /// The RMM answered, but with an error.
    #[error("{what}: the RMM answered HTTP {status}: {message}")]
    Remote {
        what: String,
        status: u16,
        message: String,
    },
    /// The RMM answered something that is not what its API documents.
    #[error("{what} is malformed: {detail}")]
    Malformed { what: String, detail: String },
    #[error(
        "the RMM kept answering 429 (too many requests) after {attempts} attempts; lower the integration's concurrency or try later"
    )]
    RateLimited { attempts: u32 },
    #[error("cannot reach the RMM: {0}")]
    Transport(String),
    #[error("{0} is not supported by this connector yet")]
    NotSupported(&'static str),
}

impl RmmError {
    pub fn from_reqwest(e: &reqwest::Error) -> RmmError {
        // The chain holds the useful part (e.g. the certificate problem); reqwest's top line does not.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        if text.contains("certificate")
            || text.contains("UnknownIssuer")
            || text.contains("fingerprint")
        {
            return RmmError::Transport(format!(
                "{text} (for a self-signed or private-CA server, set its certificate's SHA-256 fingerprint or CA certificate on the integration)"
            ));
        }
        RmmError::Transport(text)
    }

    /// True when the failure is about credentials or consent rather than the network.
    pub fn is_auth(&self) -> bool {
        matches!(self, RmmError::Auth { .. } | RmmError::NeedsConsent(_))
    }
}

/// The outcome of one named verification check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// A stable id, e.g. `jwt_accepted`.
    pub id: &'static str,
    pub label: &'static str,
    pub status: CheckStatus,
    /// What was found.
    pub reason: String,
    /// What to do, when it failed.
    pub remedy: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// Works, but something optional is missing that limits what rmmbridge can do.
    Warn,
    /// Not run because an earlier check failed.
    Skipped,
}

impl Check {
    pub fn pass(id: &'static str, label: &'static str, reason: impl Into<String>) -> Check {
        Check {
            id,
            label,
            status: CheckStatus::Pass,
            reason: reason.into(),
            remedy: None,
        }
    }

    pub fn fail(
        id: &'static str,
        label: &'static str,
        reason: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check {
            id,
            label,
            status: CheckStatus::Fail,
            reason: reason.into(),
            remedy: Some(remedy.into()),
        }
    }

    pub fn warn(
        id: &'static str,
        label: &'static str,
        reason: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check {
            id,
            label,
            status: CheckStatus::Warn,
            reason: reason.into(),
            remedy: Some(remedy.into()),
        }
    }

    pub fn skipped(id: &'static str, label: &'static str) -> Check {
        Check {
            id,
            label,
            status: CheckStatus::Skipped,
            reason: "not checked: an earlier check failed".into(),
            remedy: None,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.status {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Warn => "WARN",
            CheckStatus::Skipped => "SKIP",
        };
        write!(f, "{mark}  {}: {}", self.label, self.reason)?;
        if let Some(r) = &self.remedy {
            write!(f, "\n      -> {r}")?;
        }
        Ok(())
    }
}
