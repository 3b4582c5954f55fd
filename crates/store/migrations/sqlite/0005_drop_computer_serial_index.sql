-- Nothing looks computers up by raw serial (search uses search_serial in computers_search), and an
-- index on a random key costs every insert: ~0.8 s per 100,000 computers on a first sync.
-- Keep in step with ../postgres/0005_drop_computer_serial_index.sql.
DROP INDEX IF EXISTS computers_serial;
