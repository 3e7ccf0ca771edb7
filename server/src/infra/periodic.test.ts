import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Sql } from '../db/index.ts';
import type { Logger } from '../log.ts';
import { createTestDatabase, POSTGRES_SKIP_REASON, type TestDatabase } from '../testing/db.ts';
import { leaseKey, startPeriodic } from './periodic.ts';

function recordingLog() {
  const errors: string[] = [];
  const debug: string[] = [];
  const log: Logger = { info: () => {}, debug: (m) => debug.push(m), error: (m) => errors.push(m) };
  return { log, errors, debug };
}

/** A promise the test resolves by hand: a run that lasts until the test lets it end. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

describe('startPeriodic', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs every period and never overlaps a run still under way', async () => {
    vi.useFakeTimers();
    const { log } = recordingLog();
    let active = 0;
    let most = 0;
    let runs = 0;
    let release = gate();
    const task = startPeriodic({
      name: 'test.ticks',
      everyMs: 100,
      log,
      run: async () => {
        runs++;
        active++;
        most = Math.max(most, active);
        await release.opened;
        active--;
      },
    });
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toBe(1);
    // Five more ticks while the first run is held: all skipped.
    await vi.advanceTimersByTimeAsync(500);
    expect(runs).toBe(1);
    release.open();
    release = gate();
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toBe(2);
    release.open();
    await task.stop();
    expect(most).toBe(1);
  });

  it('runNow during a run runs once more after it, shared by the callers asking meanwhile', async () => {
    const { log } = recordingLog();
    const first = gate();
    let runs = 0;
    const task = startPeriodic({
      name: 'test.runNow',
      everyMs: 60_000,
      log,
      run: async () => {
        runs++;
        if (runs === 1) await first.opened;
      },
    });
    const a = task.runNow();
    const b = task.runNow();
    const c = task.runNow();
    expect(b).toBe(c);
    first.open();
    await Promise.all([a, b, c]);
    expect(runs).toBe(2);
    await task.stop();
  });

  it('stop() waits for the run under way and starts no other', async () => {
    const { log } = recordingLog();
    const held = gate();
    let finished = false;
    let runs = 0;
    const task = startPeriodic({
      name: 'test.stop',
      everyMs: 60_000,
      log,
      run: async () => {
        runs++;
        await held.opened;
        finished = true;
      },
    });
    void task.runNow();
    const followUp = task.runNow();
    const stopping = task.stop();
    let stopped = false;
    void stopping.then(() => {
      stopped = true;
    });
    await Promise.resolve();
    expect(stopped).toBe(false);
    held.open();
    await stopping;
    await followUp;
    expect(finished).toBe(true);
    expect(runs).toBe(1);
    await task.runNow();
    expect(runs).toBe(1);
  });

  it('logs a failing run and keeps going', async () => {
    const { log, errors } = recordingLog();
    let runs = 0;
    const task = startPeriodic({
      name: 'test.errors',
      everyMs: 60_000,
      log,
      run: async () => {
        runs++;
        if (runs === 1) throw new Error('boom');
      },
    });
    await expect(task.runNow()).resolves.toBeUndefined();
    await task.runNow();
    expect(runs).toBe(2);
    expect(errors).toEqual(['test.errors failed']);
    await task.stop();
  });

  it('derives a stable signed 64-bit lease key from the name', () => {
    expect(leaseKey('deliver.sweep')).toBe(leaseKey('deliver.sweep'));
    expect(leaseKey('deliver.sweep')).not.toBe(leaseKey('compute.sweep'));
    const k = BigInt(leaseKey('x'));
    expect(k >= -(2n ** 63n) && k < 2n ** 63n).toBe(true);
  });
});

// Two pools on one database stand for two servers.
describe.skipIf(POSTGRES_SKIP_REASON !== null)(`startPeriodic with a lease ${POSTGRES_SKIP_REASON ?? ''}`, () => {
  let db: TestDatabase;
  let serverA: Sql;
  let serverB: Sql;

  beforeAll(async () => {
    db = await createTestDatabase('server/src/infra/periodic.test.ts', 'postgres');
    serverA = postgres(db.url!, { max: 3, onnotice: () => {} }) as unknown as Sql;
    serverB = postgres(db.url!, { max: 3, onnotice: () => {} }) as unknown as Sql;
  });

  afterAll(async () => {
    await serverA?.end();
    await serverB?.end();
    await db?.drop();
  });

  it('one server runs while the other skips; the lease is free again afterwards', async () => {
    const a = recordingLog();
    const b = recordingLog();
    const held = gate();
    const ran: string[] = [];
    const taskA = startPeriodic({
      name: 'test.lease',
      everyMs: 60_000,
      log: a.log,
      lease: { sql: serverA, kind: 'postgres' },
      run: async () => {
        ran.push('a');
        // The run's own queries use the pool while the reserved connection holds the lease.
        await serverA`SELECT 1`;
        await held.opened;
      },
    });
    const taskB = startPeriodic({
      name: 'test.lease',
      everyMs: 60_000,
      log: b.log,
      lease: { sql: serverB, kind: 'postgres' },
      run: async () => {
        ran.push('b');
      },
    });
    const runA = taskA.runNow();
    // Wait until A holds the lease (its run has started).
    while (!ran.includes('a')) await new Promise((r) => setTimeout(r, 5));
    await taskB.runNow();
    expect(ran).toEqual(['a']);
    expect(b.debug).toEqual(['test.lease: another server holds the lease; skipped']);
    held.open();
    await runA;
    await taskB.runNow();
    expect(ran).toEqual(['a', 'b']);
    const [locks] = await serverA<{ n: number }[]>`
      SELECT count(*)::int AS n
      FROM pg_locks
      WHERE locktype = 'advisory'
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND granted`;
    expect(locks!.n).toBe(0);
    await Promise.all([taskA.stop(), taskB.stop()]);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('the lease is released when the run fails', async () => {
    const { log, errors } = recordingLog();
    const task = startPeriodic({
      name: 'test.lease.fail',
      everyMs: 60_000,
      log,
      lease: { sql: serverA },
      run: async () => {
        throw new Error('boom');
      },
    });
    await task.runNow();
    expect(errors).toEqual(['test.lease.fail failed']);
    const [row] = await serverB<{ held: boolean }[]>`
      SELECT pg_try_advisory_lock(${leaseKey('test.lease.fail')}::bigint) AS held`;
    expect(row!.held).toBe(true);
    await serverB`SELECT pg_advisory_unlock_all()`;
    await task.stop();
  });

  it('takes no lock on the embedded database (one process) or a pool of one connection', async () => {
    const { log } = recordingLog();
    const single = postgres(db.url!, { max: 1, onnotice: () => {} }) as unknown as Sql;
    try {
      let runs = 0;
      const run = async () => {
        runs++;
        // With a pool of one, a reserved lock connection would starve this query forever.
        await single`SELECT 1`;
        const [row] = await single<{ n: number }[]>`
          SELECT count(*)::int AS n
          FROM pg_locks
          WHERE locktype = 'advisory'
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
        expect(row!.n).toBe(0);
      };
      const embedded = startPeriodic({
        name: 'test.embedded',
        everyMs: 60_000,
        log,
        lease: { sql: serverA, kind: 'embedded' },
        run,
      });
      const poolOfOne = startPeriodic({ name: 'test.single', everyMs: 60_000, log, lease: { sql: single }, run });
      await embedded.runNow();
      await poolOfOne.runNow();
      expect(runs).toBe(2);
      await Promise.all([embedded.stop(), poolOfOne.stop()]);
    } finally {
      await single.end();
    }
  });
});
