-- Nothing looks computers up by raw serial (search uses the trigram index on search_serial), and
-- an index on a random key costs every insert. Keep in step with ../sqlite/0005_drop_computer_serial_index.sql.
DROP INDEX IF EXISTS computers_serial;
