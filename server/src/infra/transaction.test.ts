import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../db/index.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../testing/db.ts';
import { isTransientError, retryTransaction, withRetry } from './transaction.ts';

const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });

describe('withRetry', () => {
  it('retries deadlocks and serialization failures, then returns', async () => {
    const seen: unknown[] = [];
    const codes = ['40P01', '40001'];
    const out = await withRetry(
      async (attempt) => {
        if (attempt <= codes.length) throw pgError(codes[attempt - 1]!);
        return attempt;
      },
      { attempts: 5, onRetry: (err) => seen.push((err as { code: string }).code), backoffMs: 0 },
    );
    expect(out).toBe(3);
    expect(seen).toEqual(['40P01', '40001']);
  });

  it('throws the last error after `attempts` tries', async () => {
    let tries = 0;
    const run = withRetry(
      async () => {
        tries++;
        throw pgError('40P01');
      },
      { attempts: 4, backoffMs: 0 },
    );
    await expect(run).rejects.toMatchObject({ code: '40P01' });
    expect(tries).toBe(4);
  });

  it('does not retry other errors', async () => {
    let tries = 0;
    const retried: unknown[] = [];
    const run = withRetry(
      async () => {
        tries++;
        throw pgError('23505');
      },
      { attempts: 5, onRetry: (e) => retried.push(e) },
    );
    await expect(run).rejects.toMatchObject({ code: '23505' });
    expect(tries).toBe(1);
    expect(retried).toEqual([]);
  });

  it("retries the caller's own condition, which can record what the next try needs", async () => {
    class NeedsMore extends Error {
      constructor(readonly keys: string[]) {
        super('needs more');
      }
    }
    const held = new Set<string>();
    const out = await withRetry(
      async () => {
        if (!held.has('b')) throw new NeedsMore(['b']);
        return [...held];
      },
      {
        backoffMs: 0,
        retryIf: (err) => {
          if (!(err instanceof NeedsMore)) return false;
          for (const k of err.keys) held.add(k);
          return true;
        },
      },
    );
    expect(out).toEqual(['b']);
  });

  it('recognises transient errors by their SQLSTATE', () => {
    expect(isTransientError(pgError('40P01'))).toBe(true);
    expect(isTransientError(pgError('40001'))).toBe(true);
    expect(isTransientError(pgError('23505'))).toBe(false);
    expect(isTransientError(new Error('x'))).toBe(false);
    expect(isTransientError(null)).toBe(false);
  });
});

// Real Postgres aborts: a deadlock between two transactions and a serialization failure.
describe.skipIf(POSTGRES_SKIP_REASON !== null)(`retryTransaction on Postgres ${POSTGRES_SKIP_REASON ?? ''}`, () => {
  let db: TestDatabase;
  let sql: Sql;
  let other: Sql;

  beforeAll(async () => {
    db = await createTestDatabase('server/src/infra/transaction.test.ts', 'postgres');
    sql = postgres(db.url!, { max: 4, onnotice: () => {} }) as unknown as Sql;
    other = postgres(db.url!, { max: 1, onnotice: () => {} }) as unknown as Sql;
    await sql`CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`;
  });

  afterAll(async () => {
    await sql?.end();
    await other?.end();
    await db?.drop();
  });

  it('re-runs the transaction that lost a deadlock; both commit', async () => {
    await sql`INSERT INTO counters (id, n) VALUES (1, 0), (2, 0) ON CONFLICT (id) DO UPDATE SET n = 0`;
    const barrier = () => {
      let open!: () => void;
      const opened = new Promise<void>((r) => {
        open = r;
      });
      return { open, opened };
    };
    const first = barrier();
    const second = barrier();
    const retries: unknown[] = [];
    // Each locks one row, waits until the other holds its row, then takes the other's: a cycle.
    const crossing = (mine: number, theirs: number, held: ReturnType<typeof barrier>, wait: Promise<void>) =>
      retryTransaction(
        sql,
        async (tx) => {
          await tx`SET LOCAL deadlock_timeout = '50ms'`;
          await tx`UPDATE counters SET n = n + 1 WHERE id = ${mine}`;
          held.open();
          await wait;
          await tx`UPDATE counters SET n = n + 1 WHERE id = ${theirs}`;
        },
        { attempts: 3, onRetry: (err) => retries.push((err as { code?: string }).code) },
      );
    await Promise.all([crossing(1, 2, first, second.opened), crossing(2, 1, second, first.opened)]);
    expect(retries).toEqual(['40P01']);
    const rows = await sql<{ id: number; n: number }[]>`SELECT id, n FROM counters ORDER BY id`;
    expect(rows.map((r) => r.n)).toEqual([2, 2]);
  });

  it('re-runs a repeatable-read transaction whose row another one changed (40001)', async () => {
    await sql`INSERT INTO counters (id, n) VALUES (3, 0) ON CONFLICT (id) DO UPDATE SET n = 0`;
    const retries: unknown[] = [];
    const result = await retryTransaction(
      sql,
      async (tx, attempt) => {
        await tx`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`;
        const [row] = await tx<{ n: number }[]>`SELECT n FROM counters WHERE id = 3`;
        // Another session commits a change after this snapshot was taken, on the first try only.
        if (attempt === 1) await other`UPDATE counters SET n = n + 10 WHERE id = 3`;
        await tx`UPDATE counters SET n = ${row!.n + 1} WHERE id = 3`;
        return attempt;
      },
      { attempts: 3, onRetry: (err) => retries.push((err as { code?: string }).code) },
    );
    expect(result).toBe(2);
    expect(retries).toEqual(['40001']);
    const [row] = await sql<{ n: number }[]>`SELECT n FROM counters WHERE id = 3`;
    expect(row!.n).toBe(11);
  });

  it('rolls back and throws a non-transient error without retrying', async () => {
    let tries = 0;
    const run = retryTransaction(sql, async (tx) => {
      tries++;
      await tx`UPDATE counters SET n = 100 WHERE id = 1`;
      await tx`SELECT 1 / 0`;
    });
    await expect(run).rejects.toMatchObject({ code: '22012' });
    expect(tries).toBe(1);
    const [row] = await sql<{ n: number }[]>`SELECT n FROM counters WHERE id = 1`;
    expect(row!.n).not.toBe(100);
  });
});
