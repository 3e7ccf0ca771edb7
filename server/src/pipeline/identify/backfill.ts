import {
  applyFills,
  compileTraitRules,
  normalizeTrait,
  type ProfileState,
  type TraitOptions,
  type TraitQualityRule,
  type TraitQualityRules,
  templateInputs,
} from '@cairn/core';
import type { Sql, Transaction } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import type { Logger } from '../../log.ts';
import type { Pii } from '../../pii/index.ts';
import {
  type BackfillRow,
  beginAttempt,
  finishBackfill,
  getBackfill,
  type KeyCounts,
  liveProfiles,
  profilesAfter,
  recordBackfillEvents,
  type SampleChange,
  saveProgress,
} from './backfill-queries.ts';
import { lockProfiles } from './locks.ts';
import { loadStates, saveStates } from './state.ts';
import { plainTraitChanges, recordPlainTraitChanges } from './trait-changes.ts';

// A backfill applies trait rules to the profiles stored before them (docs/data-quality.md, "Backfill").
// It works on the stored values, as the quality report reads them: each normalisation step is idempotent
// on its own output, so a stored value is rewritten exactly when the report counts it `unnormalized`, and
// a second run finds nothing to do. It does not refold profiles from their events (that reads every event
// of every profile; a refold, when one happens, gives the same values for values set by plain `$set`).
// The writes go through stage 2's own path (saveStates, recordPlainTraitChanges) under stage 2's profile
// locks, one chunk of profiles per transaction with the cursor.

/** Profiles per chunk (one transaction): bounds the locks held and the work a retry repeats. */
export const BACKFILL_CHUNK = 500;
/** Changes kept as the sample of a backfill. */
export const SAMPLE_SIZE = 20;

/** What a backfill needs of stage 2. */
export interface BackfillDeps {
  sql: Sql;
  handOff: HandOff;
  pii: Pii;
  log: Logger;
  /** The fold's options (the default calling code): normalised values pass the built-in normalisation too. */
  traits: TraitOptions;
  /** Called inside each chunk's transaction before its commit (tests kill a chunk here). */
  onChunk?: (tx: Transaction, chunk: number) => Promise<void>;
}

/**
 * The rules a backfill of `keys` applies: theirs, and the fills reading them (which the fold re-derives).
 *
 * @example
 * backfillRules(['first_name'], rules); // { first_name: …, full_name: { normalize: [], fill: { template: … } } }
 */
export function backfillRules(
  keys: readonly string[],
  all: Readonly<Record<string, TraitQualityRule>>,
): Record<string, TraitQualityRule> {
  const chosen: Record<string, TraitQualityRule> = {};
  for (const k of keys) if (all[k]) chosen[k] = all[k]!;
  // Fills whose templates read a chosen trait, transitively (rules cannot form a cycle: the API refuses it).
  for (let grew = true; grew; ) {
    grew = false;
    for (const [k, rule] of Object.entries(all)) {
      if (chosen[k] || !rule.fill || !('template' in rule.fill)) continue;
      if (templateInputs(rule.fill.template).some((i) => chosen[i])) {
        chosen[k] = { normalize: [], fill: rule.fill };
        grew = true;
      }
    }
  }
  return chosen;
}

const same = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);
const zero = (): KeyCounts => ({ normalized: 0, filled: 0, cleared: 0, failed: 0 });

/** One profile's changes: the state is changed in place. */
function applyToState(
  profileId: string,
  state: ProfileState,
  normalizeKeys: readonly string[],
  rules: TraitQualityRules,
  options: TraitOptions,
  counts: Record<string, KeyCounts>,
  found: SampleChange[],
): void {
  const count = (key: string) => {
    counts[key] = counts[key] ?? zero();
    return counts[key];
  };
  for (const key of normalizeKeys) {
    const t = state.traits.get(key);
    // A derived value is the fill's to re-derive below.
    if (!t || t.source === 'derived') continue;
    const r = rules.normalize(key, t.value, options.defaultCallingCode);
    if (!r) continue;
    if (!r.ok) {
      count(key).failed++;
      continue;
    }
    // As the fold does: the rule first, then the built-in normalisation of well-known traits.
    const value = normalizeTrait(key, r.value, options);
    if (same(value, t.value)) continue;
    state.traits.set(key, { ...t, value });
    count(key).normalized++;
    found.push({ profileId, key, from: t.value, to: value, kind: 'normalized' });
  }
  // A fill takes the position of the last event folded in, as it would when the fold ran it last.
  if (!rules.fills.length || !state.through) return;
  const before = new Map(rules.fills.map((f) => [f.key, state.traits.get(f.key)]));
  applyFills(state, rules, { ts: state.through.ts, eventId: state.through.id });
  for (const [key, old] of before) {
    const now = state.traits.get(key);
    if (now === old) continue;
    if (!now) {
      count(key).cleared++;
      found.push({ profileId, key, from: old?.value ?? null, to: null, kind: 'cleared' });
    } else if (!old || !same(old.value, now.value)) {
      count(key).filled++;
      found.push({ profileId, key, from: old?.value ?? null, to: now.value, kind: 'filled' });
    }
  }
}

function addCounts(into: Record<string, KeyCounts>, from: Record<string, KeyCounts>): Record<string, KeyCounts> {
  const out = structuredClone(into);
  for (const [k, c] of Object.entries(from)) {
    const o = out[k] ?? zero();
    out[k] = o;
    o.normalized += c.normalized;
    o.filled += c.filled;
    o.cleared += c.cleared;
    o.failed += c.failed;
  }
  return out;
}

