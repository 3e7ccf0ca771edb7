import { advance, type JsonValue, type StepInput } from '@cairn/core';
import {
  type ActionContext,
  checkResponse,
  PermanentError,
  type PluginContext,
  type PluginFetch,
} from '@cairn/plugin-api';
import type { JobResult, JobWithMetadata } from 'pg-boss';
import type { Transaction } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import type { Destination } from '../deliver/index.ts';
import type { PluginRegistry } from '../deliver/plugins.ts';
import type { RequestedEffect } from '../topics.ts';
import { versionKey } from './catalog.ts';
import { createChanges } from './changes.ts';
import { issueCoupon } from './coupons.ts';
import { type CallEffect, openCall } from './effect-calls.ts';
import { awaitingRun, stillAwaits } from './effect-queries.ts';
import { experimentsFor } from './experiments.ts';
import { loadFacts, NO_NEEDS } from './people.ts';
import { lockPeople, type RunnerDeps, step } from './runner.ts';
import { failedStep, stateOf } from './runs.ts';

// The calls flows' runs await (webhook and action nodes), performed by the `effects` queue's jobs after
// the step that asked for them committed. Each call carries the effect's key as its idempotency key (a
// webhook's `Idempotency-Key` header, an action's `ctx.idempotencyKey`); its result is fed back to the
// run with advance(effect_result) in one transaction under the person's lock, and only while the run
// still awaits that key: a job delivered twice calls again only if the first never fed its result
// back, and moves the run once.

/** What performing calls needs. */
export interface EffectDeps {
  runner: RunnerDeps;
  /** Opens the sealed calls. */
  pii: Pick<Pii, 'openBytes'>;
  plugins: Pick<PluginRegistry, 'get'>;
  /** A destination as it is now (undefined: deleted). */
  destination(id: string): Promise<Destination | undefined>;
  /** The plugin context of a destination (stage 5's: its log, kv and unsubscribe links). */
  contextOf(destination: Destination, settings: unknown): PluginContext<unknown>;
  /** Outbound HTTP for webhooks (the plugins' client: timeouts, network errors as RetryableError). */
  fetch: PluginFetch;
  timeoutMs: number;
}

/** A call's result, as the engine takes it. */
export type CallResult = { ok: true; output?: JsonValue } | { ok: false; error: string };

const MAX_ERROR = 500;

/**
 * Performs a webhook: the rendered method, URL, headers and body, with the effect's key as
 * `Idempotency-Key`. A 2xx answer is ok (its body as JSON, or as text); 408, 429, 5xx and network
 * errors throw `RetryableError`, any other status `PermanentError`.
 *
 * @example
 * const result = await performWebhook(effect, fetch, 10_000);
 */
