import type postgres from 'postgres';

// The dataset of bench:analytics, generated inside Postgres (generate_series, INSERT ... SELECT): no row
// travels from Node. People visit in sessions: a few page views, then the shop funnel (Product Viewed →
// Product Added → Checkout Started → Payment Info Entered → Order Completed) with drop-off at each step,
// sometimes another event. Each person has a first visit somewhere in (or before) the history and visits
// less as time goes on (so retention cohorts decay), a few people are much busier than most, and 5% of
// the profiles are devices merged into another person's profile (profiles.merged_into set, their events
// carrying the survivor's profile_id, as stage 2 leaves them after a merge). Events are inserted in time
// order, already attached and processed. The random numbers come from setseed: one size, one dataset.

/** Days of history before the load instant. */
export const HISTORY_DAYS = 120;
/** The funnel the sessions walk, and the chance of going on to each step from the one before. */
export const FUNNEL = [
  { name: 'Product Viewed', goOn: 0.65 },
  { name: 'Product Added', goOn: 0.45 },
  { name: 'Checkout Started', goOn: 0.6 },
  { name: 'Payment Info Entered', goOn: 0.75 },
  { name: 'Order Completed', goOn: 0.85 },
] as const;
/** Page names after the first page (always 'Home'). */
export const PAGES = ['Category', 'Product', 'Search Results', 'Pricing', 'Blog'] as const;
/** Events a session sends after the funnel (30% of sessions send one). */
export const OTHER_EVENTS = ['Search', 'Coupon Applied', 'Product Shared', 'Signed Up'] as const;
export const CATEGORIES = ['beauty', 'books', 'garden', 'toys', 'electronics', 'fashion'] as const;
export const PLANS = ['free', 'pro', 'team'] as const;
export const CAMPAIGNS = ['spring', 'summer', 'black-friday', 'newsletter'] as const;
/** Share of sessions sending another event at the end. */
const OTHER_SHARE = 0.3;
/** Every MERGE_EVERY-th profile is a device merged into the profile before it. */
export const MERGE_EVERY = 20;
/** Person k of 1..P is picked as 1 + floor(P * u^SKEW) for a session: a few heavy people, most with a handful. */
const SKEW = 1.3;
/** Time slices the events are inserted in (one statement each, in time order). */
const SLICES = 12;
/** Bumped when the generator changes, so that a database holding an older dataset is rebuilt. */
export const GENERATOR_VERSION = 1;
const SEED = 0.1919;
/** The loaded tables; their indexes are built after the rows are in. */
const LOADED = ['profiles', 'identities', 'profile_traits', 'events'];

/** Events a session sends on average: pages (1-3), funnel steps, another event. */
export function eventsPerSession(): number {
  let funnel = 0;
  let reach = 1;
  for (const s of FUNNEL) {
    reach *= s.goOn;
    funnel += reach;
  }
  return 2 + funnel + OTHER_SHARE;
}

/** The dataset a database holds (stored as the database's comment). */
export interface Dataset {
  version: number;
  profiles: number;
  /** Events asked for; `events` is what the generator made (±0.5%). */
  target: number;
  events: number;
  sessions: number;
  merged: number;
  /** The instant the history ends at (ISO). */
  end: string;
  /** Seconds: rows, indexes, ANALYZE, total. */
  seconds: { rows: number; indexes: number; analyze: number; total: number };
}

/** On-disk size of a table and its indexes, in bytes. */
export interface TableSize {
  name: string;
  rows: number;
  heap: number;
  indexes: number;
}

async function timed<T>(what: string, fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  console.log(`  ${what}: ${seconds.toFixed(1)} s`);
  return { value, seconds };
}

/**
 * The dataset the database holds, read from its comment (null when it holds none, or another size or
 * generator version than asked for).
 *
 * @example
 * const ds = await storedDataset(sql, { profiles: 1_000_000, events: 10_000_000 });
 */
