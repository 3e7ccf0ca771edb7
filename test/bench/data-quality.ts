// The data-quality report at scale: BENCH_PROFILES live profiles (1M by default) with 8 traits each in
// profile_traits, written by SQL (generate_series), then the report through the real API on Postgres:
// the list (exact, and a 10% block sample) and one trait with a normalisation rule. The reference is a
// bare sequential pass over the same table (SELECT count(*)) measured in the same run.
//   DATABASE_URL=postgres://... npm run bench:data-quality          (BENCH_PROFILES=...)
import os from 'node:os';
import { createTestDatabase } from '../../server/src/testing/db.ts';
import { adminApi } from '../../server/src/testing/http.ts';
import { startTestCairn } from '../../server/src/testing/server.ts';

const N = Number(process.env.BENCH_PROFILES ?? 1_000_000);
if (!process.env.DATABASE_URL) throw new Error('bench:data-quality needs DATABASE_URL (a Postgres server)');

const seconds = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t0 = performance.now();
  const r = await f();
  return [r, (performance.now() - t0) / 1000];
};

console.log(`data-quality bench: ${N.toLocaleString()} profiles × 8 traits`);
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}`);
const db = await createTestDatabase('bench/data-quality', 'postgres');
const cairn = await startTestCairn({ ...db.env, CAIRN_REQUEST_TIMEOUT_MS: '600000', CAIRN_DEMO: '' });
try {
  const api = adminApi(cairn.url);
  const sql = cairn.sql;
  const [, genS] = await seconds(async () => {
    await sql`
      INSERT INTO profiles (id)
      SELECT md5(i::text)::uuid FROM generate_series(1, ${N}::int) AS i`;
    // Countries mostly as codes, some as names, 1% unreadable; birthdays as dates, 1% not; the rest
    // plain values. Every tenth profile last updated 200 days ago (stale).
    await sql`
      INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
      SELECT md5(i::text)::uuid, t.key, t.value,
        now() - CASE WHEN i % 10 = 0 THEN interval '200 days' ELSE interval '1 day' END, i, 'identify'
      FROM generate_series(1, ${N}::int) AS i
      CROSS JOIN LATERAL (VALUES
        ('country', to_jsonb(CASE WHEN i % 100 = 0 THEN 'Atlantis' WHEN i % 7 = 0 THEN 'Germany'
          ELSE (ARRAY['DE', 'FR', 'US', 'GB', 'IT'])[i % 5 + 1] END)),
        ('birthday', to_jsonb(CASE WHEN i % 100 = 1 THEN 'soon'
          ELSE to_char(date '1950-01-01' + (i % 20000), 'YYYY-MM-DD') END)),
        ('plan', to_jsonb((ARRAY['free', 'pro', 'team'])[i % 3 + 1])),
        ('first_name', to_jsonb('Name ' || (i % 5000))),
        ('spend', to_jsonb(i % 1000)),
        ('newsletter', to_jsonb(i % 2 = 0)),
        ('tags', to_jsonb(ARRAY['a', 'b'])),
        ('company', to_jsonb('Company ' || (i % 300)))
      ) AS t (key, value)`;
    await sql`ANALYZE profile_traits`;
  });
  const [[size]] = await Promise.all([
    sql<{ rows: string; mb: string }[]>`
      SELECT (SELECT count(*) FROM profile_traits) AS rows,
        pg_total_relation_size('profile_traits') / 1048576 AS mb`,
  ]);
  console.log(
    `generated ${Number(size!.rows).toLocaleString()} trait rows (${size!.mb} MB with index) in ${genS.toFixed(1)} s`,
  );
  for (const [key, rule] of [
    ['country', { normalize: [{ op: 'country' }] }],
    ['birthday', { normalize: [{ op: 'date' }] }],
  ] as const) {
    const r = await api(`/data-quality/rules/${key}`, { method: 'PUT', body: JSON.stringify(rule) });
    if (r.status !== 201) throw new Error(`PUT rule ${key}: ${r.status} ${r.text}`);
  }
  const [, refS] = await seconds(() => sql`SELECT count(*) FROM profile_traits`);
  const [, refAggS] = await seconds(() => sql`SELECT key, count(*) FROM profile_traits GROUP BY key`);
  console.log(
    `reference: SELECT count(*) FROM profile_traits ${refS.toFixed(2)} s; GROUP BY key ${refAggS.toFixed(2)} s`,
  );
  const run = async (label: string, path: string) => {
    const [r, s] = await seconds(() => api(path));
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.text}`);
    const traits = r.body.traits ?? [r.body.trait];
    const country = traits.find((t: { key: string }) => t.key === 'country');
    console.log(
      `${label.padEnd(44)} ${s.toFixed(2)} s  (country: filled ${country.filled}, failed ${country.failed?.count}, ` +
        `stale ${country.stale}; ${(s / refS).toFixed(1)}× the bare count)`,
    );
  };
  await run('GET /data-quality/traits (exact)', '/data-quality/traits');
  await run('GET /data-quality/traits?samplePercent=10', '/data-quality/traits?samplePercent=10');
  await run('GET /data-quality/traits/country (exact)', '/data-quality/traits/country');
} finally {
  await cairn.close();
  await db.drop();
}
