import type { TraitOptions } from '@cairn/core';
import type { Runtime, Stage } from '../../runtime.ts';
import { eraseProfile, setConsent, unmergeProfile } from './admin.ts';
import {
  type BackfillRequest,
  requestBackfill,
  requestCancel,
  requestResume,
  startBackfillWorker,
} from './backfill-jobs.ts';
import type { BackfillRow } from './backfill-queries.ts';
import { mergeCandidate } from './duplicates/merge.ts';
import { startDuplicateSchedule } from './duplicates/schedule.ts';
import { traitRulesCache } from './trait-rules.ts';
import type { IdentifyContext } from './types.ts';
import { startIdentifyWorker } from './worker.ts';

/** Stage 2: identity resolution, profiles and traits; and what staff may do to profiles. */
export interface IdentifyStage extends Stage {
  /** Identity settings (how identities are normalised and keyed), for lookups by identity. */
  readonly identity: IdentifyContext['identity'];
  /** Consent purposes events and staff may record; null = any purpose name. */
  readonly purposes: readonly string[] | null;
  /** Fold options with the data-quality rules kept current (trait-rules.ts): bulk import folds with them. */
  readonly traits: TraitOptions;
  /** Reloads the data-quality rules in this process (the admin API, after it changed them). */
  reloadTraitRules(): Promise<void>;
  /** Queues a data-quality backfill (backfill.ts): the rules of `keys` applied to stored profiles. */
  requestBackfill(req: BackfillRequest, actor: string): Promise<BackfillRow>;
  /** Cancels a backfill at its next chunk boundary (404 none, 409 done; a cancelled one is returned as it is). */
  cancelBackfill(id: string, actor: string): Promise<BackfillRow>;
  /** Resumes a failed or cancelled backfill from its cursor (404 none, 409 queued, running or done). */
  resumeBackfill(id: string): Promise<BackfillRow>;
  /** Undoes a merge into `profileId`; both profiles are evaluated again by compute. */
  unmerge(profileId: string, mergeId: string, actor: string): ReturnType<typeof unmergeProfile>;
  /** Merges the two profiles of a duplicate candidate as one more identity link (logged; unmerge undoes it). */
  mergeDuplicate(candidateId: string, actor: string): ReturnType<typeof mergeCandidate>;
  /** Erases a person (right to be forgotten); destinations that received them are told. */
  erase(profileId: string, actor: string): ReturnType<typeof eraseProfile>;
  /** Records consent choices made through the API; audiences reading consent follow. */
  setConsent(profileId: string, purposes: Readonly<Record<string, boolean>>, actor: string): Promise<string>;
}

/**
 * Creates stage 2 from the runtime: its settings come from `config`, its worker consumes `events.stored`.
 *
 * @example
 * const identify = createIdentifyStage(runtime);
 * await identify.start();
 * await identify.setConsent(profileId, { marketing: false }, 'admin-key');
 */
export function createIdentifyStage(rt: Runtime): IdentifyStage {
  const rules = traitRulesCache(rt.sql, { defaultCallingCode: rt.config.identity.defaultCallingCode }, rt.log);
  const ctx: IdentifyContext = {
    identity: rt.config.identity,
    traits: rules.options,
    refreshTraitRules: rules.refresh,
    purposes: rt.config.consentPurposes,
    secret: rt.secret,
    pii: rt.pii,
    log: rt.log,
    // PGlite is one session: one transaction at a time.
    concurrency: rt.dbKind === 'embedded' ? 1 : rt.config.identifyConcurrency,
  };
  const stops: (() => Promise<void>)[] = [];
  return {
    identity: ctx.identity,
    purposes: ctx.purposes,
    traits: ctx.traits,
    reloadTraitRules: rules.refresh,
    async start() {
      await startIdentifyWorker(rt.boss, rt.sql, rt.handOff, ctx, rt.metrics);
      stops.push(
        await startBackfillWorker(rt.boss, { ...rt, traits: rules.options }),
        await startDuplicateSchedule(rt),
      );
    },
    // pg-boss's graceful stop (server.ts) lets the jobs in flight finish.
    async stop() {
      for (const stop of stops.splice(0)) await stop();
    },
    requestBackfill: (req, actor) => requestBackfill(rt.sql, rt.boss, req, actor),
    cancelBackfill: (id, actor) => requestCancel(rt.sql, id, actor),
    resumeBackfill: (id) => requestResume(rt.sql, rt.boss, id),
    unmerge: (profileId, mergeId, actor) => unmergeProfile(rt.sql, rt.handOff, profileId, mergeId, actor, ctx),
    mergeDuplicate: (candidateId, actor) => mergeCandidate(rt.sql, rt.handOff, candidateId, actor, ctx, rt.clock()),
    erase: (profileId, actor) => eraseProfile(rt.sql, rt.handOff, profileId, actor, ctx),
    setConsent: (profileId, purposes, actor) => setConsent(rt.sql, rt.handOff, profileId, purposes, actor, ctx),
  };
}
