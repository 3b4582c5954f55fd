-- Kept in step with ../postgres/0004_search_trigrams.sql, which adds trigram indexes for the computer
-- search. SQLite has no trigram index in its default build; its search scans the (small) search columns.
SELECT 1;
