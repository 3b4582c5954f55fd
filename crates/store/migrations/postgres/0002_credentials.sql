-- Credential health and NinjaOne consent. Timestamps are Unix milliseconds. PostgreSQL twin of ../sqlite/0002_credentials.sql.

-- What the hub knows about an integration's credentials, kept across restarts (DESIGN.md §3 item 3).
CREATE TABLE integration_health (
    integration_id          BIGINT PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    last_success_at         BIGINT,
    last_failure_at         BIGINT,
    consecutive_failures    BIGINT NOT NULL DEFAULT 0,
    last_error              TEXT,
    last_token_at           BIGINT,
    access_expires_at       BIGINT,
    refresh_expires_at      BIGINT,
    refresh_token_issued_at BIGINT,
    consented_at            BIGINT,
    consented_by            TEXT,
    authentications         BIGINT NOT NULL DEFAULT 0,
    refreshes               BIGINT NOT NULL DEFAULT 0,
    rotations               BIGINT NOT NULL DEFAULT 0,
    updated_at              BIGINT NOT NULL
);

-- One "Provide consent" in flight: single use, bound to the user (and session) and the integration, expiring.
-- Only the SHA-256 of the state is stored; the PKCE verifier is sealed.
CREATE TABLE consent_states (
    state_hash      TEXT PRIMARY KEY,
    integration_id  BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash    TEXT,
    verifier_sealed TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);
CREATE INDEX consent_states_integration ON consent_states (integration_id);
