import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listMigrations, migrate } from '../../db/migrate.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../../testing/index.ts';
import { foldCountDeltas } from './rollup.ts';

const DELTAS = 45;

type Q = postgres.Sql | FlowHarness['cairn']['sql'];

// The hourly counts as readers see them (the table plus the deltas not folded yet), the table alone, and a
// recount of the attached events now.
async function counts(sql: Q) {
  const [pending] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM analytics_count_deltas`;
  return {
    pending: pending!.n,
    seen: await sql`
      SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS hour, type, event, sum(n)::int AS n
      FROM (SELECT hour, type, event, n FROM analytics_hourly_counts
            UNION ALL SELECT hour, type, event, n FROM analytics_count_deltas) x
      GROUP BY 1, 2, 3 HAVING sum(n) <> 0 ORDER BY 1, 2, 3`,
    table: await sql`
      SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS hour, type, event, n::int AS n
      FROM analytics_hourly_counts ORDER BY 1, 2, 3`,
    recounted: await sql`
      SELECT to_char(date_trunc('hour', timestamp AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24') AS hour, type,
        coalesce(event, '') AS event, count(*)::int AS n
      FROM events WHERE profile_id IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  };
}

// Migration 0045: the hourly counts follow every change of the events table by deltas its triggers write
// in the changing statement, folded by the measure job; exact through the pipeline, merges, undo, erasure,
// rollbacks, retried and concurrent folds.
describeOnDatabases('hourly counts by deltas on %s', (mode) => {
  let h: FlowHarness;
  beforeAll(async () => {
    h = await flowHarness('count-deltas.test.ts', mode);
  }, 600_000);
  afterAll(() => h?.close());
  const settled = () => settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 60_000 });
  const at = (anonymousId: string, timestamp: string, event = 'Delta Viewed') => ({
    type: 'track',
    event,
    anonymousId,
    timestamp,
  });

  it('counts each attached event once through the pipeline, a merge, its undo and an erasure', async () => {
    await h.send(
      at('delta-a', '2026-09-01T10:10:00Z'),
      at('delta-a', '2026-09-01T10:20:00Z', 'Delta Bought'),
      at('delta-b', '2026-09-01T10:40:00Z'),
      { type: 'page', name: 'Home', anonymousId: 'delta-b', timestamp: '2026-09-01T11:05:00Z' },
      { type: 'page', anonymousId: 'delta-b', timestamp: '2026-09-01T11:06:00Z' },
    );
    await settled();
    let c = await counts(h.cairn.sql);
    // Every job folded what it counted: the table alone is exact.
    expect(c.pending).toBe(0);
    expect(c.table).toEqual(c.recounted);
    expect(c.table).toContainEqual({ hour: '2026-09-01 10', type: 'track', event: 'Delta Viewed', n: 2 });
    expect(c.table).toContainEqual({ hour: '2026-09-01 11', type: 'page', event: '', n: 1 });

    // Both devices sign in as one person: a merge re-points events and changes no count.
    await h.send(
      { type: 'identify', anonymousId: 'delta-a', userId: 'delta-user', timestamp: '2026-09-02T08:00:00Z' },
      { type: 'identify', anonymousId: 'delta-b', userId: 'delta-user', timestamp: '2026-09-02T09:00:00Z' },
    );
    await settled();
    c = await counts(h.cairn.sql);
    expect(c.table).toEqual(c.recounted);
    const survivor = await h.profileOf('delta-user');
    const merges = await h.api(`/profiles/${survivor}/merges`);
    const merge = merges.body.data.find((m: { kind: string }) => m.kind === 'merge');
    expect(merge, merges.text).toBeDefined();
    expect((await h.post(`/profiles/${survivor}/unmerge`, { mergeId: merge.id })).status).toBe(200);
    await settled();
    c = await counts(h.cairn.sql);
    expect(c.table).toEqual(c.recounted);

    // An erasure's DELETE takes its events off at once (its deltas wait for the next fold; readers add them).
    expect((await h.api(`/profiles/${survivor}`, { method: 'DELETE' })).status).toBe(200);
    c = await counts(h.cairn.sql);
    expect(c.seen).toEqual(c.recounted);
    const tile = await h.post('/analytics/trends', {
      range: { from: '2026-09-01T00:00:00Z', to: '2026-09-02T00:00:00Z', timezone: 'UTC' },
      interval: 'hour',
      series: [{ events: { event: 'Delta Viewed' }, measure: 'count' }],
    });
    expect(tile.status, tile.text).toBe(200);
    expect(tile.body.meta.sources).toEqual(['counts']);
    const viewed = c.recounted.find((r) => r.hour === '2026-09-01 10' && r.event === 'Delta Viewed');
    expect(tile.body.series[0].values[10]).toBe(viewed?.n ?? 0);
    await h.cairn.sql.begin((tx) => foldCountDeltas(tx));
    c = await counts(h.cairn.sql);
    expect(c.pending).toBe(0);
    expect(c.table).toEqual(c.recounted);
  });

  it('writes nothing for a rolled-back change, nets a detach and re-attach to nothing, and folds once', async () => {
    await h.send(at('delta-c', '2026-09-03T07:00:00Z'), at('delta-c', '2026-09-03T07:30:00Z'));
    await settled();
    const before = await counts(h.cairn.sql);
    expect(before.table).toEqual(before.recounted);
    const ids = (
      await h.cairn.sql<{ id: string }[]>`SELECT id::text AS id FROM events WHERE anonymous_id = 'delta-c'`
    ).map((r) => r.id);
    expect(ids.length).toBe(2);
    await expect(
      h.cairn.sql.begin(async (tx) => {
        await tx`UPDATE events SET profile_id = NULL WHERE id = ANY(${ids}::bigint[])`;
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect((await counts(h.cairn.sql)).pending).toBe(0);
    // Detached (-2) and attached again (+2) by two statements: two delta rows that fold to no change.
    const [owner] = await h.cairn.sql<{ p: string }[]>`SELECT profile_id::text AS p FROM events WHERE id = ${ids[0]!}`;
    await h.cairn.sql.begin(async (tx) => {
      await tx`UPDATE events SET profile_id = NULL WHERE id = ANY(${ids}::bigint[])`;
      await tx`UPDATE events SET profile_id = ${owner!.p}::uuid WHERE id = ANY(${ids}::bigint[])`;
    });
    expect((await counts(h.cairn.sql)).pending).toBe(2);
    // A statement changing no attached event's key writes no row.
    await h.cairn.sql`UPDATE events SET processed_at = processed_at WHERE id = ANY(${ids}::bigint[])`;
    expect((await counts(h.cairn.sql)).pending).toBe(2);
    // Folded twice (a retried job): the second finds nothing left.
    for (let i = 0; i < 2; i++) await h.cairn.sql.begin((tx) => foldCountDeltas(tx));
    const after = await counts(h.cairn.sql);
    expect(after.pending).toBe(0);
    expect(after.table).toEqual(before.table);
  });

  it('stays exact under concurrent detaches, re-attaches and folds', async () => {
    const people = ['delta-d', 'delta-e', 'delta-f', 'delta-g'];
    await h.send(...people.flatMap((p, i) => [at(p, `2026-09-04T0${i}:10:00Z`), at(p, '2026-09-04T05:10:00Z')]));
    await settled();
    const rows = await h.cairn.sql<{ id: string; p: string }[]>`
      SELECT id::text AS id, profile_id::text AS p FROM events WHERE anonymous_id = ANY(${people}::text[])`;
    expect(rows.length).toBe(8);
    // Each writer detaches its person's events and, in half the rounds, leaves them detached; folds run
    // beside them all the while.
    await Promise.all([
      ...rows.map((r, i) =>
        h.cairn.sql.begin(async (tx) => {
          await tx`UPDATE events SET profile_id = NULL WHERE id = ${r.id}`;
          if (i % 2 === 0) await tx`UPDATE events SET profile_id = ${r.p}::uuid WHERE id = ${r.id}`;
        }),
      ),
      ...rows.map(() => h.cairn.sql.begin((tx) => foldCountDeltas(tx))),
    ]);
    await h.cairn.sql.begin((tx) => foldCountDeltas(tx));
    const c = await counts(h.cairn.sql);
    expect(c.pending).toBe(0);
    expect(c.table).toEqual(c.recounted);
  });
});

describe.skipIf(POSTGRES_SKIP_REASON)(`migration ${DELTAS}: counts by deltas from an older database`, () => {
  let db: TestDatabase;
  let sql: postgres.Sql;
  beforeAll(async () => {
    db = await createTestDatabase('count-deltas-migration.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 1, onnotice: () => {} });
    const before = (await listMigrations()).filter((m) => m.version < DELTAS);
    await sql.begin(async (tx) => {
      await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
      for (const m of before) {
        await tx.unsafe(m.sql);
        await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      }
    });
  });
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it('recounts the keys of events attached in the last day whose measure job had not run', async () => {
    const [p] = await sql<
      { id: string }[]
    >`INSERT INTO profiles (id) VALUES (gen_random_uuid()) RETURNING id::text AS id`;
    const [source] = await sql<{ id: string }[]>`SELECT id FROM sources ORDER BY id LIMIT 1`;
    const insert = (message: string, timestamp: string, processed: string | null) => sql`
      INSERT INTO events (source_id, message_id, type, event, timestamp, received_at, payload, profile_id, processed_at)
      VALUES (${source!.id}, ${message}, 'track', 'Upgraded', ${timestamp}::timestamptz, now(), '{}',
        ${processed ? p!.id : null}::uuid, ${processed}::timestamptz)`;
    // Counted long ago by an old job; attached just now with its job still queued; not attached yet.
    await insert('m1', '2026-01-05T10:00:00Z', '2026-01-05T10:00:01Z');
    await sql`INSERT INTO analytics_hourly_counts (hour, type, event, n) VALUES ('2026-01-05T10:00:00Z', 'track', 'Upgraded', 1)`;
    await insert('m2', '2026-01-06T10:00:00Z', new Date().toISOString());
    await insert('m3', '2026-01-06T10:30:00Z', new Date().toISOString());
    await insert('m4', '2026-01-07T10:00:00Z', null);
    expect(await migrate(sql)).toEqual([
      DELTAS,
      ...(await listMigrations()).map((m) => m.version).filter((v) => v > DELTAS),
    ]);
    const c = await counts(sql);
    expect(c.table).toEqual(c.recounted);
    expect(c.table).toEqual([
      { hour: '2026-01-05 10', type: 'track', event: 'Upgraded', n: 1 },
      { hour: '2026-01-06 10', type: 'track', event: 'Upgraded', n: 2 },
    ]);
    // From now on the triggers count: attaching the last one writes its delta.
    await sql`UPDATE events SET profile_id = ${p!.id}::uuid, processed_at = now() WHERE message_id = 'm4'`;
    await sql.begin((tx) => foldCountDeltas(tx as never));
    const after = await counts(sql);
    expect(after.pending).toBe(0);
    expect(after.table).toEqual(after.recounted);
    expect(after.table).toHaveLength(3);
  });
});
