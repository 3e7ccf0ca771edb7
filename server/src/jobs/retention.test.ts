// Issue 22, item 1: events partitioned by month and dropped whole past CAIRN_EVENT_RETENTION_DAYS. The dedup
// stays exact inside the window (across a partition boundary, between concurrent writers), and what the
// pipeline derived from the dropped events (profiles, traits, audiences, flow runs, the delivery ledger)
// stays as it was. On both databases.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Sql } from '../db/index.ts';
import type { EventRow } from '../pipeline/ingest/enrich.ts';
import { insertEvents } from '../pipeline/ingest/queries.ts';
import { foldCountDeltas } from '../pipeline/measure/rollup.ts';
import {
  basicAuth,
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  type MovableClock,
  movableClock,
  settle,
  until,
} from '../testing/index.ts';
import { runRetention } from './retention.ts';
import {
  deleteFinishedDeliveries,
  deleteFinishedRuns,
  ensureEventPartitions,
  eventPartitions,
} from './retention-queries.ts';

const DAY = 24 * 60 * 60 * 1000;
const KEEP_FOREVER = { eventDays: null, deliveryDays: null, flowRunDays: null };

describeOnDatabases('event retention on %s', (mode) => {
  let h: FlowHarness;
  let clock: MovableClock;
  let sql: Sql;
  let flowId: string;
  let hookId: string;
  const run = randomUUID().slice(0, 8);
  const row = (messageId: string, receivedAt: string): EventRow =>
    ({
      sourceId: h.cairn.demoSource!.id,
      messageId,
      type: 'track',
      event: 'Retention Probe',
      userId: null,
      anonymousId: `anon-${run}`,
      timestamp: receivedAt,
      receivedAt,
      payload: JSON.stringify({ type: 'track', event: 'Retention Probe', messageId }),
    }) as EventRow;
  // The fold's options and PII protection the baselines of dropped events are recorded with.
  const fold = () => ({ traits: {}, pii: h.cairn.pii });
  const partitionOf = async (messageId: string) => {
    const rows = await sql<{ part: string }[]>`
      SELECT tableoid::regclass::text AS part FROM events WHERE message_id = ${messageId}`;
    return rows.map((r) => r.part);
  };

  beforeAll(async () => {
    clock = movableClock();
    h = await flowHarness('jobs/retention.test.ts', mode, { clock });
    sql = h.cairn.sql;
    const hook = await h.webhook();
    hookId = hook.destinationId;
    flowId = await h.publish({
      version: 1,
      name: `Welcome ${run}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [{ id: 'hello', type: 'send', destination: hookId, message: { body: 'Hello' } }],
      edges: [],
    });
    const audience = await h.post('/audiences', {
      key: `pro_${run}`,
      name: 'Pro',
      rule: { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
    });
    expect(audience.status, audience.text).toBe(201);
  }, 120_000);
  afterAll(() => h?.close());

  it('drops whole expired partitions; profiles, traits, audiences, flow runs and deliveries stay as they were', async () => {
    const user = `ada-${run}`;
    await h.send({ type: 'identify', userId: user, traits: { plan: 'pro', first_name: 'Ada' } });
    await h.send({ type: 'track', userId: user, event: 'Signed Up' });
    const profileId = await h.profileOf(user);
    await until(
      'Ada in the audience',
      async () => (await h.api(`/audiences/pro_${run}/explain/${profileId}`)).body.member,
    );
    const [ranRun] = await until('the flow run completed', async () => {
      const runs = await h.runsOf(flowId, profileId);
      return runs.length && runs[0].status === 'completed' ? runs : undefined;
    });
    const deliveriesOf = () =>
      sql<{ id: string; status: string; eventId: string | null }[]>`
        SELECT id::text, status, event_id::text AS "eventId" FROM deliveries WHERE profile_id = ${profileId} ORDER BY id`;
    await until('the message delivered', async () => {
      const rows = await deliveriesOf();
      return rows.some((r) => r.status === 'delivered' && r.eventId === null) ? rows : undefined;
    });
    await settle(sql, { queues: ['fanout', 'compute', 'automate', 'messages', `deliver.${hookId}`] });
    const ledger = await deliveriesOf();
    const events = await sql<{ id: string; part: string; messageId: string }[]>`
      SELECT id::text, tableoid::regclass::text AS part, message_id AS "messageId" FROM events WHERE user_id = ${user}`;
    // Both events sent, and any the pipeline recorded for Ada (all in this month's partition).
    expect(events.length).toBeGreaterThanOrEqual(2);
    const part = events[0]!.part;
    expect(new Set(events.map((e) => e.part))).toEqual(new Set([part]));
    const profileBefore = (await h.api(`/profiles/${profileId}`)).body;
    const rollupOf = () =>
      sql<{ hour: Date; n: string }[]>`
        SELECT hour, n::text FROM analytics_hourly_counts WHERE type = 'track' AND event = 'Signed Up'`;
    const rollup = await until('the rollup counted', async () => {
      const rows = await rollupOf();
      return rows.length ? rows : undefined;
    });

    // Keep forever (the default): nothing goes, whatever the date.
    const farAhead = new Date(Date.now() + 400 * DAY);
    expect((await runRetention(sql, KEEP_FOREVER, farAhead, fold())).dropped).toEqual([]);

    // 30 days: the month partition holding the events goes once its end is 30 days old, and not a day before.
    const [bounds] = (await eventPartitions(sql)).filter((p) => p.name === part);
    const expiresAt = bounds!.upperBound.getTime() + 30 * DAY;
    const settings = { ...KEEP_FOREVER, eventDays: 30 };
    expect((await runRetention(sql, settings, new Date(expiresAt - 60_000), fold())).dropped).not.toContain(part);
    expect(await partitionOf(events[0]!.messageId)).toEqual([part]);
    const report = await runRetention(sql, settings, new Date(expiresAt), fold());
    expect(report.dropped).toContain(part);
    expect(report.keysReleased).toBeGreaterThanOrEqual(2);
    // Partitions for the (virtual) month and the two after it were created ahead.
    const names = (await eventPartitions(sql)).map((p) => p.name);
    const month = (d: number, ahead = 0) => {
      const m = new Date(Date.UTC(new Date(d).getUTCFullYear(), new Date(d).getUTCMonth() + ahead, 1));
      return `events_p${m.toISOString().slice(0, 7).replace('-', '')}`;
    };
    expect(names).toEqual(expect.arrayContaining([month(expiresAt), month(expiresAt, 1), month(expiresAt, 2)]));
    const [{ n }] = (await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_class WHERE relname = ${part}`) as unknown as [{ n: number }];
    expect(n, 'the partition is dropped as a table, not emptied').toBe(0);
    expect(await sql`SELECT 1 FROM events WHERE user_id = ${user}`).toHaveLength(0);
    expect(
      await sql`SELECT 1 FROM event_keys WHERE message_id = ANY(${events.map((e) => e.messageId)}::text[])`,
    ).toHaveLength(0);
    expect((await h.api(`/events/${events[0]!.id}`)).status).toBe(404);

    // What the events made stays: profile and traits, audience membership, the run, the ledger.
    const profileAfter = (await h.api(`/profiles/${profileId}`)).body;
    expect(profileAfter.traits).toEqual(profileBefore.traits);
    expect(JSON.stringify(profileAfter.traits)).toContain('"pro"');
    expect((await h.api(`/audiences/pro_${run}/explain/${profileId}`)).body.member).toBe(true);
    expect((await h.runsOf(flowId, profileId)).map((r: { id: string; status: string }) => [r.id, r.status])).toEqual([
      [ranRun.id, 'completed'],
    ]);
    expect(await deliveriesOf()).toEqual(ledger);
    // The hourly counts keep counting the dropped events: dropping a partition fires none of the events'
    // triggers, so it writes no count deltas (migration 0045) and the fold takes nothing off.
    expect(await sql`SELECT hour FROM analytics_count_deltas WHERE type = 'track' AND event = 'Signed Up'`).toEqual([]);
    await sql.begin((tx) => foldCountDeltas(tx));
    expect(await rollupOf()).toEqual(rollup);

    // The month the server writes in now has no partition (the clock moved far ahead and back): an event is
    // kept in events_default, never refused, processed as any other; the next run moves it to its month.
    await h.send({ type: 'track', userId: user, event: 'Came Back' });
    const back = await until('the new event processed', async () => {
      const [e] = await sql<{ part: string; processed: boolean }[]>`
        SELECT tableoid::regclass::text AS part, processed_at IS NOT NULL AS processed
        FROM events WHERE user_id = ${user} AND event = 'Came Back'`;
      return e?.processed ? e : undefined;
    });
    expect(back.part).toBe('events_default');
    expect((await h.api(`/profiles?userId=${user}`)).body.data[0].id).toBe(profileId);
    await runRetention(sql, KEEP_FOREVER, new Date(), fold());
    expect(
      await partitionOf(
        (
          await sql<{ m: string }[]>`
      SELECT message_id AS m FROM events WHERE event = 'Came Back'`
        )[0]!.m,
      ),
    ).toEqual([month(Date.now())]);
    expect((await h.api(`/audiences/pro_${run}/explain/${profileId}`)).body.member).toBe(true);
  }, 120_000);

  it('dedup is exact across a partition boundary, within a batch, and for concurrent requests', async () => {
    await ensureEventPartitions(sql, new Date('2031-01-15T00:00:00Z'), 1);
    const id = `boundary-${run}`;
    expect(await insertEvents(sql, [row(id, '2031-01-31T23:59:59.999Z')])).toHaveLength(1);
    expect(await insertEvents(sql, [row(id, '2031-02-01T00:00:00.000Z')]), 'the next month refuses it').toEqual([]);
    expect(await insertEvents(sql, [row(id, '2030-06-01T00:00:00.000Z')]), 'and an earlier one').toEqual([]);
    expect(await partitionOf(id)).toEqual(['events_p203101']);

    const twice = `twice-${run}`;
    const stored = await insertEvents(sql, [row(twice, '2031-02-03T00:00:00Z'), row(twice, '2031-02-03T00:00:01Z')]);
    expect(stored.map((s) => s.messageId)).toEqual([twice]);

    // Twenty requests with one messageId at once, over HTTP: stored once.
    const same = `same-${run}`;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${h.cairn.url}/v1/track`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: basicAuth(h.cairn.demoSource!.writeKey) },
          body: JSON.stringify({ anonymousId: `a-${run}`, event: 'Same', messageId: same }),
        }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(await partitionOf(same)).toHaveLength(1);

    // Beyond the window: once its partition is dropped, the key is released and the messageId is new again.
    const report = await runRetention(sql, { ...KEEP_FOREVER, eventDays: 1 }, new Date('2031-02-02T00:00:01Z'), fold());
    expect(report.dropped).toContain('events_p203101');
    expect(await insertEvents(sql, [row(id, '2031-02-05T00:00:00Z')])).toHaveLength(1);
    expect(await partitionOf(id)).toEqual(['events_p203102']);
  }, 60_000);

  it.skipIf(mode === 'embedded')(
    'two writers with one messageId in different partitions: the second waits for the first, then follows its outcome',
    async () => {
      await ensureEventPartitions(sql, new Date('2032-03-15T00:00:00Z'), 1);
      const url = new URL(process.env.DATABASE_URL!);
      url.pathname = `/${(await sql<{ db: string }[]>`SELECT current_database() AS db`)[0]!.db}`;
      const a = postgres(url.toString(), { max: 1, onnotice: () => {} }) as unknown as Sql;
      const b = postgres(url.toString(), { max: 1, onnotice: () => {} }) as unknown as Sql;
      try {
        for (const outcome of ['commit', 'rollback'] as const) {
          const id = `race-${outcome}-${run}`;
          let release!: () => void;
          const held = new Promise<void>((r) => {
            release = r;
          });
          let firstStored = 0;
          const first = a
            .begin(async (tx) => {
              firstStored = (await insertEvents(tx, [row(id, '2032-03-31T23:59:59Z')])).length;
              await held;
              if (outcome === 'rollback') throw new Error('rolled back');
            })
            .catch(() => {});
          await until('the first writer holds the key', async () => firstStored === 1);
          const [{ pid }] = (await b`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
          const second = insertEvents(b, [row(id, '2032-04-01T00:00:01Z')]);
          await until('the second writer waits on the first', async () => {
            const [s] = await sql<{ w: string | null }[]>`
              SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = ${pid}`;
            return s?.w === 'Lock';
          });
          release();
          await first;
          const got = await second;
          if (outcome === 'commit') {
            expect(got, 'refused once the first committed').toEqual([]);
            expect(await partitionOf(id)).toEqual(['events_p203203']);
          } else {
            expect(got, 'stored once the first rolled back').toHaveLength(1);
            expect(await partitionOf(id)).toEqual(['events_p203204']);
          }
        }
      } finally {
        await (a as unknown as postgres.Sql).end();
        await (b as unknown as postgres.Sql).end();
      }
    },
    60_000,
  );

  it('the delivery ledger: finished rows past the cutoff go in batches, unfinished ones stay', async () => {
    await sql`
      INSERT INTO deliveries (destination_id, event_id, idempotency_key, status, created_at, updated_at)
      VALUES (${hookId}, -1, ${`retry-${run}`}, 'retrying', now() - interval '400 days', now() - interval '400 days')`;
    expect(await deleteFinishedDeliveries(sql, new Date(Date.now() - 1000 * DAY))).toBe(0);
    // Rows finishing while this runs are changed after the cutoff: never eligible, whatever the timing.
    const cutoff = new Date();
    const finished = await sql`
      SELECT 1 FROM deliveries WHERE status IN ('delivered', 'skipped', 'dead') AND updated_at < ${cutoff}`;
    expect(finished.length).toBeGreaterThan(0);
    expect(await deleteFinishedDeliveries(sql, cutoff)).toBe(finished.length);
    expect(
      await sql`SELECT 1 FROM deliveries WHERE status IN ('delivered', 'skipped', 'dead') AND updated_at < ${cutoff}`,
    ).toHaveLength(0);
    expect(await sql`SELECT 1 FROM deliveries WHERE idempotency_key = ${`retry-${run}`}`).toHaveLength(1);
  });

  it("flow runs: finished runs past the cutoff go with their journal, but never a person's latest run of a flow", async () => {
    const profileId = await h.profileOf(`ada-${run}`);
    const [latest] = await h.runsOf(flowId, profileId);
    expect(latest.status).toBe('completed');
    const future = new Date(Date.now() + DAY);
    expect(await deleteFinishedRuns(sql, future), 'the only run is the latest: kept').toBe(0);
    // An earlier finished run of the same person and flow (as a flow allowing re-entry would leave).
    const [older] = await sql<{ id: string }[]>`
      INSERT INTO flow_runs (id, flow_id, version, profile_id, status, node, iteration, due, listen, exclusive,
        entered_at, source_id, state)
      SELECT gen_random_uuid(), flow_id, version, profile_id, status, node, iteration, due, listen, exclusive,
        entered_at - interval '2 days', source_id, state - 'endedAt'
      FROM flow_runs WHERE id = ${latest.id}
      RETURNING id::text`;
    await sql`
      INSERT INTO flow_steps (run_id, node, iteration, at, type, outcome, reason, decided)
      VALUES (${older!.id}, 'hello', 0, now() - interval '2 days', 'send', 'next', 'sent', true)`;
    expect(await deleteFinishedRuns(sql, new Date(Date.now() - 3 * DAY)), 'not before the cutoff').toBe(0);
    expect(await deleteFinishedRuns(sql, future)).toBe(1);
    expect(await sql`SELECT 1 FROM flow_runs WHERE id = ${older!.id}`).toHaveLength(0);
    expect(await sql`SELECT 1 FROM flow_steps WHERE run_id = ${older!.id}`).toHaveLength(0);
    expect((await h.runsOf(flowId, profileId)).map((r: { id: string }) => r.id)).toEqual([latest.id]);
  });

  it("docs/deploy/postgres.sql sets each partition's autovacuum thresholds, and a new month's partition copies them", async () => {
    const file = await readFile(new URL('../../../docs/deploy/postgres.sql', import.meta.url), 'utf8');
    if (mode === 'postgres') await sql.unsafe(file);
    // PGlite accepts no ALTER DATABASE of its settings: the partition statement alone, as postgres.sql runs it.
    else
      await sql.unsafe(file.slice(file.indexOf('-- events is partitioned by month')).split('ALTER TABLE profiles')[0]!);
    const options = async () =>
      new Map(
        (
          await sql<{ name: string; opts: string[] | null }[]>`
            SELECT c.relname AS name, c.reloptions AS opts
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'events'::regclass`
        ).map((r) => [r.name, r.opts]),
      );
    const before = await options();
    expect(before.size).toBeGreaterThan(1);
    for (const [name, opts] of before) expect(opts, name).toContain('autovacuum_vacuum_scale_factor=0.02');
    const later = new Date(Date.now() + 30 * 12 * DAY);
    const [created] = await sql<{ made: boolean }[]>`SELECT cairn_ensure_event_partition(${later}) AS made`;
    expect(created!.made).toBe(true);
    const after = await options();
    const added = [...after.keys()].filter((k) => !before.has(k));
    expect(added).toHaveLength(1);
    expect(after.get(added[0]!)).toEqual(
      expect.arrayContaining([
        'autovacuum_vacuum_scale_factor=0.02',
        'autovacuum_analyze_scale_factor=0.02',
        'autovacuum_vacuum_insert_scale_factor=0.05',
      ]),
    );
  });

  it('the maintenance job ran at start, from its queue', async () => {
    await until('a completed retention job', async () => {
      const rows = await sql`SELECT 1 FROM pgboss.job WHERE name = 'retention' AND state = 'completed'`;
      return rows.length > 0;
    });
  });
});
