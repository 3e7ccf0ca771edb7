import type postgres from 'postgres';

// The dataset of bench:audiences, generated inside Postgres (generate_series, INSERT ... SELECT): no row
// travels from Node. Profiles carry a userId identity and four traits; events are spread over 180
// days, in time order (as a real events table fills), skewed across profiles (a few heavy ones, most
// with a handful), already attached to their profiles and processed, as stage 2 leaves them. The
// random numbers come from setseed, so one size always gives the same data.

/** Days of history before the load instant. */
export const HISTORY_DAYS = 180;
/** Countries of the `country` trait, the first ones more frequent (the power below skews the pick). */
export const COUNTRIES = ['US', 'DE', 'GB', 'FR', 'NL', 'ES', 'IT', 'SE', 'CA', 'BR', 'IN', 'JP'] as const;
/** Event names and their shares of all events. */
export const EVENT_MIX = [
  { name: 'Page Viewed', share: 0.5 },
  { name: 'Product Viewed', share: 0.3 },
  { name: 'Added to Cart', share: 0.12 },
  { name: 'Order Completed', share: 0.08 },
] as const;
/** Profile k of 1..P is picked as 1 + floor(P * u^SKEW): the heaviest profile gets ~P^(-1/SKEW) of all events. */
const SKEW = 1.3;
/** Events inserted per statement (progress is printed between them). */
const EVENTS_PER_STATEMENT = 1_000_000;
/** The tables the load writes; their indexes are built after the rows are in. */
const LOADED = ['profiles', 'identities', 'profile_traits', 'events'];

/** The user id and profile id of profile number k (1-based), as the SQL below makes them. */
export const userIdOf = (k: number) => `u${k}`;

/** What the load wrote and how long each part took. */
export interface LoadResult {
  profiles: number;
  traits: number;
  identities: number;
  events: number;
  /** The instant the history ends at (events are before it). */
  now: Date;
  seconds: { rows: number; indexes: number; vacuum: number; total: number };
  tables: TableSize[];
}

/** On-disk size of a table and its indexes, in bytes. */
export interface TableSize {
  name: string;
  rows: number;
  heap: number;
  indexes: number;
}

// A session's random() sequence is fixed by setseed: the same statements give the same rows.
const SEED = 0.4242;

async function timed<T>(what: string, fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  console.log(`  ${what}: ${seconds.toFixed(1)} s`);
  return { value, seconds };
}

/**
 * Drops the indexes and unique/primary constraints of the loaded tables (none is referenced by a
 * foreign key) and returns the DDL that makes them again, read from the catalog: building an index
 * once after the load is several times cheaper than keeping it up to date row by row.
 */
async function dropIndexes(db: postgres.ReservedSql): Promise<string[]> {
  const rows = await db<{ drop: string; create: string }[]>`
    SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.conrelid::regclass::text, c.conname) AS drop,
      format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)) AS create
    FROM pg_constraint c
    WHERE c.conrelid = ANY(${LOADED}::regclass[]) AND c.contype IN ('p', 'u')
      AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.conrelid)
    UNION ALL
    SELECT format('DROP INDEX %s', i.indexrelid::regclass::text), pg_get_indexdef(i.indexrelid)
    FROM pg_index i
    WHERE i.indrelid = ANY(${LOADED}::regclass[])
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)`;
  // DDL cannot take parameters; these statements are the catalog's own definitions of Cairn's schema.
  for (const r of rows) await db.unsafe(r.drop);
  return rows.map((r) => r.create);
}

/**
 * Generates the dataset in a migrated database (the demo source `src_demo` must exist): `profiles`
 * profiles with traits and a userId each, and `events` events over the HISTORY_DAYS days before
 * now; then builds the indexes and runs VACUUM ANALYZE.
 *
 * @example
 * const load = await loadDataset(sql, { profiles: 1_000_000, events: 10_000_000 });
 */
export async function loadDataset(sql: postgres.Sql, size: { profiles: number; events: number }): Promise<LoadResult> {
  const started = performance.now();
  const now = new Date();
  const P = size.profiles;
  const db = await sql.reserve();
  try {
    // A bulk load: rows are consistent by construction, so foreign-key triggers are skipped
    // (session_replication_role) and commits need not wait for the WAL flush.
    await db`SET session_replication_role = replica`;
    await db`SET synchronous_commit = off`;
    await db`SET maintenance_work_mem = '1GB'`;
    await db`SELECT setseed(${SEED})`;
    const rebuild = await dropIndexes(db);
    const rows = await timed('rows', async () => {
      await db`
        INSERT INTO profiles (id, created_at, updated_at)
        SELECT md5('bench-profile-' || k)::uuid, ${now} - random() * interval '730 days', ${now}
        FROM generate_series(1, ${P}::int) AS k`;
      await db`
        INSERT INTO identities (key, type, value, profile_id, created_at)
        SELECT 'userId:u' || k, 'userId', 'u' || k, md5('bench-profile-' || k)::uuid, ${now}
        FROM generate_series(1, ${P}::int) AS k`;
      await loadTraits(db, P, now);
      for (let lo = 1; lo <= size.events; lo += EVENTS_PER_STATEMENT) {
        const hi = Math.min(size.events, lo + EVENTS_PER_STATEMENT - 1);
        await loadEvents(db, { lo, hi, total: size.events, profiles: P, now });
        if (size.events > EVENTS_PER_STATEMENT) console.log(`    events ${hi.toLocaleString('en-US')}`);
      }
    });
    const indexes = await timed(`${rebuild.length} indexes and constraints`, async () => {
      for (const ddl of rebuild) await db.unsafe(ddl);
    });
    const vacuum = await timed('VACUUM ANALYZE', async () => {
      await db`VACUUM ANALYZE`;
    });
    const [counts] = await db<{ traits: number; events: number }[]>`
      SELECT (SELECT count(*)::int FROM profile_traits) AS traits, (SELECT count(*)::int FROM events) AS events`;
    return {
      profiles: P,
      identities: P,
      traits: counts!.traits,
      events: counts!.events,
      now,
      seconds: {
        rows: rows.seconds,
        indexes: indexes.seconds,
        vacuum: vacuum.seconds,
        total: (performance.now() - started) / 1000,
      },
      tables: await tableSizes(sql),
    };
  } finally {
    await db`RESET ALL`.catch(() => {});
    db.release();
  }
}

