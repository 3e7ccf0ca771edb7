-- Stage 6: trend tiles broken down by a person's current trait (count, sum and mean of an event's property,
-- by day, week or month in a zone) read from a rollup instead of scanning the events and joining
-- profile_traits. Kept by server/src/pipeline/measure/rollup-traits.ts; read by
-- server/src/api/analytics/trends-traits.ts; registered through /api/analytics/rollups/traits.
--
-- The scan counts each attached event under the CURRENT trait value of the profile it is attached to now
-- (after merges), so a trait change re-attributes the person's whole history. The rollup keeps, per kept
-- breakdown, the person's contribution per local day (cells: events, sum and number of JSON numbers, and
-- the trait value it is counted under), and per (day, value) the sums of those cells as appended deltas.
-- Every writer rewrites some cells and appends the difference, under a per-person lock:
-- - the measure job recounts the (person, day) cells of newly attached events from the events, and moves
--   the cells of the job's people (and profiles identify restructured) whose trait value changed;
-- - a merge, its undo and an erasure recount their profiles' cells in their own transaction;
-- - a fill counts a new entry from the stored events and current traits.

-- What is kept: a trait, a named event, a property of it ('' = counts only) and the zone days are cut in.
CREATE TABLE analytics_rollup_traits (
  id serial PRIMARY KEY,
  trait text NOT NULL,
  event text NOT NULL,
  property text NOT NULL DEFAULT '',
  zone text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (trait, event, property, zone)
);

-- A person's contribution to a kept breakdown on a local day, and the trait value it is counted under
-- (NULL: the person has no such trait). Keyed by person first: every writer reads and rewrites the cells
-- of a few people (the measure job checks each person of its events); tiles never read cells.
CREATE TABLE analytics_trait_cells (
  rollup_id int NOT NULL,
  profile_id uuid NOT NULL,
  day date NOT NULL,
  value text,
  n int NOT NULL,
  sum numeric,
  nums int NOT NULL,
  PRIMARY KEY (profile_id, rollup_id, day)
);

-- Per (entry, day, value): deltas of the cells' sums, summed at read (no hot row that concurrent measure
-- jobs would queue on); the measure job folds a day's deltas into one row per value once it has many.
-- Sums are numeric: JSON numbers are decimal, so deltas that move a person out and back cancel exactly.
CREATE TABLE analytics_trait_counts (
  rollup_id int NOT NULL,
  day date NOT NULL,
  value text,
  n bigint NOT NULL,
  sum numeric,
  nums bigint NOT NULL
);
CREATE INDEX analytics_trait_counts_key ON analytics_trait_counts (rollup_id, day);

-- Nothing is kept by default (PUT /api/analytics/rollups/traits fills an entry); statistics for the empty tables.
ANALYZE analytics_rollup_traits;
ANALYZE analytics_trait_cells;
ANALYZE analytics_trait_counts;
