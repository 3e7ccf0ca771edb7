-- Stage 3 (compute): computed traits, tags, audiences. Rules are JSON trees (packages/core/src/rules);
-- every definition is addressed by an immutable key, which other rules use to refer to it.

-- Values that rules compare safely: a bad number or date in a trait is "no value", never an error.
CREATE FUNCTION cairn_num(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'number' THEN (v #>> '{}')::numeric
    WHEN 'string' THEN CASE WHEN (v #>> '{}') ~ '^-?[0-9]+(\.[0-9]+)?$' THEN (v #>> '{}')::numeric END
  END
$$;

CREATE FUNCTION cairn_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(v) IN ('string', 'number', 'boolean') THEN v #>> '{}' END
$$;

-- ISO-8601 dates and times: YYYY-MM-DD, optionally T (or a space) HH:MM[:SS[.fraction]] and a zone
-- (Z, ±HH, ±HH:MM, ±HHMM; hours up to 15); a date alone is midnight UTC, a time without zone UTC.
-- Anything else, including 2026-02-30 and year 0000, is NULL. Plain SQL with no exception handler,
-- so it stays inlinable and safe in parallel scans.
CREATE FUNCTION cairn_ts(v jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN t ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-](0\d|1[0-5])(:?[0-5]\d)?)?)?$'
      AND left(t, 4) <> '0000' THEN
    CASE WHEN substr(t, 9, 2)::int <= extract(day FROM make_date(left(t, 4)::int, substr(t, 6, 2)::int, 1) + interval '1 month - 1 day') THEN
      (CASE WHEN length(t) = 10 THEN t || 'T00:00:00Z'
            WHEN t ~ '(Z|[+-]\d{2}(:?\d{2})?)$' AND length(t) > 16 THEN t
            ELSE t || 'Z' END)::timestamptz
    END
  END
  FROM (SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> '{}' END AS t) x
$$;

CREATE INDEX profile_traits_key_idx ON profile_traits (key, profile_id);
-- Event conditions of a full recompute read one event name over every profile.
CREATE INDEX events_event_time_idx ON events (event, timestamp) INCLUDE (profile_id) WHERE profile_id IS NOT NULL;

CREATE TABLE computed_traits (
  key text PRIMARY KEY,
  name text NOT NULL,
  definition jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE computed_trait_values (
  profile_id uuid NOT NULL REFERENCES profiles (id),
  key text NOT NULL REFERENCES computed_traits (key) ON DELETE CASCADE,
  value jsonb NOT NULL,
  computed_at timestamptz NOT NULL,
  PRIMARY KEY (profile_id, key)
);
CREATE INDEX computed_trait_values_key_idx ON computed_trait_values (key, profile_id);

CREATE TABLE tags (
  key text PRIMARY KEY,
  name text NOT NULL,
  -- NULL: a static tag (set and removed by the API or flows); otherwise the rule that keeps it current.
  rule jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Every period a profile carried a tag; the current ones have removed_at NULL.
CREATE TABLE tag_assignments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tag text NOT NULL REFERENCES tags (key) ON DELETE CASCADE,
  profile_id uuid NOT NULL REFERENCES profiles (id),
  added_at timestamptz NOT NULL,
  added_by text NOT NULL,
  added_reason text,
  removed_at timestamptz,
  removed_by text,
  removed_reason text
);
CREATE UNIQUE INDEX tag_assignments_current_idx ON tag_assignments (tag, profile_id) WHERE removed_at IS NULL;
CREATE INDEX tag_assignments_profile_idx ON tag_assignments (profile_id, added_at DESC);

CREATE TABLE audiences (
  key text PRIMARY KEY,
  name text NOT NULL,
  description text,
  rule jsonb NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- When the last full recompute finished (NULL: never; a new or changed audience gets one).
  computed_at timestamptz
);
-- Every period a profile was a member; the current ones have exited_at NULL.
CREATE TABLE audience_memberships (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  audience text NOT NULL REFERENCES audiences (key) ON DELETE CASCADE,
  profile_id uuid NOT NULL REFERENCES profiles (id),
  entered_at timestamptz NOT NULL,
  exited_at timestamptz,
  -- 'event', 'time', 'recompute', 'merge', 'definition'
  entered_by text NOT NULL,
  exited_by text
);
CREATE UNIQUE INDEX audience_memberships_current_idx ON audience_memberships (audience, profile_id) WHERE exited_at IS NULL;
CREATE INDEX audience_memberships_profile_idx ON audience_memberships (profile_id, entered_at DESC);

-- Member counts over time (one row per audience per recorded instant).
CREATE TABLE audience_counts (
  audience text NOT NULL REFERENCES audiences (key) ON DELETE CASCADE,
  at timestamptz NOT NULL,
  members integer NOT NULL,
  PRIMARY KEY (audience, at)
);

-- Days from `today` to the next anniversary of `d` (today counts as 0); 29 February is 28 February
-- in other years. NULL when d is after today.
CREATE FUNCTION cairn_days_to_anniversary(d timestamptz, today date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN dd > today THEN NULL
    WHEN (dd + make_interval(years => y))::date >= today THEN (dd + make_interval(years => y))::date - today
    ELSE (dd + make_interval(years => y + 1))::date - today
  END
  FROM (
    SELECT (d AT TIME ZONE 'UTC')::date AS dd,
      (extract(year FROM today) - extract(year FROM (d AT TIME ZONE 'UTC')))::int AS y
  ) q
$$;
