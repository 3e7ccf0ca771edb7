-- Stage 4 (automate): flows, the immutable versions live flows run on, one small row per run, and each
-- run's journal. The engine is packages/core/src/flows (README.md there: the runner's contract); the
-- runner is server/src/pipeline/automate.

-- A flow as edited: `definition` is the working copy. Publishing snapshots it into flow_versions and
-- points `version` at the snapshot; live runs only ever read snapshots, so editing never moves them.
CREATE TABLE flows (
  id text PRIMARY KEY,
  name text NOT NULL,
  description text,
  -- draft: never published, nobody enters; live: triggers enter people; paused: nobody new enters,
  -- people already in the flow go on.
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'live', 'paused')),
  definition jsonb NOT NULL,
  -- The version triggers enter people into; NULL until the first publish.
  version integer,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE flow_versions (
  flow_id text NOT NULL REFERENCES flows (id),
  version integer NOT NULL,
  definition jsonb NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now(),
  published_by text,
  PRIMARY KEY (flow_id, version)
);

-- One row per run, kept small (< 500 bytes with its index entries while it waits): the engine's RunState
-- with what the runner queries as columns and the rest (visits, run data, the trigger event's fields
-- the flow reads, since/awaiting/converted/ended/reason) in `state`.
--
-- The id of a run an event started is derived from (flow, event): a trigger event handed over twice
-- finds its run there and enters nobody again, without a second unique index.
CREATE TABLE flow_runs (
  id uuid PRIMARY KEY,
  flow_id text NOT NULL,
  version integer NOT NULL,
  profile_id uuid NOT NULL,
  status text NOT NULL CHECK (status IN ('waiting', 'awaiting_effect', 'completed', 'exited', 'failed')),
  node text,
  iteration integer NOT NULL DEFAULT 0,
  -- When the timer feeds the run `due` (a wait's end, a timeout); NULL while only events can move it.
  due timestamptz,
  -- Event names the run listens for (a wait for an event, a goal); '{*}' = any; NULL = none.
  listen text[],
  -- The flow allows one active run per person (entry.concurrent is not set).
  exclusive boolean NOT NULL,
  entered_at timestamptz NOT NULL,
  -- The source of the event that started the run: its consent policy applies to the run's messages.
  source_id text,
  -- No updated_at: when a run last moved is its journal's last entry (8 bytes a run saved).
  state jsonb NOT NULL,
  FOREIGN KEY (flow_id, version) REFERENCES flow_versions (flow_id, version)
);
-- The timer's claim: due waiting runs in due order (FOR UPDATE SKIP LOCKED). Ended runs leave it.
CREATE INDEX flow_runs_due_idx ON flow_runs (due) WHERE status = 'waiting' AND due IS NOT NULL;
-- An event finds the runs of its person that listen: a person has a handful at most, so the profile
-- narrows to them and `listen && names` is checked on those rows. (A GIN on listen alone would find
-- every run in the database waiting for "Order Completed"; the pair needs btree_gin.)
CREATE INDEX flow_runs_listening_idx ON flow_runs (profile_id) WHERE listen IS NOT NULL;
-- A person's runs: the re-entry policy, their journey in the API, an erasure. On the profile alone (a person
-- has a handful of runs; the flow is checked on those rows): 25 bytes a run less than (profile, flow).
CREATE INDEX flow_runs_person_idx ON flow_runs (profile_id);
-- At most one active run per person and flow, unless the flow allows several.
CREATE UNIQUE INDEX flow_runs_active_idx ON flow_runs (flow_id, profile_id)
  WHERE exclusive AND status IN ('waiting', 'awaiting_effect');

-- The journal: every decision of every run (the engine's JournalEntry), with the iteration of the node
-- visit it belongs to. A visit is decided once: its deciding entry (the outcome and edge taken, or the
-- end) is unique per (run, node, iteration), the key its effects carry too
-- (`flow:<run>:<node>:<iteration>`). `event_id`: the event that moved the run (an event handed over
-- twice moves it once).
CREATE TABLE flow_steps (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id uuid NOT NULL,
  node text,
  iteration integer,
  at timestamptz NOT NULL,
  type text NOT NULL,
  outcome text NOT NULL,
  to_node text,
  reason text NOT NULL,
  -- The values that decided it (JournalEntry.values).
  detail jsonb,
  event_id bigint,
  decided boolean NOT NULL
);
CREATE INDEX flow_steps_run_idx ON flow_steps (run_id, id);
CREATE UNIQUE INDEX flow_steps_decision_idx ON flow_steps (run_id, node, iteration) WHERE decided;

-- Messages flows send go through the delivery ledger like events (consent, unsubscribe, retries, dead
-- letters, replay): a row with no event and the rendered message, once per (destination, idempotency
-- key), the key being the flow effect's, stable across retries of the step.
ALTER TABLE deliveries ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN message jsonb;
CREATE UNIQUE INDEX deliveries_message_key ON deliveries (destination_id, idempotency_key) WHERE event_id IS NULL;
-- An erasure deletes the person's messages (the ledger rows of events go with the events).
CREATE INDEX deliveries_message_profile_idx ON deliveries (profile_id) WHERE event_id IS NULL;
