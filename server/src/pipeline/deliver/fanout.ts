import type { AcceptedEvent } from '@cairn/plugin-api';
import type { PgBoss } from 'pg-boss';
import type { Sql } from '../../db/index.ts';
import { QUEUES } from '../../jobs/queues.ts';
import type { Pii } from '../../pii/index.ts';
import type { Inbox } from '../topics.ts';
import type { ActiveDestination, DestinationDirectory } from './directory.ts';
import { enqueueDeliveries } from './enqueue.ts';
import { matchesFilter } from './filter.ts';
import { inOrder, isOrdered, lockQuery, MAX_ORDER_LOCKS, promoteIfReady } from './order.ts';
import {
  deliveriesInsert,
  type EventForDelivery,
  eventsForFanout,
  type InsertedDelivery,
  insertedOf,
  type NewDelivery,
} from './queries/fanout.ts';

const FANOUT_WORK = {
  batchSize: 20,
  // Retries coming due are not notified: poll for them sooner than pg-boss's 30 s default.
  pollingIntervalSeconds: 0.5,
  notifyPollingIntervalSeconds: 2,
  // A full fetch means a backlog: fetch again at once instead of waiting for the next poll.
  burstWhenBatchFull: true,
  localConcurrency: 2,
  // createdOn: when the jobs were made, for the destination list's freshness.
  includeMetadata: true,
} as const;

/**
 * Stage 5's consumer of the `fanout` queue: events attached to their profiles (`events.attached`) and
 * recorded membership changes (`memberships.changed`).
 *
 * @example
 * await startFanoutWorker(boss, sql, destinations, pii);
 */
export async function startFanoutWorker(
  boss: PgBoss,
  sql: Sql,
  destinations: DestinationDirectory,
  pii: Pick<Pii, 'openPayload'>,
  /** The clock filters' relative dates are evaluated against (the runtime's). */
  now: () => Date = () => new Date(),
): Promise<void> {
  await boss.work<Inbox<'fanout'>, void, typeof FANOUT_WORK>(
    QUEUES.fanout.name,
    FANOUT_WORK,
    async function fanOutCommitted(jobs) {
      // A destination created before these events were accepted may not be known here yet (another
      // server's change, seen at the next refresh): check the table first when the list is older.
      await destinations.checkedSince(Math.max(...jobs.map((j) => j.createdOn.getTime())));
      await fanOutWith(
        boss,
        sql,
        destinations.active(),
        jobs.flatMap((j) => j.data.ids),
        pii,
        now,
      );
    },
  );
}

/**
 * Fans events out: for each enabled destination whose plugin accepts the event type, a ledger row —
 * `pending` when the destination's filter matches, `skipped` (reason `filter`) when not — and jobs on
 * the destination's own queue, in the same transaction. For ordered destinations a row whose profile
 * already has unfinished rows there is inserted `waiting`, without a job (see order.ts). Idempotent:
 * the ledger is unique per (event, destination), and only newly inserted rows get jobs, so a
 * re-delivered batch sends nothing twice. Returns how many rows will be delivered (pending or waiting).
 *
 * @example
 * await fanOutWith(boss, sql, destinations.active(), ids, pii);
 */
export async function fanOutWith(
  boss: PgBoss,
  sql: Sql,
  active: readonly ActiveDestination[],
  ids: readonly string[],
  pii: Pick<Pii, 'openPayload'>,
  now: () => Date = () => new Date(),
): Promise<number> {
  if (!active.length || !ids.length) return 0;
  const nowMs = now().getTime();
  const events = await eventsForFanout(
    sql,
    ids,
    active.some((a) => a.destination.filter.where?.length),
  );
  // One transaction per chunk of events (in event order), so that no transaction takes more line
  // locks than MAX_ORDER_LOCKS; a crash between chunks retries the job, and the chunks already
  // committed are not inserted (nor enqueued) again.
  const ordered = active.filter(isOrdered).length;
  const chunk = Math.max(1, Math.floor(MAX_ORDER_LOCKS / Math.max(1, ordered)));
  let inserted = 0;
  for (let i = 0; i < events.length; i += chunk) {
    inserted += await fanOutChunk(boss, sql, active, events.slice(i, i + chunk), pii, nowMs);
  }
  return inserted;
}

async function fanOutChunk(
  boss: PgBoss,
  sql: Sql,
  active: readonly ActiveDestination[],
  events: readonly EventForDelivery[],
  pii: Pick<Pii, 'openPayload'>,
  nowMs: number,
): Promise<number> {
  const rows: NewDelivery[] = [];
  // Filters compare clear values (a `where` on properties.email must see the address, not its seal).
  const opened = new Map<string, Record<string, unknown>>();
  const payloadOf = (e: EventForDelivery) => {
    const known = opened.get(e.id);
    if (known) return known;
    const p = pii.openPayload(e.payload);
    opened.set(e.id, p);
    return p;
  };
  for (const a of active) {
    for (const e of events) {
      if (!a.plugin.accepts.includes(e.type as AcceptedEvent)) continue;
      const pass = !a.destination.filter.where?.length
        ? matchesFilter(e.payload, a.destination.filter, nowMs)
        : matchesFilter(payloadOf(e), a.destination.filter, nowMs);
      rows.push({
        destinationId: a.destination.id,
        eventId: e.id,
        profileId: e.profileId,
        idempotencyKey: `${e.messageId}:${a.destination.id}`,
        status: pass ? 'pending' : 'skipped',
        reason: pass ? null : 'filter',
        ordered: isOrdered(a),
      });
    }
  }
  if (!rows.length) return 0;
  const inserted = (await sql.begin(async (tx) => {
    // The locks, then the rows, in one round trip (see inOrder).
    const [, result] = await inOrder(
      lockQuery(
        tx,
        rows.filter((r) => r.ordered && r.status === 'pending'),
      ),
      deliveriesInsert(tx, rows),
    );
    const inserted = insertedOf(result);
    await enqueueDeliveries(
      boss,
      tx,
      active,
      inserted.filter((r) => r.status === 'pending'),
    );
    return inserted;
  })) as InsertedDelivery[];
  // A sender may have finished the rows these wait behind while this transaction ran (order.ts).
  for (const a of active) {
    const waiting = inserted.filter((r) => r.status === 'waiting' && r.destinationId === a.destination.id);
    if (waiting.length)
      await promoteIfReady(
        boss,
        sql,
        a,
        waiting.map((r) => r.profileId!),
      );
  }
  return inserted.length;
}
