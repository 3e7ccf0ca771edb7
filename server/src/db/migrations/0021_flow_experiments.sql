-- Experiment nodes of flows (issue 18: test on a sample, then send the winner). The engine assigns
-- people and follows the decision (packages/core/src/flows/experiment.ts); the runner counts the arms,
-- looks, decides once and tells every step (server/src/pipeline/automate/experiments.ts).

-- One row per (flow, version, experiment node), made when its first person is assigned in the test.
-- `counts`: { variants: [{ n, conversions, sum, sumSquares }], control? } — people whose goal window has
-- closed. The first decision is stored here and never recomputed (the sequential test's guarantee is for
-- stopping at the first significant look).
CREATE TABLE flow_experiments (
  flow_id text NOT NULL,
  version integer NOT NULL,
  node text NOT NULL,
  -- The first test assignment: the deadline runs from it.
  started_at timestamptz NOT NULL,
  counts jsonb NOT NULL,
  -- The winner: a variant's index as text, or 'control'; NULL while undecided.
  decided_arm text,
  decided_at timestamptz,
  inconclusive boolean,
  decided_reason text,
  -- When the people held at the node were all given the decision (a replan each).
  swept_at timestamptz,
  last_look_at timestamptz,
  PRIMARY KEY (flow_id, version, node),
  FOREIGN KEY (flow_id, version) REFERENCES flow_versions (flow_id, version),
  CHECK ((decided_arm IS NULL) = (decided_at IS NULL))
);
-- The timer's looks: undecided experiments, or decided ones whose held people still wait.
CREATE INDEX flow_experiments_open_idx ON flow_experiments (last_look_at) WHERE swept_at IS NULL;

-- The people in an experiment's test, once each (a second run of the same person is not a second
-- person), from the journal's `phase: 'test'` entries, written with them. `counted`: their window has
-- closed and they are in `counts`; a look reads only the uncounted ones whose window has closed.
CREATE TABLE flow_experiment_people (
  flow_id text NOT NULL,
  version integer NOT NULL,
  node text NOT NULL,
  profile_id uuid NOT NULL,
  arm text NOT NULL,
  assigned_at timestamptz NOT NULL,
  counted boolean NOT NULL DEFAULT false,
  PRIMARY KEY (flow_id, version, node, profile_id)
);
CREATE INDEX flow_experiment_people_open_idx ON flow_experiment_people (flow_id, version, node, assigned_at)
  WHERE NOT counted;
