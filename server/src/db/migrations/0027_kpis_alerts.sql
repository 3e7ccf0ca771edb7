-- KPI targets and alerts (issue 19 item 4). A KPI is one trends series (the body of
-- POST /api/analytics/trends, one series) measured per period (day, week or month in a time zone)
-- against a target per period. An alert rule watches a KPI or a metric of its own (a series, a period
-- and a zone) — below a share of the target by pacing, a change against the previous period, an anomaly
-- against the same weekday of the trailing weeks — or the delivery ledger (failed sends in an hour).
-- The measure stage checks the rules on a schedule; each incident is recorded once (alert_events).

CREATE TABLE kpis (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  -- One trends series: { events, measure, property? }.
  series jsonb NOT NULL,
  period text NOT NULL CHECK (period IN ('day', 'week', 'month')),
  timezone text NOT NULL DEFAULT 'UTC',
  target double precision NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_rules (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('pacing', 'change', 'anomaly', 'flow_health')),
  -- What is watched: a KPI, or a metric of the rule's own ({ series, period, timezone }); neither for flow_health.
  kpi_id uuid REFERENCES kpis (id) ON DELETE CASCADE,
  metric jsonb,
  -- The kind's settings (pacing: belowPct; change: changePct; anomaly: weeks, k, direction; flow_health: failures, ...).
  params jsonb NOT NULL DEFAULT '{}',
  -- Where a firing and a resolve are sent (a destination; recipient: the address for email or SMS plugins).
  destination_id text,
  recipient text,
  enabled boolean NOT NULL DEFAULT true,
  -- The incident state: firing until a check finds the condition gone. `incident` counts firings, and
  -- changes only through a conditional UPDATE (NOT firing → firing), so two servers cannot both fire.
  firing boolean NOT NULL DEFAULT false,
  incident integer NOT NULL DEFAULT 0,
  last_value double precision,
  checked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alert_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule_id uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
  incident integer NOT NULL,
  status text NOT NULL CHECK (status IN ('fired', 'resolved')),
  value double precision,
  threshold double precision,
  detail jsonb NOT NULL DEFAULT '{}',
  -- The check's time (the runtime clock).
  at timestamptz NOT NULL,
  -- Sending through the destination (after the commit; retried by later checks until sent or given up).
  delivered_at timestamptz,
  delivery_attempts integer NOT NULL DEFAULT 0,
  delivery_error text,
  -- A sender's claim (a lease): another server skips the event until it lapses.
  delivery_claimed_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- One firing and one resolve per incident, whoever checks.
  UNIQUE (rule_id, incident, status)
);
CREATE INDEX alert_events_rule_idx ON alert_events (rule_id, id DESC);
CREATE INDEX alert_events_undelivered_idx ON alert_events (id) WHERE delivered_at IS NULL;
-- Flow health reads failed sends of the last hour.
CREATE INDEX deliveries_failed_attempt_idx ON deliveries (last_attempt_at) WHERE status IN ('retrying', 'dead');
