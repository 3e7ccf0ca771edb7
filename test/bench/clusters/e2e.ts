// End to end: a clustering over N profiles × D numeric traits in a real Postgres, through the API —
// POST /api/clusterings, POST /{id}/run, polled at GET /{id} until the background job is done. The time
// is the run's (queued → finished: reading features, K-means, writing the trait), split by its steps.

import os from 'node:os';
import { createTestDatabase, startTestCairn, TEST_ADMIN_KEY } from '@cairn/server/testing';
import postgres from 'postgres';

/**
 * Seeds `n` profiles with `d` traits `f0..f{d-1}` drawn around 5 group centres (in SQL), runs one
 * clustering through the API twice, and reports the runs' timings.
 *
 * @example
 * const r = await endToEnd({ n: 1_000_000, d: 8, k: 5 });
 */
export async function endToEnd(opt: { n: number; d: number; k: number }): Promise<{
  seedS: number;
  runs: { runS: number; load: number; steps: Record<string, number>; run: Record<string, unknown> }[];
  references: Record<string, number>;
}> {
  // BENCH_KEEP_DB=1: a database named by the size, kept and reused (seeded once; the trait's table
  // emptied and rewritten before each use, so a first run still starts from a fresh table).
  const keep = process.env.BENCH_KEEP_DB === '1';
  const db = keep
    ? await keptDatabase(`cairn_bench_clusters_${opt.n}_${opt.d}`)
    : await createTestDatabase(`bench-clusters-${process.pid}-${Date.now()}`, 'postgres');
  const cairn = await startTestCairn({ ...db.env, CAIRN_DEMO: '' });
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  try {
    const t0 = performance.now();
    const { n } = (await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM profiles`)[0]!;
    if (n !== opt.n) {
      await sql`
        INSERT INTO profiles (id, created_at, updated_at)
        SELECT md5('bench-cluster-' || k)::uuid, now(), now() FROM generate_series(1, ${opt.n}::int) AS k`;
      // Group g = k % 5; feature j's centre is 100·(g+1)·(j+1)·((g·7 + j·3) % 5 + 1)/3, noise ~ N(0, 15·(j+1)).
      await sql`
        INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
        SELECT md5('bench-cluster-' || k)::uuid, 'f' || j,
          to_jsonb(round((100.0 * ((k % 5) + 1) * (j + 1) * (((k % 5) * 7 + j * 3) % 5 + 1) / 3
            + 15 * (j + 1) * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::numeric, 2)),
          now(), 0, 'bench'
        FROM generate_series(1, ${opt.n}::int) AS k, generate_series(0, ${opt.d - 1}::int) AS j`;
      await sql`ANALYZE profiles`;
      await sql`ANALYZE profile_traits`;
    } else {
      await sql`DELETE FROM clusterings`;
      await sql`DELETE FROM computed_traits WHERE definition->>'kind' = 'cluster'`;
      await sql`VACUUM FULL computed_trait_values`;
      await sql`CHECKPOINT`;
    }
    const seedS = (performance.now() - t0) / 1000;
    // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, read by the fields the bench prints
    const api = async (path: string, init: RequestInit = {}): Promise<any> => {
      const res = await fetch(`${cairn.url}/api${path}`, {
        ...init,
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
      return body;
    };
    const features = Array.from({ length: opt.d }, (_, j) => ({ source: 'trait', key: `f${j}` }));
    const c = await api('/clusterings', {
      method: 'POST',
      body: JSON.stringify({ name: 'Bench', traitKey: 'bench_cluster', features, k: opt.k }),
    });
    // Two runs: the first writes every value; the second (the nightly case) matches ids and rewrites few.
    const runs: { runS: number; load: number; steps: Record<string, number>; run: Record<string, unknown> }[] = [];
    for (let i = 0; i < 2; i++) {
      const load = os.loadavg()[0]!;
      const t1 = performance.now();
      const queued = await api(`/clusterings/${c.id}/run`, { method: 'POST' });
      const steps: Record<string, number> = {};
      let run: Record<string, unknown>;
      for (;;) {
        run = (await api(`/clusterings/${c.id}`)).lastRun;
        const step = String(run.step ?? run.status);
        steps[step] ??= (performance.now() - t1) / 1000;
        if (run.id === queued.id && (run.status === 'succeeded' || run.status === 'failed')) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      runs.push({ runS: (performance.now() - t1) / 1000, load, steps, run });
    }
    return { seedS, runs, references: await references(sql, opt.d) };
  } finally {
    await sql.end();
    await cairn.close();
    if (!keep && 'drop' in db) await db.drop();
  }
}

/** A database of the given name at DATABASE_URL's server, created when missing and never dropped here. */
async function keptDatabase(name: string): Promise<{ env: Record<string, string>; url: string }> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('the end-to-end bench needs DATABASE_URL');
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`;
    if (!exists) await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  console.log(`end to end: database ${name} (kept; drop it by hand)`);
  return { env: { DATABASE_URL: url.toString() }, url: url.toString() };
}

/**
 * What the same machine does meanwhile with the same rows, without clustering: the features streamed
 * out (COPY of the run's own join, discarded), and a million (uuid, jsonb) rows inserted into a table
 * without indexes or keys (a raw INSERT … SELECT) and into one shaped like computed_trait_values.
 */
async function references(sql: postgres.Sql, d: number): Promise<Record<string, number>> {
  const time = async (f: () => Promise<unknown>) => {
    const t0 = performance.now();
    await f();
    return (performance.now() - t0) / 1000;
  };
  const joins = Array.from(
    { length: d },
    (_, j) =>
      `LEFT JOIN (SELECT v.profile_id, cairn_num(v.value)::float8 AS x FROM profile_traits v WHERE v.key = 'f${j}') f${j} ON f${j}.profile_id = p.id`,
  ).join(' ');
  const cols = Array.from({ length: d }, (_, j) => `f${j}.x`).join(', ');
  const out: Record<string, number> = {};
  out.copyFeaturesOut = await time(async () => {
    const stream = await sql
      .unsafe(`COPY (SELECT p.id, ${cols} FROM profiles p ${joins} WHERE p.merged_into IS NULL) TO STDOUT`)
      .readable();
    for await (const _ of stream) {
      // discarded: the time to produce and ship the rows
    }
  });
  out.rawInsert = await time(async () => {
    await sql`CREATE TABLE bench_raw (profile_id uuid, value jsonb)`;
    await sql`INSERT INTO bench_raw SELECT id, to_jsonb(1) FROM profiles`;
  });
  out.keyedInsert = await time(async () => {
    await sql`CREATE TABLE bench_keyed (profile_id uuid NOT NULL, key text NOT NULL, value jsonb NOT NULL,
      computed_at timestamptz NOT NULL, PRIMARY KEY (profile_id, key))`;
    await sql`CREATE INDEX ON bench_keyed (key, profile_id)`;
    await sql`INSERT INTO bench_keyed SELECT id, 'bench_cluster', to_jsonb(1), now() FROM profiles ORDER BY id`;
  });
  await sql`DROP TABLE bench_raw, bench_keyed`;
  return out;
}
