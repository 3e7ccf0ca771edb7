// The events import benchmark (`npm run bench:import-events`): a generated file of historical Segment
// events (track `Order Completed` with userId, messageId, timestamp, total and category; NDJSON by
// default, `--format csv` names the places in its header) streamed through the real route,
// `POST /api/imports?kind=events` (server/src/pipeline/ingest/import-events.ts: parsed, validated, stored
// in 2,000-row transactions under the `import` source, handed to stage 2 as `events.stored`), into a fresh
// database of the real Postgres; then the same file COPYed raw into an unlogged table of text columns as
// the physical reference. `--rows N` (default 100,000); `--again` also times the same file a second time
// (every row already stored: nothing changes). The import is timed on its own: stage 2 works on the
// events afterwards, as on live ones; `--pipeline` then starts a worker (in this process) and times the
// pipeline until every event is attached and the stage queues (identify, compute, fanout, automate,
// measure) are idle (identities, traits by event time; no audience, flow or destination is defined). Beside the wall-clock rate it prints the CPU
// per row in this process (HTTP server, parser, client and generator: one process) and in the Postgres
// backends serving it (from /proc, as bench:import does), and the machine load: the CPU the rest of the
// machine used meanwhile, from /proc/stat (the machine is shared).
import { cpus, loadavg } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createTestDatabase, settle, startTestCairn, TEST_ADMIN_KEY } from '@cairn/server/testing';
import { backendCpuMs, machineBusyMs } from './ingest/machine.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    format: { type: 'string', default: 'ndjson' },
    again: { type: 'boolean', default: false },
    pipeline: { type: 'boolean', default: false },
  },
});
const ROWS = Number(values.rows);
const FORMAT = values.format as 'ndjson' | 'csv';
if (FORMAT !== 'ndjson' && FORMAT !== 'csv') throw new Error('--format: ndjson or csv');
const PEOPLE = Math.max(1, Math.round(ROWS / 10));
const CATEGORIES = ['beauty', 'books', 'garden', 'toys', 'shoes'];
const START = Date.parse('2026-01-01T00:00:00Z');
const HEADER = 'type,event,userId,messageId,timestamp,properties.total,properties.category';

// Row i: person i mod PEOPLE, a minute apart, a stable messageId (a second import finds each stored).
const fields = (i: number) =>
  [
    'track',
    'Order Completed',
    `u${i % PEOPLE}`,
    `order-${i}`,
    new Date(START + i * 60_000).toISOString(),
    (10 + (i % 190)).toFixed(2),
    CATEGORIES[i % CATEGORIES.length]!,
  ] as const;

