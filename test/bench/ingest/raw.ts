import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';

// The physical reference: the same rows Cairn stored (same columns, same jsonb payloads) written
// straight into a fresh copy of the events table through postgres.js, 100 rows per statement, at
// the same concurrency — what Postgres on this machine can do with no HTTP, validation or queue.

/** One events row as text, ready to be sent again under a new messageId. */
interface RowTemplate {
  sourceId: string;
  messageId: string;
  type: string;
  event: string | null;
  userId: string | null;
  anonymousId: string | null;
  timestamp: string;
  receivedAt: string;
  payload: string;
}

const COLUMNS = 'source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload';

/**
 * Reads a sample of the rows Cairn stored, to replay them with fresh messageIds.
 *
 * @example
 * const sample = await sampleRows(sql, 500);
 */
export async function sampleRows(sql: postgres.Sql, limit: number): Promise<RowTemplate[]> {
  return sql<RowTemplate[]>`
    SELECT
      source_id AS "sourceId",
      message_id AS "messageId",
      type,
      event,
      user_id AS "userId",
      anonymous_id AS "anonymousId",
      timestamp::text AS timestamp,
      received_at::text AS "receivedAt",
      payload::text AS payload
    FROM events
    ORDER BY id DESC
    LIMIT ${limit}`;
}

/**
 * Creates an empty copy of the events table (columns, identity, defaults, indexes and the foreign key to
 * sources) with the unique (source_id, message_id) key it had before migration 0034, so the reference
 * pays what Cairn pays and stays the same physical reference across that change: one plain table whose
 * unique index does the dedup (Cairn's events are partitioned, with the dedup key in event_keys).
 *
 * @example
 * await createRawTable(sql, 'bench_raw_insert');
 */
export async function createRawTable(sql: postgres.Sql, table: string): Promise<void> {
  await sql`DROP TABLE IF EXISTS ${sql(table)}`;
  await sql`CREATE TABLE ${sql(table)} (LIKE events INCLUDING ALL)`;
  await sql`
    ALTER TABLE ${sql(table)}
    ADD FOREIGN KEY (source_id) REFERENCES sources (id),
    ADD UNIQUE (source_id, message_id)`;
}

function freshRows(sample: RowTemplate[], next: { i: number }, n: number): RowTemplate[] {
  const rows = new Array<RowTemplate>(n);
  for (let k = 0; k < n; k++) {
    const t = sample[next.i++ % sample.length]!;
    const messageId = randomUUID();
    rows[k] = { ...t, messageId, payload: t.payload.replace(t.messageId, messageId) };
  }
  return rows;
}

