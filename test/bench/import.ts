// The bulk import benchmark (`npm run bench:import`): a generated profile CSV (userId, email, name,
// birthday, spend, consent, tag) imported by stage 2's import module (server/src/pipeline/identify/
// import.ts, the code behind POST /api/imports) into a fresh database of the real Postgres, streamed
// from memory; then the same rows COPYed raw into an unlogged table of text columns as the physical
// reference. `--rows N` (default 1,000,000); `--again` also times importing the same file a second time.
// Beside the wall-clock rate it prints the CPU time spent per row, in this process and in the Postgres
// backends serving it (from /proc): the machine is shared, and CPU per row is what 2 idle cores divide.
import { loadavg } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createTestDatabase, startTestCairn } from '@cairn/server/testing';
import { insertImport, parseMapping, runImport } from '../../server/src/pipeline/identify/index.ts';
import { backendCpuMs } from './ingest/machine.ts';

const { values } = parseArgs({
  options: { rows: { type: 'string', default: '1000000' }, again: { type: 'boolean', default: false } },
});
const ROWS = Number(values.rows);
const MAP =
  'id=identity:userId,email=identity:email,name=trait:name,birthday=trait:birthday:date,' +
  'spend=trait:spend:number,newsletter=consent:marketing,vip=tag:vip';
const HEADER = 'id,email,name,birthday,spend,newsletter,vip';

function* csv(rows: number) {
  yield `${HEADER}\n`;
  let buf = '';
  for (let i = 0; i < rows; i++) {
    buf += `u${i},u${i}@example.com,Person ${i},19${50 + (i % 50)}-0${1 + (i % 9)}-1${i % 10},${i % 500},${i % 2 ? 'yes' : 'no'},${i % 10 === 0}\n`;
    if (buf.length > 65_536) {
      yield buf;
      buf = '';
    }
  }
  if (buf) yield buf;
}

const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
process.env.DATABASE_URL = base;
const db = await createTestDatabase('bench/import.ts', 'postgres');
// Only the database, migrations and the API; no workers (an import hands nothing to them anyway).
const cairn = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest', CAIRN_DEMO: '' });
try {
  const sql = cairn.sql;
  await sql`INSERT INTO tags (key, name) VALUES ('vip', 'VIP')`;
  const mapping = parseMapping(MAP);
  const ctx = { identity: {}, traits: {}, purposes: null, pii: cairn.pii };
  const time = async (label: string) => {
    const imp = await insertImport(sql, { format: 'csv', mapping, dryRun: false, rowsExpected: ROWS, actor: 'bench' });
    const cpu0 = process.cpuUsage();
    const pg0 = await backendCpuMs(sql);
    const start = performance.now();
    const done = await runImport(sql, Readable.from(csv(ROWS)), {
      importId: imp.id,
      format: 'csv',
      mapping,
      dryRun: false,
      skipThrough: 0,
      ctx,
      clock: () => new Date(),
    });
    const s = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const nodeUs = (cpu.user + cpu.system) / ROWS;
    // Backends that ended during the import are missed: the pool keeps its connections open.
    const pgUs = (((await backendCpuMs(sql)) - pg0) * 1000) / ROWS;
    console.log(
      `${label}: ${ROWS} rows in ${s.toFixed(1)} s = ${Math.round(ROWS / s)} rows/s ` +
        `(created ${done.profilesCreated}, unchanged ${done.rowsUnchanged}, bad ${done.rowsBad}); ` +
        `CPU per row: ${nodeUs.toFixed(0)} µs node + ${pgUs.toFixed(0)} µs Postgres = ` +
        `${Math.round(2e6 / (nodeUs + pgUs))} rows/s on 2 idle cores if both stayed busy`,
    );
    return ROWS / s;
  };
  const first = await time('import');
  const again = values.again ? await time('same file again') : null;

  await sql`CREATE UNLOGGED TABLE raw_rows (id text, email text, name text, birthday text, spend text, newsletter text, vip text)`;
  const pgCopy0 = await backendCpuMs(sql);
  const start = performance.now();
  const copy = await sql`COPY raw_rows FROM STDIN WITH (FORMAT csv, HEADER true)`.writable();
  await pipeline(Readable.from(csv(ROWS)), copy);
  const raw = ROWS / ((performance.now() - start) / 1000);
  const copyUs = (((await backendCpuMs(sql)) - pgCopy0) * 1000) / ROWS;
  console.log(`raw COPY reference: ${Math.round(raw)} rows/s (${copyUs.toFixed(1)} µs Postgres CPU per row)`);
  console.log(
    `\n| import ${ROWS} rows | ${Math.round(first)} rows/s | ${again ? `${Math.round(again)} rows/s` : '-'} | ` +
      `${Math.round(raw)} rows/s | ${((first / raw) * 100).toFixed(1)}% | load ${loadavg()[0]!.toFixed(1)} |`,
  );
} finally {
  await cairn.close();
  await db.drop();
}
