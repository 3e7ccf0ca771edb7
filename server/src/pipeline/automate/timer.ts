import type { Sql } from '../../db/index.ts';
import type { Logger } from '../../log.ts';
import { DUE_CHANNEL } from './changes.ts';

/** The runs' timer, started by the automate stage. */
export interface Timer {
  /** Runs a pass now (a run came due sooner than the timer's sleep). */
  wake(): void;
  /** No more passes; resolves once the pass under way has committed. */
  stop(): Promise<void>;
}

/** What the timer runs. */
export interface TimerOptions {
  sql: Sql;
  dbKind: 'postgres' | 'embedded';
  log: Logger;
  clock: () => Date;
  /** The longest sleep between passes: a run waits at most this long past its due time when nothing wakes the timer. */
  everyMs: number;
  /** Runs per transaction. */
  batch: number;
  /** One pass: claims and advances up to `limit` due runs; returns how many it claimed. */
  pass(limit: number): Promise<number>;
  /** When the next run comes due (epoch ms on the runtime's clock), or null. */
  nextDue(): Promise<number | null>;
}

// After a pass that found due runs all held elsewhere (another worker, an event moving them): a short pause,
// not a spin.
const HELD_PAUSE_MS = 50;

/**
 * Starts the timer of flow runs: a pass claims due runs in batches until fewer than a batch are due,
 * then it sleeps until the next due time, at most `everyMs` (a clock moved by a test, or a run written by
 * another server, is seen within that). On Postgres, NOTIFY on `cairn_flow_due` wakes it at once: a step
 * that leaves a run due sooner than the next pass sends one. Not one pg-boss job per wait, and not
 * pg-boss's cron (whole minutes): one loop per server, sharing the due runs through SKIP LOCKED.
 *
 * @example
 * const timer = await startTimer({ sql, dbKind, log, clock, everyMs: 1000, batch: 500, pass, nextDue });
 * await timer.stop();
 */
export async function startTimer(o: TimerOptions): Promise<Timer> {
  let stopped = false;
  let woken = false;
  let wakeUp: (() => void) | undefined;
  const wake = () => {
    woken = true;
    wakeUp?.();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken || stopped) return resolve();
      const done = () => {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakeUp = done;
    });
  const listener =
    o.dbKind === 'postgres'
      ? await o.sql.listen(DUE_CHANNEL, wake).catch((err: unknown) => {
          o.log.error('automate: LISTEN failed; the timer polls every second', err);
          return undefined;
        })
      : undefined;

  const loop = (async () => {
    while (!stopped) {
      woken = false;
      let pause = o.everyMs;
      try {
        let claimed: number;
        do claimed = await o.pass(o.batch);
        while (claimed >= o.batch && !stopped);
        const next = await o.nextDue();
        if (next !== null) {
          const until = next - o.clock().getTime();
          // Due already, yet not claimed: held by another transaction for now.
          pause = until <= 0 ? (claimed ? 0 : HELD_PAUSE_MS) : Math.min(o.everyMs, until);
        }
      } catch (err) {
        if (!stopped) o.log.error('automate: timer pass failed; retrying', err);
      }
      await sleep(pause);
    }
  })();

  return {
    wake,
    async stop() {
      stopped = true;
      wakeUp?.();
      await loop;
      await listener?.unlisten().catch(() => {});
    },
  };
}
