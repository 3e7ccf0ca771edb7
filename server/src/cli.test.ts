import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { type Cairn, startCairn } from './server.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from './testing/index.ts';

const CLI = join(dirname(fileURLToPath(import.meta.url)), 'cli.ts');

/** `npm run cairn -- ...` as an operator runs it: its exit code and output. */
function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // No CAIRN_ADMIN_API_KEY: the stored key is the only one.
  const { CAIRN_ADMIN_API_KEY: _, ...inherited } = process.env;
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c) => (stdout += c));
  proc.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** A server with no CAIRN_ADMIN_API_KEY, so the generated (stored) admin key is what counts. */
async function start(db: TestDatabase): Promise<Cairn> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', CAIRN_LOG: 'silent', ...db.env });
  return startCairn(config, createLogger('silent'));
}

const status = async (cairn: Cairn, key: string) =>
  (await fetch(`${cairn.url}/api/sources`, { headers: { authorization: `Bearer ${key}` } })).status;

describe.each(['postgres', 'embedded'] as const)('npm run cairn -- admin-key rotate on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  it('replaces a lost admin key: the new one works after a restart, the old one no longer', async () => {
    const db = await createTestDatabase(`cli.test.ts:${mode}`, mode);
    // The embedded database: an inherited DATABASE_URL must not send the command to Postgres.
    const env = mode === 'embedded' ? { DATABASE_URL: '', ...db.env } : db.env;
    try {
      let cairn = await start(db);
      const lost = cairn.generatedAdminKey!;
      expect(lost).toMatch(/^cairn_admin_/);
      expect(await status(cairn, lost)).toBe(200);
      if (mode === 'embedded') {
        // The running server holds the data directory: the command says so in one line.
        const busy = await cli(['admin-key', 'rotate'], env);
        expect(busy.code).toBe(1);
        expect(busy.stderr).toMatch(/^cairn: the data directory .* is in use by another Cairn \(process \d+\)/);
        expect(busy.stderr.trim().split('\n')).toHaveLength(1);
        expect(busy.stdout).toBe('');
      }
      await cairn.close();

      const rotated = await cli(['admin-key', 'rotate'], env);
      expect(rotated.code).toBe(0);
      const key = rotated.stdout.trim();
      expect(key).toMatch(/^cairn_admin_[A-Za-z0-9_-]{32}$/);
      expect(rotated.stderr).toContain('shown once');

      cairn = await start(db);
      try {
        expect(cairn.generatedAdminKey).toBeUndefined();
        expect(await status(cairn, key)).toBe(200);
        expect(await status(cairn, lost)).toBe(401);
      } finally {
        await cairn.close();
      }
    } finally {
      await db.drop();
    }
  });
});

describe('npm run cairn -- admin-key rotate without a database', () => {
  it('refuses to create one (a mistyped CAIRN_DATA_DIR must not look like success)', async () => {
    const db = await createTestDatabase('cli.test.ts:empty', 'embedded');
    try {
      const r = await cli(['admin-key', 'rotate'], { DATABASE_URL: '', ...db.env });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`cairn: no Cairn database in ${db.env.CAIRN_DATA_DIR}: start the server once first\n`);
      expect(existsSync(join(db.env.CAIRN_DATA_DIR!, 'pgdata'))).toBe(false);
    } finally {
      await db.drop();
    }
  });
});
