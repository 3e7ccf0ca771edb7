-- A new month's partition of events takes the storage settings (autovacuum thresholds, docs/deploy/postgres.sql)
-- of the newest partition before it: a partitioned table keeps no such settings of its own, and a partition
-- created bare would vacuum at Postgres' defaults (20% dead rows) while the months before it vacuum at 2%.
CREATE OR REPLACE FUNCTION cairn_ensure_event_partition(month_start timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  lo timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  hi timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
  part text := 'events_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
  opts text[];
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
  SELECT c.reloptions INTO opts
  FROM event_partitions p
  JOIN pg_class c ON c.oid = to_regclass(quote_ident(p.name))
  WHERE c.reloptions IS NOT NULL
  ORDER BY p.upper_bound DESC
  LIMIT 1;
  IF opts IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %I SET (%s)', part, array_to_string(opts, ', '));
  END IF;
  INSERT INTO event_partitions (name, lower_bound, upper_bound) VALUES (part, lo, hi);
  RETURN true;
END
$$;
