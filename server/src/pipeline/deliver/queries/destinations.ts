import { randomBytes } from 'node:crypto';
import type { Tx } from '../../../db/index.ts';
import type { Filter } from '../filter.ts';

// Destinations: their rows, the fingerprint caches reload on, their circuit breaker and their plugin's store.

/** A configured destination. */
export interface Destination {
  id: string;
  name: string;
  plugin: string;
  settings: Record<string, unknown>;
  filter: Filter;
  purposes: string[];
  channel: string | null;
  topic: string;
  enabled: boolean;
  concurrency: number;
  rateLimit: number | null;
  retryWindowSeconds: number;
  failures: number;
  circuitOpenUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

const COLUMNS = (sql: Tx) => sql`
  id, name, plugin, settings, filter, purposes, channel, topic, enabled, concurrency,
  rate_limit AS "rateLimit",
  retry_window_seconds AS "retryWindowSeconds",
  failures,
  circuit_open_until AS "circuitOpenUntil",
  created_at AS "createdAt",
  updated_at AS "updatedAt"
`;

/** The fields an admin sets. */
export type DestinationInput = Pick<
  Destination,
  | 'name'
  | 'plugin'
  | 'settings'
  | 'filter'
  | 'purposes'
  | 'channel'
  | 'topic'
  | 'enabled'
  | 'concurrency'
  | 'rateLimit'
  | 'retryWindowSeconds'
>;

export async function insertDestination(sql: Tx, input: DestinationInput): Promise<Destination> {
  const id = `dst_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
  const [row] = await sql<Destination[]>`
    INSERT INTO destinations (id, name, plugin, settings, filter, purposes, channel, topic, enabled, concurrency,
      rate_limit, retry_window_seconds)
    VALUES (${id}, ${input.name}, ${input.plugin}, ${sql.json(input.settings as never)}, ${sql.json(input.filter as never)},
      ${input.purposes}, ${input.channel}, ${input.topic}, ${input.enabled}, ${input.concurrency}, ${input.rateLimit},
      ${input.retryWindowSeconds})
    RETURNING ${COLUMNS(sql)}`;
  return row!;
}

export async function updateDestination(
  sql: Tx,
  id: string,
  input: DestinationInput,
): Promise<Destination | undefined> {
  const [row] = await sql<Destination[]>`
    UPDATE destinations SET
      name = ${input.name}, settings = ${sql.json(input.settings as never)}, filter = ${sql.json(input.filter as never)},
      purposes = ${input.purposes}, channel = ${input.channel}, topic = ${input.topic}, enabled = ${input.enabled},
      concurrency = ${input.concurrency}, rate_limit = ${input.rateLimit},
      retry_window_seconds = ${input.retryWindowSeconds},
      -- New settings deserve a fresh chance: close the circuit.
      failures = 0, circuit_open_until = NULL, updated_at = now()
    WHERE id = ${id} AND deleted_at IS NULL
    RETURNING ${COLUMNS(sql)}`;
  return row;
}

export async function listDestinations(sql: Tx): Promise<Destination[]> {
  return sql<Destination[]>`SELECT ${COLUMNS(sql)} FROM destinations WHERE deleted_at IS NULL ORDER BY created_at, id`;
}

export async function getDestination(sql: Tx, id: string): Promise<Destination | undefined> {
  const [row] = await sql<
    Destination[]
  >`SELECT ${COLUMNS(sql)} FROM destinations WHERE id = ${id} AND deleted_at IS NULL`;
  return row;
}

export async function deleteDestination(sql: Tx, id: string): Promise<boolean> {
  const r =
    await sql`UPDATE destinations SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = ${id} AND deleted_at IS NULL`;
  return r.count > 0;
}

/** Changes whenever a destination is created, changed or deleted, so caches reload only then. */
export async function destinationsFingerprint(sql: Tx): Promise<string> {
  const [row] = await sql<{ f: string }[]>`
    SELECT count(*)::text || ':' || coalesce(max(updated_at)::text, '') AS f FROM destinations`;
  return row?.f ?? '';
}

/** Circuit breaker: the state a sender reads before sending. */
export async function circuitOf(sql: Tx, id: string): Promise<{ failures: number; openUntil: Date | null }> {
  const [row] = await sql<{ failures: number; open_until: Date | null }[]>`
    SELECT failures, circuit_open_until AS open_until FROM destinations WHERE id = ${id}`;
  return { failures: row?.failures ?? 0, openUntil: row?.open_until ?? null };
}

/**
 * Claims the single probe of an open circuit whose pause is over: the winner's batch decides; the
 * others see the circuit open for `probeSeconds` more.
 */
export async function claimProbe(sql: Tx, id: string, probeSeconds: number): Promise<boolean> {
  const r = await sql`
    UPDATE destinations SET circuit_open_until = now() + make_interval(secs => ${probeSeconds})
    WHERE id = ${id} AND circuit_open_until IS NOT NULL AND circuit_open_until <= now()`;
  return r.count > 0;
}

/** After a batch: any delivery closes the circuit; a batch that delivered nothing counts a failure. */
export async function recordBatchHealth(
  sql: Tx,
  id: string,
  ok: boolean,
  policy: { threshold: number; pauseSeconds: number; maxPauseSeconds: number },
): Promise<void> {
  if (ok) {
    await sql`UPDATE destinations SET failures = 0, circuit_open_until = NULL WHERE id = ${id} AND (failures > 0 OR circuit_open_until IS NOT NULL)`;
    return;
  }
  // Pause doubles with every failed probe past the threshold, up to the maximum.
  await sql`
    UPDATE destinations SET
      failures = failures + 1,
      circuit_open_until = CASE WHEN failures + 1 >= ${policy.threshold}
        THEN now() + make_interval(secs => least(${policy.maxPauseSeconds}::float8,
          ${policy.pauseSeconds}::float8 * power(2, failures + 1 - ${policy.threshold})))
        ELSE circuit_open_until END
    WHERE id = ${id}`;
}

export async function kvGet(sql: Tx, destination: string, key: string): Promise<unknown> {
  const [row] = await sql<{ value: unknown }[]>`
    SELECT value FROM destination_kv
    WHERE destination_id = ${destination} AND key = ${key} AND (expires_at IS NULL OR expires_at > now())`;
  return row?.value;
}

export async function kvSet(
  sql: Tx,
  destination: string,
  key: string,
  value: unknown,
  ttlSeconds?: number,
): Promise<void> {
  await sql`
    INSERT INTO destination_kv (destination_id, key, value, expires_at)
    VALUES (${destination}, ${key}, ${sql.json(value as never)},
      ${ttlSeconds ? sql`now() + make_interval(secs => ${ttlSeconds})` : null})
    ON CONFLICT (destination_id, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`;
}

export async function kvDelete(sql: Tx, destination: string, key: string): Promise<void> {
  await sql`DELETE FROM destination_kv WHERE destination_id = ${destination} AND key = ${key}`;
}
