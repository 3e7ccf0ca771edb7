-- Employees: the people of the company flows assign people to and notify (an account owner, their
-- supervisor). Not customers: their rows are plain, kept by the admin API (/api/employees).

-- `id` is the company's own (an HR or CRM id): events name employees by it. `role` says which of a
-- person's data a notification shows the employee: 'full' (clear) or 'masked' (sensitive traits masked,
-- as for callers without pii:read). An inactive employee is assigned and notified no more.
CREATE TABLE employees (
  id text PRIMARY KEY,
  name text NOT NULL,
  email text,
  chat_handle text,
  supervisor_id text REFERENCES employees (id),
  role text NOT NULL DEFAULT 'masked' CHECK (role IN ('full', 'masked')),
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (supervisor_id IS NULL OR supervisor_id <> id)
);
CREATE INDEX employees_supervisor_idx ON employees (supervisor_id) WHERE supervisor_id IS NOT NULL;

-- The employees linked to a person, in order: the first (lowest position) is the lead owner. A merge
-- moves the merged-away profile's links to the survivor (after the survivor's own); an erasure deletes
-- them. No foreign key to profiles: erasure and merges own that table's life cycle.
CREATE TABLE profile_employees (
  profile_id uuid NOT NULL,
  employee_id text NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
  position integer NOT NULL,
  linked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (profile_id, employee_id)
);
CREATE INDEX profile_employees_employee_idx ON profile_employees (employee_id);

-- A round-robin assign_owner node's counter: incremented in the step's transaction that assigns, so
-- assignments go round the list in turn across runs, servers and restarts (a rolled-back step takes
-- no turn). Per flow, not per version: a new version goes on where the last one stopped.
CREATE TABLE flow_round_robin (
  flow_id text NOT NULL REFERENCES flows (id),
  node text NOT NULL,
  turns bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (flow_id, node)
);
