-- Stage 6: exact distinct people per day, week and month for trend tiles, read in a few hundred rows
-- instead of counting distinct over analytics_hourly_people (0037) or events. Kept by
-- server/src/pipeline/measure/rollup-period-people.ts; read by server/src/api/analytics/trends-period.ts.

-- What is kept: every zone of kind 'zone' times the any-event key ('') and every event of kind 'event'.
-- Local days are cut in the zone, so one zone's rows answer its days, ISO weeks (local Mondays) and months.
CREATE TABLE analytics_rollup_people (
  kind text NOT NULL CHECK (kind IN ('zone', 'event')),
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, value)
);
INSERT INTO analytics_rollup_people (kind, value) VALUES ('zone', 'UTC');

-- Presence: one row per person with an attached event of the key ('' = any event) on a local day of the
-- zone. Keyed by person first: the pipeline rewrites a person's rows (a merge, its undo, an erasure) and
-- a tile looks up a person's latest day before a partial last day.
CREATE TABLE analytics_period_people (
  profile_id uuid NOT NULL,
  zone text NOT NULL,
  event text NOT NULL,
  day date NOT NULL,
  PRIMARY KEY (profile_id, zone, event, day)
);

-- Per (zone, event, day): how many present people had `prev` as their previous present day (NULL: none).
-- People of a day are sum(n); distinct people of days [a, b) are sum(n) over those days with prev < a (a
-- person counts on their first day in the span), so a week, a month or a 90-day total is exact from the
-- days' rows. Rows are deltas appended by each writer (no hot row: concurrent measure jobs and merges
-- never wait on one count row of today) and summed at read; the measure job compacts a day's deltas into
-- one row per prev once it has many.
CREATE TABLE analytics_period_counts (
  zone text NOT NULL,
  event text NOT NULL,
  day date NOT NULL,
  prev date,
  n bigint NOT NULL
);
CREATE INDEX analytics_period_counts_key ON analytics_period_counts (zone, event, day);

-- UTC, any event, from the attached events already stored.
INSERT INTO analytics_period_people (profile_id, zone, event, day)
SELECT DISTINCT profile_id, 'UTC', '', (timestamp AT TIME ZONE 'UTC')::date
FROM events
WHERE profile_id IS NOT NULL;

INSERT INTO analytics_period_counts (zone, event, day, prev, n)
SELECT zone, event, day, prev, count(*)
FROM (
  SELECT zone, event, day, lag(day) OVER (PARTITION BY profile_id, zone, event ORDER BY day) AS prev
  FROM analytics_period_people
) p
GROUP BY zone, event, day, prev;

-- Statistics now, before the first tile reads them.
ANALYZE analytics_period_people;
ANALYZE analytics_period_counts;
