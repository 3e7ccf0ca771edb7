-- Data-quality backfills and scheduled duplicate scans (issue 21).
--
-- A backfill applies trait rules (0031) to the profiles stored before them, one keyset chunk of profiles
-- per transaction; `cursor` (the last profile id of the last committed chunk) commits with the chunk, so
-- a crashed run resumes after it. `import_id` is taken from the imports sequence (no import ever gets
-- it): the backfill's consequences carry it as an import's do (events.import_id, reason `import:<id>`),
-- so flows and fan-out hold them back unless `trigger_flows` (migration 0033's mechanism, unchanged).
CREATE TABLE trait_backfills (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The traits whose rules it applies (fills reading them follow), and those rules as they were.
  keys text[] NOT NULL,
  rules jsonb NOT NULL,
  dry_run boolean NOT NULL DEFAULT false,
  trigger_flows boolean NOT NULL DEFAULT false,
  import_id bigint,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  cursor uuid,
  total integer NOT NULL DEFAULT 0,
  rows_done integer NOT NULL DEFAULT 0,
  profiles_changed integer NOT NULL DEFAULT 0,
  -- Per trait: {"<key>": {"normalized": n, "filled": n, "cleared": n, "failed": n}}.
  changes jsonb NOT NULL DEFAULT '{}',
  -- Up to 20 changes (values sealed as profile_traits holds them).
  sample jsonb NOT NULL DEFAULT '[]',
  chunks integer NOT NULL DEFAULT 0,
  attempts integer NOT NULL DEFAULT 0,
  error text,
  actor text,
  elapsed_ms bigint NOT NULL DEFAULT 0,
  attempt_started_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

-- The duplicate scan's schedule: one row, off until an operator turns it on.
CREATE TABLE duplicate_schedule (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  enabled boolean NOT NULL DEFAULT false,
  every_hours integer CHECK (every_hours IN (1, 2, 3, 4, 6, 8, 12, 24)),
  daily_at text CHECK (daily_at ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
  time_zone text NOT NULL DEFAULT 'UTC',
  full_scan boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text,
  CHECK (every_hours IS NULL OR daily_at IS NULL)
);

-- One row per period of the schedule, inserted once (the primary key) with the job that runs its scan,
-- by whichever server sees the period first; `scan_id` is set in the scan's own transaction.
CREATE TABLE duplicate_schedule_runs (
  period timestamptz PRIMARY KEY,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  scan_id bigint
);

ALTER TABLE duplicate_scans ADD COLUMN trigger text NOT NULL DEFAULT 'api' CHECK (trigger IN ('api', 'schedule'));
ALTER TABLE duplicate_scans ADD COLUMN period timestamptz;

-- The scan that first proposed a pair (scan_id is the last that found it): "new since the last scan".
ALTER TABLE duplicate_candidates ADD COLUMN first_scan_id bigint;
UPDATE duplicate_candidates SET first_scan_id = scan_id;
CREATE INDEX duplicate_candidates_first_scan_idx ON duplicate_candidates (first_scan_id) WHERE status = 'open';
