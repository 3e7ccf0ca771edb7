-- Cairn schema, version 1: settings, sources, the event log, and failed events.

CREATE TABLE settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A source is where events come from (a website, a backend); its write key authenticates them.
CREATE TABLE sources (
  id text PRIMARY KEY,
  name text NOT NULL,
  write_key text NOT NULL UNIQUE,
  -- After a rotation with a grace period the old key keeps working until previous_key_expires_at.
  previous_write_key text UNIQUE,
  previous_key_expires_at timestamptz,
  -- Browser origins allowed to send with this key; empty = any origin.
  allowed_origins text[] NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every accepted event, once per (source, messageId): the unique key is what makes retries and
-- duplicates from concurrent requests or servers harmless.
CREATE TABLE events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source_id text NOT NULL REFERENCES sources (id),
  message_id text NOT NULL,
  type text NOT NULL,
  event text,
  user_id text,
  anonymous_id text,
  timestamp timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  payload jsonb NOT NULL,
  processed_at timestamptz,
  CONSTRAINT events_source_message_key UNIQUE (source_id, message_id)
);

-- Everything the tracking API refused, so nothing is dropped silently.
CREATE TABLE failed_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source_id text,
  received_at timestamptz NOT NULL DEFAULT now(),
  status integer NOT NULL,
  code text NOT NULL,
  reason text NOT NULL,
  -- The rejected event when the body parsed; otherwise the raw body (possibly truncated).
  event jsonb,
  raw bytea,
  raw_bytes integer,
  request jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX failed_events_received_at_idx ON failed_events (received_at DESC);
CREATE INDEX failed_events_source_idx ON failed_events (source_id, received_at DESC);
