import {
  compareTraitEvents,
  emptyProfileState,
  type GroupMembership,
  type ProfileState,
  type TraitSource,
  type TraitValue,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';

// Fold baselines (migration 0039, docs/retention.md): the fold of the events retention dropped, per
// deciding identity. A refold starts from the baselines of a profile's identities, merged by the fold's
// own rules, and folds only the events none of them already holds.

/** What recording and reading baselines needs of PII protection: trait values are stored sealed. */
export type BaselineSealer = Pick<Pii, 'sealValue' | 'openValue'>;

/** The baseline key of an event attached without a deciding identity. */
export const profileBaselineKey = (profileId: string): string => `profile:${profileId}`;

/** One stored baseline, as the database holds it. */
export interface BaselineRow {
  identity_key: string;
  traits: Record<string, { v: unknown; t: number; e: string; s: TraitSource }>;
  groups: Record<string, { f: number; l: number; e: string }>;
  through_ts: Date | null;
  through_id: string | null;
  /** Oids of the partitions folded in (as text). */
  folded_parts: string[];
}

/**
 * A baseline row as a fold state (sealed values opened).
 *
 * @example
 * const state = decodeBaseline(row, pii);
 */
export function decodeBaseline(row: BaselineRow, pii: BaselineSealer): ProfileState {
  const state = emptyProfileState();
  for (const [key, t] of Object.entries(row.traits)) {
    state.traits.set(key, { value: pii.openValue(t.v), ts: t.t, eventId: t.e, source: t.s });
  }
  for (const [account, g] of Object.entries(row.groups)) {
    state.groups.set(account, { firstTs: g.f, lastTs: g.l, eventId: g.e });
  }
  if (row.through_ts && row.through_id) state.through = { ts: row.through_ts.getTime(), id: String(row.through_id) };
  return state;
}

/**
 * A fold state as a baseline row's columns (sensitive values sealed).
 *
 * @example
 * const { traits, groups } = encodeBaseline(state, pii);
 */
export function encodeBaseline(
  state: ProfileState,
  pii: BaselineSealer,
): Pick<BaselineRow, 'traits' | 'groups'> & { throughTs: string | null; throughId: string | null } {
  const traits: BaselineRow['traits'] = {};
  for (const [key, t] of state.traits)
    traits[key] = { v: pii.sealValue(key, t.value), t: t.ts, e: t.eventId, s: t.source };
  const groups: BaselineRow['groups'] = {};
  for (const [account, g] of state.groups) groups[account] = { f: g.firstTs, l: g.lastTs, e: g.eventId };
  return {
    traits,
    groups,
    throughTs: state.through ? new Date(state.through.ts).toISOString() : null,
    throughId: state.through?.id ?? null,
  };
}

// Computed first touches are `set_once` in the fold: across two histories the earlier one is the first.
const FIRST_TOUCH = /^(first_seen_at|initial_.+)$/;

const order = (a: { ts: number; eventId: string }, b: { ts: number; eventId: string }) =>
  compareTraitEvents({ ts: a.ts, id: a.eventId }, { ts: b.ts, id: b.eventId });

function wins(key: string, next: TraitValue, current: TraitValue): boolean {
  // A derived value (a data-quality fill) only stands in for a missing one, as in the fold.
  if (current.source === 'derived' && next.source !== 'derived') return true;
  if (next.source === 'derived' && current.source !== 'derived') return false;
  const later = order(next, current) > 0;
  return next.source === 'computed' && FIRST_TOUCH.test(key) ? !later : later;
}

/**
 * Merges the baselines of several identities now on one profile, by the fold's own rules: per trait the
 * latest write by event time wins, except computed first touches (`first_seen_at`, `initial_*`), where
 * the earliest does; account memberships take the earliest first and the latest last time; the fold
 * position is the latest of all. Exact unless the two histories interleave `$add`, `$set_once` or
 * `$unset` on one trait (then the latest write wins; the dropped events that would decide are gone).
 *
 * @example
 * const state = mergeBaselines([userState, deviceState]);
 */
export function mergeBaselines(states: readonly ProfileState[]): ProfileState {
  const out = emptyProfileState();
  for (const s of states) {
    for (const [key, t] of s.traits) {
      const current = out.traits.get(key);
      if (!current || wins(key, t, current)) out.traits.set(key, t);
    }
    for (const [account, g] of s.groups) {
      const current = out.groups.get(account);
      const merged: GroupMembership = current
        ? {
            firstTs: Math.min(current.firstTs, g.firstTs),
            lastTs: Math.max(current.lastTs, g.lastTs),
            eventId: g.lastTs >= current.lastTs ? g.eventId : current.eventId,
          }
        : g;
      out.groups.set(account, merged);
    }
    if (s.through && (!out.through || compareTraitEvents(s.through, out.through) > 0)) out.through = s.through;
  }
  return out;
}

/** The baselines a refold of some profiles starts from. */
export interface Baselines {
  /** Each profile's merged baseline (profiles without one are absent). */
  states: Map<string, ProfileState>;
  /** Per baseline key: the partitions (oids) whose events of that identity are in the baseline. */
  foldedParts: Map<string, ReadonlySet<string>>;
}

/**
 * The baselines of the identities each profile holds now (and of its events without an identity),
 * merged per profile.
 *
 * @example
 * const { states, foldedParts } = await loadBaselines(tx, ['6f1c...'], pii);
 */
export async function loadBaselines(tx: Tx, ids: readonly string[], pii: BaselineSealer): Promise<Baselines> {
  const rows = await tx<(BaselineRow & { profile_id: string })[]>`
    SELECT i.profile_id, b.identity_key, b.traits, b.groups, b.through_ts, b.through_id::text AS through_id,
      b.folded_parts::text[] AS folded_parts
    FROM fold_baselines b
    JOIN identities i ON i.key = b.identity_key
    WHERE i.profile_id = ANY(${ids}::uuid[])
    UNION ALL
    SELECT substr(b.identity_key, 9)::uuid, b.identity_key, b.traits, b.groups, b.through_ts, b.through_id::text,
      b.folded_parts::text[]
    FROM fold_baselines b
    WHERE b.identity_key = ANY(${ids.map(profileBaselineKey)}::text[])`;
  const perProfile = new Map<string, ProfileState[]>();
  const foldedParts = new Map<string, ReadonlySet<string>>();
  for (const r of rows) {
    perProfile.set(r.profile_id, [...(perProfile.get(r.profile_id) ?? []), decodeBaseline(r, pii)]);
    foldedParts.set(r.identity_key, new Set(r.folded_parts));
  }
  const states = new Map<string, ProfileState>();
  for (const [p, list] of perProfile) states.set(p, mergeBaselines(list));
  return { states, foldedParts };
}
