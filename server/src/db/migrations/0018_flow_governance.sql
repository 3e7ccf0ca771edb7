-- Flow governance (issue 18): the workspace's frequency caps and quiet hours for every flow's sends, one row
-- (`GET/PUT /api/flow-governance`). The engine decides with them at each send (packages/core flows
-- governance.ts); the runner gives it the person's sends in the longest cap window.
CREATE TABLE flow_governance (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  -- { caps: [{ channel, max, windowHours, audience? }], quietHours: [{ channel, start, end }] }
  settings jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text
);

-- A person's sends for caps: the send decisions in the journal of their runs (the person's runs through
-- flow_runs_person_idx, then only the send entries of each run, newest last). The journal, not the ledger,
-- because a message is journaled in the step's transaction and reaches the ledger a moment later (stage 5):
-- counting the ledger alone would let a second flow pass a cap in that moment. The ledger still decides
-- whether a message counts: one it skipped (consent, unsubscribed, destination gone) does not.
CREATE INDEX flow_steps_sends_idx ON flow_steps (run_id, at) WHERE type = 'send' AND decided AND outcome = 'next';
