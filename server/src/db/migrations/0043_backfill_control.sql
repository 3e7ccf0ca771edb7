-- Data-quality backfills (0040) can be cancelled and resumed by API (issue 21).
--
-- A cancel takes the backfill's row lock, which each chunk holds until its commit: it lands between two
-- chunks, so `rows_done` and the counts are those of the chunks committed before it, and the next chunk
-- sees `cancelled` and stops. A resume queues a new job that continues from `cursor`.
ALTER TABLE trait_backfills DROP CONSTRAINT trait_backfills_status_check;
ALTER TABLE trait_backfills ADD CONSTRAINT trait_backfills_status_check
  CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled'));
ALTER TABLE trait_backfills ADD COLUMN cancelled_at timestamptz;
ALTER TABLE trait_backfills ADD COLUMN cancelled_by text;
-- Resumes asked for by API (a pg-boss retry after a crash is an attempt, not a resume).
ALTER TABLE trait_backfills ADD COLUMN resumes integer NOT NULL DEFAULT 0;

-- Scheduled duplicate scans: a claim made when its period began long before (every server was down at
-- its start) is a catch-up; `missed` counts the periods before it that got no scan of their own (not
-- replayed: one scan re-keys every change since the last, so one catch-up covers them all).
ALTER TABLE duplicate_schedule_runs ADD COLUMN catch_up boolean NOT NULL DEFAULT false;
ALTER TABLE duplicate_schedule_runs ADD COLUMN missed integer NOT NULL DEFAULT 0;
