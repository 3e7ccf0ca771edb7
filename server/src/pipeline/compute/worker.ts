import type { JobResult, PgBoss } from 'pg-boss';
import type { Sql, Tx } from '../../db/index.ts';
import { startPeriodic } from '../../infra/periodic.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import { QUEUES } from '../../jobs/queues.ts';
import type { Logger } from '../../log.ts';
import type { Facts, Inbox } from '../topics.ts';
import { type ApplyResult, applyDefinitions, emptyResult, mergeResults } from './apply.ts';
import { affectedBy, type Definition, loadDefinitions, nodeName, readsOf } from './definitions.ts';
import { lockDefinitions, lockProfiles } from './locks.ts';
import { drainChanges } from './outbox.ts';
import { retryPostponed } from './postponed.ts';
import { importReason } from './store.ts';
import { sweepOnce } from './sweep.ts';

/** What stage 3 needs. */
export interface ComputeDeps {
  sql: Sql;
  boss: PgBoss;
  /** Hands recorded change events over (`memberships.changed`) in the transaction that recorded them. */
  handOff: HandOff;
  log: Logger;
  /** The clock every rule is evaluated against (tests move it). */
  now: () => Date;
  /** Seconds between sweeps for time-window exits. */
  sweepSeconds: number;
}

// Up to this many profiles per transaction: locks stay short, scopes stay index-friendly.
const CHUNK = 250;

/**
 * The events of a batch: their profiles (and profiles merged into them), event names, and the profiles whose
 * events in the batch all came from one import (the reason their changes are recorded under).
 */
async function touchedBy(
  sql: Tx,
  ids: readonly string[],
): Promise<{ profiles: string[]; names: Set<string>; imported: Map<string, string> }> {
  const rows = await sql<{ profileId: string | null; event: string | null; importId: string | null }[]>`
    SELECT DISTINCT profile_id::text AS "profileId", event, import_id::text AS "importId"
    FROM events WHERE id = ANY(${ids as string[]}::bigint[])`;
  const live = [...new Set(rows.map((r) => r.profileId).filter((p): p is string => !!p))];
  // A profile with one live event, or events of two imports, changes for a live reason.
  const causes = new Map<string, Set<string | null>>();
  for (const r of rows)
    if (r.profileId) (causes.get(r.profileId) ?? causes.set(r.profileId, new Set()).get(r.profileId)!).add(r.importId);
  const imported = new Map<string, string>();
  for (const [profile, set] of causes) {
    const [only] = set;
    if (set.size === 1 && only) imported.set(profile, importReason(only));
  }
  // A merge re-points the loser's events: the loser's memberships must end, so it joins the scope.
  const merged = live.length
    ? await sql<{ id: string }[]>`
        SELECT id::text FROM profiles WHERE merged_into = ANY(${live}::uuid[])`
    : [];
  return {
    profiles: [...new Set([...live, ...merged.map((m) => m.id)])],
    names: new Set(rows.map((r) => r.event).filter((e): e is string => !!e)),
    imported,
  };
}

/**
 * Evaluates, for the profiles of a batch of events, the definitions those events can affect, and
 * records the changes (with their events) in one transaction per chunk of profiles. Returns the ids
 * of the change events, for fan-out.
 *
 * @example
 * const result = await computeForEvents(deps, eventIds);
 */
export async function computeForEvents(
  deps: Pick<ComputeDeps, 'sql' | 'now'> & { handOff?: HandOff },
  eventIds: readonly string[],
  defs?: readonly Definition[],
  changedProfiles: readonly string[] = [],
): Promise<ApplyResult> {
  const definitions = defs ?? (await loadDefinitions(deps.sql));
  const total = emptyResult();
  if (!definitions.length || (!eventIds.length && !changedProfiles.length)) return total;
  const { profiles, names, imported } = eventIds.length
    ? await touchedBy(deps.sql, eventIds)
    : { profiles: [], names: new Set<string>(), imported: new Map<string, string>() };
  const selected = new Set(definitions.filter((d) => affectedBy(d, names)).map((d) => nodeName(d.kind, d.key)));
  // Profiles changed without an event: every definition may have moved.
  const everything = new Set(changedProfiles);
  const all = [...new Set([...profiles, ...changedProfiles])];
  for (let i = 0; i < all.length; i += CHUNK) {
    const chunk = all.slice(i, i + CHUNK);
    // Profiles changed only by an import's events (a merge they caused included) are applied apart, under that
    // import's reason.
    const groups = new Map<string, string[]>();
    for (const id of chunk) {
      const by = imported.get(id) ?? 'event';
      (groups.get(by) ?? groups.set(by, []).get(by)!).push(id);
    }
    const results = (await deps.sql.begin(async (tx) => {
      await lockProfiles(tx, chunk);
      const now = deps.now();
      const done: ApplyResult[] = [];
      for (const [by, group] of groups) {
        done.push(
          await applyDefinitions(tx, definitions, {
            now,
            by,
            share: true,
            handOff: deps.handOff,
            initial: (d) => {
              if (selected.has(nodeName(d.kind, d.key))) return group;
              const changed = group.filter((id) => everything.has(id));
              return changed.length ? changed : null;
            },
          }),
        );
      }
      return done;
    })) as ApplyResult[];
    for (const r of results) mergeResults(total, r);
  }
  return total;
}

/**
 * Recomputes one definition over every live profile (and what depends on it, for the profiles that
 * changed), then marks it computed.
 *
 * @example
 * await recomputeDefinition(deps, { kind: 'audience', key: 'vip' });
 */
