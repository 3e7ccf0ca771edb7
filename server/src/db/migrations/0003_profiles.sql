-- Profiles and identity resolution (stage 2), consent, accounts (B2B groups) and erasure.
-- The rules are in packages/core/src/identity/README.md; the worker in server/src/pipeline/identify.

CREATE TABLE profiles (
  id uuid PRIMARY KEY,
  -- Set when the profile was merged away: lookups follow it to the survivor.
  merged_into uuid REFERENCES profiles (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- The last event folded into profile_traits (fold order: timestamp, id); an earlier one means a refold.
  traits_through_ts timestamptz,
  traits_through_id bigint,
  erased_at timestamptz
);
CREATE INDEX profiles_merged_into_idx ON profiles (merged_into) WHERE merged_into IS NOT NULL;

-- The current partition: each identity ('type:value') belongs to exactly one profile.
CREATE TABLE identities (
  key text PRIMARY KEY,
  type text NOT NULL,
  value text NOT NULL,
  profile_id uuid NOT NULL REFERENCES profiles (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identities_profile_idx ON identities (profile_id);

-- The evidence: each distinct set of identities seen together on one event, with the earliest event
-- (timestamp, id) that carried it. The partition is a pure function of these rows (see the README).
CREATE TABLE identity_links (
  set_hash text PRIMARY KEY,
  keys text[] NOT NULL,
  ts timestamptz NOT NULL,
  event_id bigint NOT NULL,
  -- An unmerge disables the links that joined the two sides: they no longer count as evidence.
  disabled_by bigint,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identity_links_keys_idx ON identity_links USING gin (keys);

-- Where a guard kept identities apart (a shared device, a second email over the limit...).
CREATE TABLE identity_refusals (
  event_id bigint NOT NULL,
  reason text NOT NULL,
  type text NOT NULL,
  groups text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, reason)
);

-- The merge log: every merge, automatic split and unmerge, with the state before it.
CREATE TABLE merges (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('merge', 'split', 'unmerge')),
  survivor_id uuid NOT NULL REFERENCES profiles (id),
  merged_id uuid NOT NULL REFERENCES profiles (id),
  reason text NOT NULL,
  event_id bigint,
  -- { "survivor": [identity keys], "merged": [identity keys] } as they were before.
  before jsonb NOT NULL,
  actor text,
  created_at timestamptz NOT NULL DEFAULT now(),
  undone_at timestamptz,
  undone_by bigint
);
CREATE INDEX merges_survivor_idx ON merges (survivor_id);
CREATE INDEX merges_merged_idx ON merges (merged_id);

ALTER TABLE events
  ADD COLUMN profile_id uuid,
  -- The identity that decides the event's profile (userId, else email, phone, custom id, anonymousId).
  ADD COLUMN identity_key text;
CREATE INDEX events_profile_idx ON events (profile_id, timestamp DESC, id DESC) WHERE profile_id IS NOT NULL;

-- Traits: the fold of the profile's events (identify traits, context.traits, first/last touch).
CREATE TABLE profile_traits (
  profile_id uuid NOT NULL REFERENCES profiles (id),
  key text NOT NULL,
  value jsonb NOT NULL,
  -- The timestamp of the event that last changed the trait, and which event and part of it.
  updated_at timestamptz NOT NULL,
  event_id bigint NOT NULL,
  source text NOT NULL,
  PRIMARY KEY (profile_id, key)
);

-- Accounts (B2B): group() calls link a profile to an account with its own traits.
CREATE TABLE accounts (
  id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE account_traits (
  account_id text NOT NULL REFERENCES accounts (id),
  key text NOT NULL,
  value jsonb NOT NULL,
  updated_at timestamptz NOT NULL,
  event_id bigint NOT NULL,
  PRIMARY KEY (account_id, key)
);
CREATE TABLE profile_accounts (
  profile_id uuid NOT NULL REFERENCES profiles (id),
  account_id text NOT NULL REFERENCES accounts (id),
  first_seen_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  PRIMARY KEY (profile_id, account_id)
);
CREATE INDEX profile_accounts_account_idx ON profile_accounts (account_id);

-- Proof of consent: every change per purpose, with its time and where it came from.
CREATE TABLE consent_changes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  profile_id uuid NOT NULL REFERENCES profiles (id),
  purpose text NOT NULL,
  granted boolean NOT NULL,
  -- When the person chose (the event's timestamp, or the API call's time).
  at timestamptz NOT NULL,
  source text NOT NULL CHECK (source IN ('event', 'api')),
  event_id bigint,
  actor text,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_changes_profile_idx ON consent_changes (profile_id, purpose, at DESC, id DESC);

-- Right to be forgotten: who asked, and keyed hashes (never clear text) of the erased identities so
-- later events carrying them are dropped and counted.
CREATE TABLE erasures (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  profile_id uuid NOT NULL,
  requested_by text NOT NULL,
  identities integer NOT NULL,
  events integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE suppressions (
  hash text PRIMARY KEY,
  erasure_id bigint NOT NULL REFERENCES erasures (id),
  dropped bigint NOT NULL DEFAULT 0,
  last_dropped_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
