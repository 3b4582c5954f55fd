-- Indexes nothing reads any more, on random keys that cost every insert of a first import (each
-- ~0.8 s per 100,000 rows): computers by raw serial (search uses search_serial in computers_search),
-- and agents by serial and by SMBIOS UUID (client evidence now compares normalised ids in memory).
-- Keep in step with ../postgres/0005_drop_write_only_indexes.sql.
DROP INDEX IF EXISTS computers_serial;
DROP INDEX IF EXISTS agents_serial;
DROP INDEX IF EXISTS agents_smbios_uuid;
