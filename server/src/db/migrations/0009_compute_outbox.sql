-- Stage 3 at scale (issue 6): a full recompute that changes hundreds of thousands of memberships.
--
-- 1. Memberships and tag assignments are derived rows written in bulk by one statement per rule.
--    Their foreign key to profiles cost a trigger call and an index probe per row (about half the
--    diff's time when 480k profiles enter an audience). Profiles are never deleted (erasure keeps
--    the row and deletes these rows itself, server/src/pipeline/identify/admin.ts), and only stage 3
--    inserts them, for ids its own rule statement just read from `profiles`; so the key is dropped.
--    The key to the definition stays: it keeps a deleted definition's rows from outliving it.
ALTER TABLE audience_memberships DROP CONSTRAINT audience_memberships_profile_id_fkey;
ALTER TABLE tag_assignments DROP CONSTRAINT tag_assignments_profile_id_fkey;

-- 2. Change events (`audience.entered`, ...) of large diffs are recorded after the diff commits, in
--    chunks, from this outbox: the diff's transaction only appends narrow rows here, in the same
--    transaction as the memberships, so none is lost. A profile's pending rows are recorded before
--    any newer change of that profile (server/src/pipeline/compute/outbox.ts), so destinations see
--    a profile's changes in order.
CREATE TABLE compute_changes (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL,
  key text NOT NULL,
  name text NOT NULL,
  change text NOT NULL,
  profile_id uuid NOT NULL,
  at timestamptz NOT NULL,
  by text NOT NULL
);
CREATE INDEX compute_changes_profile_idx ON compute_changes (profile_id);
