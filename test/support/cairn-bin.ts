// The compiled `cairn` command (server/dist/cli.js) for tests and benchmarks: built when it is missing or
// older than its sources, and run the way production runs it: plain `node`, no tsx, no export condition.
import { type ChildProcess, execFile as execFileCb, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The `cairn` bin of @cairn/server, as `npm run build` leaves it. */
export const CAIRN_BIN = join(ROOT, 'server/dist/cli.js');
/** The same command from source, as `npm run cairn` runs it. */
export const CAIRN_SOURCE = join(ROOT, 'server/src/cli.ts');

// What the compiled server imports at run time from the workspace, besides itself: each resolves to its
// dist/ once the `@cairn/source` condition is gone.
const RUNTIME_WORKSPACES = [
  'packages/core',
  'packages/plugin-api',
  ...readdirSync(join(ROOT, 'plugins')).flatMap((p) =>
    existsSync(join(ROOT, 'plugins', p, 'package.json')) ? [`plugins/${p}`] : [],
  ),
];

const SKIP = new Set(['node_modules', 'dist', '.turbo']);
const newest = (path: string): number => {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).flatMap((f) => (SKIP.has(f) ? [] : [newest(join(path, f))])));
};
const stale = (workspace: string, built: string) =>
  !existsSync(join(ROOT, workspace, built)) ||
  statSync(join(ROOT, workspace, built)).mtimeMs < newest(join(ROOT, workspace));

/**
 * Runs `npm run build` of the server and of the workspace packages it imports wherever their dist/ is
 * missing or older than their sources (CI has built everything already: then nothing runs). Test files
 * run in parallel, so builds run under a lock (mkdir is atomic) and the others wait.
 *
 * @example
 * beforeAll(ensureServerBuilt, 180_000);
 */
export async function ensureServerBuilt(): Promise<void> {
  const lock = join(tmpdir(), 'cairn-server-build.lock');
  for (;;) {
    try {
      mkdirSync(lock);
    } catch {
      // A build older than three minutes died with its test run; take it over.
      if (Date.now() - statSync(lock).mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      const todo = [
        ...RUNTIME_WORKSPACES.filter((w) => stale(w, 'dist/index.js')),
        ...(stale('server', 'dist/cli.js') ? ['server'] : []),
      ];
      for (const workspace of todo) {
        await execFile('npm', ['run', 'build', '--silent', '-w', workspace], { cwd: ROOT, env: process.env });
      }
      return;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

/**
 * The environment of a production process: the caller's, without the monorepo's `@cairn/source` condition
 * (NODE_OPTIONS) and without an admin key, plus `env`.
 */
export function productionEnv(env: Record<string, string>): Record<string, string | undefined> {
  const { NODE_OPTIONS: _, CAIRN_ADMIN_API_KEY: __, ...inherited } = process.env;
  return { ...inherited, ...env };
}

/**
 * How each build is started: compiled with Node's TypeScript type stripping off, so any `.ts` module the
 * build still imported would fail to load; from source as `npm run cairn` does (tsx, `@cairn/source`).
 */
export function cairnCommand(build: 'compiled' | 'source', args: string[]): { argv: string[]; nodeOptions?: string } {
  return build === 'compiled'
    ? { argv: ['--no-experimental-strip-types', CAIRN_BIN, ...args] }
    : { argv: ['--import', 'tsx', CAIRN_SOURCE, ...args], nodeOptions: '--conditions=@cairn/source' };
}

/** A `cairn` command that ran to its end. */
export interface CairnRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cairn <args>` to its end.
 *
 * @example
 * const { code, stdout } = await runCairn('compiled', ['migrate'], db.env);
 */
export function runCairn(build: 'compiled' | 'source', args: string[], env: Record<string, string>): Promise<CairnRun> {
  const { argv, nodeOptions } = cairnCommand(build, args);
  const proc = spawn(process.execPath, argv, {
    env: productionEnv({ ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c) => (stdout += c));
  proc.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** A started `cairn start`. */
export interface CairnServer {
  proc: ChildProcess;
  /** Where it listens, from its start-up log. */
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Spawns `cairn start <args>` on a free port of 127.0.0.1 and resolves once it says where it listens.
 *
 * @example
 * const server = await startCairnBin('compiled', ['--role=all'], db.env);
 * server.proc.kill('SIGTERM');
 */
export async function startCairnBin(
  build: 'compiled' | 'source',
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<CairnServer> {
  const { argv, nodeOptions } = cairnCommand(build, ['start', ...args]);
  const proc = spawn(process.execPath, argv, {
    env: productionEnv({
      PORT: '0',
      HOST: '127.0.0.1',
      CAIRN_LOG: 'info',
      ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`cairn start did not listen in ${timeoutMs} ms:\n${out}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`cairn start exited with ${code} before listening:\n${out}`));
    });
  });
  return { proc, url, output: () => out, exited };
}
