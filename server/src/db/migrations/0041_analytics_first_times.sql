-- Stage 6: each person's first attached event per (type, event name), so that first-time retention reads its
-- cohort ("people whose first start event falls in the range") from a table of one row per person and name
-- instead of every entry of the events' profile index (server/src/pipeline/measure/rollup-first-times.ts keeps
-- it; server/src/api/analytics/retention-read.ts reads it). Per type too, because a retention start filter may
-- name types (`{ type: ['track', 'page'] }`); a filter with `where` conditions on properties still scans events.
-- event is '' for events without a name (identify, group, an unnamed page), as in analytics_hourly_counts.
-- One more row per person, type '' and event '' (no event has the type ''): the first attached event of any
-- kind, so that a start filter of any event (`{}`) reads one index range too.
--
-- Kept exact:
-- - identify upserts the first times of the events it attaches with least(), in the attaching transaction (so a
--   first-time cohort is never behind the events; a retried chunk and a late, out-of-order event land right);
-- - identify's repointEvents (every merge, split and unmerge) recomputes the rows of every profile whose events
--   it moves, and of the profiles receiving them, in the merge's transaction;
-- - an erasure deletes the rows of the erased profiles.
--
-- Data retention (server/src/jobs/retention*.ts drops whole event partitions): the rows keep the TRUE first
-- times, also when the events that set them are dropped, so "first time ever" still means ever (before this
-- table it meant "first since the horizon"). A recompute after a re-point therefore cannot read times before the
-- horizon (min(lower_bound) of event_partitions + 1 day, as the hourly recount's) from events: it takes, per key,
-- least(the kept events, the rows older than the horizon of the profile itself, and of every profile that sent
-- it events in this re-point). A merge is then exact (the survivor gets least of both). An undo after a drop
-- cannot tell which half did a dropped first event: both halves keep it (the split-off person counts as having
-- started before the horizon, as the merged person had); before any drop an undo is exact.
CREATE TABLE analytics_first_times (
  profile_id uuid NOT NULL,
  type text NOT NULL,
  event text NOT NULL,
  first_at timestamptz NOT NULL,
  PRIMARY KEY (profile_id, type, event)
);

-- "People whose first <event> falls in [from, to)": a range of this index per name, read index-only.
CREATE INDEX analytics_first_times_event_idx ON analytics_first_times (event, first_at) INCLUDE (profile_id, type);

INSERT INTO analytics_first_times (profile_id, type, event, first_at)
SELECT profile_id, coalesce(type, ''), coalesce(ev, ''), min(timestamp)
FROM (SELECT profile_id, type, coalesce(event, '') AS ev, timestamp FROM events WHERE profile_id IS NOT NULL) e
GROUP BY GROUPING SETS ((profile_id, type, ev), (profile_id));

-- Statistics now: the planner reads the cohort index by them, and autovacuum may not analyze a table this
-- size before the first retention query.
ANALYZE analytics_first_times;
