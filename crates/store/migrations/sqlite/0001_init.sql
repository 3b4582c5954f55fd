-- rmmbridge schema (SQLite). Timestamps are Unix milliseconds. Keep in step with ../postgres/0001_init.sql.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'technician', 'viewer')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login_at INTEGER
);

-- A user with no rows here sees every tenant.
CREATE TABLE user_tenants (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, tenant_id)
);

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at   INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    actor_user_id INTEGER,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    target_kind   TEXT,
    target_id     TEXT,
    details       TEXT NOT NULL,
    ip            TEXT
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE integrations (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('ncentral', 'ninjaone')),
    name           TEXT NOT NULL UNIQUE,
    settings       TEXT NOT NULL,
    options        TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'new',
    status_message TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- Values are AEAD-sealed by the server (`v1:<key id>:<base64>`), bound to (integration, field).
CREATE TABLE integration_secrets (
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    field          TEXT NOT NULL,
    sealed         TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (integration_id, field)
);

-- A client as one RMM sees it: N-central customer or site, NinjaOne organization or location.
CREATE TABLE rmm_clients (
    id                 INTEGER PRIMARY KEY,
    integration_id     INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    external_id        TEXT NOT NULL,
    parent_external_id TEXT,
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    first_seen_at      INTEGER NOT NULL,
    last_seen_at       INTEGER NOT NULL,
    vanished_at        INTEGER,
    UNIQUE (integration_id, external_id)
);

CREATE TABLE client_links (
    rmm_client_id INTEGER PRIMARY KEY REFERENCES rmm_clients (id) ON DELETE CASCADE,
    state         TEXT NOT NULL CHECK (state IN ('unmatched', 'matched', 'create', 'excluded')),
    tenant_id     INTEGER REFERENCES tenants (id),
    provenance    TEXT CHECK (provenance IN ('auto', 'manual')),
    decided_by    TEXT,
    decided_at    INTEGER,
    reason        TEXT,
    applied_at    INTEGER
);
CREATE INDEX client_links_tenant ON client_links (tenant_id);

CREATE TABLE computers (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    serial      TEXT,
    smbios_uuid TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
CREATE INDEX computers_tenant_name ON computers (tenant_id, name);
CREATE INDEX computers_name ON computers (name);
CREATE INDEX computers_serial ON computers (serial);

-- One device record as one RMM reports it.
CREATE TABLE agents (
    id              INTEGER PRIMARY KEY,
    integration_id  INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    external_id     TEXT NOT NULL,
    rmm_client_id   INTEGER REFERENCES rmm_clients (id),
    computer_id     INTEGER REFERENCES computers (id),
    hostname        TEXT NOT NULL,
    serial          TEXT,
    smbios_uuid     TEXT,
    macs            TEXT NOT NULL DEFAULT '[]',
    os              TEXT,
    device_class    TEXT,
    last_contact_at INTEGER,
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'missing', 'retired')),
    missing_since   INTEGER,
    fingerprint     TEXT NOT NULL,
    first_seen_at   INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (integration_id, external_id)
);
CREATE INDEX agents_computer ON agents (computer_id);
CREATE INDEX agents_serial ON agents (serial);
CREATE INDEX agents_smbios_uuid ON agents (smbios_uuid);

-- Why an agent is linked to a computer: the rule that decided and the facts it used.
CREATE TABLE identification_evidence (
    id          INTEGER PRIMARY KEY,
    agent_id    INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    computer_id INTEGER NOT NULL REFERENCES computers (id) ON DELETE CASCADE,
    rule        TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    decided_by  TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX identification_evidence_agent ON identification_evidence (agent_id, id);

CREATE TABLE manual_decisions (
    id                    INTEGER PRIMARY KEY,
    agent_id              INTEGER NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    candidate_computer_id INTEGER REFERENCES computers (id) ON DELETE SET NULL,
    kind                  TEXT NOT NULL,
    reason                TEXT NOT NULL,
    evidence              TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    resolved_at           INTEGER,
    resolved_by           TEXT,
    resolution            TEXT
);
CREATE INDEX manual_decisions_open ON manual_decisions (resolved_at, id);

CREATE TABLE sync_runs (
    id             INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'abandoned')),
    stage          TEXT NOT NULL,
    counts         TEXT NOT NULL DEFAULT '{}',
    error          TEXT,
    triggered_by   TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    heartbeat_at   INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX sync_runs_integration ON sync_runs (integration_id, id);
-- At most one running sync per integration, enforced by the database.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (integration_id) WHERE state = 'running';

CREATE TABLE script_runs (
    id             INTEGER PRIMARY KEY,
    computer_id    INTEGER NOT NULL REFERENCES computers (id),
    agent_id       INTEGER NOT NULL REFERENCES agents (id),
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    script         TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    state          TEXT NOT NULL,
    external_ref   TEXT,
    exit_code      INTEGER,
    output         TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX script_runs_computer ON script_runs (computer_id, id);
