import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, spawnServer, TEST_ADMIN_KEY } from './testing/index.ts';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.ts');

/** Runs `npm start`'s entry point to its end: its exit code and everything it printed. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', CAIRN_ADMIN_API_KEY: TEST_ADMIN_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c) => (stdout += c));
  proc.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('two servers on one embedded data directory', () => {
  let dir: string;
  let first: ServerProcess | undefined;
  // The embedded database: an inherited DATABASE_URL must not send these servers to Postgres.
  const env = () => ({ DATABASE_URL: '', CAIRN_DATA_DIR: dir });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-lock-'));
  });
  afterAll(async () => {
    first?.proc.kill('SIGKILL');
    await first?.exited;
    await rm(dir, { recursive: true, force: true });
  });

  it('the second says in one line that the directory is in use, and exits 1', async () => {
    first = await spawnServer(env());
    const second = await runToExit(env());
    expect(second.code).toBe(1);
    const lines = second.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `cairn: the data directory ${dir} is in use by another Cairn (process ${first.proc.pid}): stop that one, ` +
        'or give this one its own CAIRN_DATA_DIR or a DATABASE_URL',
    );
    expect(second.stdout).not.toContain('listening');
    // The first one is untouched.
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
  });

  it('once the first has stopped, the next one starts; so does one after a crash (stale lock)', async () => {
    first!.proc.kill('SIGTERM');
    expect(await first!.exited).toBe(0);
    first = await spawnServer(env());
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    first.proc.kill('SIGKILL');
    await first.exited;
    // A lock file naming a process that is gone (a crash or a kill -9) does not block a start.
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, 'cairn.pid'), String(gone));
    first = await spawnServer(env());
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
  });
});
