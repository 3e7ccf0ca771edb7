import type { Sql } from '../db/index.ts';
import { BOSS_SCHEMA, type QUEUES } from '../jobs/queues.ts';

/** One pg-boss queue: what waits in it and for how long. */
export interface QueueStatus {
  queue: string;
  /** The pipeline stage the queue feeds (a destination's queue: the destination's name). */
  stage: string;
  /** Jobs that may start now. */
  ready: number;
  /** Jobs waiting for a later start: retries backing off, deferred jobs. */
  later: number;
  active: number;
  /** Age of the oldest job not started yet (ready or later), in seconds: the stage's lag; null when none waits. */
  oldestSeconds: number | null;
}

/** A destination's unfinished deliveries in the ledger: the backlog behind its queue. */
export interface DeliveryBacklog {
  destinationId: string;
  name: string;
  pending: number;
  /** Behind an earlier unfinished delivery of the same profile (kept in order, no job yet). */
  waiting: number;
  retrying: number;
  oldestSeconds: number | null;
}

export interface Status {
  queues: QueueStatus[];
  deliveries: DeliveryBacklog[];
}

// The stage each consumer queue feeds, as the pipeline numbers them (pipeline/index.ts).
const STAGES: Record<keyof typeof QUEUES, string> = {
  identify: '2 identify',
  compute: '3 compute',
  recompute: '3 recompute (full)',
  automate: '4 automate',
  effects: '4 flow webhooks and actions',
  effects_dead: '4 flow calls whose last attempt never finished',
  fanout: '5 fan-out',
  messages: '5 flow messages',
  forget: '5 forget',
  measure: '6 measure (hourly rollup)',
};

/**
 * The queues and the delivery backlog, counted now from pg-boss's job table and the delivery ledger
 * (pg-boss's own per-queue counters are refreshed only by a supervising worker's monitor pass).
 *
 * @example
 * const { queues, deliveries } = await readStatus(sql);
 */
export async function readStatus(sql: Sql): Promise<Status> {
  const boss = sql(BOSS_SCHEMA);
  // Unfinished jobs only (the state enum is ordered: created < retry < active < completed ...), grouped per
  // queue; every declared queue is listed, an idle one with zeros. A destination's queue is deliver.<id>.
  const queues = await sql<(Omit<QueueStatus, 'stage'> & { destination: string | null })[]>`
    WITH open AS (
      SELECT name, state, start_after, created_on
      FROM ${boss}.job
      WHERE state < 'completed'
    )
    SELECT
      q.name AS queue,
      d.name AS destination,
      count(o.name) FILTER (WHERE o.state < 'active' AND o.start_after <= now())::int AS ready,
      count(o.name) FILTER (WHERE o.state < 'active' AND o.start_after > now())::int AS later,
      count(o.name) FILTER (WHERE o.state = 'active')::int AS active,
      EXTRACT(EPOCH FROM now() - min(o.created_on) FILTER (WHERE o.state < 'active'))::float8 AS "oldestSeconds"
    FROM ${boss}.queue q
    LEFT JOIN open o ON o.name = q.name
    LEFT JOIN destinations d ON q.name = 'deliver.' || d.id
    GROUP BY q.name, d.name
    ORDER BY q.name`;
  const deliveries = await sql<DeliveryBacklog[]>`
    SELECT
      d.id AS "destinationId",
      d.name,
      count(*) FILTER (WHERE l.status = 'pending')::int AS pending,
      count(*) FILTER (WHERE l.status = 'waiting')::int AS waiting,
      count(*) FILTER (WHERE l.status = 'retrying')::int AS retrying,
      EXTRACT(EPOCH FROM now() - min(l.created_at))::float8 AS "oldestSeconds"
    FROM destinations d
    JOIN deliveries l ON l.destination_id = d.id AND l.status IN ('pending', 'waiting', 'retrying')
    GROUP BY d.id, d.name
    ORDER BY d.name, d.id`;
  return {
    queues: queues
      .map(({ destination, ...q }) => ({
        ...q,
        stage:
          STAGES[q.queue as keyof typeof QUEUES] ??
          (destination ? `5 deliver: ${destination}` : q.queue.startsWith('__pgboss__') ? 'pg-boss' : 'other'),
      }))
      // In the order of the pipeline.
      .sort((a, b) => a.stage.localeCompare(b.stage) || a.queue.localeCompare(b.queue)),
    deliveries: [...deliveries],
  };
}

/**
 * Seconds as an operator reads them: `0.4 s`, `42 s`, `3 min 12 s`, `5 h 02 min`.
 *
 * @example
 * formatAge(192); // '3 min 12 s'
 */
export function formatAge(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * Rows as a plain text table: a header, columns padded to their widest cell, numbers right-aligned.
 *
 * @example
 * formatTable([{ queue: 'identify', ready: 3 }]); // 'queue     ready\nidentify      3\n'
 */
export function formatTable(rows: Record<string, string | number>[]): string {
  const first = rows[0];
  if (!first) return '';
  const columns = Object.keys(first);
  const width = (c: string) => Math.max(c.length, ...rows.map((r) => String(r[c]).length));
  const cell = (c: string, v: string | number) =>
    typeof first[c] === 'number' ? String(v).padStart(width(c)) : String(v).padEnd(width(c));
  const line = (cells: string[]) => `${cells.join('  ').trimEnd()}\n`;
  return (
    line(columns.map((c) => (typeof first[c] === 'number' ? c.padStart(width(c)) : c.padEnd(width(c))))) +
    rows.map((r) => line(columns.map((c) => cell(c, r[c] ?? '')))).join('')
  );
}
