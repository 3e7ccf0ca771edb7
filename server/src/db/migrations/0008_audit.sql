-- Audit log: one row per admin write (and per write refused for lack of permission), recorded by the
-- audit middleware on /api (server/src/audit). before/after hold the resource as the admin API shows it,
-- with secrets redacted and no profile identities; never the request body.
CREATE TABLE audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor_kind text NOT NULL,
  actor_id text NOT NULL,
  actor_role text NOT NULL,
  -- The person behind a session, or who created the API key used.
  actor_user_id text,
  action text NOT NULL,
  resource_type text NOT NULL,
  resource_id text,
  method text NOT NULL,
  path text NOT NULL,
  status integer NOT NULL,
  before jsonb,
  after jsonb,
  request_id text,
  ip text
);

-- Listing newest first pages on the primary key (ids grow with time); these serve the filters.
CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC);
