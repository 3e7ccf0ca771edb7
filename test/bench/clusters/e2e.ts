// End to end: a clustering over N profiles × D numeric traits in a real Postgres, through the API —
// POST /api/clusterings, POST /{id}/run, polled at GET /{id} until the background job is done. The time
// is the run's (queued → finished: reading features, K-means, writing the trait), split by its steps.
import { createTestDatabase, startTestCairn, TEST_ADMIN_KEY } from '@cairn/server/testing';
import postgres from 'postgres';

/**
 * Seeds `n` profiles with `d` traits `f0..f{d-1}` drawn around 5 group centres (in SQL), runs one
 * clustering through the API twice, and reports the runs' timings.
 *
 * @example
 * const r = await endToEnd({ n: 1_000_000, d: 8, k: 5 });
 */
export async function endToEnd(opt: {
  n: number;
  d: number;
  k: number;
}): Promise<{ seedS: number; runs: { runS: number; steps: Record<string, number>; run: Record<string, unknown> }[] }> {
  const db = await createTestDatabase(`bench-clusters-${process.pid}-${Date.now()}`, 'postgres');
  const cairn = await startTestCairn({ ...db.env, CAIRN_DEMO: '' });
  const sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  try {
    const t0 = performance.now();
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
    const runs: { runS: number; steps: Record<string, number>; run: Record<string, unknown> }[] = [];
    for (let i = 0; i < 2; i++) {
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
      runs.push({ runS: (performance.now() - t1) / 1000, steps, run });
    }
    return { seedS, runs };
  } finally {
    await sql.end();
    await cairn.close();
    await db.drop();
  }
}
