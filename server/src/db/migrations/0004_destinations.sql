-- Destinations and delivery (stage 5): the ledger, subscriptions, per-source consent policy.

-- What to assume for a purpose a profile has never given or refused consent for, per source:
-- {"default": "deny"|"allow", "purposes": {"analytics": "allow", ...}} (see README "Consent").
ALTER TABLE sources
  ADD COLUMN consent_policy jsonb NOT NULL
    DEFAULT '{"default": "deny", "purposes": {"analytics": "allow", "necessary": "allow", "functional": "allow"}}';

-- Where the server records events of its own (unsubscribes); never accepts tracking calls.
INSERT INTO sources (id, name, write_key, enabled)
VALUES ('cairn', 'Cairn (internal events)', 'internal_' || md5(random()::text || clock_timestamp()::text), false)
ON CONFLICT DO NOTHING;

CREATE TABLE destinations (
  id text PRIMARY KEY,
  name text NOT NULL,
  plugin text NOT NULL,
  settings jsonb NOT NULL,
  -- { types?: [...], events?: [...], where?: [{ path, op, value }] }: which events it gets.
  filter jsonb NOT NULL DEFAULT '{}',
  -- Consent purposes required on top of the plugin's own.
  purposes text[] NOT NULL DEFAULT '{}',
  -- The channel and topic whose unsubscribes apply (message plugins default to their channel).
  channel text,
  topic text NOT NULL DEFAULT '',
  enabled boolean NOT NULL DEFAULT true,
  concurrency integer NOT NULL DEFAULT 2,
  -- Items per second per server process; null = unlimited.
  rate_limit integer,
  retry_window_seconds integer NOT NULL DEFAULT 14400,
  -- Circuit breaker: consecutive failed batches; while open_until is in the future nothing is sent,
  -- then one probe decides.
  failures integer NOT NULL DEFAULT 0,
  circuit_open_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

-- The delivery ledger: one row per (event, destination).
CREATE TABLE deliveries (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  destination_id text NOT NULL REFERENCES destinations (id),
  event_id bigint NOT NULL,
  profile_id uuid,
  idempotency_key text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'delivered', 'retrying', 'dead', 'skipped')),
  -- Why skipped (consent, unsubscribed, filter), or the last error.
  reason text,
  attempts integer NOT NULL DEFAULT 0,
  first_attempt_at timestamptz,
  last_attempt_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT deliveries_destination_event_key UNIQUE (destination_id, event_id)
);
CREATE INDEX deliveries_status_idx ON deliveries (destination_id, status, id DESC);
CREATE INDEX deliveries_event_idx ON deliveries (event_id);

-- Subscription state per contact point (an email address, a phone number, a user id), channel and
-- topic ('' = every topic): keyed by the contact point so it survives merges and re-identification.
CREATE TABLE subscriptions (
  contact text NOT NULL,
  channel text NOT NULL,
  topic text NOT NULL DEFAULT '',
  subscribed boolean NOT NULL,
  profile_id uuid,
  source text NOT NULL,
  actor text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (contact, channel, topic)
);
CREATE INDEX subscriptions_profile_idx ON subscriptions (profile_id);

-- A destination's small persistent store (plugin ctx.kv).
CREATE TABLE destination_kv (
  destination_id text NOT NULL REFERENCES destinations (id),
  key text NOT NULL,
  value jsonb NOT NULL,
  expires_at timestamptz,
  PRIMARY KEY (destination_id, key)
);
