-- Ids handed out ahead of the insert (Db::reserve_ids), so that a sync can identify a new agent,
-- and create its computer, before either row is written, then write both in one statement each.
-- Every insert into agents and computers takes its ids from here; SQLite's own max(rowid) + 1
-- could hand a concurrent writer an id that is reserved but not written yet.
-- PostgreSQL uses the tables' identity sequences instead (../postgres/0006_id_blocks.sql).
CREATE TABLE id_blocks (
    name    TEXT PRIMARY KEY,
    next_id INTEGER NOT NULL
);
INSERT INTO id_blocks (name, next_id) SELECT 'agents', COALESCE(MAX(id), 0) + 1 FROM agents;
INSERT INTO id_blocks (name, next_id) SELECT 'computers', COALESCE(MAX(id), 0) + 1 FROM computers;