export async function storedDataset(
  sql: postgres.Sql,
  size: { profiles: number; events: number },
): Promise<Dataset | null> {
  const [row] = await sql<{ comment: string | null }[]>`
    SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = current_database()`;
  if (!row?.comment) return null;
  try {
    const ds = JSON.parse(row.comment) as Dataset;
    if (ds.version !== GENERATOR_VERSION || ds.profiles !== size.profiles || ds.target !== size.events) return null;
    const [n] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM profiles`;
    return n?.n === ds.profiles ? ds : null;
  } catch {
    return null;
  }
}

// Drops the indexes and unique/primary constraints of the loaded tables (none is referenced by a
// foreign key) and returns the DDL that makes them again, read from the catalog.
async function dropIndexes(db: postgres.ReservedSql): Promise<string[]> {
  const rows = await db<{ drop: string; create: string }[]>`
    SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.conrelid::regclass::text, c.conname) AS drop,
      format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)) AS create
    FROM pg_constraint c
    WHERE c.conrelid = ANY(${LOADED}::regclass[]) AND c.contype IN ('p', 'u')
      AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.conrelid)
    UNION ALL
    -- ON ONLY (a partitioned table's index as the catalog prints it) would leave the partitions without
    -- it and the parent's index invalid: the index is made again on the parent and every partition.
    SELECT format('DROP INDEX %s', i.indexrelid::regclass::text), replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
    FROM pg_index i
    WHERE i.indrelid = ANY(${LOADED}::regclass[])
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`;
  // DDL cannot take parameters; these statements are the catalog's own definitions of Cairn's schema.
  for (const r of rows) await db.unsafe(r.drop);
  return rows.map((r) => r.create);
}

/**
 * Generates the dataset in a migrated, empty database (the demo source `src_demo` must exist):
 * `profiles` profiles (every MERGE_EVERY-th merged into the one before), about `events` events in
 * sessions over the HISTORY_DAYS days before now; then builds the indexes, runs VACUUM ANALYZE and
 * records the dataset as the database's comment.
 *
 * @example
 * const ds = await loadDataset(sql, { profiles: 1_000_000, events: 10_000_000 });
 */
export async function loadDataset(sql: postgres.Sql, size: { profiles: number; events: number }): Promise<Dataset> {
  const started = performance.now();
  const end = new Date();
  const start = new Date(end.getTime() - HISTORY_DAYS * 86_400_000);
  const P = size.profiles;
  const sessions = Math.round(size.events / eventsPerSession());
  const db = await sql.reserve();
  try {
    await db`SET session_replication_role = replica`;
    await db`SET synchronous_commit = off`;
    await db`SET maintenance_work_mem = '1GB'`;
    await db`SET work_mem = '256MB'`;
    await db`SELECT setseed(${SEED})`;
    const rebuild = await dropIndexes(db);
    const rows = await timed('rows', async () => {
      await loadPeople(db, P, start, end);
      await loadSessions(db, { sessions, profiles: P, start, end });
      const step = (end.getTime() - start.getTime()) / SLICES;
      for (let s = 0; s < SLICES; s++) {
        const lo = new Date(start.getTime() + s * step);
        const hi = s === SLICES - 1 ? new Date(end.getTime() + 1) : new Date(start.getTime() + (s + 1) * step);
        const t0 = performance.now();
        const n = await loadEvents(db, lo, hi, end);
        console.log(
          `    events of sessions from ${lo.toISOString().slice(0, 10)}: ${n.toLocaleString('en-US')} in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
        );
      }
      await db`DROP TABLE bench_sessions`;
    });
    const indexes = await timed(`${rebuild.length} indexes and constraints`, async () => {
      for (const ddl of rebuild) await db.unsafe(ddl);
    });
    const analyze = await timed('VACUUM ANALYZE', async () => {
      await db`VACUUM ANALYZE`;
    });
    const [counts] = await db<{ events: number; merged: number }[]>`
      SELECT (SELECT count(*)::int FROM events) AS events,
        (SELECT count(*)::int FROM profiles WHERE merged_into IS NOT NULL) AS merged`;
    const ds: Dataset = {
      version: GENERATOR_VERSION,
      profiles: P,
      target: size.events,
      events: counts!.events,
      sessions,
      merged: counts!.merged,
      end: end.toISOString(),
      seconds: {
        rows: rows.seconds,
        indexes: indexes.seconds,
        analyze: analyze.seconds,
        total: (performance.now() - started) / 1000,
      },
    };
    // A comment is the one place that survives in the database without a table of the benchmark's own.
    // The JSON is built here (no user input); COMMENT takes no parameters.
    const literal = `'${JSON.stringify(ds).replaceAll("'", "''")}'`;
    await db.unsafe(`COMMENT ON DATABASE ${await currentDatabase(db)} IS ${literal}`);
    return ds;
  } finally {
    await db`RESET ALL`.catch(() => {});
    db.release();
  }
}

