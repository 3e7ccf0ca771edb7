-- Stage 4's planner: flows entered by time (schedule, calendar, date_trait). The timer claims due rows
-- here as it claims due runs (FOR UPDATE SKIP LOCKED), so servers sharing a database fire each once.
-- docs/design/flows.md ("Time-based triggers") explains it.

-- One row per live flow with a time-based trigger: its next firing (schedule, calendar) or, for a
-- date_trait flow, the sweep that plans everyone who has the date. Published in the publish's
-- transaction. A firing enters the audience in batches keyed by profile id: `cursor` is the last
-- profile a committed batch reached (NULL: the firing has not started), so a crash mid-firing goes on
-- from there. `due` NULL: nothing left to do (a date_trait sweep done, a calendar with no next day).
CREATE TABLE flow_timers (
  flow_id text PRIMARY KEY REFERENCES flows (id),
  version integer NOT NULL,
  due timestamptz,
  cursor uuid,
  -- Why this moment (the cron and zone, the holiday's name), for logs and the journal.
  why text
);
CREATE INDEX flow_timers_due_idx ON flow_timers (due) WHERE due IS NOT NULL;

-- A date_trait flow's next entry of one person (their date ± days at a local time, in their zone).
-- Re-planned when their traits change; at `due` the trait is read again, so a date moved later never
-- enters them early. The run's id derives from (flow, person, moment): each occurrence enters once.
CREATE TABLE flow_planned (
  flow_id text NOT NULL REFERENCES flows (id),
  profile_id uuid NOT NULL,
  version integer NOT NULL,
  due timestamptz NOT NULL,
  PRIMARY KEY (flow_id, profile_id)
);
CREATE INDEX flow_planned_due_idx ON flow_planned (due);
CREATE INDEX flow_planned_person_idx ON flow_planned (profile_id);

-- Custom calendars for calendar triggers (a shopping festival's days): a named list of days, each a
-- date (`2026-11-11`) or a yearly day (`11-11`), with an optional label.
CREATE TABLE calendars (
  key text PRIMARY KEY,
  name text NOT NULL,
  description text,
  days jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
