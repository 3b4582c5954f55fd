-- Credential health and NinjaOne consent. Timestamps are Unix milliseconds. Keep in step with ../postgres.

-- What the hub knows about an integration's credentials, kept across restarts (DESIGN.md §3 item 3).
CREATE TABLE integration_health (
    integration_id          INTEGER PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    last_success_at         INTEGER,
    last_failure_at         INTEGER,
    consecutive_failures    INTEGER NOT NULL DEFAULT 0,
    last_error              TEXT,
    last_token_at           INTEGER,
    access_expires_at       INTEGER,
    refresh_expires_at      INTEGER,
    refresh_token_issued_at INTEGER,
    consented_at            INTEGER,
    consented_by            TEXT,
    authentications         INTEGER NOT NULL DEFAULT 0,
    refreshes               INTEGER NOT NULL DEFAULT 0,
    rotations               INTEGER NOT NULL DEFAULT 0,
    updated_at              INTEGER NOT NULL
);

-- One "Provide consent" in flight: single use, bound to the user (and session) and the integration, expiring.
-- Only the SHA-256 of the state is stored; the PKCE verifier is sealed.
CREATE TABLE consent_states (
    state_hash      TEXT PRIMARY KEY,
    integration_id  INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash    TEXT,
    verifier_sealed TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX consent_states_integration ON consent_states (integration_id);
