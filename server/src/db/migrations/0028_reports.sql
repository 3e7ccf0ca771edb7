-- Scheduled reports (stage 6): trends queries sent every day, week or month, each for the last complete
-- period beside the one before, by email (charts inline), to a chat or as JSON to a webhook.

-- `schedule`: { every: day|week|month, weekday?, day?, at: 'HH:MM', timezone } (core's reportScheduleSchema);
-- `queries`: bodies of POST /api/analytics/trends without their range (the period gives it);
-- `destination`: { type: email|chat|webhook, destinationId, to? } — sent through that destination's plugin.
CREATE TABLE reports (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  schedule jsonb NOT NULL,
  queries jsonb NOT NULL,
  destination jsonb NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (report, period), inserted BEFORE anything is sent: the primary key is the claim, so two
-- servers (or a restarted one) never send one period twice. A server that dies while sending leaves the
-- row `sending` with a lease; once the lease is past another tick takes it over and sends again with the
-- same Message-ID / Idempotency-Key (derived from report and period), which receivers dedupe on.
CREATE TABLE report_runs (
  report_id uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
  period_start timestamptz NOT NULL,
  period_end timestamptz NOT NULL,
  due_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'sending' CHECK (status IN ('sending', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 1,
  lease_until timestamptz NOT NULL,
  last_error text,
  -- What was sent: per query and series, value / previous / change (the numbers, for the API and audits).
  summary jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  PRIMARY KEY (report_id, period_start)
);
CREATE INDEX report_runs_sending_idx ON report_runs (lease_until) WHERE status = 'sending';
