// The startup benchmark (`npm run bench:startup`): how long `cairn start` takes from spawn to the first
// `GET /readyz` 200, and how much memory its processes hold once started, for the compiled server
// (`node server/dist/cli.js start`, what production runs after `npm run build`) against the starts that run
// TypeScript through tsx. Each run starts on a fresh database (the first start applies every migration and
// installs pg-boss), stops with SIGTERM, then starts again on the now-migrated database (a restart).
// See docs/benchmarks.md ("Startup"); `--write` records the results there.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestDatabase, freePort } from '@cairn/server/testing';
import postgres from 'postgres';
import { CAIRN_BIN, CAIRN_SOURCE, ensureServerBuilt, productionEnv, ROOT } from '../support/cairn-bin.ts';
import { describeMachine, speedIndex } from './ingest/machine.ts';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DOCS = join(ROOT, 'docs', 'benchmarks.md');
const READY_TIMEOUT_MS = 120_000;
/** After /readyz, how long the processes get to finish starting (the pipeline process, lazy imports) before RSS is read. */
const SETTLE_MS = 2000;

interface Variant {
  name: string;
  /** What an operator types. */
  command: string;
  argv: (role: string) => { file: string; args: string[]; env: Record<string, string> };
}

const VARIANTS: Variant[] = [
  {
    name: 'compiled',
    command: 'node server/dist/cli.js start',
    argv: (role) => ({ file: process.execPath, args: [CAIRN_BIN, 'start', `--role=${role}`], env: {} }),
  },
  {
    name: 'tsx (loader)',
    command: 'npm run cairn -- start (node --import tsx server/src/cli.ts)',
    argv: (role) => ({
      file: process.execPath,
      args: ['--import', 'tsx', CAIRN_SOURCE, 'start', `--role=${role}`],
      env: { NODE_OPTIONS: '--conditions=@cairn/source' },
    }),
  },
  {
    // tsx's CLI runs the script in a child node process and stays as its parent: one process more.
    name: 'tsx (CLI)',
    command: 'npm start (tsx server/src/main.ts)',
    argv: (role) => ({
      file: join(ROOT, 'node_modules', '.bin', 'tsx'),
      args: [join(ROOT, 'server', 'src', 'main.ts')],
      env: { NODE_OPTIONS: '--conditions=@cairn/source', CAIRN_ROLE: role },
    }),
  },
];

function parseOptions() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      role: { type: 'string', default: 'all' },
      write: { type: 'boolean', default: process.env.BENCH_WRITE === '1' },
    },
  });
  return { runs: Number(values.runs), role: values.role, write: values.write };
}

/** Resident memory of a process and of every process under it, from /proc (Linux), in MiB. */
function treeRss(root: number): { main: number; all: number; processes: number } {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of stat is the parent pid; the command name (field 2) may hold spaces, so read after its ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  }
  const rss = (pid: number) => {
    try {
      const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      return Number(kib ?? 0) / 1024;
    } catch {
      return 0;
    }
  };
  return { main: rss(root), all: tree.reduce((sum, pid) => sum + rss(pid), 0), processes: tree.length };
}

interface Start {
  readyMs: number;
  rss: { main: number; all: number; processes: number };
  stopMs: number;
}

/** Spawns one start, waits for /readyz 200, lets it settle, reads its memory, stops it with SIGTERM. */
async function startOnce(variant: Variant, role: string, env: Record<string, string>): Promise<Start> {
  const port = await freePort();
  const { file, args, env: extra } = variant.argv(role);
  const t0 = performance.now();
  const proc: ChildProcess = spawn(file, args, {
    cwd: ROOT,
    env: productionEnv({ ...env, ...extra, PORT: String(port), HOST: '127.0.0.1', CAIRN_LOG: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout?.on('data', (c) => (output += c));
  proc.stderr?.on('data', (c) => (output += c));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let readyMs = 0;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${variant.name} exited with ${proc.exitCode}:\n${output}`);
    if (performance.now() - t0 > READY_TIMEOUT_MS) throw new Error(`${variant.name} not ready:\n${output}`);
    const status = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) {
      readyMs = performance.now() - t0;
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const rss = treeRss(proc.pid ?? 0);
  const t1 = performance.now();
  proc.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) throw new Error(`${variant.name} exited with ${code} after SIGTERM:\n${output}`);
  return { readyMs, rss, stopMs: performance.now() - t1 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const range = (xs: number[], digits = 0) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

async function main() {
  const options = parseOptions();
  process.env.DATABASE_URL ??= DEFAULT_DATABASE_URL;
  await ensureServerBuilt();
  const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  const machine = await describeMachine(admin);
  await admin.end();
  const speed = [speedIndex()];
  const results = new Map<string, { first: Start[]; restart: Start[] }>(
    VARIANTS.map((v) => [v.name, { first: [], restart: [] }]),
  );
  // Rounds interleave the variants, so a machine getting slower or faster affects each alike.
  for (let run = 0; run < options.runs; run++) {
    for (const variant of VARIANTS) {
      const db = await createTestDatabase(`bench-startup:${variant.name}:${run}`, 'postgres');
      try {
        const first = await startOnce(variant, options.role, db.env);
        const restart = await startOnce(variant, options.role, db.env);
        results.get(variant.name)?.first.push(first);
        results.get(variant.name)?.restart.push(restart);
        console.error(
          `run ${run + 1}/${options.runs} ${variant.name}: first ${first.readyMs.toFixed(0)} ms, restart ${restart.readyMs.toFixed(0)} ms, ` +
            `RSS ${restart.rss.main.toFixed(0)} MiB main, ${restart.rss.all.toFixed(0)} MiB in ${restart.rss.processes} processes`,
        );
      } finally {
        await db.drop();
      }
    }
  }
  speed.push(speedIndex());

  const rows = VARIANTS.map((v) => {
    const r = results.get(v.name) ?? { first: [], restart: [] };
    const all = [...r.first, ...r.restart];
    return `| ${v.name} | \`${v.command}\` | ${range(r.first.map((s) => s.readyMs))} | ${range(r.restart.map((s) => s.readyMs))} | ${range(all.map((s) => s.rss.main))} | ${range(all.map((s) => s.rss.all))} (${all[0]?.rss.processes ?? 0}) | ${range(all.map((s) => s.stopMs))} |`;
  });
  const text = [
    `Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`npm run bench:startup -- --runs=${options.runs} --role=${options.role}\`, ` +
      `${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}, Postgres ${machine.postgres}, ` +
      `speed index ${speed.join(' → ')}. Median (min–max) of ${options.runs} runs; memory is read ${SETTLE_MS / 1000} s after ` +
      'ready, over the first starts and the restarts.',
    '',
    '| start | command | first start on a fresh database: spawn → /readyz 200, ms | restart on it, ms | RSS of the main process, MiB | RSS of all its processes, MiB (processes) | SIGTERM → exit, ms |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
  console.log(text);
  if (options.write) writeResults(text);
}

/** Replaces the results between this benchmark's markers in docs/benchmarks.md (or appends a section). */
function writeResults(text: string): void {
  const start = '<!-- bench:startup:start -->';
  const end = '<!-- bench:startup:end -->';
  const doc = readFileSync(DOCS, 'utf8');
  const block = `${start}\n${text}\n${end}`;
  const at = doc.indexOf(start);
  const next =
    at >= 0
      ? doc.slice(0, at) + block + doc.slice(doc.indexOf(end) + end.length)
      : `${doc.trimEnd()}\n\n## Startup (compiled against tsx)\n\n${block}\n`;
  writeFileSync(DOCS, next);
  console.error(`results written to ${DOCS}`);
}

await main();
