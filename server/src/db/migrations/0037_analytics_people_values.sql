-- Stage 6: more rollups for trend tiles, beside analytics_hourly_counts (0025), so that distinct people,
-- sums and breakdowns by a property read whole hours from narrow tables instead of scanning events
-- (server/src/pipeline/measure/rollup-people.ts and rollup-values.ts keep them; packages/core's trends.ts
-- reads them). Every row describes attached events only, as every analytics query counts.

-- People per UTC hour: one row per person with any attached event in the hour. Distinct people per day or
-- week in a whole-hour zone are a count over these rows. Rows follow identity merges and their undo in the
-- transaction that re-points the events (repointEvents), and the measure queue adds the rows of newly
-- attached events under the profiles' advisory locks, so a merge never leaves a merged-away person behind.
CREATE TABLE analytics_hourly_people (
  hour timestamptz NOT NULL,
  profile_id uuid NOT NULL,
  PRIMARY KEY (hour, profile_id)
);

-- Only people over any event: per event name, a person-hour row is nearly one per event (measured on the
-- benchmark's 10M events: 9.97M rows, 1.5 GB with its key), no narrower than events' own (event, timestamp)
-- index, so people of a named event keep scanning events.

-- Properties of named events a team rolls up (a dot path under properties, as a trend's `property` is
-- written): per (hour, type, event) the sum and number of its JSON-number values, and with by_value the
-- events per value (payload #>> path as text), which a breakdown by the property reads. Per event name, so
-- that the pipeline recounts only the hours of those events (a recount reads their payloads: measured on
-- bench:analytics, recounting every key for two properties cost ~2.7 ms per attached event). Tiles on other
-- properties or events, or on unnamed events, scan events.
CREATE TABLE analytics_rollup_properties (
  event text NOT NULL,
  property text NOT NULL,
  by_value boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event, property)
);

-- value: the property's text when by_value (NULL: the event has none); NULL for every row otherwise.
-- Recounted per (hour, type, event) key with analytics_hourly_counts, under the same advisory lock.
CREATE TABLE analytics_hourly_values (
  property text NOT NULL,
  event text NOT NULL,
  hour timestamptz NOT NULL,
  type text NOT NULL,
  value text,
  n bigint NOT NULL,
  sum float8,
  nums bigint NOT NULL
);
CREATE UNIQUE INDEX analytics_hourly_values_key ON analytics_hourly_values (property, event, hour, type, value)
  NULLS NOT DISTINCT;
-- A recount deletes a key's rows of every property.
CREATE INDEX analytics_hourly_values_hour_idx ON analytics_hourly_values (hour, type, event);

INSERT INTO analytics_hourly_people (hour, profile_id)
SELECT DISTINCT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', profile_id
FROM events
WHERE profile_id IS NOT NULL;