async function currentDatabase(db: postgres.ReservedSql): Promise<string> {
  const [row] = await db<{ name: string }[]>`SELECT quote_ident(current_database()) AS name`;
  return row!.name;
}

// Profiles 1..P with a first-visit time (created_at), a plan and a country; person k's own id is
// md5('bench-a-' || k). Every MERGE_EVERY-th profile is an anonymous device merged into the profile
// before it (its anonymousId identity now points at the survivor, as after stage 2's merge).
async function loadPeople(db: postgres.ReservedSql, P: number, start: Date, end: Date): Promise<void> {
  await db`
    CREATE UNLOGGED TABLE bench_people AS
    SELECT k, md5('bench-a-' || k)::uuid AS id,
      CASE WHEN k % ${MERGE_EVERY}::int = 0 THEN md5('bench-a-' || (k - 1))::uuid END AS merged_into,
      -- first visit: in the history or up to 60 days before it, more of them long ago (returning people)
      ${end}::timestamptz - power(random(), 0.6) * (${end}::timestamptz - ${start}::timestamptz + interval '60 days') AS first_seen,
      random() AS a, random() AS b
    FROM generate_series(1, ${P}::int) AS k`;
  await db`
    INSERT INTO profiles (id, merged_into, created_at, updated_at)
    SELECT id, merged_into, first_seen, ${end} FROM bench_people`;
  await db`
    INSERT INTO identities (key, type, value, profile_id, created_at)
    SELECT CASE WHEN merged_into IS NULL THEN 'userId:u' || k ELSE 'anonymousId:anon-' || k END,
      CASE WHEN merged_into IS NULL THEN 'userId' ELSE 'anonymousId' END,
      CASE WHEN merged_into IS NULL THEN 'u' || k ELSE 'anon-' || k END,
      coalesce(merged_into, id), first_seen
    FROM bench_people`;
  await db`
    INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
    SELECT p.id, t.key, t.value, ${end}, 0, 'identify'
    FROM bench_people p
    CROSS JOIN LATERAL (VALUES
      ('plan', to_jsonb((${PLANS as unknown as string[]}::text[])[1 + floor(power(p.a, 1.5) * ${PLANS.length}::int)::int])),
      ('country', to_jsonb((ARRAY['US','DE','GB','FR','NL','ES','IT','SE'])[1 + floor(power(p.b, 1.6) * 8)::int]))
    ) AS t (key, value)
    WHERE p.merged_into IS NULL`;
}

