-- Settings of Cairn's own database (docs/deploy.md, "Postgres"). Server-wide ones (max_connections,
-- shared_buffers, synchronous_commit) belong in postgresql.conf; deploy.md says which and why.
-- Idempotent. Run it once the migrations have made the tables, and after every restore (restore.sh
-- does: a dump keeps the table settings below but not the database's own):
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f docs/deploy/postgres.sql

-- No Cairn transaction waits on anything but its own statements (plugin calls, HTTP requests and
-- queue waits all happen outside transactions), so a session idle inside one for a minute is a client
-- that lost its way: end it, releasing its locks and the dead rows vacuum cannot remove behind its
-- snapshot. Sessions opened after this take it; running servers at their next restart.
DO $$
BEGIN
  EXECUTE format(
    'ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
    current_database(),
    '1min'
  );
END
$$;

-- Tables Cairn rewrites as it works: stage 2 updates every event once (profile_id, processed_at),
-- profiles and their traits change with every identify and trait, the delivery ledger on every
-- attempt, and pg-boss's rows (every queue's jobs are in pgboss.job_common) are created, updated two or
-- three times and deleted. Autovacuum's default waits for 20% of a table to be dead rows: 20 million
-- on a table of 100 million events. These vacuum at 2% (the queue table, small and hot, at 5% with no
-- cost delay), and analyze at 2% so the planner sees the newest rows.
-- events is partitioned by month (migration 0034): the settings go on each partition, and each new month's
-- partition copies them from the newest one before it (migration 0035).
DO $$
DECLARE
  part regclass;
BEGIN
  FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'events'::regclass LOOP
    -- events are mostly inserted: vacuuming after 5% new rows keeps the visibility map fresh.
    EXECUTE format(
      'ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, '
      'autovacuum_vacuum_insert_scale_factor = 0.05)',
      part);
  END LOOP;
END
$$;
ALTER TABLE profiles SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE profile_traits SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE pgboss.job_common SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0);
