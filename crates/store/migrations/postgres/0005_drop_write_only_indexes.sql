-- Indexes nothing reads any more, on random keys that cost every insert of a first import:
-- computers by raw serial (search uses the trigram index on search_serial), and agents by serial and
-- by SMBIOS UUID (client evidence now compares normalised ids in memory).
-- Keep in step with ../sqlite/0005_drop_write_only_indexes.sql.
DROP INDEX IF EXISTS computers_serial;
DROP INDEX IF EXISTS agents_serial;
DROP INDEX IF EXISTS agents_smbios_uuid;
