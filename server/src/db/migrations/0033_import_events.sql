-- Historical events import (issue 21): an import is of profiles (0029) or of events. Imported events are
-- stored by stage 1's own insert under the internal `import` source and go through stages 2-3 like any
-- event; `events.import_id` marks them so that stage 4 (flows) and stage 5 (fan-out) skip them unless
-- their import asked for it (trigger_flows, deliver).
ALTER TABLE imports ADD COLUMN kind text NOT NULL DEFAULT 'profiles' CHECK (kind IN ('profiles', 'events'));
ALTER TABLE imports ADD COLUMN trigger_flows boolean NOT NULL DEFAULT false;
ALTER TABLE imports ADD COLUMN deliver boolean NOT NULL DEFAULT false;
-- Events of an events import actually stored (rows_unchanged counts those stored before: same messageId).
ALTER TABLE imports ADD COLUMN events_stored integer NOT NULL DEFAULT 0;

-- Null for every event that did not come from an import (no default: adding it rewrites nothing).
ALTER TABLE events ADD COLUMN import_id bigint;
