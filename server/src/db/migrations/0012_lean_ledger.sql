-- The delivery ledger is written twice per (event, destination) on the hot path: fan-out inserts the row, the sender
-- records its outcome. A status change can never be a HOT update (status is indexed), so every index takes a new entry
-- on every write. Measured on 96,000 rows in 240-row inserts and 60-row outcome updates (test/bench/ledger-indexes.sql;
-- three runs of it on 2026-11-23): inserts 18-28% and updates 11-31% cheaper without the two below.
--
-- 1. The foreign key to destinations: a per-row check on every insert. Destinations are
--    only ever soft-deleted (deleted_at), and only fan-out inserts ledger rows, for destinations it has just read.
-- 2. deliveries_event_idx: the unique key, reordered to (event_id, destination_id), serves lookups by event (erasure,
--    a profile's deliveries) as well as fan-out's ON CONFLICT.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_destination_id_fkey;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_destination_key UNIQUE (event_id, destination_id);
ALTER TABLE deliveries DROP CONSTRAINT deliveries_destination_event_key;
DROP INDEX deliveries_event_idx;
