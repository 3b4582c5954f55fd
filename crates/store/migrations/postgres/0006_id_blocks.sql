-- Kept in step with ../sqlite/0006_id_blocks.sql, which adds a table of id blocks for reserving
-- agent and computer ids ahead of the insert. PostgreSQL reserves them from the identity
-- sequences of agents.id and computers.id (nextval), which concurrent inserts also use.
SELECT 1;
