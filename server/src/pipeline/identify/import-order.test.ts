import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import { createTestDatabase, type TestDatabase, testModes } from '../../testing/db.ts';
import { startTestCairn } from '../../testing/server.ts';
import { runImport } from './import.ts';
import { createTurn, inTurn } from './import-order.ts';
import { insertImport } from './import-queries.ts';
import { parseMapping } from './import-rows.ts';

// Two import chunks in flight: a person whose rows fall in two chunks written at once gets one
// profile (the second chunk waits for the first's identity locks), and chunks commit in file order
// even when the earlier one fails and is run again. On PGlite (one connection) the same code runs
// one chunk at a time.

describe.each(testModes())('import chunks in flight on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase(`import-order-${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_ROLE: 'ingest', CAIRN_DEMO: '' });
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('gives rows of one person in two chunks one profile', async () => {
    const sql = cairn.sql;
    // Rows i and i+3 of each block of 6 share an email: with 4 rows per chunk, most pairs span two
    // consecutive chunks, which are written at the same time on two connections.
    const ROWS = 600;
    const lines = ['id,email,name'];
    for (let i = 0; i < ROWS; i++) lines.push(`u${i},p${Math.floor(i / 6)}x${i % 3}@example.com,N${i}`);
    const mapping = parseMapping('id=identity:userId,email=identity:email,name=trait:name');
    const imp = await insertImport(sql, { format: 'csv', mapping, dryRun: false, rowsExpected: ROWS, actor: 'test' });
    const done = await runImport(sql, Readable.from([`${lines.join('\n')}\n`]), {
      importId: imp.id,
      format: 'csv',
      mapping,
      dryRun: false,
      skipThrough: 0,
      ctx: { identity: {}, traits: {}, purposes: null, pii: cairn.pii },
      clock: () => new Date(),
      chunkSize: 4,
    });
    expect(done).toMatchObject({ status: 'done', rowsDone: ROWS, rowsBad: 0, profilesCreated: ROWS / 2 });
    const [c] = await sql<{ profiles: string; owners: string; bad: string }[]>`
      SELECT (SELECT count(*) FROM profiles) AS profiles,
        (SELECT count(DISTINCT profile_id) FROM identities) AS owners,
        -- Profiles that do not hold exactly two user ids and one email.
        (SELECT count(*) FROM (
          SELECT profile_id FROM identities GROUP BY profile_id
          HAVING count(*) FILTER (WHERE type = 'userId') <> 2 OR count(*) FILTER (WHERE type = 'email') <> 1
        ) x) AS bad`;
    expect(c).toEqual({ profiles: String(ROWS / 2), owners: String(ROWS / 2), bad: '0' });
    // Each pair's user ids are i and i+3 of one block.
    const pairs = await sql<{ ids: string[] }[]>`
      SELECT array_agg(value ORDER BY value) AS ids FROM identities WHERE type = 'userId' GROUP BY profile_id`;
    for (const { ids } of pairs) {
      const [a, b] = ids.map((v) => Number(v.slice(1))).sort((x, y) => x - y);
      expect(b! - a!).toBe(3);
    }
  }, 120_000);

  it('commits in order when the earlier chunk fails once and runs again', async () => {
    const sql = cairn.sql;
    await sql`CREATE TABLE turn_log (n serial PRIMARY KEY, chunk text NOT NULL)`;
    const first = createTurn();
    const second = createTurn();
    let attempts = 0;
    const one = inTurn(sql, null, first, async (tx, hooks) => {
      attempts++;
      hooks.locked();
      // Let the second chunk start and write before this attempt fails like a deadlock victim.
      await new Promise((r) => setTimeout(r, 100));
      if (attempts === 1) throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
      await hooks.predecessorCommitted();
      await tx`INSERT INTO turn_log (chunk) VALUES ('first')`;
    });
    let secondTries = 0;
    const two = inTurn(sql, first, second, async (tx, hooks) => {
      secondTries++;
      hooks.locked();
      await hooks.predecessorCommitted();
      await tx`INSERT INTO turn_log (chunk) VALUES ('second')`;
    });
    await Promise.all([one, two]);
    const log = await sql<{ chunk: string }[]>`SELECT chunk FROM turn_log ORDER BY n`;
    expect(log.map((r) => r.chunk)).toEqual(['first', 'second']);
    expect(attempts).toBe(2);
    // On Postgres the second chunk began while the first's failing attempt held its locks.
    if (mode === 'postgres') expect(secondTries).toBe(2);
  }, 60_000);

  it('rolls the later chunk back when the earlier one fails for good', async () => {
    const sql = cairn.sql;
    await sql`CREATE TABLE turn_fail (chunk text NOT NULL)`;
    const first = createTurn();
    const second = createTurn();
    const one = inTurn(sql, null, first, async (_tx, hooks) => {
      hooks.locked();
      await new Promise((r) => setTimeout(r, 50));
      throw new Error('bad chunk');
    });
    const two = inTurn(sql, first, second, async (tx, hooks) => {
      hooks.locked();
      await tx`INSERT INTO turn_fail (chunk) VALUES ('second')`;
      await hooks.predecessorCommitted();
    });
    await expect(one).rejects.toThrow('bad chunk');
    await expect(two).rejects.toThrow('the previous import chunk failed');
    expect(await sql`SELECT * FROM turn_fail`).toHaveLength(0);
  }, 60_000);
});
