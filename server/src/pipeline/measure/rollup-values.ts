import type { Sql, Transaction, Tx } from '../../db/index.ts';

/** A property of a named event rolled up per hour (analytics_rollup_properties). */
export interface RolledProperty {
  /** The event's name (track events; a page's name for page events). */
  event: string;
  /** A dot path under the event's properties, as a trend's `property` or breakdown is written. */
  property: string;
  /** Also counted per value, so that a breakdown by the property reads the rollup. */
  byValue: boolean;
}

/** A rolled-up property as registered, with since when its rows were counted. */
export interface RolledPropertyRow extends RolledProperty {
  /**
   * When its rows were last counted from the events (created_at; a new fill sets it again). Every hour
   * from then on is complete: no event that recent can have been dropped by retention yet.
   */
  createdAt: Date;
}

/**
 * The properties rolled up per hour (a handful; every tile reads them to choose its source).
 *
 * @example
 * const rolled = await rolledProperties(sql); // [{ event: 'Order Completed', property: 'total', byValue: false, createdAt }]
 */
export async function rolledProperties(tx: Tx): Promise<RolledPropertyRow[]> {
  return tx<RolledPropertyRow[]>`
    SELECT event, property, by_value AS "byValue", created_at AS "createdAt"
    FROM analytics_rollup_properties
    ORDER BY event, property`;
}

/**
 * The rows each rolled-up property holds in analytics_hourly_values (GET /api/analytics/rollups/properties),
 * keyed `event` + NUL + `property`: one pass over the table's narrow key index.
 *
 * @example
 * const rows = await rolledPropertyRows(sql); // Map { 'Order Completed\0total' => 2160 }
 */
export async function rolledPropertyRows(tx: Tx): Promise<Map<string, number>> {
  const rows = await tx<{ event: string; property: string; n: number }[]>`
    SELECT event, property, count(*)::int AS n
    FROM analytics_hourly_values
    GROUP BY event, property`;
  return new Map(rows.map((r) => [`${r.event}\0${r.property}`, r.n]));
}

/**
 * Recounts analytics_hourly_values for rollup keys (hour ISO, type, event ''-for-none), in the
 * transaction of recountRollup, which already holds the keys' advisory locks: the rows of keys whose
 * event has rolled-up properties are deleted and counted again from its attached events (idempotent).
 * Keys of other events cost one probe of the registry.
 *
 * @example
 * await recountValues(tx, hours, types, events);
 */
export async function recountValues(tx: Transaction, hours: string[], types: string[], events: string[]) {
  const [some] = await tx<{ any: boolean }[]>`
    SELECT EXISTS (SELECT 1 FROM analytics_rollup_properties WHERE event = ANY(${events}::text[])) AS any`;
  if (!some?.any) return;
  await tx`
    DELETE FROM analytics_hourly_values r
    USING unnest(${hours}::timestamptz[], ${types}::text[], ${events}::text[]) AS k(hour, type, event)
    WHERE r.hour = k.hour AND r.type = k.type AND r.event = k.event`;
  // One read of each key's events for all of its event's properties (the payloads are the cost).
  await tx`
    INSERT INTO analytics_hourly_values (property, event, hour, type, value, n, sum, nums)
    SELECT c.property, k.event, k.hour, k.type, c.value, c.n, c.sum, c.nums
    FROM unnest(${hours}::timestamptz[], ${types}::text[], ${events}::text[]) AS k(hour, type, event)
    CROSS JOIN LATERAL (${valuesOf(tx)}
      WHERE e.profile_id IS NOT NULL
        AND e.type = k.type
        AND e.timestamp >= k.hour
        AND e.timestamp < k.hour + interval '1 hour'
        AND e.event = k.event
      GROUP BY 1, 2
    ) c
    WHERE k.event IN (SELECT event FROM analytics_rollup_properties)`;
}

// Per property of the key's event, and per value when by value (else one row): events, and the sum and
// number of JSON numbers — the same expressions the trends scan uses (packages/core's trends.ts).
function valuesOf(tx: Tx) {
  const v = tx`(e.payload #> p.path)`;
  return tx`
      SELECT p.property,
        CASE WHEN p.by_value THEN e.payload #>> p.path END AS value,
        count(*) AS n,
        sum(CASE WHEN jsonb_typeof(${v}) = 'number' THEN ${v}::float8 END) AS sum,
        count(CASE WHEN jsonb_typeof(${v}) = 'number' THEN 1 END) AS nums
      FROM events e
      CROSS JOIN (
        SELECT property, by_value, '{properties}'::text[] || string_to_array(property, '.') AS path
        FROM analytics_rollup_properties
        WHERE event = k.event
      ) p`;
}

/**
 * Rolls a property of an event up (or changes whether it is counted per value): records it and counts
 * its rows from the event's attached events (created_at: now, the fill's time; see
 * {@link RolledPropertyRow}). The table lock waits for recounts in flight and holds new
 * ones back, so no key is counted without the property after this commits.
 *
 * @example
 * await rollUpProperty(sql, { event: 'Order Completed', property: 'total', byValue: false });
 */
export async function rollUpProperty(sql: Sql, p: RolledProperty): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`LOCK TABLE analytics_hourly_values IN EXCLUSIVE MODE`;
    await tx`DELETE FROM analytics_hourly_values WHERE event = ${p.event} AND property = ${p.property}`;
    await tx`
      INSERT INTO analytics_rollup_properties (event, property, by_value) VALUES (${p.event}, ${p.property}, ${p.byValue})
      ON CONFLICT (event, property) DO UPDATE SET by_value = excluded.by_value, created_at = now()`;
    await tx`
      INSERT INTO analytics_hourly_values (property, event, hour, type, value, n, sum, nums)
      SELECT p.property, coalesce(e.event, ''), date_trunc('hour', e.timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
        e.type, c.value, count(*), sum(c.num), count(c.num)
      FROM analytics_rollup_properties p
      JOIN events e ON e.profile_id IS NOT NULL AND e.event = p.event
      CROSS JOIN LATERAL (
        SELECT CASE WHEN p.by_value THEN e.payload #>> c.path END AS value,
          CASE WHEN jsonb_typeof(e.payload #> c.path) = 'number' THEN (e.payload #> c.path)::float8 END AS num
        FROM (SELECT '{properties}'::text[] || string_to_array(p.property, '.') AS path) c
      ) c
      WHERE p.event = ${p.event} AND p.property = ${p.property}
      GROUP BY 1, 2, 3, 4, 5`;
  });
}

/**
 * Stops rolling a property of an event up: tiles on it scan events again.
 *
 * @example
 * await dropRolledProperty(sql, { event: 'Order Completed', property: 'total' });
 */
export async function dropRolledProperty(sql: Sql, p: { event: string; property: string }): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`LOCK TABLE analytics_hourly_values IN EXCLUSIVE MODE`;
    await tx`DELETE FROM analytics_rollup_properties WHERE event = ${p.event} AND property = ${p.property}`;
    await tx`DELETE FROM analytics_hourly_values WHERE event = ${p.event} AND property = ${p.property}`;
  });
}
