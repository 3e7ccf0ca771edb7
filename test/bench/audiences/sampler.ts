import postgres from 'postgres';

// Where Postgres spends its time during a phase of bench:audiences, without extensions
// (pg_stat_statements needs a restart with shared_preload_libraries, which a shared Postgres does not
// get): pg_stat_activity is sampled every few tens of ms, and each active backend of the benchmark's
// database counts one sample for the statement it runs, named by what it is in stage 3.

/** One statement's share of the sampled activity. */
export interface StatementShare {
  name: string;
  /** Average backends running it (1.0 = one backend all the time). */
  backends: number;
  /** Share of all active samples (0-1). */
  share: number;
  /** Share of its samples spent waiting (lock, WAL, I/O) rather than on CPU. */
  waiting: number;
}

/** What the samples say about a phase. */
export interface PgActivity {
  samples: number;
  seconds: number;
  /** Average active backends of the database. */
  activeBackends: number;
  top: StatementShare[];
}

// Matched in order against the statement with its whitespace collapsed.
const NAMES: [RegExp, string][] = [
  // The benchmark's own polls (memberships seen, computed_at set, the sweep's lease row).
  [
    /AS (entered|exited) FROM audience_memberships|computed_at IS NOT NULL AND|'sweptAt' AS at/,
    'the benchmark (polls)',
  ],
  [/^WITH truth AS \(WITH scope AS MATERIALIZED/, 'rule over a scope, diffed with the members in SQL (store.apply)'],
  [/^WITH scope AS MATERIALIZED .* AS member\b/, 'rule over a scope, every profile with its truth'],
  [/^WITH scope AS MATERIALIZED/, 'rule over a scope, members only (evaluateRule)'],
  [/^SELECT DISTINCT id::text AS id FROM \(/, 'sweep: window edges (ruleEdges)'],
  [/FROM audience_memberships WHERE audience = \S+ AND exited_at IS NULL/, 'current members of an audience'],
  [/INSERT INTO audience_memberships/, 'INSERT audience_memberships (enter)'],
  [/UPDATE audience_memberships/, 'UPDATE audience_memberships (exit)'],
  [/^WITH who AS/, 'record audience.entered/exited events'],
  [/SELECT DISTINCT profile_id::text AS "profileId", event FROM events/, 'compute: profiles and names of a batch'],
  [/SELECT 'audience' AS kind/, 'compute: load definitions'],
  [/pg_advisory_xact_lock/, 'advisory locks (identify, compute)'],
  [/INSERT INTO settings/, 'sweep: lease'],
  [/WITH next AS/, 'pg-boss fetch'],
  [/INSERT INTO pgboss\.job/, 'pg-boss insert (send jobs)'],
  [/UPDATE pgboss\.job/, 'pg-boss complete or fail'],
  [/INSERT INTO events/, 'ingest: INSERT events'],
  [/UPDATE events e SET profile_id/, 'identify: attach events'],
  [/identity_links|FROM identities/, 'identify: identities and links'],
  [/profile_traits/, 'identify: traits'],
  [/^commit$/i, 'COMMIT'],
];

function nameOf(query: string): string {
  const q = query.replace(/\s+/g, ' ').trim();
  for (const [re, name] of NAMES) if (re.test(q)) return name;
  return q.slice(0, 60);
}

/**
 * Starts sampling the activity of `database` (backends other than `exclude` application names);
 * the returned function stops and summarises.
 *
 * @example
 * const stop = sampleActivity(url, 'cairn_t_0123456789ab');
 * const activity = await stop();
 */
export function sampleActivity(url: string, database: string, everyMs = 40): () => Promise<PgActivity> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: 'bench-sampler' } });
  const counts = new Map<string, { n: number; waiting: number }>();
  const started = performance.now();
  let samples = 0;
  let active = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const rows = await sql<{ query: string; waiting: boolean }[]>`
        SELECT query, wait_event IS NOT NULL AS waiting FROM pg_stat_activity
        WHERE datname = ${database} AND state = 'active' AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'`;
      samples++;
      for (const r of rows) {
        const name = nameOf(r.query);
        const c = counts.get(name) ?? { n: 0, waiting: 0 };
        c.n++;
        if (r.waiting) c.waiting++;
        counts.set(name, c);
        active++;
      }
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })().catch(() => {});
  return async () => {
    stopped = true;
    await loop;
    await sql.end({ timeout: 5 });
    const top = [...counts]
      .sort((a, b) => b[1].n - a[1].n)
      .slice(0, 6)
      .map(([name, c]) => ({
        name,
        backends: c.n / (samples || 1),
        share: c.n / (active || 1),
        waiting: c.waiting / c.n,
      }));
    return { samples, seconds: (performance.now() - started) / 1000, activeBackends: active / (samples || 1), top };
  };
}

/** "1.20 backends active on average: rule over a scope … 62% (3% of it waiting); …" */
export function activityText(a: PgActivity): string {
  if (!a.samples) return 'no samples';
  return `${a.activeBackends.toFixed(2)} backends active on average; ${a.top
    .map(
      (t) =>
        `${t.name} ${(t.share * 100).toFixed(0)}%${t.waiting >= 0.05 ? ` (${(t.waiting * 100).toFixed(0)}% of it waiting)` : ''}`,
    )
    .join(', ')}`;
}