export async function recomputeDefinition(
  deps: Pick<ComputeDeps, 'sql' | 'now'> & { handOff?: HandOff },
  which: Pick<Facts['definition.changed'], 'kind' | 'key'>,
): Promise<ApplyResult> {
  const definitions = await loadDefinitions(deps.sql);
  const target = nodeName(which.kind, which.key);
  if (!definitions.some((d) => nodeName(d.kind, d.key) === target)) {
    return emptyResult();
  }
  const now = deps.now();
  return (await deps.sql.begin(async (tx) => {
    // The definitions this recompute may write (the target and, through the cascade, every definition reading it):
    // incremental work postpones their profiles until the commit instead of racing the recompute's inserts.
    await lockDefinitions(tx, writtenBy(definitions, target));
    const r = await applyDefinitions(tx, definitions, {
      now,
      by: 'recompute',
      handOff: deps.handOff,
      initial: (d) => (nodeName(d.kind, d.key) === target ? 'all' : null),
    });
    if (which.kind === 'audience') {
      await tx`UPDATE audiences SET computed_at = ${now} WHERE key = ${which.key}`;
      await tx`
        INSERT INTO audience_counts (audience, at, members)
        SELECT ${which.key}, ${now}, count(*)::int FROM audience_memberships WHERE audience = ${which.key} AND exited_at IS NULL
        ON CONFLICT DO NOTHING`;
    }
    return r;
  })) as ApplyResult;
}

/** A definition and every definition reading it, directly or through others (`defs` in dependency order). */
function writtenBy(defs: readonly Definition[], target: string): string[] {
  const names = new Set([target]);
  for (const d of defs) if (readsOf(d).some((r) => names.has(r))) names.add(nodeName(d.kind, d.key));
  return [...names];
}

/**
 * Starts stage 3: the consumer of the `compute` queue (`events.attached`, `profiles.changed`: incremental),
 * of `recompute` (`definition.changed`: full recomputes) and the sweep for time-window changes.
 *
 * @example
 * const stop = await startComputeWorker(deps);
 */
export async function startComputeWorker(deps: ComputeDeps): Promise<() => Promise<void>> {
  // The outbox of large diffs' change events: drained after a recompute that filled it and at every sweep tick
  // (which also picks up what a crashed process left), one chunk per transaction, stopping between chunks on exit.
  let stopped = false;
  // No lease: each chunk takes the outbox's own drainer lock (outbox.ts), which keeps one drainer at a time.
  const outbox = startPeriodic({
    name: 'compute.outbox',
    everyMs: deps.sweepSeconds * 1000,
    run: () => drainChanges(deps, () => stopped),
    log: deps.log,
  });
  const drain = () => void outbox.runNow();
  await deps.boss.work<Inbox<'compute'>>(
    QUEUES.compute.name,
    {
      batchSize: 20,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 2,
      burstWhenBatchFull: true,
      localConcurrency: 2,
    },
    async function computeCommitted(jobs) {
      const facts = jobs.map((j) => j.data);
      const r = await computeForEvents(
        deps,
        facts.flatMap((f) => (f.topic === 'events.attached' ? f.ids : [])),
        undefined,
        facts.flatMap((f) => (f.topic === 'events.attached' ? (f.restructured ?? []) : f.profileIds)),
      );
      if (r.deferred) drain();
    },
  );
  const recomputeOne = async (which: Facts['definition.changed']) => {
    const r = await recomputeDefinition(deps, which);
    // Profiles incremental work postponed meanwhile: evaluated now that the recompute committed.
    await retryPostponed(deps);
    if (r.deferred) drain();
    deps.log.info(
      `compute: ${which.kind} ${which.key} recomputed (${[...r.changes.values()].reduce((n, c) => n + c.entered.length + c.exited.length, 0)} changes, ${r.deferred} change events left to the outbox)`,
    );
  };
  await deps.boss.work<Inbox<'recompute'>>(
    QUEUES.recompute.name,
    // One at a time (each holds its definitions' locks), but back to back. pg-boss only bursts (fetches
    // again at once) after a full batch larger than one job; with batchSize 1 each next job waited for
    // the 5 s poll: 40 audiences created together took ~190 s. Each job keeps its own outcome.
    {
      batchSize: 10,
      pollingIntervalSeconds: 1,
      notifyPollingIntervalSeconds: 5,
      burstWhenBatchFull: true,
      perJobResults: true,
    },
    async function recompute(jobs) {
      const results: JobResult[] = [];
      for (const job of jobs) {
        try {
          await recomputeOne(job.data);
          results.push({ id: job.id, status: 'completed' });
        } catch (err) {
          deps.log.error(`compute: ${job.data.kind} ${job.data.key} recompute failed`, err);
          results.push({ id: job.id, status: 'failed', output: { message: (err as Error).message } });
        }
      }
      return results;
    },
  );
  // No advisory lease: sweepOnce takes its own lease in the settings table, which also records the interval
  // swept (a crash leaves it to the next sweeper) and works on the embedded database; the postponed
  // profiles are a queue that any server may work off under the profiles' locks.
  const sweep = startPeriodic({
    name: 'compute.sweep',
    everyMs: deps.sweepSeconds * 1000,
    run: async () => {
      await sweepOnce(deps, deps.now());
      await retryPostponed(deps);
    },
    log: deps.log,
  });
  return async () => {
    stopped = true;
    await Promise.all([sweep.stop(), outbox.stop()]);
  };
}