// One row per session: who (skewed), when (after the person's first visit, rarer as time goes on),
// how deep into the funnel, how many pages, which category and campaign.
async function loadSessions(
  db: postgres.ReservedSql,
  o: { sessions: number; profiles: number; start: Date; end: Date },
): Promise<void> {
  const goOn = FUNNEL.map((s) => s.goOn);
  await db`
    CREATE UNLOGGED TABLE bench_sessions AS
    SELECT s.i, p.k, coalesce(p.merged_into, p.id) AS profile_id, p.merged_into IS NOT NULL AS device,
      (${PLANS as unknown as string[]}::text[])[1 + floor(power(p.a, 1.5) * ${PLANS.length}::int)::int] AS plan,
      -- at the first visit for 10% of sessions (of people first seen in the history), else later,
      -- rarer as time goes on; ends an hour before now
      least(${o.end}::timestamptz - interval '1 hour',
        greatest(p.first_seen, ${o.start}::timestamptz) + CASE WHEN s.r0 < 0.1 AND p.first_seen >= ${o.start}::timestamptz
          THEN interval '0' ELSE power(s.r1, 1.3) * (${o.end}::timestamptz - greatest(p.first_seen, ${o.start}::timestamptz)) END) AS ts,
      CASE WHEN s.f1 >= ${goOn[0]!}::float8 THEN 0 WHEN s.f2 >= ${goOn[1]!}::float8 THEN 1
        WHEN s.f3 >= ${goOn[2]!}::float8 THEN 2 WHEN s.f4 >= ${goOn[3]!}::float8 THEN 3
        WHEN s.f5 >= ${goOn[4]!}::float8 THEN 4 ELSE 5 END AS depth,
      1 + floor(s.r2 * 3)::int AS pages,
      s.r3 < ${OTHER_SHARE}::float8 AS other,
      (${CATEGORIES as unknown as string[]}::text[])[1 + floor(power(s.r4, 1.4) * ${CATEGORIES.length}::int)::int] AS category,
      CASE WHEN s.r5 < 0.25 THEN (${CAMPAIGNS as unknown as string[]}::text[])[1 + floor(s.r5 * 4 * ${CAMPAIGNS.length}::int)::int] END AS campaign,
      -- seconds between events; 10% of sessions come back up to 3 days later to check out
      20 + s.r6 * 240 AS gap, CASE WHEN s.r7 < 0.1 THEN s.r9 * 259200 ELSE 0 END AS later,
      s.r8 AS x
    FROM (
      SELECT i, 1 + floor(${o.profiles}::int * power(random(), ${SKEW}::float8))::int AS k,
        random() AS r0, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
        random() AS r6, random() AS r7, random() AS r8, random() AS r9,
        random() AS f1, random() AS f2, random() AS f3, random() AS f4, random() AS f5
      FROM generate_series(1, ${o.sessions}::int) AS i
      OFFSET 0
    ) s
    JOIN bench_people p ON p.k = s.k`;
  await db`DROP TABLE bench_people`;
  await db`CREATE INDEX ON bench_sessions (ts)`;
  await db`ANALYZE bench_sessions`;
}

// The events of the sessions starting in [lo, hi), in time order: pages, then the funnel steps, then
// perhaps another event. A device merged away sends anonymously; a person's own profile sends its userId.
async function loadEvents(db: postgres.ReservedSql, lo: Date, hi: Date, end: Date): Promise<number> {
  const funnel = FUNNEL.map((s) => s.name);
  const rows = await db`
    INSERT INTO events (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload, processed_at, profile_id, identity_key)
    SELECT 'src_demo', e.mid, e.type, e.name, e.user_id, e.anon, e.ts, e.ts,
      jsonb_strip_nulls(jsonb_build_object(
        'type', e.type, 'event', CASE WHEN e.type = 'track' THEN e.name END, 'name', CASE WHEN e.type = 'page' THEN e.name END,
        'userId', e.user_id, 'anonymousId', e.anon, 'messageId', e.mid,
        'timestamp', to_char(e.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'properties', e.props,
        'context', CASE WHEN e.campaign IS NOT NULL AND e.j = 1 THEN
          jsonb_build_object('campaign', jsonb_build_object('name', e.campaign, 'source', 'mail', 'medium', 'email')) END)),
      e.ts, e.profile_id, CASE WHEN e.anon IS NOT NULL THEN 'anonymousId:' || e.anon ELSE 'userId:' || e.user_id END
    FROM (
      SELECT 'bench-' || s.i || '-' || j AS mid, s.profile_id, s.campaign, j,
        CASE WHEN s.device THEN NULL ELSE 'u' || s.k END AS user_id,
        CASE WHEN s.device THEN 'anon-' || s.k END AS anon,
        CASE WHEN j <= s.pages THEN 'page' ELSE 'track' END AS type,
        CASE WHEN j = 1 THEN 'Home'
          WHEN j <= s.pages THEN (${PAGES as unknown as string[]}::text[])[1 + (s.i + j) % ${PAGES.length}::int]
          WHEN j <= s.pages + s.depth THEN (${funnel}::text[])[j - s.pages]
          ELSE (${OTHER_EVENTS as unknown as string[]}::text[])[1 + s.i % ${OTHER_EVENTS.length}::int] END AS name,
        -- a late return only where it stays before the end of the history
        s.ts + ((j - 1) * s.gap + CASE WHEN j > s.pages + 2 AND s.ts < ${end}::timestamptz - interval '4 days' THEN s.later ELSE 0 END)
          * interval '1 second' AS ts,
        CASE WHEN j <= s.pages THEN jsonb_build_object('path', CASE WHEN j = 1 THEN '/' ELSE '/c/' || s.category END, 'category', s.category)
          WHEN j = s.pages + 5 AND s.depth = 5 THEN jsonb_build_object('category', s.category, 'plan', s.plan,
            'total', round((5 + power(s.x, 2) * 400)::numeric, 2), 'currency', 'EUR', 'coupon', s.x < 0.2)
          WHEN j <= s.pages + s.depth THEN jsonb_build_object('category', s.category, 'plan', s.plan,
            'product_id', 'sku-' || floor(s.x * 5000)::int, 'price', round((5 + s.x * 195)::numeric, 2))
          ELSE jsonb_build_object('category', s.category) END AS props
      FROM bench_sessions s
      CROSS JOIN LATERAL generate_series(1, s.pages + s.depth + CASE WHEN s.other THEN 1 ELSE 0 END) AS j
      WHERE s.ts >= ${lo} AND s.ts < ${hi}
    ) e
    ORDER BY e.ts`;
  return rows.count;
}

