-- Flow review (docs/design/flows.md, "Review and lifecycle"): a flow's working copy is reviewed by a
-- second person before it can be published. `status` still says whether triggers enter people (draft:
-- never published; live; paused; archived: retired for good); `review_state` says where the working
-- copy is: draft (being edited) → in_review → approved → published (it is the live version; an edit
-- makes it a draft again). A live flow's working copy goes through review while its version runs.

ALTER TABLE flows DROP CONSTRAINT flows_status_check;
ALTER TABLE flows ADD CONSTRAINT flows_status_check CHECK (status IN ('draft', 'live', 'paused', 'archived'));

ALTER TABLE flows
  ADD COLUMN review_state text NOT NULL DEFAULT 'draft'
    CHECK (review_state IN ('draft', 'in_review', 'approved', 'published')),
  -- Who last changed the working copy's definition (auth/middleware.ts actorOf: `user:<id>` for a person
  -- and their keys, else `<kind>:<key id>`): they cannot approve it.
  ADD COLUMN last_edited_by text,
  ADD COLUMN submitted_by text,
  -- Who approved the working copy as it is (NULL until approved; cleared by an edit).
  ADD COLUMN approved_by text,
  -- The last transition (submit, approve, reject, publish, pause, resume, archive): { action, by, at, note }.
  -- The audit log keeps every one (its `after` is the flow with this field).
  ADD COLUMN last_transition jsonb;

-- A flow published before review existed: its working copy is published when it is the live version.
UPDATE flows f SET review_state = 'published'
FROM flow_versions v
WHERE v.flow_id = f.id AND v.version = f.version AND v.definition = f.definition;

-- Who approved each version (NULL: published before review existed).
ALTER TABLE flow_versions ADD COLUMN approved_by text;

-- The stale-flow list reads the flows entered in the last 30 days: runs are inserted in about entry order,
-- so a BRIN index finds the recent ones in a few pages for almost no bytes per run (a btree on
-- (flow_id, entered_at) would add ~40 bytes to every run).
CREATE INDEX flow_runs_entered_brin ON flow_runs USING brin (entered_at);
