import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { type Cairn, startCairn } from './server.ts';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  startTestCairn,
  type TestDatabase,
} from './testing/index.ts';

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
      expect(r.stderr).toBe(
        `cairn: no Cairn database in ${db.env.CAIRN_DATA_DIR}: run \`cairn migrate\` or start the server once first\n`,
      );
      expect(existsSync(join(db.env.CAIRN_DATA_DIR!, 'pgdata'))).toBe(false);
    } finally {
      await db.drop();
    }
  });
});

describe('npm run cairn -- sources and status', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  it('lists the sources, and the queues with the backlog an ingest-only server leaves', async () => {
    const db = await createTestDatabase('cli.test.ts:sources-status', 'postgres');
    // An ingest node runs no pipeline worker: what it accepts stays queued for identify.
    const cairn = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest' });
    try {
      const created = await adminApi(cairn.url)('/sources', {
        method: 'POST',
        body: JSON.stringify({ name: 'Shop web' }),
      });
      expect(created.status).toBe(201);
      const source = created.body as { id: string; writeKey: string };

      const table = await cli(['sources'], db.env);
      expect(table.code).toBe(0);
      const [header, ...rows] = table.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^id +name +write key +enabled +created$/);
      const row = rows.find((r) => r.startsWith(`${source.id} `));
      expect(row).toMatch(
        new RegExp(`^${source.id} +Shop web +${source.writeKey.slice(0, 10)}… +yes +\\d{4}-\\d\\d-\\d\\dT`),
      );
      // A prefix tells keys apart; the whole key is not printed.
      expect(table.stdout).not.toContain(source.writeKey);

      const json = await cli(['sources', '--json'], db.env);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toContainEqual({
        id: source.id,
        name: 'Shop web',
        writeKeyPrefix: `${source.writeKey.slice(0, 10)}…`,
        enabled: true,
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
      });

      await sendEvents(cairn, source.writeKey, [{ type: 'track', userId: 'u1', event: 'Signed Up' }]);
      const status = await cli(['status', '--json'], db.env);
      expect(status.code).toBe(0);
      const { queues, deliveries } = JSON.parse(status.stdout) as {
        queues: { queue: string; stage: string; ready: number; active: number; oldestSeconds: number | null }[];
        deliveries: unknown[];
      };
      expect(queues.map((q) => q.queue)).toEqual([
        'identify',
        'compute',
        'recompute',
        'automate',
        'effects_dead',
        'effects',
        'fanout',
        'messages',
        'forget',
        'measure',
      ]);
      const identify = queues.find((q) => q.queue === 'identify');
      expect(identify).toMatchObject({ stage: '2 identify', active: 0 });
      expect(identify?.ready).toBeGreaterThanOrEqual(1);
      expect(identify?.oldestSeconds).toBeGreaterThanOrEqual(0);
      expect(queues.find((q) => q.queue === 'fanout')).toMatchObject({ ready: 0, oldestSeconds: null });
      expect(deliveries).toEqual([]);

      const text = await cli(['status'], db.env);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^queue +stage +ready +later +active +oldest waiting\n/);
      expect(text.stdout).toMatch(/\nidentify +2 identify +[1-9]\d* +0 +0 +[\d.]+ (s|min)/);
      expect(text.stdout).toMatch(/\nfanout +5 fan-out +0 +0 +0 +-\n/);
      expect(text.stdout).toContain('no unfinished deliveries');

      // A destination's queue is listed under its name; its ledger rows not finished yet are its backlog.
      const hook = await adminApi(cairn.url)('/destinations', {
        method: 'POST',
        body: JSON.stringify({ name: 'hook', plugin: 'webhook', settings: { url: 'http://127.0.0.1:9/hook' } }),
      });
      expect(hook.status).toBe(201);
      const sql = postgres(db.url!, { max: 1, onnotice: () => {} });
      try {
        // The rows fan-out would write (an ingest-only server runs no fan-out): one of each status.
        await sql`
          INSERT INTO deliveries (destination_id, event_id, idempotency_key, status, created_at)
          SELECT ${hook.body.id}, n, 'k' || n, status, now() - n * interval '1 minute'
          FROM unnest(ARRAY['pending', 'waiting', 'retrying', 'delivered', 'dead']) WITH ORDINALITY AS s (status, n)`;
      } finally {
        await sql.end();
      }
      const after = JSON.parse((await cli(['status', '--json'], db.env)).stdout) as {
        queues: { queue: string; stage: string }[];
        deliveries: { oldestSeconds: number }[];
      };
      expect(after.queues).toContainEqual(
        expect.objectContaining({ queue: `deliver.${hook.body.id}`, stage: '5 deliver: hook' }),
      );
      expect(after.deliveries).toEqual([
        {
          destinationId: hook.body.id,
          name: 'hook',
          pending: 1,
          waiting: 1,
          retrying: 1,
          oldestSeconds: expect.any(Number),
        },
      ]);
      // The oldest unfinished row is the retrying one, three minutes old.
      expect(after.deliveries[0]!.oldestSeconds).toBeGreaterThanOrEqual(180);
      expect(after.deliveries[0]!.oldestSeconds).toBeLessThan(240);
      expect((await cli(['status'], db.env)).stdout).toMatch(
        /unfinished deliveries per destination:\ndestination +id +pending +waiting +retrying +oldest\nhook +\S+ +1 +1 +1 +3 min \d+ s\n$/,
      );
    } finally {
      await cairn.close();
      await db.drop();
    }
  });

  it('says what is wrong with a command line (exit 2) before it opens any database', async () => {
    const env = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
    const cases = [
      [['admin-key'], 'cairn: admin-key needs a command: rotate'],
      [['bogus'], 'cairn: unknown command: bogus'],
      [['start', '--role=everything'], 'cairn: --role must be one of all, ingest, worker'],
      [['status', '--role=worker'], 'cairn: --role is an option of start only'],
      [['migrate', '--json'], 'cairn: --json is an option of sources and status only'],
      [['sources', 'extra'], 'cairn: unexpected argument: extra'],
    ] as const;
    const answers = await Promise.all(cases.map(([args]) => cli([...args], env)));
    for (const [i, [args, message]] of cases.entries()) {
      const r = answers[i]!;
      expect({ args, code: r.code, first: r.stderr.split('\n')[0] }).toEqual({ args, code: 2, first: message });
      expect(r.stderr).toContain('usage: cairn <command>');
    }
    const help = await cli(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: cairn <command>');
  });
});
