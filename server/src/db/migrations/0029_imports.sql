-- Bulk imports of profiles (issue 21): one row per import with its progress, its bad rows, and the
-- content hash of the last imported row per key identity (a file imported again changes nothing).

-- Imported rows are stored as identify events (already processed) so that every later refold of a
-- profile (merge, split, late event) keeps the imported traits and consent. They need a source; it is
-- disabled, so its random write key never accepts tracking calls.
INSERT INTO sources (id, name, write_key, enabled)
VALUES ('import', 'Bulk import', 'import-' || md5(random()::text || clock_timestamp()::text), false)
ON CONFLICT (id) DO NOTHING;

CREATE TABLE imports (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  format text NOT NULL CHECK (format IN ('csv', 'ndjson')),
  mapping jsonb NOT NULL,
  dry_run boolean NOT NULL DEFAULT false,
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'interrupted', 'done', 'failed')),
  -- The last line (1-based, header included) whose rows are committed: a resumed import skips up to it.
  last_line integer NOT NULL DEFAULT 0,
  rows_done integer NOT NULL DEFAULT 0,
  rows_bad integer NOT NULL DEFAULT 0,
  profiles_created integer NOT NULL DEFAULT 0,
  profiles_updated integer NOT NULL DEFAULT 0,
  rows_unchanged integer NOT NULL DEFAULT 0,
  -- Rows the client said the file has (optional), for the ETA.
  rows_expected integer,
  error text,
  actor text,
  -- Time spent importing before the current attempt, so rows/s stays right across resumes.
  elapsed_ms bigint NOT NULL DEFAULT 0,
  attempt_started_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE import_errors (
  import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
  line integer NOT NULL,
  reason text NOT NULL,
  PRIMARY KEY (import_id, line)
);

-- Key identity (stored key: sensitive types by blind index) -> hash of the last row imported for it.
CREATE TABLE import_hashes (
  key text PRIMARY KEY,
  hash text NOT NULL,
  import_id bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
