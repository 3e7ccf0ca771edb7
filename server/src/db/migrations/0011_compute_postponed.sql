-- Stage 3: profiles whose incremental evaluation met a definition being fully recomputed (its lock, class 6, held
-- exclusively). They are not evaluated then — waiting would deadlock with the recompute's inserts — but noted here
-- and re-evaluated for every definition once the recompute commits (and at every sweep tick), so no change is lost
-- and the recompute's older snapshot never has the last word (server/src/pipeline/compute/postponed.ts).
CREATE TABLE compute_postponed (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  profile_id uuid NOT NULL,
  by text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compute_postponed_profile_idx ON compute_postponed (profile_id);
