// Data-quality backfill at scale: BENCH_PROFILES live profiles (200k by default) × 8 traits in
// profile_traits, written by SQL (generate_series), then a rule on `country` (1 in 7 stored as
// "Germany", 1 in 100 unreadable) and a fill default on `tier` (missing everywhere), backfilled through
// the real API and job on Postgres: a dry run, then the run. References in the same run: a bare
// set-based UPDATE of the same country rows (rolled back), and the machine's load average.
//   DATABASE_URL=postgres://... npm run bench:quality-backfill          (BENCH_PROFILES=...)
import os from 'node:os';
import { createTestDatabase } from '../../server/src/testing/db.ts';
import { adminApi } from '../../server/src/testing/http.ts';
import { startTestCairn } from '../../server/src/testing/server.ts';

const N = Number(process.env.BENCH_PROFILES ?? 200_000);
if (!process.env.DATABASE_URL) throw new Error('bench:quality-backfill needs DATABASE_URL (a Postgres server)');

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

console.log(`quality-backfill bench: ${N.toLocaleString()} profiles × 8 traits`);
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${load()}`);
const db = await createTestDatabase('bench/quality-backfill', 'postgres');
const cairn = await startTestCairn({ ...db.env, CAIRN_DEMO: '' });
try {
  const api = adminApi(cairn.url);
  const sql = cairn.sql;
  await sql`
    INSERT INTO profiles (id, traits_through_ts, traits_through_id)
    SELECT md5(i::text)::uuid, now(), i FROM generate_series(1, ${N}::int) AS i`;
  await sql`
    INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
    SELECT md5(i::text)::uuid, t.key, t.value, now() - interval '1 day', i, 'identify'
    FROM generate_series(1, ${N}::int) AS i
    CROSS JOIN LATERAL (VALUES
      ('country', to_jsonb(CASE WHEN i % 100 = 0 THEN 'Atlantis' WHEN i % 7 = 0 THEN 'Germany'
        ELSE (ARRAY['DE', 'FR', 'US', 'GB', 'IT'])[i % 5 + 1] END)),
      ('birthday', to_jsonb(to_char(date '1950-01-01' + (i % 20000), 'YYYY-MM-DD'))),
      ('plan', to_jsonb((ARRAY['free', 'pro', 'team'])[i % 3 + 1])),
      ('first_name', to_jsonb('Name ' || (i % 5000))),
      ('spend', to_jsonb(i % 1000)),
      ('newsletter', to_jsonb(i % 2 = 0)),
      ('tags', to_jsonb(ARRAY['a', 'b'])),
      ('company', to_jsonb('Company ' || (i % 300)))
    ) AS t (key, value)`;
  await sql`ANALYZE profiles`;
  await sql`ANALYZE profile_traits`;
  // The reference: the same rewrite of the country rows as one set-based UPDATE, rolled back.
  const t0 = performance.now();
  await sql
    .begin(async (tx) => {
      await tx`UPDATE profile_traits SET value = '"DE"' WHERE key = 'country' AND value = '"Germany"'`;
      throw new Error('rollback');
    })
    .catch(() => {});
  const refS = (performance.now() - t0) / 1000;
  console.log(
    `reference: UPDATE of the ${Math.floor(N / 7).toLocaleString()}-ish country rows ${refS.toFixed(2)} s (rolled back)`,
  );
  for (const [key, rule] of [
    ['country', { normalize: [{ op: 'country' }] }],
    ['tier', { fill: { default: 'standard' } }],
  ] as const) {
    const r = await api(`/data-quality/rules/${key}`, { method: 'PUT', body: JSON.stringify(rule) });
    if (r.status !== 201) throw new Error(`PUT rule ${key}: ${r.status} ${r.text}`);
  }
  for (const dryRun of [true, false]) {
    const start = performance.now();
    const r = await api('/data-quality/backfills', {
      method: 'POST',
      body: JSON.stringify({ keys: ['country', 'tier'], dryRun }),
    });
    if (r.status !== 202) throw new Error(`POST backfill: ${r.status} ${r.text}`);
    let b = r.body;
    while (b.status !== 'done') {
      if (b.status === 'failed' && b.attempts > 3) throw new Error(`backfill failed: ${b.error}`);
      await new Promise((res) => setTimeout(res, 500));
      b = (await api(`/data-quality/backfills/${r.body.id}`)).body;
    }
    const s = (performance.now() - start) / 1000;
    console.log(
      `${dryRun ? 'dry run' : 'run    '}: ${b.rowsDone.toLocaleString()} profiles in ${s.toFixed(1)} s ` +
        `(${Math.round(b.rowsDone / s).toLocaleString()} profiles/s; ${b.profilesChanged.toLocaleString()} changed; ` +
        `country ${JSON.stringify(b.changes.country)}, tier filled ${b.changes.tier?.filled}); load ${load()}`,
    );
  }
} finally {
  await cairn.close();
  await db.drop();
}