/**
 * One chunk in one transaction: locks the backfill's row (one chunk at a time) and the chunk's profiles,
 * applies the rules to their stored states, writes what changed as stage 2 writes a fold (plus one
 * `traits.backfilled` event per changed profile and a `trait.changed` event per change of a trait a live
 * flow watches), hands the changes over, and moves the cursor. Returns false when no profile is left.
 */
async function runChunk(deps: BackfillDeps, id: string, chunk: number): Promise<boolean> {
  return (await deps.sql.begin(async (tx) => {
    const b = await getBackfill(tx, id, true);
    if (b?.status !== 'running') return false;
    const ids = await profilesAfter(tx, b.cursor, BACKFILL_CHUNK);
    if (!ids.length) return false;
    const rules = compileTraitRules(b.rules);
    const normalizeKeys = b.keys.filter((k) => (b.rules[k]?.normalize.length ?? 0) > 0);
    if (!b.dry_run) await lockProfiles(tx, ids);
    const before = await loadStates(tx, ids, deps.pii);
    const after = new Map<string, ProfileState>();
    const counts: Record<string, KeyCounts> = {};
    const found: SampleChange[] = [];
    const changedKeys = new Map<string, Set<string>>();
    for (const p of ids) {
      const state = before.get(p)!;
      const next: ProfileState = { traits: new Map(state.traits), groups: state.groups, through: state.through };
      const start = found.length;
      applyToState(p, next, normalizeKeys, rules, deps.traits, counts, found);
      if (found.length > start) {
        after.set(p, next);
        changedKeys.set(p, new Set(found.slice(start).map((c) => c.key)));
      }
    }
    if (!b.dry_run && after.size) await writeChanges(deps, tx, b, before, after, changedKeys);
    const sample = [...b.sample];
    for (const c of found) {
      if (sample.length >= SAMPLE_SIZE) break;
      sample.push({ ...c, from: deps.pii.sealValue(c.key, c.from), to: deps.pii.sealValue(c.key, c.to) });
    }
    await saveProgress(tx, id, {
      cursor: ids.at(-1)!,
      rows: ids.length,
      profilesChanged: after.size,
      changes: addCounts(b.changes, counts),
      sample,
    });
    await deps.onChunk?.(tx, chunk);
    return ids.length === BACKFILL_CHUNK;
  })) as boolean;
}

async function writeChanges(
  deps: BackfillDeps,
  tx: Transaction,
  b: BackfillRow,
  before: ReadonlyMap<string, ProfileState>,
  after: ReadonlyMap<string, ProfileState>,
  changedKeys: ReadonlyMap<string, Set<string>>,
): Promise<void> {
  const changed = [...after.keys()];
  const beforeChanged = new Map(changed.map((p) => [p, before.get(p)!]));
  await saveStates(tx, beforeChanged, after, deps.pii);
  const importId = b.trigger_flows ? null : b.import_id;
  const markers = await recordBackfillEvents(
    tx,
    { id: b.id, importId },
    changed.map((p) => {
      const through = after.get(p)!.through;
      return {
        p,
        ts: new Date(through?.ts ?? Date.parse('1970-01-01T00:00:00Z')).toISOString(),
        keys: [...changedKeys.get(p)!].sort(),
      };
    }),
  );
  // Watched traits' changes as stage 2 records them, each named by the profile's backfill event (its
  // messageId and held-back import id come from there).
  const changes = (await plainTraitChanges(tx, beforeChanged, after, new Set())).flatMap((c) => {
    const m = markers.get(c.profileId);
    return m ? [{ ...c, eventId: m.id, ts: m.ts.getTime() }] : [];
  });
  const traitChanges = await recordPlainTraitChanges(tx, changes, deps.pii, {
    reason: 'quality_backfill',
    backfill: b.id,
  });
  // Stage 3 re-evaluates every definition for the changed profiles (`restructured`); the backfill events
  // carry the reserved import id, so those changes are recorded under `import:<id>` and held back.
  const markerIds = [...markers.values()].map((m) => m.id);
  for (let i = 0; i < markerIds.length; i += 1000) {
    const ids = markerIds.slice(i, i + 1000);
    const profiles = [...markers].filter(([, m]) => ids.includes(m.id)).map(([p]) => p);
    await deps.handOff(tx, 'events.attached', { ids, restructured: profiles });
  }
  if (traitChanges.length) await deps.handOff(tx, 'memberships.changed', { ids: traitChanges });
}

/**
 * Runs a backfill to its end from its cursor (a retry after a crash, or a resume, continues after the last
 * committed chunk). A backfill done or cancelled is left as it is; one cancelled while it runs stops at the
 * next chunk (runChunk reads its status under the row lock).
 *
 * @example
 * await runBackfill(deps, '3');
 */
export async function runBackfill(deps: BackfillDeps, id: string): Promise<void> {
  const b = await getBackfill(deps.sql, id);
  if (!b || b.status === 'done' || b.status === 'cancelled') return;
  await beginAttempt(deps.sql, id, b.status === 'queued' ? await liveProfiles(deps.sql) : null);
  try {
    for (let chunk = 0; await runChunk(deps, id, chunk); chunk++) {}
    await finishBackfill(deps.sql, id, null);
    const end = await getBackfill(deps.sql, id);
    deps.log.info(
      `data quality: backfill ${id}${b.dry_run ? ' (dry run)' : ''} of ${b.keys.join(', ')} ${end?.status}: ${end?.rows_done} profiles, ${end?.profiles_changed} changed`,
    );
  } catch (err) {
    // pg-boss retries the job; the row says failed until the retry begins again.
    await finishBackfill(deps.sql, id, String((err as Error).message ?? err)).catch(() => {});
    throw err;
  }
}
