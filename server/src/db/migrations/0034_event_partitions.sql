-- Events partitioned by the month they were received (UTC), so retention drops whole partitions and never
-- deletes rows from the hot table (docs/retention.md). A partitioned table's unique keys must include the
-- partition key, so the dedup key (source_id, message_id) moves to a table of its own, event_keys, which
-- a trigger on events claims row by row inside the inserting statement: a duplicate is refused as exactly
-- as by the unique key it replaces, across partitions and between concurrent writers (the second writer of
-- a key waits on the first's uncommitted key and then skips). Writers drop `ON CONFLICT (source_id,
-- message_id)`: a row the trigger refuses is simply not inserted, and not returned.
--
-- The table as it was becomes one partition, events_legacy, bounded above by the start of next month, so
-- that nothing is copied: its rows are scanned once (the bound's check, the keys) and its id index rebuilt
-- as (id, received_at). It is dropped as a whole once its newest month has expired.
--
-- Every column and index of the old table comes over, whatever earlier migrations added: the parent is
-- made LIKE it and its indexes are re-declared on the parent from their own definitions, so that ATTACH
-- finds them on events_legacy and does not build them again.
SET LOCAL maintenance_work_mem = '256MB';
-- Writers wait from here to the commit (readers until the rename below): an event stored while the keys
-- are copied would otherwise have none, and its duplicate would be accepted later.
LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;

-- 1. The dedup keys of every stored event, and the event each key admitted. On a large database the
-- operator may have built them beforehand, while the old servers ran (docs/deploy/prepare-event-partitions.sql):
-- finished (its primary key is made last), the table is complete and its trigger is no longer needed;
-- unfinished, it is dropped and built here.
DO $$
BEGIN
  IF to_regclass('event_keys') IS NOT NULL
    AND EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'event_keys_pkey' AND conrelid = to_regclass('event_keys'))
  THEN
    DROP TRIGGER events_prepare_keys ON events;
    DROP FUNCTION cairn_prepare_event_key();
  ELSE
    DROP TRIGGER IF EXISTS events_prepare_keys ON events;
    DROP FUNCTION IF EXISTS cairn_prepare_event_key();
    DROP TABLE IF EXISTS event_keys;
    CREATE TABLE event_keys AS
    SELECT source_id, message_id, id AS event_id
    FROM events;
    ALTER TABLE event_keys ADD CONSTRAINT event_keys_pkey PRIMARY KEY (source_id, message_id);
    ALTER TABLE event_keys ALTER COLUMN event_id SET NOT NULL;
  END IF;
END
$$;

-- 2. The partitions, and the bounds retention reads (pg_get_expr's text depends on the session's time zone).
CREATE TABLE event_partitions (
  name text PRIMARY KEY,
  -- NULL: unbounded below (events_legacy).
  lower_bound timestamptz,
  upper_bound timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
  seq text := pg_get_serial_sequence('events', 'id');
  next_id bigint;
  upper_bound timestamptz := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
  idx record;
BEGIN
  EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s', seq) INTO next_id;

  ALTER TABLE events RENAME TO events_legacy;
  ALTER TABLE events_legacy DROP CONSTRAINT events_source_message_key;
  -- Postgres 17 (PGlite) refuses a partition with an identity of its own; the parent's takes over.
  ALTER TABLE events_legacy ALTER COLUMN id DROP IDENTITY;

  CREATE TABLE events (
    LIKE events_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION
  ) PARTITION BY RANGE (received_at);
  EXECUTE format('ALTER TABLE events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH %s)', next_id);
  ALTER TABLE events ADD CONSTRAINT events_source_id_fkey FOREIGN KEY (source_id) REFERENCES sources (id);

  -- The id key: (id, received_at) on the parent, built once on events_legacy before its old key goes
  -- (unless the preparation built it already, and completely).
  IF NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('events_legacy_pkey') AND indisvalid) THEN
    DROP INDEX IF EXISTS events_legacy_pkey;
    CREATE UNIQUE INDEX events_legacy_pkey ON events_legacy (id, received_at);
  END IF;
  ALTER TABLE events_legacy DROP CONSTRAINT events_pkey;
  -- ATTACH takes a key of the partition for the parent's key only if it is a constraint too.
  ALTER TABLE events_legacy ADD CONSTRAINT events_legacy_pkey PRIMARY KEY USING INDEX events_legacy_pkey;
  ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id, received_at);

  -- Every other index, re-declared on the parent under its own name (the legacy one is renamed).
  FOR idx IN
    SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indrelid = 'events_legacy'::regclass
      AND i.relname <> 'events_legacy_pkey'
  LOOP
    EXECUTE format('ALTER INDEX %I RENAME TO %I', idx.name, left('legacy_' || idx.name, 63));
    EXECUTE regexp_replace(idx.def, ' ON (ONLY )?\S*events_legacy ', ' ON events ');
  END LOOP;

  EXECUTE format(
    'ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%L)', upper_bound);
  INSERT INTO event_partitions (name, lower_bound, upper_bound) VALUES ('events_legacy', NULL, upper_bound);
END
$$;

-- A row whose month has no partition yet (the maintenance job fell far behind) is kept here, never
-- refused; the job moves such rows into their month's partition when it creates it.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- 3. The dedup: claims the row's key, or refuses the row (NULL) when the key is taken.
CREATE FUNCTION cairn_claim_event_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO event_keys (source_id, message_id, event_id)
  VALUES (NEW.source_id, NEW.message_id, NEW.id)
  ON CONFLICT DO NOTHING;
  IF FOUND THEN
    RETURN NEW;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER events_dedup BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION cairn_claim_event_key();

-- 4. Creates the partition of the month `month_start` falls in (UTC) unless one exists; rows of that month
-- waiting in events_default move into it. Returns whether it created one.
CREATE FUNCTION cairn_ensure_event_partition(month_start timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  lo timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  hi timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
  part text := 'events_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
  -- Two workers ensuring one month at once: the second waits, then finds it.
  PERFORM pg_advisory_xact_lock(727746034);
  IF EXISTS (
    SELECT 1
    FROM event_partitions
    WHERE coalesce(lower_bound, '-infinity') < hi
      AND upper_bound > lo
  ) THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM events_default WHERE received_at >= lo AND received_at < hi) THEN
    -- Built apart and attached: rows moved through the parent would meet their own keys and be refused.
    EXECUTE format(
      'CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)',
      part);
    EXECUTE format(
      'WITH moved AS (DELETE FROM events_default WHERE received_at >= %L AND received_at < %L RETURNING *) '
      'INSERT INTO %I SELECT * FROM moved', lo, hi, part);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  ELSE
    EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
  END IF;
  INSERT INTO event_partitions (name, lower_bound, upper_bound) VALUES (part, lo, hi);
  RETURN true;
END
$$;

-- The next two months exist from the start; the maintenance job keeps them ahead (server/src/jobs/retention.ts).
SELECT cairn_ensure_event_partition(now() + interval '1 month');
SELECT cairn_ensure_event_partition(now() + interval '2 months');
