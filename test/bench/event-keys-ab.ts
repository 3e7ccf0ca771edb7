// The ingest statement before and after migration 0034, alone (no HTTP, no Cairn): insertEvents into a database
// migrated up to 0033 (one table, unique (source_id, message_id)) and into one with every migration (events
// partitioned, dedup through event_keys and its trigger), in interleaved rounds of 400 batches of 100 rows at
// concurrency 4; the median events/s of each and their ratio. CTE=1 measures instead a set-based claim of the
// keys in one statement with the trigger disabled (what a trigger-free insertEvents would cost).
// Run: bash scripts/with-node.sh tsx test/bench/event-keys-ab.ts
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import type { Sql, Tx } from '../../server/src/db/index.ts';
import { listMigrations } from '../../server/src/db/migrate.ts';
import type { EventRow } from '../../server/src/pipeline/ingest/enrich.ts';
import { insertEvents } from '../../server/src/pipeline/ingest/queries.ts';

const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const at = (db: string) => {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
};
const cte = process.env.CTE === '1';
const admin = postgres(at('postgres'), { max: 1, onnotice: () => {} });
const dbs = new Map<string, Sql>();
for (const [name, upto] of [
  ['ab_old', 34],
  ['ab_new', 10_000],
] as const) {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const sql = postgres(at(name), { max: 4, onnotice: () => {} }) as unknown as Sql;
  await sql.begin(async (tx) => {
    await tx`CREATE TABLE cairn_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    for (const m of (await listMigrations()).filter((m) => m.version < upto)) {
      await tx.unsafe(m.sql);
      await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
    }
  });
  await sql`INSERT INTO sources (id, name, write_key) VALUES ('s1', 's', 'k')`;
  if (name === 'ab_new' && cte) await sql`ALTER TABLE events DISABLE TRIGGER events_dedup`;
  dbs.set(name, sql);
}
const payload = JSON.stringify({
  type: 'track',
  event: 'Order Completed',
  properties: { total: 12, currency: 'EUR', sku: 'SKU-1' },
  context: { page: { url: 'https://shop.example/p/1' }, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120' },
});
const rows = (n: number): EventRow[] =>
  Array.from({ length: n }, () => {
    const now = new Date().toISOString();
    return {
      sourceId: 's1',
      messageId: randomUUID(),
      type: 'track',
      event: 'Order Completed',
      userId: `u${Math.floor(Math.random() * 1e5)}`,
      anonymousId: randomUUID(),
      timestamp: now,
      receivedAt: now,
      payload,
    } as EventRow;
  });

// The keys claimed set-based before the events, in one statement (the trigger disabled).
async function insertWithClaim(sql: Tx, batch: EventRow[]) {
  const doc = JSON.stringify(
    batch.map((r) => ({
      s: r.sourceId,
      m: r.messageId,
      type: r.type,
      event: r.event,
      u: r.userId,
      a: r.anonymousId,
      ts: r.timestamp,
      r: r.receivedAt,
      p: JSON.parse(r.payload as unknown as string),
    })),
  );
  return sql`
    WITH x AS (
      SELECT *
      FROM ROWS FROM (json_to_recordset(${doc}::text::json)
        AS (s text, m text, type text, event text, u text, a text, ts timestamptz, r timestamptz, p jsonb))
        WITH ORDINALITY AS x (s, m, type, event, u, a, ts, r, p, o)
    ), claimed AS (
      INSERT INTO event_keys (source_id, message_id, event_id)
      SELECT s, m, nextval('events_id_seq')
      FROM (SELECT DISTINCT ON (s, m) s, m, o FROM x ORDER BY s, m, o) d
      ON CONFLICT DO NOTHING
      RETURNING source_id, message_id, event_id
    )
    INSERT INTO events (id, source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload)
    OVERRIDING SYSTEM VALUE
    SELECT c.event_id, s, m, type, event, u, a, ts, r, p
    FROM x JOIN claimed c ON c.source_id = x.s AND c.message_id = x.m
    RETURNING id`;
}

async function round(name: string, batches: number, concurrency: number): Promise<number> {
  const sql = dbs.get(name)!;
  const t = performance.now();
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i++ < batches) {
        await sql.begin(async (tx) => {
          await (cte && name === 'ab_new'
            ? insertWithClaim(
                tx,
                rows(100).map((r) => ({ ...r, s: r.sourceId, m: r.messageId }) as never),
              )
            : insertEvents(tx, rows(100)));
        });
      }
    }),
  );
  return (batches * 100) / ((performance.now() - t) / 1000);
}

for (const n of dbs.keys()) await round(n, 300, 4); // warm-up
const results: Record<string, number[]> = { ab_old: [], ab_new: [] };
for (let r = 0; r < 6; r++) {
  for (const n of r % 2 ? ['ab_old', 'ab_new'] : ['ab_new', 'ab_old']) results[n]!.push(await round(n, 400, 4));
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(
  'events/s per round',
  JSON.stringify(results, (_, v) => (typeof v === 'number' ? Math.round(v) : v)),
);
const [o, n] = [median(results.ab_old!), median(results.ab_new!)];
console.log(
  `median: before 0034 ${o.toFixed(0)}, after ${n.toFixed(0)} events/s${cte ? ' (set-based claim)' : ''}; after/before ${(n / o).toFixed(3)}`,
);
for (const [name, sql] of dbs) {
  await (sql as unknown as postgres.Sql).end();
  await admin.unsafe(`DROP DATABASE ${name} WITH (FORCE)`);
}
await admin.end();
