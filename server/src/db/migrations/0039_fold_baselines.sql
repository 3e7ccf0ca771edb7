-- Fold baselines (docs/retention.md): before retention drops a partition of events, the trait fold of
-- every identity with events in it is recorded here as of the end of that partition, so a later refold
-- (a merge, a split, an unmerge, an earlier event arriving late) starts from it plus the kept events
-- instead of from nothing, and traits set only by dropped events are not lost.
--
-- Keyed by the event's deciding identity (events.identity_key), the key events are re-pointed by: when
-- identities move between profiles, their baselines follow them exactly as their events would, so a merge
-- combines both sides' baselines and an unmerge gives each side back its own, with no write here.
-- Events attached without a deciding identity use the pseudo-key 'profile:<profile id>'.
CREATE TABLE fold_baselines (
  identity_key text PRIMARY KEY,
  -- The profile that held the identity when the baseline was last recorded (informational).
  profile_id uuid NOT NULL,
  -- { trait: { v: value (sealed when sensitive), t: epoch ms, e: event id, s: source } }; json, not jsonb:
  -- only ever written and read whole (never queried inside), and json is cheaper to store (measured).
  traits json NOT NULL,
  -- { account: { f: first epoch ms, l: last epoch ms, e: event id } }
  groups json NOT NULL,
  -- The last event folded in (the fold position), null when none was.
  through_ts timestamptz,
  through_id bigint,
  -- The partitions folded in (their table oids, while they exist): a refold skips this identity's events
  -- still in one of them (recorded, not yet dropped), and recording a partition twice is a no-op. By oid,
  -- not by time: a month's partition created again after its drop (a clock moved back) is another table.
  folded_parts bigint[] NOT NULL,
  -- The upper bound of the newest partition folded in (informational).
  folded_to timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Consent choices recorded from events retention drops: the deciding identity of their event, set just
-- before the drop, so that when profiles merge, split or unmerge they follow that identity as their event
-- would have (a refold of consent keeps them, having no event to rebuild them from).
ALTER TABLE consent_changes ADD COLUMN identity_key text;
