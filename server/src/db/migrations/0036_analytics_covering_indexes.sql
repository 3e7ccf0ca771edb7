-- Stage 6: the raw-event analytics queries (funnels, paths, retention, active users) read the events of a
-- time range by name or by time alone, and need only a few narrow columns of each: the person, the
-- instant, the id (the order of a person's events), the name and the type. Read from the heap, every such
-- row costs a ~390-byte event row (its payload); measured on bench:analytics (10M events), a 5-step funnel
-- over 30 days read 1.1 GB of heap for 1M rows (docs/benchmarks.md, "Analytics: funnels and retention").
-- The two indexes these queries use carry those columns, so that they are read by index-only scans (the
-- events partitions' autovacuum settings keep the visibility map fresh: docs/deploy/postgres.sql):
--   events_event_time_idx    (event, timestamp) INCLUDE (profile_id)  -> INCLUDE (profile_id, id, type)
--   events_attached_time_idx (timestamp)                              -> INCLUDE (profile_id, id, event, type)
--   events_profile_idx       (profile_id, timestamp DESC, id DESC)   -> INCLUDE (event, type)
-- The last is the order of retention's one pass per person (packages/core/src/analytics/retention.ts,
-- retentionPassSql): read newest first per person, without a sort, whatever the start and return events.
-- Same keys, same partial predicate and same names as before: every query that used them still does.
-- Nothing to maintain: they are indexes of events, so they follow identity merges and their undoing
-- (events.profile_id rewritten), erasures and dropped partitions in the same transaction by construction.
-- Built on the parent (every partition); writers wait while it builds (~1 min per 10M events).
SET LOCAL maintenance_work_mem = '256MB';

DROP INDEX events_event_time_idx;
CREATE INDEX events_event_time_idx ON events (event, timestamp) INCLUDE (profile_id, id, type)
  WHERE profile_id IS NOT NULL;

DROP INDEX events_attached_time_idx;
CREATE INDEX events_attached_time_idx ON events (timestamp) INCLUDE (profile_id, id, event, type)
  WHERE profile_id IS NOT NULL;

DROP INDEX events_profile_idx;
CREATE INDEX events_profile_idx ON events (profile_id, timestamp DESC, id DESC) INCLUDE (event, type)
  WHERE profile_id IS NOT NULL;
