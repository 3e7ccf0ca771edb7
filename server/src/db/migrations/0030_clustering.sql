-- Clustering (issue 21): K-means over chosen numeric features, run on demand or on a schedule as a pg-boss
-- job. The result is a computed trait (`trait_key`, a row of computed_traits whose definition is
-- {"kind": "cluster", "clustering": <id>}) written by the run, not by stage 3's rule evaluation: stage 3
-- skips that kind when it loads definitions (pipeline/compute/definitions.ts).
CREATE TABLE clusterings (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  trait_key text NOT NULL UNIQUE,
  -- [{ "source": "computed" | "trait", "key": "...", "path": "score"? }]
  features jsonb NOT NULL,
  -- k given, or chosen by silhouette over [k_min, k_max].
  k int,
  k_min int,
  k_max int,
  seed int NOT NULL DEFAULT 42,
  -- A cron expression (UTC), or NULL: on demand only.
  schedule text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clustering_runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  clustering_id uuid NOT NULL REFERENCES clusterings (id) ON DELETE CASCADE,
  -- queued, running, succeeded, failed
  status text NOT NULL DEFAULT 'queued',
  by text NOT NULL,
  -- What the run is doing now ('reading features', 'trying k=4', 'writing', ...) and how far, 0..1.
  step text,
  progress real NOT NULL DEFAULT 0,
  k int,
  profiles int,
  -- Live profiles left out because a feature had no numeric value.
  skipped int,
  -- Silhouette per k tried, and the clusters: [{ id, size, centroid, standardised, distinguishing }].
  scores jsonb,
  clusters jsonb,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX clustering_runs_clustering_idx ON clustering_runs (clustering_id, created_at DESC);
