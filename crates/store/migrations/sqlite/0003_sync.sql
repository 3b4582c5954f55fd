-- Client mapping, agents, computers, decisions and sync runs (DESIGN.md §3 items 4-6). Unix ms timestamps.
-- Keep in step with ../postgres/0003_sync.sql.

-- What Finish last applied, next to what is pending, so a preview can compare them.
ALTER TABLE client_links ADD COLUMN applied_state TEXT CHECK (applied_state IN ('unmatched', 'matched', 'excluded'));
ALTER TABLE client_links ADD COLUMN applied_tenant_id INTEGER REFERENCES tenants (id);
ALTER TABLE client_links ADD COLUMN applied_by TEXT;
CREATE INDEX client_links_applied_tenant ON client_links (applied_tenant_id);

-- Computers: more facts, and lowercased copies of name and serial for case-insensitive search.
ALTER TABLE computers ADD COLUMN os TEXT;
ALTER TABLE computers ADD COLUMN last_contact_at INTEGER;
ALTER TABLE computers ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
ALTER TABLE computers ADD COLUMN search_serial TEXT NOT NULL DEFAULT '';
UPDATE computers SET search_name = lower(name), search_serial = lower(COALESCE(serial, ''));
DROP INDEX computers_name;
DROP INDEX computers_tenant_name;
-- Covering indexes for search: walked in name order, the filter on name/serial/tenant/retired is
-- evaluated on the index alone, and the walk stops at the page's LIMIT.
CREATE INDEX computers_search ON computers (search_name, search_serial, tenant_id, retired_at);
CREATE INDEX computers_tenant_search ON computers (tenant_id, search_name, search_serial, retired_at);

-- Agents: the clone flag (which hardware id is shared, as JSON text), and the client index.
ALTER TABLE agents ADD COLUMN clone_of TEXT;
CREATE INDEX agents_rmm_client ON agents (rmm_client_id);
CREATE INDEX identification_evidence_computer ON identification_evidence (computer_id);

-- At most one open decision per agent and kind: raising it again is a no-op.
CREATE UNIQUE INDEX manual_decisions_one_open ON manual_decisions (agent_id, kind) WHERE resolved_at IS NULL;
CREATE INDEX manual_decisions_candidate ON manual_decisions (candidate_computer_id);

-- The device plan a sync run computed and applied: one row per agent action, with field diffs.
CREATE TABLE sync_plan_items (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    agent_id    INTEGER REFERENCES agents (id) ON DELETE SET NULL,
    action      TEXT NOT NULL,
    diffs       TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX sync_plan_items_run ON sync_plan_items (run_id, action, id);
CREATE INDEX sync_plan_items_agent ON sync_plan_items (agent_id);
