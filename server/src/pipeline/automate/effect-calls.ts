import type { Effect } from '@cairn/core';
import type { Transaction } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import type { Pii } from '../../pii/index.ts';
import type { RequestedEffect } from '../topics.ts';

// The calls a step leaves its run awaiting (webhooks, plugin actions): handed over in the step's
// transaction, so a committed step always has its call queued and a rolled-back one never does.

/** A webhook or action effect. */
export type CallEffect = Extract<Effect, { type: 'webhook' | 'action' | 'issue_coupon' }>;

/** A call as a step recorded it: the effect and whose run awaits it. */
export interface Call {
  effect: CallEffect;
  runId: string;
  profileId: string;
  flow: { id: string; version: number; node: string };
}

/**
 * A call of a run's step.
 *
 * @example
 * const call = callOf(effect, profileId, { id: 'flw_1', version: 2, runId });
 */
export function callOf(
  effect: CallEffect,
  profileId: string,
  flow: { id: string; version: number; runId: string },
): Call {
  return { effect, runId: flow.runId, profileId, flow: { id: flow.id, version: flow.version, node: effect.node } };
}

/**
 * Hands each call over to the `effects` queue (one job per call: each is retried on its own), the call
 * sealed: a webhook's URL, headers and body or an action's input may name the person.
 *
 * @example
 * await requestCalls(tx, deps, calls);
 */
export async function requestCalls(
  tx: Transaction,
  deps: { handOff: HandOff; pii: Pick<Pii, 'sealBytes'> },
  calls: readonly Call[],
): Promise<void> {
  for (const c of calls) {
    const request: RequestedEffect = {
      key: c.effect.key,
      type: c.effect.type,
      runId: c.runId,
      profileId: c.profileId,
      flow: c.flow,
      sealed: deps.pii.sealBytes(Buffer.from(JSON.stringify(c.effect))),
    };
    await deps.handOff(tx, 'effects.requested', request);
  }
}

/**
 * The call a request holds.
 *
 * @example
 * const effect = openCall(job.data, pii);
 */
export function openCall(request: RequestedEffect, pii: Pick<Pii, 'openBytes'>): CallEffect {
  return JSON.parse(pii.openBytes(request.sealed).toString('utf8')) as CallEffect;
}
