//! Credential health per integration, and the NinjaOne consent states in flight.
use crate::{Db, StoreResult};
use rmmbridge_core::Timestamp;

/// What the hub knows about an integration's credentials. All times are absolute.
#[derive(Clone, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CredentialHealth {
    pub integration_id: i64,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    /// When a token was last bought or refreshed.
    pub last_token_at: Option<i64>,
    pub access_expires_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
    /// NinjaOne: when the refresh token now stored was issued (its age is what kills integrations).
    pub refresh_token_issued_at: Option<i64>,
    pub consented_at: Option<i64>,
    pub consented_by: Option<String>,
    pub authentications: i64,
    pub refreshes: i64,
    pub rotations: i64,
    pub updated_at: i64,
}

/// One outcome to fold into the health record.
#[derive(Clone, Debug, Default)]
pub struct HealthEvent {
    /// `Some(None)` records a success, `Some(Some(error))` a failure, `None` neither.
    pub outcome: Option<Option<String>>,
    pub token_at: Option<Timestamp>,
    pub access_expires_at: Option<Timestamp>,
    pub refresh_expires_at: Option<Timestamp>,
    pub refresh_token_issued_at: Option<Timestamp>,
    pub consent: Option<String>,
    pub authentications: i64,
    pub refreshes: i64,
    pub rotations: i64,
}

/// A consent state as stored: only the hash of the state travels back to the database.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConsentState {
    pub state_hash: String,
    pub integration_id: i64,
    pub user_id: i64,
    pub session_hash: Option<String>,
    pub verifier_sealed: String,
    pub redirect_uri: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

const HEALTH_COLUMNS: &str = "integration_id, last_success_at, last_failure_at, consecutive_failures, last_error,
    last_token_at, access_expires_at, refresh_expires_at, refresh_token_issued_at, consented_at, consented_by,
    authentications, refreshes, rotations, updated_at";

impl Db {
    pub async fn credential_health(&self, integration_id: i64) -> StoreResult<CredentialHealth> {
        let sql =
            format!("SELECT {HEALTH_COLUMNS} FROM integration_health WHERE integration_id = $1");
        let row = with_db!(self, |p| {
            sqlx::query_as::<_, CredentialHealth>(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(integration_id)
                .fetch_optional(p)
                .await?
        });
        Ok(row.unwrap_or(CredentialHealth {
            integration_id,
            ..Default::default()
        }))
    }

    /// Folds one event in with a single upsert, so concurrent events never lose counts.
    pub async fn record_health(
        &self,
        integration_id: i64,
        e: &HealthEvent,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (success, failure) = match &e.outcome {
            Some(None) => (Some(now.0), None),
            Some(Some(err)) => (None, Some(err.as_str())),
            None => (None, None),
        };
        let t = |v: Option<Timestamp>| v.map(|t| t.0);
        with_db!(self, |p| {
            sqlx::query(
                "INSERT INTO integration_health (integration_id, last_success_at, last_failure_at,
                    consecutive_failures, last_error, last_token_at, access_expires_at, refresh_expires_at,
                    refresh_token_issued_at, consented_at, consented_by, authentications, refreshes, rotations, updated_at)
                 VALUES ($1, $2, CASE WHEN $3 IS NULL THEN NULL ELSE $13 END, CASE WHEN $3 IS NULL THEN 0 ELSE 1 END, $3,
                    $4, $5, $6, $7, CASE WHEN $8 IS NULL THEN NULL ELSE $13 END, $8, $9, $10, $11, $13)
                 ON CONFLICT (integration_id) DO UPDATE SET
                    last_success_at = COALESCE(excluded.last_success_at, integration_health.last_success_at),
                    last_failure_at = COALESCE(excluded.last_failure_at, integration_health.last_failure_at),
                    consecutive_failures = CASE
                        WHEN $12 AND $3 IS NULL THEN 0
                        WHEN $3 IS NOT NULL THEN integration_health.consecutive_failures + 1
                        ELSE integration_health.consecutive_failures END,
                    last_error = CASE WHEN $12 AND $3 IS NULL THEN NULL
                        ELSE COALESCE(excluded.last_error, integration_health.last_error) END,
                    last_token_at = COALESCE(excluded.last_token_at, integration_health.last_token_at),
                    access_expires_at = COALESCE(excluded.access_expires_at, integration_health.access_expires_at),
                    refresh_expires_at = COALESCE(excluded.refresh_expires_at, integration_health.refresh_expires_at),
                    refresh_token_issued_at = COALESCE(excluded.refresh_token_issued_at, integration_health.refresh_token_issued_at),
                    consented_at = COALESCE(excluded.consented_at, integration_health.consented_at),
                    consented_by = COALESCE(excluded.consented_by, integration_health.consented_by),
                    authentications = integration_health.authentications + excluded.authentications,
                    refreshes = integration_health.refreshes + excluded.refreshes,
                    rotations = integration_health.rotations + excluded.rotations,
                    updated_at = excluded.updated_at",
            )
            .bind(integration_id)
            .bind(success)
            .bind(failure)
            .bind(t(e.token_at))
            .bind(t(e.access_expires_at))
            .bind(t(e.refresh_expires_at))
            .bind(t(e.refresh_token_issued_at))
            .bind(e.consent.as_deref())
            .bind(e.authentications)
            .bind(e.refreshes)
            .bind(e.rotations)
            .bind(e.outcome.is_some())
            .bind(now.0)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Forgets consent and token times, e.g. after the NinjaOne app settings changed.
    pub async fn reset_token_health(&self, integration_id: i64) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query(
                "UPDATE integration_health SET access_expires_at = NULL, refresh_expires_at = NULL,
                 refresh_token_issued_at = NULL, consented_at = NULL, consented_by = NULL WHERE integration_id = $1",
            )
            .bind(integration_id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn create_consent_state(&self, s: &ConsentState) -> StoreResult<()> {
        with_db!(self, |p| {
            sqlx::query(
                "INSERT INTO consent_states (state_hash, integration_id, user_id, session_hash, verifier_sealed,
                 redirect_uri, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&s.state_hash)
            .bind(s.integration_id)
            .bind(s.user_id)
            .bind(s.session_hash.as_deref())
            .bind(&s.verifier_sealed)
            .bind(&s.redirect_uri)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn consent_state(&self, state_hash: &str) -> StoreResult<Option<ConsentState>> {
        Ok(with_db!(self, |p| {
            sqlx::query_as::<_, ConsentState>(
                "SELECT state_hash, integration_id, user_id, session_hash, verifier_sealed, redirect_uri,
                 created_at, expires_at, used_at FROM consent_states WHERE state_hash = $1",
            )
            .bind(state_hash)
            .fetch_optional(p)
            .await?
        }))
    }

    /// Marks a state used; false when it was already used (a replayed or concurrent callback).
    pub async fn use_consent_state(&self, state_hash: &str, now: Timestamp) -> StoreResult<bool> {
        Ok(with_db!(self, |p| {
            sqlx::query(
                "UPDATE consent_states SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL",
            )
            .bind(now.0)
            .bind(state_hash)
            .execute(p)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Drops states that expired a day ago; used ones are kept that long so a reload can say "done".
    pub async fn purge_consent_states(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(self, |p| {
            sqlx::query("DELETE FROM consent_states WHERE expires_at < $1")
                .bind(now.0 - 86_400_000)
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
