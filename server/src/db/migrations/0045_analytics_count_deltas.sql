-- Stage 6: the hourly counts (0025) follow the events table by deltas written in the very statement that
-- changes it, instead of each measure job recounting every attached event of its (hour, type, event) keys.
-- The recount grew with the hour (~58 ms per 1,000-event batch late in a busy hour, docs/benchmarks.md
-- "Rollup upkeep against no upkeep at all") and existed only because a retried job must not count twice.
-- A delta row commits or rolls back with the change it counts, so every change is counted exactly once,
-- whichever path made it: ingest (unattached: nothing), identify's attach (+1), a merge's re-point (+1 and
-- -1: nothing), change events and imports inserted attached (+1), an erasure's DELETE (-1, frozen hours
-- included: the erased person's events leave the count, and nothing else does). Dropping an expired
-- partition fires no trigger, so hours before the retention horizon keep their counts as before.
--
-- Deltas are appended (no index, no conflicts: concurrent writers never wait on each other) and folded into
-- analytics_hourly_counts by the measure job (server/src/pipeline/measure/rollup.ts foldCountDeltas).
-- Readers add the pending deltas to the counts (packages/core's trends.ts), so a tile is exact at once.
CREATE TABLE analytics_count_deltas (
  hour timestamptz NOT NULL,
  type text NOT NULL,
  event text NOT NULL,
  n bigint NOT NULL
);

-- One function for the three statement triggers: each statement's rows, per key, as plus (new rows
-- attached) and minus (old rows attached). A statement's transition tables hold every partition's rows.
CREATE FUNCTION cairn_count_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO analytics_count_deltas (hour, type, event, n)
    SELECT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, coalesce(event, ''), count(*)
    FROM cairn_new_events
    WHERE profile_id IS NOT NULL
    GROUP BY 1, 2, 3;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO analytics_count_deltas (hour, type, event, n)
    SELECT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, coalesce(event, ''), -count(*)
    FROM cairn_old_events
    WHERE profile_id IS NOT NULL
    GROUP BY 1, 2, 3;
  ELSE
    INSERT INTO analytics_count_deltas (hour, type, event, n)
    SELECT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, coalesce(event, ''), sum(d)
    FROM (
      SELECT timestamp, type, event, 1 AS d FROM cairn_new_events WHERE profile_id IS NOT NULL
      UNION ALL
      SELECT timestamp, type, event, -1 FROM cairn_old_events WHERE profile_id IS NOT NULL
    ) x
    GROUP BY 1, 2, 3
    HAVING sum(d) <> 0;
  END IF;
  RETURN NULL;
END $$;

-- Writers wait from here to the commit: no change may fall between the triggers and the recount below.
LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER events_count_inserts AFTER INSERT ON events
  REFERENCING NEW TABLE AS cairn_new_events FOR EACH STATEMENT EXECUTE FUNCTION cairn_count_deltas();
CREATE TRIGGER events_count_updates AFTER UPDATE ON events
  REFERENCING OLD TABLE AS cairn_old_events NEW TABLE AS cairn_new_events
  FOR EACH STATEMENT EXECUTE FUNCTION cairn_count_deltas();
CREATE TRIGGER events_count_deletes AFTER DELETE ON events
  REFERENCING OLD TABLE AS cairn_old_events FOR EACH STATEMENT EXECUTE FUNCTION cairn_count_deltas();

-- Events attached before this migration whose measure job had not run yet would never be counted (the new
-- job folds deltas, it no longer recounts): the keys of events attached in the last day are recounted here,
-- from the retention horizon on (older hours are frozen: some of their events are in dropped partitions).
CREATE TEMP TABLE cairn_recount_keys ON COMMIT DROP AS
SELECT DISTINCT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour, type, coalesce(event, '') AS event
FROM events
WHERE profile_id IS NOT NULL AND processed_at >= now() - interval '1 day';

DELETE FROM cairn_recount_keys k
USING (
  SELECT min(lower_bound) + interval '1 day' AS horizon
  FROM event_partitions
  HAVING count(*) > 0 AND NOT bool_or(lower_bound IS NULL)
) h
WHERE k.hour < h.horizon;

DELETE FROM analytics_hourly_counts r
USING cairn_recount_keys k
WHERE r.hour = k.hour AND r.type = k.type AND r.event = k.event;

INSERT INTO analytics_hourly_counts (hour, type, event, n)
SELECT k.hour, k.type, k.event, c.n
FROM cairn_recount_keys k
CROSS JOIN LATERAL (
  SELECT count(*) AS n
  FROM events e
  WHERE e.profile_id IS NOT NULL
    AND e.type = k.type
    AND e.timestamp >= k.hour
    AND e.timestamp < k.hour + interval '1 hour'
    AND ((k.event <> '' AND e.event = k.event) OR (k.event = '' AND e.event IS NULL))
) c
WHERE c.n > 0;
