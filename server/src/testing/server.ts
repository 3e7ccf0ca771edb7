import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { type Cairn, startCairn } from '../server.ts';

/** The admin key every test server accepts. */
export const TEST_ADMIN_KEY = 'test-admin-key-0123456789';

/**
 * Starts Cairn in this process on an ephemeral port with a fixed admin key and the demo source
 * (`CAIRN_DEMO=1`, also on Postgres; pass `CAIRN_DEMO: ''` for the production default).
 *
 * @example
 * const cairn = await startTestCairn(db.env);
 */
export async function startTestCairn(
  env: Record<string, string>,
  /** What `startCairn` takes besides the configuration: a clock tests move, plugins given in code, extra routes. */
  options: Parameters<typeof startCairn>[2] = {},
): Promise<Cairn> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    CAIRN_ADMIN_API_KEY: TEST_ADMIN_KEY,
    CAIRN_LOG: 'silent',
    CAIRN_SOURCE_REFRESH_MS: '200',
    // Tests send with the demo source's write key on Postgres too (where it is off by default).
    CAIRN_DEMO: '1',
    ...env,
  });
  return startCairn(config, createLogger(config.log, { format: config.logFormat }), options);
}

/** A Cairn server running as a child process. */
export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** Everything it printed. */
  output(): string;
  /** Resolves with the exit code once it has exited. */
  exited: Promise<number | null>;
}

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'main.ts');

/**
 * Spawns `tsx server/src/main.ts` with the given environment and waits until it listens.
 *
 * @example
 * const s = await spawnServer({ ...db.env, PORT: '0' });
 * s.proc.kill('SIGKILL');
 */
export async function spawnServer(env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      CAIRN_ADMIN_API_KEY: TEST_ADMIN_KEY,
      CAIRN_LOG: 'info',
      CAIRN_SOURCE_REFRESH_MS: '200',
      CAIRN_DEMO: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${out}`));
    });
  });
  return { url, proc, output: () => out, exited };
}
