-- Optional, for a large database, before upgrading to the release with migration 0034 (events partitioned
-- by month): does the long part of that migration while the old servers keep taking events, so that the
-- upgrade's downtime is only the rest (docs/deploy.md, "Upgrading a large database"). Run it with psql
-- against the running version's database; each statement commits on its own, and none blocks ingest for
-- more than an instant:
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/deploy/prepare-event-partitions.sql
--
-- It builds what 0034 would build under its lock — event_keys (the dedup key of every stored event) and
-- the (id, received_at) key the table needs as a partition — and a trigger keeps event_keys complete for
-- every event stored from then on. 0034 finds them finished and skips building them; the resulting schema
-- is the same either way. Interrupted, it can simply be run again (it starts over); a database where it
-- never finished is migrated the ordinary way (0034 drops the unfinished pieces).
\set ON_ERROR_STOP on

-- Starting over: whatever a previous run left.
DROP TRIGGER IF EXISTS events_prepare_keys ON events;
DROP FUNCTION IF EXISTS cairn_prepare_event_key();
DROP TABLE IF EXISTS event_keys;
DROP INDEX CONCURRENTLY IF EXISTS events_legacy_pkey;

-- Declared as 0034's `CREATE TABLE AS` + primary key + NOT NULL leave it; the key comes after the copy.
CREATE TABLE event_keys (source_id text NOT NULL, message_id text NOT NULL, event_id bigint NOT NULL);

CREATE FUNCTION cairn_prepare_event_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO event_keys (source_id, message_id, event_id) VALUES (NEW.source_id, NEW.message_id, NEW.id);
  RETURN NULL;
END
$$;

-- From this transaction on, every stored event writes its key (a refused duplicate stores nothing and
-- fires nothing: the table's unique key still decides). CREATE TRIGGER waits for the writers in flight, so
-- every event with an id up to the one read here is already committed, and every later one fires the
-- trigger: the copy below takes exactly the former.
BEGIN;
CREATE TRIGGER events_prepare_keys AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION cairn_prepare_event_key();
SELECT coalesce(max(id), 0) AS copy_upto FROM events \gset
COMMIT;

-- The split holds only if no server holds ids drawn before the trigger: the sequence hands them out one by one.
DO $$
BEGIN
  IF (SELECT cache_size FROM pg_sequences WHERE sequencename = 'events_id_seq') <> 1 THEN
    RAISE EXCEPTION 'events_id_seq caches ids (CACHE > 1): run migration 0034 the ordinary way';
  END IF;
END
$$;

-- The keys of the events stored before the trigger, in batches of a million ids, each committed (a
-- transaction of hours would hold back vacuum everywhere).
SELECT set_config('cairn.copy_upto', :'copy_upto', false);
DO $$
DECLARE
  upto bigint := current_setting('cairn.copy_upto')::bigint;
  lo bigint := 0;
BEGIN
  WHILE lo < upto LOOP
    INSERT INTO event_keys (source_id, message_id, event_id)
    SELECT source_id, message_id, id FROM events WHERE id > lo AND id <= least(lo + 1000000, upto);
    lo := lo + 1000000;
    COMMIT;
  END LOOP;
END
$$;

-- The keys' primary key, built without blocking the trigger's inserts, then made the constraint (an
-- instant's exclusive lock on event_keys only). A duplicate here would mean the split above failed: it
-- stops the script, and 0034 then does the ordinary migration.
SET maintenance_work_mem = '256MB';
CREATE UNIQUE INDEX CONCURRENTLY event_keys_pkey ON event_keys (source_id, message_id);
ALTER TABLE event_keys ADD CONSTRAINT event_keys_pkey PRIMARY KEY USING INDEX event_keys_pkey;

-- The key events_legacy will have, built without blocking writers; 0034 finds it valid and keeps it.
CREATE UNIQUE INDEX CONCURRENTLY events_legacy_pkey ON events (id, received_at);
ANALYZE event_keys;
