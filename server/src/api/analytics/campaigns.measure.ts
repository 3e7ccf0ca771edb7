// Measures the four statements of a campaign's results on a generated database of its own (dropped after):
// 100,000 profiles (10% merged away), 200,000 flow messages of 6 flows over 60 days (the campaign owns 2),
// 400,000 other events (5% with the campaign's UTM value), 20,000 orders, opens, clicks and unsubscribes of
// the messages. Prints each statement's median time over `runs` and, with PLANS=1, its EXPLAIN ANALYZE.
// Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test [PLANS=1] \
//   npx tsx server/src/api/analytics/campaigns.measure.ts [runs]
import { type Fragment, WINDOW_UNITS } from '@cairn/core';
import postgres from 'postgres';
import type { Sql } from '../../db/index.ts';
import { migrate } from '../../db/migrate.ts';
import {
  type CampaignQuery,
  conversionsSql,
  createAnalyticsReader,
  deliveryMetricsSql,
  skipsSql,
  touchedSql,
} from '../../pipeline/measure/index.ts';
import { createTestDatabase } from '../../testing/db.ts';

const runs = Number(process.argv[2] ?? 3);
const db = await createTestDatabase('campaigns.measure', 'postgres');
const sql = postgres(db.url!, { onnotice: () => {}, max: 2 }) as unknown as Sql;
try {
  await migrate(sql);
  const end = new Date('2026-11-30T00:00:00Z');
  const from = new Date(end.getTime() - 60 * 86_400_000);
  const t = performance.now();
  await sql`INSERT INTO sources (id, name, write_key) VALUES ('src', 'site', 'wk_measure')`;
  await sql`INSERT INTO destinations (id, name, plugin, settings) VALUES ('mail', 'mail', 'email-smtp', '{}'), ('hook', 'hook', 'webhook', '{}')`;
  await sql`
    INSERT INTO profiles (id)
    SELECT md5('p' || i)::uuid FROM generate_series(1, 100000) AS i`;
  // Every tenth profile merged into the next one.
  await sql`
    WITH m AS (SELECT md5('p' || i)::uuid AS id, md5('p' || (i + 1))::uuid AS s FROM generate_series(10, 99990, 10) AS i)
    UPDATE profiles p SET merged_into = m.s FROM m WHERE p.id = m.id`;
  await sql`
    INSERT INTO deliveries (destination_id, event_id, profile_id, idempotency_key, status, reason, message,
      created_at, delivered_at)
    SELECT CASE WHEN i % 3 = 0 THEN 'hook' ELSE 'mail' END, NULL, md5('p' || (1 + i % 100000))::uuid,
      'flow:' || i, CASE WHEN i % 20 = 0 THEN 'skipped' WHEN i % 50 = 1 THEN 'dead' ELSE 'delivered' END,
      CASE WHEN i % 20 = 0 THEN 'consent: marketing not granted' END,
      jsonb_build_object('sealed', 'x', 'flow', jsonb_build_object('id', 'flw_' || (i % 6), 'version', 1 + i % 2,
        'node', 'n' || (i % 3), 'runId', gen_random_uuid())),
      ${from}::timestamptz + (i * interval '25.92 seconds'),
      ${from}::timestamptz + (i * interval '25.92 seconds') + interval '5 seconds'
    FROM generate_series(1, 200000) AS i`;
  await sql`UPDATE deliveries SET delivered_at = NULL WHERE status <> 'delivered'`;
  // Other events; then opens, clicks, unsubscribes of every 7th, 13th, 200th message; orders.
  await sql`
    INSERT INTO events (source_id, message_id, type, event, user_id, timestamp, received_at, payload, processed_at,
      profile_id)
    SELECT 'src', 'e' || i, 'track', CASE WHEN i % 20 = 0 THEN 'Order Completed' ELSE 'Viewed' END, 'u' || (i % 100000),
      ${from}::timestamptz + (i * interval '12.96 seconds'), now(),
      jsonb_build_object('properties', jsonb_build_object('revenue', i % 97),
        'context', CASE WHEN i % 20 = 3 THEN jsonb_build_object('campaign', jsonb_build_object('name', 'spring'))
          ELSE '{}'::jsonb END),
      now(), md5('p' || (1 + (i * 7) % 100000))::uuid
    FROM generate_series(1, 400000) AS i`;
  await sql`
    INSERT INTO events (source_id, message_id, type, event, user_id, timestamp, received_at, payload, processed_at,
      profile_id)
    SELECT 'cairn', 'c' || d.id || k.kind, 'track', k.kind, 'x', d.delivered_at + interval '1 hour', now(),
      jsonb_build_object('properties', jsonb_build_object('deliveryId', d.id::text, 'linkIndex', 0, 'machine', false,
        'channel', 'email')),
      now(), coalesce(p.merged_into, p.id)
    FROM deliveries d JOIN profiles p ON p.id = d.profile_id
    CROSS JOIN (VALUES ('Email Opened', 7), ('Link Clicked', 13), ('Unsubscribed', 200)) AS k (kind, every)
    WHERE d.status = 'delivered' AND d.id % k.every = 0`;
  await sql`ANALYZE`;
  const [{ n }] = (await sql`SELECT count(*)::int AS n FROM events`) as unknown as [{ n: number }];
  console.log(`generated in ${((performance.now() - t) / 1000).toFixed(1)} s: ${n} events, 200000 messages`);

  const reader = createAnalyticsReader({
    sql,
    dbKind: 'postgres',
    databaseUrl: db.url,
    replicaUrl: undefined,
    timeoutMs: 120_000,
  });
  const q = (days: number): CampaignQuery => ({
    flows: ['flw_1', 'flw_2'],
    utm: ['spring'],
    from: new Date(end.getTime() - days * 86_400_000).toISOString(),
    to: end.toISOString(),
    includeMachine: false,
    channels: [
      { id: 'mail', channel: 'email' },
      { id: 'hook', channel: 'webhook' },
    ],
    goal: { events: { event: 'Order Completed' }, windowMs: 7 * WINDOW_UNITS.days, revenuePath: null },
    now: end,
  });
  for (const days of [30, 60]) {
    const statements: [string, Fragment][] = [
      ['delivery metrics', deliveryMetricsSql(q(days))],
      ['skips', skipsSql(q(days))],
      ['touched', touchedSql(q(days))],
      ['conversions', conversionsSql(q(days))],
    ];
    for (const [name, statement] of statements) {
      const times: number[] = [];
      let rows = 0;
      for (let r = 0; r <= runs; r++) {
        const t0 = performance.now();
        rows = (await reader.rows(statement)).length;
        if (r) times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      console.log(`${days} days, ${name}: ${rows} rows, median ${times[times.length >> 1]!.toFixed(0)} ms`);
      if (process.env.PLANS) {
        const { text, values } = statement.render();
        const plan = await sql.unsafe(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, values as never[]);
        console.log(plan.map((p) => p['QUERY PLAN']).join('\n'));
      }
    }
  }
  await reader.close();
} finally {
  await sql.end();
  await db.drop();
}