export async function performWebhook(
  effect: Extract<CallEffect, { type: 'webhook' }>,
  fetch: PluginFetch,
  timeoutMs: number,
): Promise<CallResult> {
  const method = effect.method.toUpperCase();
  const hasBody = effect.body !== undefined && method !== 'GET' && method !== 'HEAD';
  const given = new Set(Object.keys(effect.headers).map((h) => h.toLowerCase()));
  const headers: Record<string, string> = { 'user-agent': 'Cairn-Flows/0.1' };
  if (hasBody && !given.has('content-type'))
    headers['content-type'] = isJson(effect.body!) ? 'application/json' : 'text/plain';
  Object.assign(headers, effect.headers);
  for (const h of Object.keys(headers)) if (h.toLowerCase() === 'idempotency-key') delete headers[h];
  headers['idempotency-key'] = effect.key;
  const res = await fetch(effect.url, { method, headers, ...(hasBody ? { body: effect.body } : {}), timeoutMs });
  await checkResponse(res);
  const text = await res.text();
  if (!text) return { ok: true };
  return { ok: true, output: isJson(text) ? (JSON.parse(text) as JsonValue) : text };
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Performs a plugin action through its destination: the destination's plugin, settings and context,
 * the input validated by the action's schema. A missing destination, plugin or action, settings or
 * input that do not validate are permanent failures.
 *
 * @example
 * const result = await performAction(deps, effect, profileId);
 */
export async function performAction(
  deps: EffectDeps,
  effect: Extract<CallEffect, { type: 'action' }>,
  profileId: string,
): Promise<CallResult> {
  const destination = await deps.destination(effect.destination);
  if (!destination) throw new PermanentError(`destination ${effect.destination} no longer exists`);
  if (!destination.enabled) throw new PermanentError(`destination ${effect.destination} is disabled`);
  const plugin = deps.plugins.get(destination.plugin);
  if (!plugin) throw new PermanentError(`plugin ${destination.plugin} is not installed`);
  const action = plugin.actions?.[effect.action];
  if (!action) throw new PermanentError(`plugin ${plugin.name} has no action ${effect.action}`);
  const settings = plugin.settings.safeParse(destination.settings);
  if (!settings.success) throw new PermanentError(`destination ${destination.id}: settings no longer valid`);
  const input = action.input ? action.input.safeParse(effect.input) : { success: true as const, data: effect.input };
  if (!input.success) {
    const issue = input.error.issues[0];
    throw new PermanentError(`input${issue?.path.length ? `.${issue.path.join('.')}` : ''}: ${issue?.message}`);
  }
  const ctx: ActionContext<unknown> = {
    ...deps.contextOf(destination, settings.data),
    idempotencyKey: effect.key,
    profileId,
  };
  const output = await action.run(input.data as never, ctx);
  return output === undefined ? { ok: true } : { ok: true, output: output as JsonValue };
}

/**
 * Feeds a call's result back to its run: advance(effect_result) under the person's lock, committed
 * with its effects and journal. Nothing happens when the run no longer awaits this key (a result fed
 * back before, a run erased). True when the run moved. `outcome` may be work done in that transaction
 * once the run is known to await the key (a coupon issued: coupons.ts).
 *
 * @example
 * await feedResult(runner, request, { ok: true, output: { code: 'C-1' } });
 */
export async function feedResult(
  r: RunnerDeps,
  request: RequestedEffect,
  outcome: CallResult | ((tx: Transaction, now: number) => Promise<CallResult>),
): Promise<boolean> {
  const changes = createChanges();
  const moved = (await r.sql.begin(async (tx) => {
    await lockPeople(tx, [request.profileId]);
    const row = await awaitingRun(tx, request.runId, request.key);
    if (!row) return false;
    const now = r.clock().getTime();
    const result = typeof outcome === 'function' ? await outcome(tx, now) : outcome;
    const version = (await r.catalog.versions(tx, [{ flowId: row.flowId, version: row.version }])).get(
      versionKey(row.flowId, row.version),
    );
    const state = stateOf(row, r.pii);
    const profile = (await loadFacts(tx, r.pii, [row.profileId], version?.needs ?? NO_NEEDS, now)).get(row.profileId)!;
    const input: StepInput = result.ok
      ? {
          type: 'effect_result',
          key: request.key,
          ok: true,
          ...(result.output !== undefined ? { output: result.output } : {}),
        }
      : { type: 'effect_result', key: request.key, ok: false, error: result.error };
    const ex = await experimentsFor(r, tx, [version], now);
    const stepped = version
      ? step(r, version, state, profile, () => advance(version.def, state, input, { now, profile, ...ex.ctx(version) }))
      : failedStep(state, new Error(`flow ${row.flowId} has no version ${row.version}`), now);
    const meta = { id: row.flowId, version: row.version, exclusive: row.exclusive };
    changes.record(version ?? meta, state, stepped, { isNew: false, sourceId: row.sourceId, input: 'effect' });
    await changes.commit(tx, r, now);
    return true;
  })) as boolean;
  changes.count(r);
  return moved;
}

/**
 * The `effects` queue's handler for one job: skips a call its run no longer awaits, performs it, and
 * feeds the result back. A retryable failure is thrown (pg-boss retries the job with backoff) until
 * the last attempt, which feeds `ok: false` back like a permanent failure: the run takes `failed`.
 *
 * @example
 * await handleEffect(deps, job);
 */
export async function handleEffect(deps: EffectDeps, job: JobWithMetadata<RequestedEffect>): Promise<void> {
  const request = job.data;
  if (!(await stillAwaits(deps.runner.sql, request.runId, request.key))) return;
  const effect = openCall(request, deps.pii);
  // A coupon is issued in the transaction that feeds it back (once per key; none if the run moved on).
  if (effect.type === 'issue_coupon') {
    await feedResult(deps.runner, request, (tx, now) => issueCoupon(tx, effect, request.profileId, now));
    return;
  }
  let result: CallResult;
  try {
    result =
      effect.type === 'webhook'
        ? await performWebhook(effect, deps.fetch, deps.timeoutMs)
        : await performAction(deps, effect, request.profileId);
  } catch (err) {
    const message = String((err as Error)?.message ?? err).slice(0, MAX_ERROR);
    const attempts = job.retryCount + 1;
    if (!(err instanceof PermanentError) && job.retryCount < job.retryLimit) {
      deps.runner.log.info(`flow ${request.flow.id}: ${request.key} attempt ${attempts} failed, retried: ${message}`);
      throw err;
    }
    result = { ok: false, error: err instanceof PermanentError ? message : `${message} (after ${attempts} attempts)` };
  }
  await feedResult(deps.runner, request, result);
}

/**
 * A batch of `effects` jobs, performed at once, each settled on its own (a failing call retries alone).
 *
 * @example
 * await boss.work('effects', { batchSize: 10, includeMetadata: true, perJobResults: true }, (jobs) => handleEffects(deps, jobs));
 */
export async function handleEffects(
  deps: EffectDeps,
  jobs: readonly JobWithMetadata<RequestedEffect>[],
): Promise<JobResult[]> {
  return Promise.all(
    jobs.map(async (job): Promise<JobResult> => {
      try {
        await handleEffect(deps, job);
        return { id: job.id, status: 'completed' };
      } catch (err) {
        return { id: job.id, status: 'failed', output: { message: String((err as Error)?.message ?? err) } };
      }
    }),
  );
}
