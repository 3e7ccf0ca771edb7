import { type RunnerDeps, runDue } from './runner.ts';

// A batch of due runs commits in one transaction; one run whose step cannot be committed (a value
// Postgres refuses, a bug met by one flow's data) would roll the batch back on every pass and hold up
// every run behind it. Isolated, it fails alone with the reason, and the others go on.

/**
 * Whether an error says the database is away or busy (a driver or network error, or SQLSTATE class 08
 * connection, 57P shutdown, 53 resources, 40 serialization/deadlock): the same work must be retried
 * later, nothing is the run's fault.
 *
 * @example
 * transient({ code: 'ECONNREFUSED' }); // true
 * transient({ severity: 'ERROR', code: '22P02' }); // false: this run's data
 */
export function transient(err: unknown): boolean {
  const e = err as { severity?: unknown; code?: unknown } | undefined;
  if (typeof e?.severity === 'string') return typeof e.code === 'string' && /^(08|57P|53|40)/.test(e.code);
  return typeof e?.code === 'string';
}

/**
 * The timer's pass: `runDue` on a batch; when the batch fails for a reason that is not transient, its
 * runs are stepped one by one, and a run whose own step fails is marked failed (journaled with the
 * error), so one bad run does not stop the timer. Returns how many runs it claimed or failed.
 *
 * @example
 * const n = await runDueIsolating(deps, 500);
 */
export async function runDueIsolating(r: RunnerDeps, limit: number): Promise<number> {
  try {
    return await runDue(r, limit);
  } catch (err) {
    if (transient(err) || limit === 1) throw err;
    r.log.error('automate: a batch of due runs could not be committed; stepping them one by one', err);
  }
  const ids = (
    await r.sql<{ id: string }[]>`
      SELECT id FROM flow_runs WHERE status = 'waiting' AND due IS NOT NULL AND due <= ${r.clock()}
      ORDER BY due LIMIT ${limit}`
  ).map((x) => x.id);
  let done = 0;
  for (const id of ids) {
    try {
      done += await runDue(r, 1, [id]);
    } catch (err) {
      if (transient(err)) throw err;
      if (await failRun(r, id, err)) done++;
    }
  }
  return done;
}

async function failRun(r: RunnerDeps, id: string, err: unknown): Promise<boolean> {
  const reason = `its step could not be committed: ${String((err as Error)?.message ?? err).slice(0, 500)}`;
  r.log.error(`automate: run ${id} failed`, err);
  const now = r.clock();
  const failed = await r.sql.begin(async (tx) => {
    const [row] = await tx<{ node: string | null; iteration: number }[]>`
      SELECT node, iteration FROM flow_runs WHERE id = ${id} AND status = 'waiting' FOR UPDATE SKIP LOCKED`;
    if (!row) return false;
    await tx`
      UPDATE flow_runs SET status = 'failed', due = NULL, listen = NULL,
        state = state - 'since' || jsonb_build_object('endedAt', ${now.getTime()}::bigint, 'reason', ${reason}::text)
      WHERE id = ${id}`;
    await tx`
      INSERT INTO flow_steps (run_id, node, iteration, at, type, outcome, reason, decided)
      VALUES (${id}, ${row.node}, ${row.iteration}, ${now}, 'end', 'failed', ${reason}, false)`;
    return true;
  });
  if (failed) r.metrics?.flowRunsEnded?.inc({ status: 'failed' });
  return failed as boolean;
}
