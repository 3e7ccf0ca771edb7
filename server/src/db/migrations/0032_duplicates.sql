-- Likely duplicate profiles (docs/duplicates.md): match keys per profile, the candidate pairs a scan
-- found among them, and the scans. Match keys are keyed hashes (HMAC under the PII index key) of
-- normalised values, never clear text: a canonical email, a normalised name with a phone's digits.

CREATE TABLE duplicate_keys (
  kind text NOT NULL,
  key text NOT NULL,
  profile_id uuid NOT NULL,
  PRIMARY KEY (kind, key, profile_id)
);
CREATE INDEX duplicate_keys_profile_idx ON duplicate_keys (profile_id);

-- What each profile's keys were made from (a hash of its sealed values): a scan re-keys only the
-- profiles whose values changed since.
CREATE TABLE duplicate_sources (
  profile_id uuid PRIMARY KEY,
  fingerprint text NOT NULL
);

-- Each scan: when, by whom, what it read and found.
CREATE TABLE duplicate_scans (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  actor text,
  profiles integer NOT NULL DEFAULT 0,
  keys integer NOT NULL DEFAULT 0,
  -- Keys shared by more profiles than a person plausibly has duplicates (a shop's own phone): skipped.
  oversized_keys integer NOT NULL DEFAULT 0,
  candidates integer NOT NULL DEFAULT 0
);

-- One row per pair of profiles (profile_a < profile_b). A decided pair (merged or dismissed) keeps its
-- status: later scans never propose it again.
CREATE TABLE duplicate_candidates (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  profile_a uuid NOT NULL REFERENCES profiles (id),
  profile_b uuid NOT NULL REFERENCES profiles (id),
  reasons text[] NOT NULL,
  -- 0..100: 100 * (1 - product of (1 - weight)) over the reasons.
  score smallint NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'merged', 'dismissed')),
  scan_id bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  decided_by text,
  merge_id bigint,
  UNIQUE (profile_a, profile_b),
  CHECK (profile_a < profile_b)
);
CREATE INDEX duplicate_candidates_open_idx ON duplicate_candidates (score DESC, id DESC) WHERE status = 'open';

-- A staff merge is evidence like an event's identity set: an identity link whose event_id is the
-- negated value of this sequence (no event has a negative id; each merge names its own link).
CREATE SEQUENCE staff_link_ids;