/**
 * Rows and on-disk sizes of the tables the analytics queries read.
 *
 * @example
 * const sizes = await tableSizes(sql);
 */
export async function tableSizes(sql: postgres.Sql): Promise<TableSize[]> {
  return sql<TableSize[]>`
    SELECT c.relname AS name, greatest(c.reltuples, 0)::float8 AS rows,
      pg_relation_size(c.oid)::float8 AS heap, pg_indexes_size(c.oid)::float8 AS indexes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind = 'r' AND pg_total_relation_size(c.oid) > 1048576
    ORDER BY pg_total_relation_size(c.oid) DESC`;
}

/**
 * Sizes of the indexes of `events`.
 *
 * @example
 * const idx = await eventIndexes(sql);
 */
export async function eventIndexes(sql: postgres.Sql): Promise<{ name: string; bytes: number }[]> {
  return sql<{ name: string; bytes: number }[]>`
    SELECT i.indexrelid::regclass::text AS name, pg_relation_size(i.indexrelid)::float8 AS bytes
    FROM pg_index i WHERE i.indrelid = 'events'::regclass ORDER BY 2 DESC`;
}

/**
 * Makes the trend tiles' rollup (analytics_hourly_counts, when the schema has it) hold the counts of
 * the generated events, as the pipeline would have kept them had the events come through it: when its
 * total differs from the attached events', it is recounted as its migration backfills it. Returns the
 * seconds taken when it was recounted, 0 when it was right, null when there is no rollup.
 *
 * @example
 * await refreshRollups(sql);
 */
export async function refreshRollups(sql: postgres.Sql): Promise<number | null> {
  const [t] = await sql<{ rel: string | null; deltas: string | null }[]>`
    SELECT to_regclass('analytics_hourly_counts')::text AS rel, to_regclass('analytics_count_deltas')::text AS deltas`;
  if (!t?.rel) return null;
  // Deltas the events' triggers wrote (migration 0045) and no measure job folded: a fresh count replaces both.
  const pending = t.deltas ? sql`(SELECT coalesce(sum(n), 0)::float8 FROM analytics_count_deltas)` : sql`0::float8`;
  const [c] = await sql<{ rolled: number; pending: number; events: number }[]>`
    SELECT (SELECT coalesce(sum(n), 0)::float8 FROM analytics_hourly_counts) AS rolled, ${pending} AS pending,
      (SELECT count(*)::float8 FROM events WHERE profile_id IS NOT NULL) AS events`;
  if (c!.rolled === c!.events && c!.pending === 0) return 0;
  const t0 = performance.now();
  await sql.begin(async (tx) => {
    await tx`TRUNCATE analytics_hourly_counts`;
    if (t.deltas) await tx`TRUNCATE analytics_count_deltas`;
    await tx`
      INSERT INTO analytics_hourly_counts (hour, type, event, n)
      SELECT date_trunc('hour', timestamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', type, coalesce(event, ''), count(*)
      FROM events
      WHERE profile_id IS NOT NULL
      GROUP BY 1, 2, 3`;
  });
  await sql`VACUUM ANALYZE analytics_hourly_counts`;
  return (performance.now() - t0) / 1000;
}
