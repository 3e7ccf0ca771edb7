import postgres from 'postgres';

// Where Postgres spends its time during a phase, without extensions: pg_stat_activity is sampled
// every few tens of ms, and each active backend of the benchmark's database counts one sample for the
// statement it is running (CPU or waiting, e.g. for a WAL flush). Statements are named by what they
// are in Cairn or pg-boss, so the busiest show up in the report.

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
  /** Average active backends of the database. */
  activeBackends: number;
  top: StatementShare[];
}

// Patterns are matched against the statement with its whitespace collapsed to single spaces.
const NAMES: [RegExp, string][] = [
  [/strict_fifo_heads/, 'pg-boss fetch, key_strict_fifo (a delivery queue)'],
  [/WITH next AS .*'identify'/, 'pg-boss fetch, identify'],
  [/WITH next AS .*'fanout'/, 'pg-boss fetch, fanout'],
  [/WITH next AS/, 'pg-boss fetch (other queue)'],
  [/UPDATE pgboss\.job\w* SET completed_on/, 'pg-boss complete'],
  [/INSERT INTO pgboss\.job/, 'pg-boss insert (send jobs)'],
  [/UPDATE pgboss\.job/, 'pg-boss fail or update'],
  [/UPDATE deliveries d SET status = x\.s/, 'deliver: record outcomes (UPDATE deliveries)'],
  [/WITH candidate AS .*UPDATE deliveries d SET status = 'pending'/, 'deliver: promote waiting rows'],
  [/WITH waiting AS .*FROM deliveries/, 'deliver: sweep of waiting rows'],
  [/UPDATE deliveries d SET status = CASE/, 'replay: reset ledger rows'],
  [/pg_advisory_xact_lock\(\$1::int, line\)/, 'deliver: order locks (destination, profile)'],
  [/INSERT INTO deliveries/, 'fan-out: INSERT deliveries'],
  [/FROM deliveries d JOIN events e/, 'deliver: rows to send (deliveries ⋈ events)'],
  [/FROM identities WHERE profile_id|FROM profile_traits WHERE profile_id = ANY/, 'deliver: profiles of a batch'],
  [/FROM consent_changes/, 'deliver: consent of a batch'],
  [/destinations/, 'destinations (circuit, list)'],
  [/pg_advisory_xact_lock/, 'identify: advisory locks'],
  [/INSERT INTO events/, 'ingest: INSERT events'],
  [/UPDATE events e SET profile_id/, 'identify: attach events'],
  [/identity_links/, 'identify: identity links'],
  [/^commit$/i, 'COMMIT'],
];

function nameOf(query: string): string {
  const q = query.replace(/\s+/g, ' ').trim();
  for (const [re, name] of NAMES) if (re.test(q)) return name;
  return q.slice(0, 60);
}

/**
 * Starts sampling the activity of `database`; the returned function stops and summarises.
 *
 * @example
 * const stop = sampleActivity(url, 'cairn_t_0123456789ab');
 * const activity = await stop();
 */
export function sampleActivity(url: string, database: string, everyMs = 50): () => Promise<PgActivity> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const counts = new Map<string, { n: number; waiting: number }>();
  let samples = 0;
  let active = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const rows = await sql<{ query: string; waiting: boolean }[]>`
        SELECT query, wait_event IS NOT NULL AS waiting FROM pg_stat_activity
        WHERE datname = ${database} AND state = 'active' AND pid <> pg_backend_pid()`;
      samples++;
      for (const r of rows) {
        const name = nameOf(r.query);
        const c = counts.get(name) ?? { n: 0, waiting: 0 };
        c.n++;
        if (r.waiting) c.waiting++;
        counts.set(name, c);
        active++;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })().catch(() => {});
  return async () => {
    stopped = true;
    await loop;
    await sql.end({ timeout: 5 });
    const top = [...counts]
      .sort((a, b) => b[1].n - a[1].n)
      .slice(0, 4)
      .map(([name, c]) => ({
        name,
        backends: c.n / (samples || 1),
        share: c.n / (active || 1),
        waiting: c.waiting / c.n,
      }));
    return { samples, activeBackends: active / (samples || 1), top };
  };
}

/** "1.9 active backends: pg-boss fetch … 62% (1.18, 3% waiting); …" */
export function activityText(a: PgActivity): string {
  return `${a.activeBackends.toFixed(2)} backends active on average; ${a.top
    .map((t) => `${t.name} ${(t.share * 100).toFixed(0)}% (${(t.waiting * 100).toFixed(0)}% of it waiting)`)
    .join(', ')}`;
}
