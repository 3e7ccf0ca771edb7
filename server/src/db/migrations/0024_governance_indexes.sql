-- Flow governance indexes (issue 18). Moving waiting runs between versions (migrate-runs.ts, and the
-- experiment sweep after a decision) picks the runs of one (flow, version) waiting at given nodes in id
-- order, 500 a transaction; its preview and the version list count a version's active runs. Without an
-- index on (flow, version) each of those read the whole flow_runs table, ended runs included, once per
-- batch. Partial on the active runs (the few a version still has; ended runs leave it), keyed by id so a
-- batch is an ordered range scan that stops at its limit, whatever nodes are mapped.
CREATE INDEX flow_runs_version_idx ON flow_runs (flow_id, version, id) WHERE status IN ('waiting', 'awaiting_effect');