// COPY text format: backslash, newline, carriage return and tab are escaped; NULL is \N.
function copyField(v: string | null): string {
  if (v === null) return '\\N';
  return v.replace(/[\\\n\r\t]/g, (ch) => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t'));
}

async function insertRows(sql: postgres.Sql, table: string, rows: RowTemplate[]): Promise<void> {
  const col = <K extends keyof RowTemplate>(k: K) => rows.map((r) => r[k]);
  // The statement Cairn's insertEvents runs, minus RETURNING (nothing downstream needs the ids).
  await sql`
    INSERT INTO ${sql(table)} (source_id, message_id, type, event, user_id, anonymous_id, timestamp, received_at, payload)
    SELECT *
    FROM unnest(
      ${col('sourceId')}::text[],
      ${col('messageId')}::text[],
      ${col('type')}::text[],
      ${col('event')}::text[],
      ${col('userId')}::text[],
      ${col('anonymousId')}::text[],
      ${col('timestamp')}::timestamptz[],
      ${col('receivedAt')}::timestamptz[],
      ${col('payload')}::text[]::jsonb[]
    )
    ON CONFLICT (source_id, message_id) DO NOTHING`;
}

async function copyInto(
  sql: postgres.Sql | postgres.TransactionSql,
  table: string,
  rows: RowTemplate[],
): Promise<void> {
  const lines = rows.map(
    (r) =>
      `${[r.sourceId, r.messageId, r.type, r.event, r.userId, r.anonymousId, r.timestamp, r.receivedAt, r.payload]
        .map(copyField)
        .join('\t')}\n`,
  );
  // Table and column names are fixed identifiers of this file; COPY takes no parameters.
  const writable = await sql.unsafe(`COPY ${table} (${COLUMNS}) FROM STDIN`).writable();
  await new Promise<void>((resolve, reject) => {
    writable.on('error', reject);
    writable.on('finish', resolve);
    writable.end(lines.join(''));
  });
}

async function copyRows(sql: postgres.Sql, table: string, rows: RowTemplate[]): Promise<void> {
  await copyInto(sql, table, rows);
}

// COPY cannot skip duplicates, so a deduplicating store would COPY into a per-session staging table
// and move the rows with INSERT ... ON CONFLICT DO NOTHING, in one transaction.
async function copyDedupRows(sql: postgres.Sql, table: string, rows: RowTemplate[]): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`
      CREATE TEMP TABLE IF NOT EXISTS bench_staging (
        source_id text,
        message_id text,
        type text,
        event text,
        user_id text,
        anonymous_id text,
        timestamp timestamptz,
        received_at timestamptz,
        payload jsonb
      ) ON COMMIT DELETE ROWS`;
    await copyInto(tx, 'bench_staging', rows);
    await tx.unsafe(`
      INSERT INTO ${table} (${COLUMNS})
      SELECT ${COLUMNS}
      FROM bench_staging
      ON CONFLICT (source_id, message_id) DO NOTHING`);
  });
}

/** How the reference writes: Cairn's INSERT, plain COPY, or COPY through a staging table with dedup. */
export type RawMethod = 'insert' | 'copy' | 'copy-dedup';

const WRITERS = { insert: insertRows, copy: copyRows, 'copy-dedup': copyDedupRows } as const;

/** What one reference run measured. */
export interface RawResult<M> {
  rows: number;
  statements: number;
  seconds: number;
  latencies: Float64Array;
  /** What `measure` returned: started once the connections are open, stopped before they close. */
  measured: M;
}

/**
 * Writes `rowsPerStatement`-row statements from `concurrency` connections for `durationMs`.
 *
 * @example
 * const r = await rawLoad(url, { method: 'insert', table, sample, concurrency: 16, durationMs: 10_000, rowsPerStatement: 100, measure });
 */
export async function rawLoad<M>(
  url: string,
  options: {
    method: RawMethod;
    table: string;
    sample: RowTemplate[];
    concurrency: number;
    durationMs: number;
    rowsPerStatement: number;
    measure: () => () => M;
  },
): Promise<RawResult<M>> {
  // Without TCP_NODELAY, the few bytes of CopyDone that follow a COPY's data wait for a delayed ACK
  // (~40 ms on Linux loopback): an artefact of the client, not a cost of Postgres. postgres.js takes
  // a socket factory (its `socket` option, missing from its type declarations).
  const noDelay = {
    socket: ({ host, port }: { host: string[]; port: number[] }) =>
      connect({ host: host[0], port: port[0]!, noDelay: process.env.BENCH_RAW_NODELAY !== '0' }),
  };
  const sql = postgres(url, { max: options.concurrency, onnotice: () => {}, ...noDelay });
  const write = WRITERS[options.method];
  const cursor = { i: 0 };
  const latencies: number[] = [];
  let rows = 0;
  try {
    // Open every connection before the clock starts, as the Cairn server's pool already is.
    await Promise.all(Array.from({ length: options.concurrency }, () => sql`SELECT 1`));
    const stop = options.measure();
    const start = performance.now();
    const end = start + options.durationMs;
    const worker = async () => {
      while (performance.now() < end) {
        const batch = freshRows(options.sample, cursor, options.rowsPerStatement);
        const t0 = performance.now();
        await write(sql, options.table, batch);
        latencies.push(performance.now() - t0);
        rows += batch.length;
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    const seconds = (performance.now() - start) / 1000;
    const measured = stop();
    return { rows, statements: latencies.length, seconds, latencies: Float64Array.from(latencies), measured };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
