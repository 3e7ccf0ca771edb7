import type { Sql, Tx } from '../../db/index.ts';
import { type HandOff, handOffIds } from '../../jobs/handoff.ts';
import { lockProfiles } from './locks.ts';
import { type ChangedDefinition, recordChangeEvents } from './store.ts';

// Change events of large diffs (a full recompute entering half a million profiles) are not recorded in the diff's
// transaction: it appends narrow rows to `compute_changes` instead, and a drainer records them afterwards in chunks
// (migration 0009). Recording them inline doubled the recompute's time (~115 µs per event: two identity lookups and
// the events table's indexes) and held the definition's transaction open meanwhile.

/** Above this many changes in one diff, the change events go to the outbox. */
export const INLINE_CHANGE_EVENTS = 1000;
/** Rows recorded per drain transaction. */
const DRAIN_CHUNK = 2000;
// One drainer at a time across every process (class 5; identify 1-2, delivery order 3, compute profiles 4): drains
// never wait on each other's rows, and each takes the profiles' locks before their rows, as the incremental path does.
const DRAINER = 5;

/** One pending change. */
interface Pending {
  id: string;
  kind: 'audience' | 'tag';
  key: string;
  name: string;
  change: 'enter' | 'exit';
  profileId: string;
  at: Date;
  by: string;
}

/**
 * Appends changes to the outbox, in the diff's transaction.
 *
 * @example
 * await deferChanges(tx, { kind: 'audience', key: 'vip', name: 'VIP' }, 'enter', ids, now, 'recompute');
 */
export async function deferChanges(
  tx: Tx,
  def: ChangedDefinition,
  change: 'enter' | 'exit',
  profileIds: readonly string[],
  at: Date,
  by: string,
): Promise<void> {
  if (!profileIds.length) return;
  await tx`
    INSERT INTO compute_changes (kind, key, name, change, profile_id, at, by)
    SELECT ${def.kind}, ${def.key}, ${def.name}, ${change}, p, ${at}, ${by}
    FROM unnest(${profileIds as string[]}::uuid[]) WITH ORDINALITY AS u (p, n) ORDER BY n`;
}

/** Records pending rows as change events, in outbox order, grouped by definition and change. */
async function record(tx: Tx, rows: readonly Pending[]): Promise<string[]> {
  const ids: string[] = [];
  let start = 0;
  const same = (a: Pending, b: Pending) =>
    a.kind === b.kind && a.key === b.key && a.change === b.change && a.by === b.by && +a.at === +b.at;
  for (let i = 1; i <= rows.length; i++) {
    if (i < rows.length && same(rows[i]!, rows[start]!)) continue;
    const g = rows[start]!;
    const profiles = rows.slice(start, i).map((r) => r.profileId);
    for (const id of await recordChangeEvents(tx, g, g.change, profiles, g.at, g.by)) ids.push(id);
    start = i;
  }
  return ids;
}

const PENDING_COLUMNS = 'id::text, kind, key, name, change, profile_id::text AS "profileId", at, by';

/**
 * Records the pending changes of these profiles now (the caller holds their stage 3 locks), so that
 * a newer change of a profile is never recorded before an older one still in the outbox. Returns the
 * change events' ids.
 *
 * @example
 * const ids = await flushPending(tx, profileIds);
 */
export async function flushPending(tx: Tx, profileIds: readonly string[]): Promise<string[]> {
  if (!profileIds.length) return [];
  const rows = await tx.unsafe<Pending[]>(
    `WITH gone AS (DELETE FROM compute_changes WHERE profile_id = ANY($1::uuid[]) RETURNING *)
     SELECT ${PENDING_COLUMNS} FROM gone ORDER BY id`,
    [profileIds as string[]],
  );
  return rows.length ? record(tx, rows) : [];
}

/**
 * Records changes as events now, after any of these profiles' changes still in the outbox (the
 * caller holds their stage 3 locks). Returns the ids of every event recorded.
 *
 * @example
 * const ids = await recordInOrder(tx, { kind: 'tag', key: 'vip', name: 'VIP' }, 'enter', [id], now, 'api');
 */
export async function recordInOrder(
  tx: Tx,
  def: ChangedDefinition,
  change: 'enter' | 'exit',
  profileIds: readonly string[],
  at: Date,
  by: string,
): Promise<string[]> {
  if (!profileIds.length) return [];
  const ids = await flushPending(tx, profileIds);
  for (const id of await recordChangeEvents(tx, def, change, profileIds, at, by)) ids.push(id);
  return ids;
}

/**
 * Records one chunk of the outbox as change events and hands them to fan-out, in one transaction.
 * Returns how many rows it recorded: 0 when the outbox is empty or another process is draining.
 *
 * @example
 * while ((await drainOnce(deps)) > 0);
 */
export async function drainOnce(deps: { sql: Sql; handOff: HandOff }, limit = DRAIN_CHUNK): Promise<number> {
  return (await deps.sql.begin(async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`SELECT pg_try_advisory_xact_lock(${DRAINER}::int, 0) AS ok`;
    if (!lock?.ok) return 0;
    const next = await tx<{ id: string; profileId: string }[]>`
      SELECT id::text, profile_id::text AS "profileId" FROM compute_changes ORDER BY id LIMIT ${limit}`;
    if (!next.length) return 0;
    await lockProfiles(tx, [...new Set(next.map((r) => r.profileId))]);
    // Rows a profile's newer change flushed meanwhile are gone: only those still here are recorded.
    const rows = await tx.unsafe<Pending[]>(
      `WITH gone AS (DELETE FROM compute_changes WHERE id = ANY($1::bigint[]) RETURNING *)
       SELECT ${PENDING_COLUMNS} FROM gone ORDER BY id`,
      [next.map((r) => r.id)],
    );
    const eventIds = await record(tx, rows);
    await handOffIds(deps.handOff, tx, 'memberships.changed', eventIds);
    return next.length;
  })) as number;
}

/**
 * Drains the whole outbox (until it is empty, another process drains it, or `stop()` says so between
 * chunks). Returns the rows recorded.
 *
 * @example
 * await drainChanges(deps);
 */
export async function drainChanges(
  deps: { sql: Sql; handOff: HandOff },
  stop: () => boolean = () => false,
): Promise<number> {
  let total = 0;
  for (let n = await drainOnce(deps); n > 0 && !stop(); n = await drainOnce(deps)) total += n;
  return total;
}
