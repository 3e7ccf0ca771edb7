import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CommitStats } from './commits.ts';
import type { CpuUse, Machine } from './machine.ts';

// The results table (printed, and written into docs/benchmarks.md between markers so a rerun
// replaces the previous results and leaves the rest of the page alone).

/** One measured phase. */
export interface PhaseResult {
  name: string;
  load: string;
  requests: number;
  events: number;
  eventsPerSec: number;
  requestsPerSec: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  cpu: CpuUse;
  /** Cairn's group commits during the phase (HTTP phases only). */
  commits?: CommitStats;
}

/** A budget from DESIGN.md and whether this run met it. */
export interface Verdict {
  budget: string;
  measured: string;
  met: boolean;
}

/** Everything a run reports. */
export interface Report {
  date: string;
  machine: Machine;
  settings: Record<string, string>;
  averageEventBytes: number;
  durationS: number;
  phases: PhaseResult[];
  verdicts: Verdict[];
  integrity: string;
  notes: string[];
}

/**
 * Events stored per CPU-second used by Cairn, Postgres and the load generator together: what a
 * phase costs, which other people's processes on a shared machine disturb far less than events/s.
 *
 * @example
 * perCpuSecond(phase); // 12,400
 */
export function perCpuSecond(p: PhaseResult): number {
  return p.eventsPerSec / (p.cpu.cairn + p.cpu.postgres + p.cpu.loadgen);
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 1 : 0) : '-');
const commits = (c: CommitStats | undefined) =>
  c ? `${int(c.perSec)} × ${c.rowsPerCommit.toFixed(0)}, ${c.msPerCommit.toFixed(1)}` : '-';
const cores = (c: CpuUse) =>
  `${c.cairn.toFixed(2)} / ${c.postgres.toFixed(2)} / ${c.loadgen.toFixed(2)} / ${c.other.toFixed(2)}`;

/**
 * The results as a Markdown table (also readable as plain text in a terminal).
 *
 * @example
 * console.log(resultsTable(report.phases));
 */
export function resultsTable(phases: PhaseResult[]): string {
  const head = [
    '| Phase | Load | Requests | Events/s | Requests/s | p50 ms | p95 ms | p99 ms | Errors | Events per CPU-s | Group commits/s × rows, ms | CPU cores: Cairn / Postgres / load gen / other |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  const rows = phases.map(
    (p) =>
      `| ${p.name} | ${p.load} | ${int(p.requests)} | ${int(p.eventsPerSec)} | ${int(p.requestsPerSec)} | ${ms(p.p50)} | ${ms(p.p95)} | ${ms(p.p99)} | ${int(p.errors)} | ${int(perCpuSecond(p))} | ${commits(p.commits)} | ${cores(p.cpu)} |`,
  );
  return [...head, ...rows].join('\n');
}

/**
 * The budget comparison as a Markdown list.
 *
 * @example
 * console.log(verdictList(report.verdicts));
 */
export function verdictList(verdicts: Verdict[]): string {
  return verdicts.map((v) => `- ${v.met ? 'MET' : 'MISSED'}: ${v.budget}; measured ${v.measured}`).join('\n');
}

