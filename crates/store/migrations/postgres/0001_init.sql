-- rmmbridge schema (PostgreSQL). Timestamps are Unix milliseconds. Keep in step with ../sqlite/0001_init.sql.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'technician', 'viewer')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

-- A user with no rows here sees every tenant.
CREATE TABLE user_tenants (
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, tenant_id)
);

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor_user_id BIGINT,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    target_kind   TEXT,
    target_id     TEXT,
    details       JSONB NOT NULL,
    ip            TEXT
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE integrations (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('ncentral', 'ninjaone')),
    name           TEXT NOT NULL UNIQUE,
    settings       JSONB NOT NULL,
    options        JSONB NOT NULL,
    status         TEXT NOT NULL DEFAULT 'new',
    status_message TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Values are AEAD-sealed by the server (`v1:<key id>:<base64>`), bound to (integration, field).
CREATE TABLE integration_secrets (
    integration_id BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    field          TEXT NOT NULL,
    sealed         TEXT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (integration_id, field)
);

-- A client as one RMM sees it: N-central customer or site, NinjaOne organization or location.
CREATE TABLE rmm_clients (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id     BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    external_id        TEXT NOT NULL,
    parent_external_id TEXT,
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    first_seen_at      BIGINT NOT NULL,
    last_seen_at       BIGINT NOT NULL,
    vanished_at        BIGINT,
    UNIQUE (integration_id, external_id)
);

CREATE TABLE client_links (
    rmm_client_id BIGINT PRIMARY KEY REFERENCES rmm_clients (id) ON DELETE CASCADE,
    state         TEXT NOT NULL CHECK (state IN ('unmatched', 'matched', 'create', 'excluded')),
    tenant_id     BIGINT REFERENCES tenants (id),
    provenance    TEXT CHECK (provenance IN ('auto', 'manual')),
    decided_by    TEXT,
    decided_at    BIGINT,
    reason        TEXT,
    applied_at    BIGINT
);
CREATE INDEX client_links_tenant ON client_links (tenant_id);

CREATE TABLE computers (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    serial      TEXT,
    smbios_uuid TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE INDEX computers_tenant_name ON computers (tenant_id, name);
CREATE INDEX computers_name ON computers (name);
CREATE INDEX computers_serial ON computers (serial);

-- One device record as one RMM reports it.
CREATE TABLE agents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id  BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    external_id     TEXT NOT NULL,
    rmm_client_id   BIGINT REFERENCES rmm_clients (id),
    computer_id     BIGINT REFERENCES computers (id),
    hostname        TEXT NOT NULL,
    serial          TEXT,
    smbios_uuid     TEXT,
    macs            JSONB NOT NULL DEFAULT '[]',
    os              TEXT,
    device_class    TEXT,
    last_contact_at BIGINT,
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'missing', 'retired')),
    missing_since   BIGINT,
    fingerprint     TEXT NOT NULL,
    first_seen_at   BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (integration_id, external_id)
);
CREATE INDEX agents_computer ON agents (computer_id);
CREATE INDEX agents_serial ON agents (serial);
CREATE INDEX agents_smbios_uuid ON agents (smbios_uuid);

-- Why an agent is linked to a computer: the rule that decided and the facts it used.
CREATE TABLE identification_evidence (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    computer_id BIGINT NOT NULL REFERENCES computers (id) ON DELETE CASCADE,
    rule        TEXT NOT NULL,
    evidence    JSONB NOT NULL,
    decided_by  TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX identification_evidence_agent ON identification_evidence (agent_id, id);

CREATE TABLE manual_decisions (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id              BIGINT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    candidate_computer_id BIGINT REFERENCES computers (id) ON DELETE SET NULL,
    kind                  TEXT NOT NULL,
    reason                TEXT NOT NULL,
    evidence              JSONB NOT NULL,
    created_at            BIGINT NOT NULL,
    resolved_at           BIGINT,
    resolved_by           TEXT,
    resolution            TEXT
);
CREATE INDEX manual_decisions_open ON manual_decisions (resolved_at, id);

CREATE TABLE sync_runs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'abandoned')),
    stage          TEXT NOT NULL,
    counts         JSONB NOT NULL DEFAULT '{}',
    error          TEXT,
    triggered_by   TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    heartbeat_at   BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX sync_runs_integration ON sync_runs (integration_id, id);
-- At most one running sync per integration, enforced by the database.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (integration_id) WHERE state = 'running';

CREATE TABLE script_runs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    computer_id    BIGINT NOT NULL REFERENCES computers (id),
    agent_id       BIGINT NOT NULL REFERENCES agents (id),
    integration_id BIGINT NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    script         TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    state          TEXT NOT NULL,
    external_ref   TEXT,
    exit_code      BIGINT,
    output         TEXT,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX script_runs_computer ON script_runs (computer_id, id);