// plan (free / pro / business), country (skewed), signed_up_at (a date in the last two years),
// birthday (for 80%): the kinds of traits rules compare (text, list, dates, anniversaries).
async function loadTraits(db: postgres.ReservedSql, P: number, now: Date): Promise<void> {
  await db`
    INSERT INTO profile_traits (profile_id, key, value, updated_at, event_id, source)
    SELECT p.id, t.key, t.value, ${now}, 0, 'identify'
    FROM (
      SELECT md5('bench-profile-' || k)::uuid AS id, random() AS a, random() AS b, random() AS c, random() AS d
      FROM generate_series(1, ${P}::int) AS k
      OFFSET 0
    ) p
    CROSS JOIN LATERAL (VALUES
      ('plan', to_jsonb(CASE WHEN p.a < 0.7 THEN 'free' WHEN p.a < 0.92 THEN 'pro' ELSE 'business' END)),
      ('country', to_jsonb((${COUNTRIES as unknown as string[]}::text[])[1 + floor(power(p.b, 1.6) * ${COUNTRIES.length}::int)::int])),
      ('signed_up_at', to_jsonb(to_char(${now}::timestamptz - p.c * interval '730 days', 'YYYY-MM-DD'))),
      ('birthday', CASE WHEN p.d < 0.8 THEN to_jsonb(to_char(date '1950-01-01' + floor(p.d / 0.8 * 20000)::int, 'YYYY-MM-DD')) END)
    ) AS t (key, value)
    WHERE t.value IS NOT NULL`;
}

// Events lo..hi of `total`: event i's timestamp falls in the i-th slice of the history (time order),
// its profile is skewed (SKEW), its name follows EVENT_MIX, its properties fit its name.
async function loadEvents(
  db: postgres.ReservedSql,
  o: { lo: number; hi: number; total: number; profiles: number; now: Date },
): Promise<void> {
  const stepMs = (HISTORY_DAYS * 86_400_000) / o.total;
  const start = new Date(o.now.getTime() - HISTORY_DAYS * 86_400_000);
  const [a, b, c] = [EVENT_MIX[0].share, EVENT_MIX[0].share + EVENT_MIX[1].share, 1 - EVENT_MIX[3].share];
  await db`
    INSERT INTO events (source_id, message_id, type, event, user_id, timestamp, received_at, payload, processed_at, profile_id, identity_key)
    SELECT 'src_demo', 'bench-' || g.i, 'track', g.name, 'u' || g.k, g.ts, g.ts,
      jsonb_build_object(
        'type', 'track', 'event', g.name, 'userId', 'u' || g.k, 'messageId', 'bench-' || g.i,
        'timestamp', to_char(g.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'properties', CASE g.name
          WHEN 'Order Completed' THEN jsonb_build_object('order_id', 'o' || g.i, 'total', round((10 + g.x * 490)::numeric, 2), 'currency', 'EUR')
          WHEN 'Added to Cart' THEN jsonb_build_object('product_id', 'sku-' || floor(g.x * 5000)::int, 'price', round((5 + g.x * 195)::numeric, 2), 'quantity', 1 + floor(g.x * 3)::int)
          WHEN 'Product Viewed' THEN jsonb_build_object('product_id', 'sku-' || floor(g.x * 5000)::int, 'price', round((5 + g.x * 195)::numeric, 2))
          ELSE jsonb_build_object('path', '/p/' || floor(g.x * 400)::int) END),
      g.ts, md5('bench-profile-' || g.k)::uuid, 'userId:u' || g.k
    FROM (
      SELECT s.i,
        1 + floor(${o.profiles}::int * power(random(), ${SKEW}::float8))::int AS k,
        ${start}::timestamptz + (s.i - 1 + random()) * ${stepMs}::float8 * interval '1 millisecond' AS ts,
        CASE WHEN s.r < ${a}::float8 THEN 'Page Viewed' WHEN s.r < ${b}::float8 THEN 'Product Viewed'
          WHEN s.r < ${c}::float8 THEN 'Added to Cart' ELSE 'Order Completed' END AS name,
        random() AS x
      FROM (SELECT i, random() AS r FROM generate_series(${o.lo}::int, ${o.hi}::int) AS i OFFSET 0) s
      OFFSET 0
    ) g`;
}

/**
 * Rows and on-disk sizes of the tables stage 3 reads and writes.
 *
 * @example
 * const sizes = await tableSizes(sql);
 */
export async function tableSizes(sql: postgres.Sql): Promise<TableSize[]> {
  return sql<TableSize[]>`
    SELECT c.relname AS name, greatest(c.reltuples, 0)::float8 AS rows,
      pg_relation_size(c.oid)::float8 AS heap, pg_indexes_size(c.oid)::float8 AS indexes
    FROM pg_class c
    WHERE c.relname = ANY(${[...LOADED, 'audience_memberships']}) AND c.relkind = 'r'
    ORDER BY pg_total_relation_size(c.oid) DESC`;
}