function machineLine(m: Machine): string {
  const pg = Object.entries(m.pgSettings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return (
    `${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM; Node ${m.node}; PostgreSQL ${m.postgres} on the same machine ` +
    `(${pg}). Cairn, Postgres and the load generator share these ${m.cores} cores.` +
    (m.speedIndex
      ? ` Speed index (a fixed single-threaded JSON workload, thousands of rounds/s; it shows a virtual machine's drift): ` +
        `${m.speedIndex[0].toFixed(0)} before the run, ${m.speedIndex[1].toFixed(0)} after.`
      : '')
  );
}

/**
 * The section of docs/benchmarks.md this run owns.
 *
 * @example
 * const md = resultsSection(report);
 */
export function resultsSection(r: Report): string {
  const settings = Object.entries(r.settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return [
    START,
    `### Results of ${r.date}`,
    '',
    `Machine: ${machineLine(r.machine)}`,
    '',
    `Server: ${settings}. Events average ${r.averageEventBytes} bytes as sent; each phase ran ${r.durationS} s.`,
    '',
    resultsTable(r.phases),
    '',
    'Budgets (DESIGN.md, "Performance budgets"):',
    '',
    verdictList(r.verdicts),
    '',
    `Integrity: ${r.integrity}`,
    ...(r.notes.length ? ['', 'Notes:', '', ...r.notes.map((n) => `- ${n}`)] : []),
    END,
  ].join('\n');
}

const START = '<!-- bench:ingest:start (written by npm run bench:ingest -- --write) -->';
const END = '<!-- bench:ingest:end -->';

const HEADER = `# Benchmarks

Every claim of speed or size in Cairn has a command that reproduces it, and its latest results land here with the
machine they ran on. Benchmarks are not tests: tests assert behaviour, these measure it.

## Ingest

Reproduce with a Postgres reachable at \`DATABASE_URL\` (default \`postgres://postgres@127.0.0.1:5432/postgres\`; the
benchmark creates and drops a database of its own):

\`\`\`sh
npm run bench:ingest                 # full run (10 s per phase), prints the table
npm run bench:ingest -- --write      # the same, and replaces the results below (or BENCH_WRITE=1)
npm run bench:ingest -- --quick      # 2 s per phase, to check the benchmark itself
\`\`\`

Options: \`--duration=S\` (\`BENCH_DURATION_S\`), \`--warmup=S\`, \`--batch=4,16,32\`, \`--single=16,64,128\`,
\`--rate=1000\` (0 skips the fixed-rate phase), \`--no-copy\`, \`--role=ingest|all\` (\`BENCH_ROLE\`),
\`--wait-quiet=S\` (\`BENCH_WAIT_QUIET_S\`: wait up to S seconds for other processes to go quiet before starting) and
\`--retry-noisy=N\` (\`BENCH_RETRY_NOISY\`, default 2: repeat a phase during which other processes used more than
0.15 cores, and keep the quietest attempt, not the fastest). The server's tuning knobs are read from the environment as
usual (\`CAIRN_DB_POOL_MAX\`, \`CAIRN_COMMIT_MAX_ROWS\`, \`CAIRN_COMMIT_CONCURRENCY\`); \`BENCH_SERVER_NODE_OPTIONS\`
is passed to the server as \`NODE_OPTIONS\` (e.g. \`--cpu-prof --cpu-prof-dir=/tmp/prof\` to profile it).

What one run does, against a fresh database on the real Postgres:

1. Spawns the Cairn server as a separate process and reads the demo source's write key through the admin API. The
   server runs as an ingest node (\`CAIRN_ROLE=ingest\`, as ingestion is deployed to scale apart from workers; \`--role=all\`
   adds the workers), with its default settings unless the environment says otherwise. A short warm-up (3 s batched,
   3 s single) is not reported.
2. **Batched**: closed loop of \`POST /v1/batch\` with 100 realistic track events each (product properties,
   \`context.userAgent\`, \`context.page\`; ~780 bytes per event), at concurrency 4, 16 and 32.
3. **Single events**: closed loop of \`POST /v1/track\` with one event per request at concurrency 16, 64 and 128.
4. **Fixed rate**: open loop of 1,000 \`/v1/track\` requests per second; latency counts from the scheduled send time,
   so a stalled server cannot hide its queue (no coordinated omission).
5. **Physical reference**, with the Cairn server stopped: the rows Cairn stored (same columns, same jsonb payloads,
   fresh messageIds) written straight into fresh copies of the events table (same unique key and foreign key) through
   postgres.js, 100 rows per statement, at the batched phase's concurrency levels, three ways:
   - \`raw INSERT unnest\`: \`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING\`, Cairn's own statement without
     its RETURNING clause (the budget's reference);
   - \`raw COPY\`: \`COPY FROM STDIN\` (cannot skip duplicates, so it does less than Cairn must);
   - \`raw COPY+dedup\`: COPY into a temporary staging table, then \`INSERT ... SELECT ... ON CONFLICT DO NOTHING\`, in
     one transaction: the deduplicating way to use COPY.
6. Checks that the events table holds exactly as many rows as events were acknowledged with 200.

Every request must be answered 200; anything else is counted as an error and printed. The load generator is a small
node:http client with keep-alive connections in the benchmark process; it shares the machine's cores with Cairn and
Postgres. So that a reader can tell a slow server from a busy machine, each row also shows:

- **CPU cores** used during the phase by Cairn, by Postgres (the backends of the benchmark's database and the shared
  background processes), by the load generator, and by everything else on the machine (\`other\`, from \`/proc/stat\`,
  including backends of other databases; more than 0.15 means someone else's work disturbed the phase);
- **Events per CPU-s**: events stored per CPU-second of Cairn + Postgres + load generator, the cost of an event, which
  other processes disturb far less than events/s;
- **Group commits** (from Cairn's own \`/metrics\`): transactions per second, events per transaction, and milliseconds
  per transaction.

Budgets (DESIGN.md, "Performance budgets", 2-core machine, Postgres on the same machine):

- \u2265 20,000 events/s sustained with 100-event batches, and at least 50% of the raw INSERT reference;
- \u2265 5,000 single-event requests/s;
- p99 < 50 ms at 1,000 requests/s.

`;

const SDK_WEB = `
## sdk-web size

Measured on the built artefact, not the source: \`npm run build -w @cairn/sdk-web\` and then
\`node sdk-web/scripts/size.mjs\` (minified and gzip -9 sizes of the core snippet). Budget: core snippet \u2264 5 KB gzipped.

| Script | gzip -9 |
|---|--:|
| Cairn sdk-web core | _to be measured_ |
| Segment analytics-next 1.84.3 (standalone) | 31.3 KB |
| RudderStack analytics-js 3.34.1 (core) | 34.5 KB |
| Jitsu @jitsu/js 1.11.0 | 39.4 KB (31.2 KB minified) |
| Plausible tracker 0.4.6 (does far less) | 2.7 KB |
`;

/**
 * Writes the results into docs/benchmarks.md: replaces the previous ingest results between the
 * markers, or creates the page (header, ingest results, sdk-web size placeholder).
 *
 * @example
 * writeResults('docs/benchmarks.md', report);
 */
export function writeResults(file: string, report: Report): void {
  const section = resultsSection(report);
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const a = text.indexOf(START);
    const b = text.indexOf(END);
    if (a >= 0 && b > a) {
      writeFileSync(file, text.slice(0, a) + section + text.slice(b + END.length));
      return;
    }
    writeFileSync(file, `${text.trimEnd()}\n\n## Ingest results\n\n${section}\n`);
    return;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${HEADER}${section}\n${SDK_WEB}`);
}
