import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bossExecutor, isDataError } from '../../db/index.ts';
import { createHandOff } from '../../jobs/handoff.ts';
import { BOSS_SCHEMA } from '../../jobs/queues.ts';
import type { Cairn } from '../../server.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, startTestCairn, type TestDatabase } from '../../testing/index.ts';
import type { EventRow } from './enrich.ts';
import { createEventWriter } from './writer.ts';

// The group commit stores a group's events and hands the new ones to identify in ONE statement (no BEGIN or
// COMMIT): these tests drive the writer itself against an ingest-only node's database (no worker takes the
// jobs), and compare its job with the one pg-boss's send writes for handOff.

interface JobRow {
  id: string;
  data: { ids: string[]; topic: string };
  [column: string]: unknown;
}

describe.each(['postgres', 'embedded'] as const)('event writer on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let sourceId: string;
  let n = 0;
  const logged: string[] = [];
  const writer = () =>
    createEventWriter({
      sql: cairn.sql,
      metrics: cairn.metrics,
      log: { info: () => {}, debug: () => {}, error: (message) => logged.push(message) },
      maxRows: 100,
      concurrency: 1,
    });
  const row = (messageId: string, timestamp = new Date().toISOString()): EventRow => ({
    sourceId,
    messageId,
    type: 'track',
    event: 'Order Completed',
    userId: 'u1',
    anonymousId: null,
    timestamp,
    receivedAt: new Date().toISOString(),
    payload: JSON.stringify({ type: 'track', event: 'Order Completed', messageId }),
  });
  const fresh = () => `writer-${mode}-${++n}`;
  const idsOf = async (messageIds: string[]) =>
    (
      await cairn.sql<{ id: string }[]>`
        SELECT id::text FROM events WHERE source_id = ${sourceId} AND message_id = ANY(${messageIds}) ORDER BY id`
    ).map((r) => r.id);
  // The identify jobs that name any of these event ids.
  const jobsFor = async (ids: string[]) =>
    (await cairn.sql<JobRow[]>`SELECT * FROM pgboss.job WHERE name = 'identify' ORDER BY created_on`).filter((j) =>
      j.data.ids.some((id) => ids.includes(id)),
    );

  beforeAll(async () => {
    db = await createTestDatabase(`ingest/writer.test.ts:${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest' });
    sourceId = cairn.demoSource!.id;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('stores a group and hands it over as exactly one job with its ids; an all-duplicates request makes none', async () => {
    const w = writer();
    const [m1, m2, m3] = [fresh(), fresh(), fresh()];
    // Two requests in one group, the second repeating the first's m2: counted per request as before.
    const [a, b] = await Promise.all([w.write([row(m1), row(m2)]), w.write([row(m2), row(m3)])]);
    expect(a).toEqual({ inserted: 2, duplicates: 0 });
    expect(b).toEqual({ inserted: 1, duplicates: 1 });
    const ids = await idsOf([m1, m2, m3]);
    expect(ids).toHaveLength(3);
    const jobs = await jobsFor(ids);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.data).toEqual({ ids, topic: 'events.stored' });
    expect(jobs[0]!.state).toBe('created');

    expect(await w.write([row(m1), row(m3)])).toEqual({ inserted: 0, duplicates: 2 });
    expect(await jobsFor(ids), 'no job for a request of duplicates only').toHaveLength(1);
    expect(await idsOf([m1, m2, m3])).toEqual(ids);
  });

  it("writes the job pg-boss's send writes for handOff, column by column", async () => {
    const m = fresh();
    expect(await writer().write([row(m)])).toEqual({ inserted: 1, duplicates: 0 });
    const [mine] = await jobsFor(await idsOf([m]));

    const boss = new PgBoss({
      db: bossExecutor(cairn.sql),
      schema: BOSS_SCHEMA,
      backend: mode === 'embedded' ? 'pglite' : 'postgres',
      supervise: false,
      schedule: false,
      registerInstance: false,
    });
    await boss.start();
    try {
      const handOff = createHandOff(boss);
      await cairn.sql.begin((tx) => handOff(tx, 'events.stored', { ids: ['sent-by-pg-boss'] }));
    } finally {
      await boss.stop({ graceful: false, close: false });
    }
    const [sent] = await cairn.sql<JobRow[]>`
      SELECT * FROM pgboss.job WHERE name = 'identify' AND data->'ids' ? 'sent-by-pg-boss'`;
    expect(sent, 'the job handOff wrote').toBeDefined();

    const span = (j: JobRow) => (j.keep_until as Date).getTime() - (j.start_after as Date).getTime();
    expect(span(mine!)).toBe(span(sent!));
    expect(mine!.start_after).toEqual(mine!.created_on);
    const rest = ({ id, data, created_on, start_after, keep_until, ...other }: JobRow) => other;
    expect(rest(mine!)).toEqual(rest(sent!));
    expect(Object.keys(mine!.data).sort()).toEqual(Object.keys(sent!.data).sort());
  });

  it("retries a group one request at a time when one request's data is refused: the others are stored and handed over", async () => {
    const w = writer();
    const [good, bad] = [fresh(), fresh()];
    const [ok, refused] = await Promise.allSettled([w.write([row(good)]), w.write([row(bad, 'not a timestamp')])]);
    expect(ok).toEqual({ status: 'fulfilled', value: { inserted: 1, duplicates: 0 } });
    expect(refused.status).toBe('rejected');
    expect(isDataError((refused as PromiseRejectedResult).reason)).toBe(true);
    expect(logged, 'the two went as one group first').toEqual([
      'group commit of 2 requests failed; retrying one by one',
    ]);
    const ids = await idsOf([good, bad]);
    expect(ids).toHaveLength(1);
    const jobs = await jobsFor(ids);
    expect(jobs.map((j) => j.data)).toEqual([{ ids, topic: 'events.stored' }]);
  });
});
