-- Destination filters become event filters of the rule language (packages/core/src/rules,
-- EventFilter): { type?, event?, where?: [{ property | field, cmp, value } | { not: ... }] } instead
-- of { types?, events?, where?: [{ path, op, value }] }. The conversion table is the one of
-- server/src/pipeline/deliver/legacy-filter.ts (which converts the old form on input for one
-- release); change both together.

-- One legacy condition as a list of new ones (none, one, or the pair that never holds).
CREATE FUNCTION pg_temp.cairn_legacy_condition(c jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN op = 'exists' THEN jsonb_build_array(exist)
    WHEN op = 'eq' AND kind IN ('string', 'number', 'boolean') THEN
      jsonb_build_array(target || jsonb_build_object('cmp', '=', 'value', val))
    WHEN op = 'eq' AND kind IN ('null', 'missing') THEN jsonb_build_array(jsonb_build_object('not', exist))
    WHEN op = 'neq' AND kind IN ('string', 'number', 'boolean') THEN
      jsonb_build_array(jsonb_build_object('not', target || jsonb_build_object('cmp', '=', 'value', val)))
    WHEN op = 'neq' AND kind IN ('null', 'missing') THEN jsonb_build_array(exist)
    -- An array or object: held for nearly every event, and rule comparisons take no whole objects.
    WHEN op = 'neq' THEN '[]'::jsonb
    WHEN op IN ('gt', 'gte', 'lt', 'lte') AND kind IN ('string', 'number') THEN
      jsonb_build_array(target || jsonb_build_object(
        'cmp', CASE op WHEN 'gt' THEN '>' WHEN 'gte' THEN '>=' WHEN 'lt' THEN '<' ELSE '<=' END,
        'value', val))
    WHEN op = 'contains' AND val = '""'::jsonb THEN jsonb_build_array(exist)
    WHEN op = 'contains' AND kind IN ('string', 'number', 'boolean') THEN
      jsonb_build_array(target || jsonb_build_object('cmp', 'contains', 'value', val #>> '{}'))
    WHEN op = 'in' AND kind = 'array' AND scalars IS NOT NULL THEN
      jsonb_build_array(target || jsonb_build_object('cmp', 'in', 'value', scalars))
    -- Anything else never held (no such comparison of values): a pair that never holds either.
    ELSE jsonb_build_array(exist, jsonb_build_object('not', exist))
  END
  FROM (
    SELECT c ->> 'op' AS op,
      c -> 'value' AS val,
      coalesce(jsonb_typeof(c -> 'value'), 'missing') AS kind,
      target,
      target || '{"cmp": "exists"}'::jsonb AS exist,
      (
        SELECT jsonb_agg(x ORDER BY i)
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(c -> 'value') = 'array' THEN c -> 'value' ELSE '[]' END)
          WITH ORDINALITY AS e (x, i)
        WHERE jsonb_typeof(x) IN ('string', 'number', 'boolean')
      ) AS scalars
    FROM (
      SELECT CASE
        WHEN c ->> 'path' LIKE 'properties.%' AND length(c ->> 'path') > length('properties.')
          THEN jsonb_build_object('property', substr(c ->> 'path', length('properties.') + 1))
        ELSE jsonb_build_object('field', c ->> 'path')
      END AS target
    ) t
  ) x
$$;

-- The lists keep their names' singular (an empty list was no condition, and is dropped); where
-- conditions convert one by one, in order; a where left empty is dropped.
UPDATE destinations d
SET filter = (d.filter - 'types' - 'events' - 'where')
  || CASE WHEN jsonb_typeof(d.filter -> 'types') = 'array' AND jsonb_array_length(d.filter -> 'types') > 0
       THEN jsonb_build_object('type', d.filter -> 'types') ELSE '{}' END
  || CASE WHEN jsonb_typeof(d.filter -> 'events') = 'array' AND jsonb_array_length(d.filter -> 'events') > 0
       THEN jsonb_build_object('event', d.filter -> 'events') ELSE '{}' END
  || coalesce((
       SELECT jsonb_build_object('where', jsonb_agg(n ORDER BY i, j))
       FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d.filter -> 'where') = 'array' THEN d.filter -> 'where' ELSE '[]' END)
           WITH ORDINALITY AS c (cond, i),
         jsonb_array_elements(
           CASE WHEN cond ? 'path' AND cond ? 'op' THEN pg_temp.cairn_legacy_condition(cond) ELSE jsonb_build_array(cond) END
         ) WITH ORDINALITY AS m (n, j)
       HAVING count(*) > 0
     ), '{}')
WHERE d.filter ?| ARRAY['types', 'events', 'where'];

DROP FUNCTION pg_temp.cairn_legacy_condition(jsonb);

COMMENT ON COLUMN destinations.filter IS
  'An event filter of the rule language: { type?, event?, where?: [{ property | field, cmp, value } | { not: ... }] }';
