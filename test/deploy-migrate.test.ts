// docs/deploy.md, "migrate, then start", with the compiled server as production runs it (`npm run build`, then
// `node server/dist/cli.js` = the `cairn` bin; no tsx, no @cairn/source condition, Node's type stripping off):
// `cairn migrate` on an empty database creates everything and says what; a second run finds nothing to do; `cairn
// start` then starts on it without touching the schema, serves, moves events through the pipeline (in its own
// process, also compiled) and stops cleanly on SIGTERM. `cairn sources` and `cairn status` run compiled too.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  TEST_ADMIN_KEY,
  type TestDatabase,
  until,
} from '@cairn/server/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CairnServer, ensureServerBuilt, ROOT, runCairn, startCairnBin } from './support/cairn-bin.ts';
import { createSource } from './support/http.ts';

const MIGRATIONS = readdirSync(join(ROOT, 'server/src/db/migrations'))
  .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
  .sort()
  .map((f) => `${f.slice(0, 4)} ${f.slice(5, -4)}`);

describe('deploy: cairn migrate, then cairn start (compiled server, docs/deploy.md)', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let sql: postgres.Sql;
  let server: CairnServer | undefined;
  beforeAll(async () => {
    await ensureServerBuilt();
    db = await createTestDatabase('deploy-migrate.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
  }, 300_000);
  afterAll(async () => {
    server?.proc.kill('SIGKILL');
    await sql?.end();
    await db?.drop();
  });

  it('migrate creates the schema of an empty database and lists what it applied; run again, it finds nothing to do', async () => {
    const first = await runCairn('compiled', ['migrate'], db.env);
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    const lines = first.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      ...MIGRATIONS.map((m) => `applied migration ${m}`),
      expect.stringMatching(/^installed pg-boss's schema, version \d+$/),
      'the database is ready for this version of Cairn',
    ]);
    const versions = await sql<{ version: number }[]>`SELECT version FROM cairn_migrations ORDER BY version`;
    expect(versions.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => Number(m.slice(0, 4))));
    const [queues] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pgboss.queue`;
    expect(queues?.n).toBeGreaterThanOrEqual(5);

    const again = await runCairn('compiled', ['migrate'], db.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(
      new RegExp(
        `^Cairn's ${MIGRATIONS.length} migrations were already applied\npg-boss's schema is up to date, version \\d+\n`,
      ),
    );
  });

  it('start then starts on it without changing the schema, serves, runs the pipeline and stops on SIGTERM', async () => {
    const before = await sql`SELECT version, applied_at FROM cairn_migrations ORDER BY version`;
    server = await startCairnBin('compiled', ['--role=all'], { ...db.env, CAIRN_ADMIN_API_KEY: TEST_ADMIN_KEY });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect(server.output()).toContain('role: all');
    expect(server.output()).not.toContain('applied migrations');

    const source = await createSource(server.url, 'deploy');
    await sendEvents(server, source.writeKey, [{ type: 'identify', userId: 'deploy-1', traits: { plan: 'pro' } }]);
    // The profile exists once stage 2 (identify), in the pipeline's compiled process, has run.
    await until('the profile of deploy-1', async () => (await sql`SELECT 1 FROM profiles`).length > 0, { tries: 600 });

    const sources = await runCairn('compiled', ['sources', '--json'], db.env);
    expect(sources.code).toBe(0);
    expect(JSON.parse(sources.stdout)).toContainEqual(expect.objectContaining({ id: source.id, name: 'deploy' }));
    const status = await runCairn('compiled', ['status'], db.env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^queue +stage +ready +later +active +oldest waiting\nidentify +2 identify /);

    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    server = undefined;
    expect(await sql`SELECT version, applied_at FROM cairn_migrations ORDER BY version`).toEqual(before);
  });
});