function* file(rows: number) {
  let buf = FORMAT === 'csv' ? `${HEADER}\n` : '';
  for (let i = 0; i < rows; i++) {
    const [type, event, userId, messageId, timestamp, total, category] = fields(i);
    buf +=
      FORMAT === 'csv'
        ? `${fields(i).join(',')}\n`
        : `${JSON.stringify({ type, event, userId, messageId, timestamp, properties: { total: Number(total), category } })}\n`;
    if (buf.length > 65_536) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}

const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
process.env.DATABASE_URL = base;
const db = await createTestDatabase('bench/import-events.ts', 'postgres');
// The database, migrations and the API; no workers: the events wait for stage 2 in the queue, as an
// import's do while the pipeline is busy.
const cairn = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest', CAIRN_DEMO: '' });
try {
  const sql = cairn.sql;
  const measure = async <T>(work: () => Promise<T>) => {
    const cpu0 = process.cpuUsage();
    const pg0 = await backendCpuMs(sql);
    const busy0 = machineBusyMs();
    const start = performance.now();
    const out = await work();
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const nodeMs = (cpu.user + cpu.system) / 1000;
    // Backends that ended during the import are missed: the pool keeps its connections open.
    const pgMs = (await backendCpuMs(sql)) - pg0;
    const othersCores = Math.max(0, machineBusyMs() - busy0 - nodeMs - pgMs) / ms;
    return { out, s: ms / 1000, nodeUs: (nodeMs * 1000) / ROWS, pgUs: (pgMs * 1000) / ROWS, othersCores };
  };
  const load = (othersCores: number) =>
    `others used ${othersCores.toFixed(2)} of ${cpus().length} cores meanwhile, load ${loadavg()[0]!.toFixed(1)}`;

  const time = async (label: string) => {
    const r = await measure(async () => {
      const res = await fetch(`${cairn.url}/api/imports?kind=events&format=${FORMAT}&rows=${ROWS}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${TEST_ADMIN_KEY}`,
          'content-type': FORMAT === 'csv' ? 'text/csv' : 'application/x-ndjson',
        },
        body: Readable.toWeb(Readable.from(file(ROWS))) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      const body = (await res.json()) as Record<string, unknown>;
      if (res.status >= 300 || body.status !== 'done') throw new Error(`import: ${res.status} ${JSON.stringify(body)}`);
      return body as { eventsStored: number; rowsUnchanged: number; rowsBad: number };
    });
    console.log(
      `${label}: ${ROWS} ${FORMAT} rows in ${r.s.toFixed(1)} s = ${Math.round(ROWS / r.s)} rows/s ` +
        `(stored ${r.out.eventsStored}, unchanged ${r.out.rowsUnchanged}, bad ${r.out.rowsBad}); ` +
        `CPU per row: ${r.nodeUs.toFixed(0)} µs node + ${r.pgUs.toFixed(0)} µs Postgres = ` +
        `${Math.round(2e6 / (r.nodeUs + r.pgUs))} rows/s on 2 idle cores if both stayed busy; ${load(r.othersCores)}`,
    );
    return { rate: ROWS / r.s, ...r };
  };
  const first = await time('import');
  const [stored] = await sql<{ n: number; queued: number }[]>`
    SELECT (SELECT count(*)::int FROM events WHERE source_id = 'import') AS n,
      (SELECT count(*)::int FROM pgboss.job WHERE name = 'identify' AND state < 'completed') AS queued`;
  console.log(`stored: ${stored!.n} events; ${stored!.queued} events.stored jobs (1,000 ids each) waiting for stage 2`);
  if (values.pipeline) {
    const worker = await startTestCairn({ ...db.env, CAIRN_ROLE: 'worker', CAIRN_DEMO: '' });
    try {
      const p = await measure(() =>
        settle(sql, { timeoutMs: 3_600_000, queues: ['identify', 'compute', 'fanout', 'automate', 'measure'] }),
      );
      const [attached] = await sql<{ n: number; people: number }[]>`
        SELECT count(*)::int AS n, count(DISTINCT profile_id)::int AS people
        FROM events WHERE source_id = 'import' AND profile_id IS NOT NULL`;
      console.log(
        `pipeline: ${attached!.n} imported events attached to ${attached!.people} profiles in ${p.s.toFixed(1)} s = ` +
          `${Math.round(ROWS / p.s)} events/s; CPU per event: ${p.nodeUs.toFixed(0)} µs node + ${p.pgUs.toFixed(0)} µs Postgres; ${load(p.othersCores)}`,
      );
    } finally {
      await worker.close();
    }
  }
  const again = values.again ? await time('same file again') : null;

  await sql`
    CREATE UNLOGGED TABLE raw_rows (
      ${FORMAT === 'csv' ? sql`type text, event text, user_id text, message_id text, ts text, total text, category text` : sql`line text`}
    )`;
  const copy = await measure(async () => {
    // The NDJSON lines hold no tab or backslash: COPY's text format takes each line as one value.
    const into =
      await sql`COPY raw_rows FROM STDIN ${FORMAT === 'csv' ? sql`WITH (FORMAT csv, HEADER true)` : sql``}`.writable();
    await pipeline(Readable.from(file(ROWS)), into);
  });
  const raw = ROWS / copy.s;
  console.log(
    `raw COPY reference: ${Math.round(raw)} rows/s (${copy.pgUs.toFixed(1)} µs Postgres CPU per row); ${load(copy.othersCores)}`,
  );
  console.log(
    `\n| events import ${ROWS} ${FORMAT} rows | ${Math.round(first.rate)} rows/s | ` +
      `${first.nodeUs.toFixed(0)} + ${first.pgUs.toFixed(0)} µs | ${again ? `${Math.round(again.rate)} rows/s` : '-'} | ` +
      `${Math.round(raw)} rows/s | ${((first.rate / raw) * 100).toFixed(1)}% | ` +
      `others ${first.othersCores.toFixed(1)} cores, load ${loadavg()[0]!.toFixed(1)} |`,
  );
} finally {
  await cairn.close();
  await db.drop();
}
