-- Trigram indexes make the computer search (`LIKE '%text%'` on name or serial) answer from an index
-- at 100,000 computers instead of scanning the table. pg_trgm ships with PostgreSQL (contrib) and is a
-- trusted extension, so the database owner may create it; where it is not available or allowed, the
-- search still works, only slower, and this migration says so instead of failing the start.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS computers_search_name_trgm ON computers USING gin (search_name gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS computers_search_serial_trgm ON computers USING gin (search_serial gin_trgm_ops);
    ELSE
        RAISE NOTICE 'pg_trgm is not available: computer search will scan the computers table';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pg_trgm could not be created (insufficient privilege): computer search will scan the computers table';
END
$$;
