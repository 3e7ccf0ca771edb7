import { createHmac } from 'node:crypto';
import {
  compareRefs,
  emptyProfileState,
  extractIdentities,
  foldEvents,
  type IdentityOptions,
  identityKey,
  type JsonObject,
  type ProfileState,
  type TrackingEvent,
  type TraitOptions,
} from '@cairn/core';
import type { Sql, Transaction, Tx } from '../../db/index.ts';
import { retryTransaction } from '../../infra/transaction.ts';
import type { Logger } from '../../log.ts';
import type { Pii } from '../../pii/index.ts';
import { addFirstTimesOf, firstTimeMovesOf, followFirstTimes } from '../measure/rollup-first-times.ts';
import { followRepoint, movesOf } from '../measure/rollup-people.ts';
import { resyncPeriodPeople } from '../measure/rollup-period-people.ts';
import { reattributeTraitCells, resyncTraitCells } from '../measure/rollup-traits.ts';
import {
  type Applied,
  applyPartition,
  assignmentOf,
  linkHash,
  linksByHash,
  loadComponent,
  parseIdentityKey,
  type StoredLink,
  saveLinks,
  saveRefusals,
} from './component.ts';
import { rebuildConsent, saveConsent } from './consent.ts';
import type { IdentifyContext, LoadedEvent } from './types.ts';

export type { IdentifyContext, LoadedEvent } from './types.ts';

import { lockIdentities, lockProfiles, NeedsMoreLocks } from './locks.ts';
import { loadStates, refoldStates, saveStates } from './state.ts';
import { plainTraitChanges, recordPlainTraitChanges } from './trait-changes.ts';

/** What one call did, for metrics and tests. */
export interface IdentifyResult {
  processed: number;
  suppressed: number;
  merges: number;
  created: number;
  retries: number;
}

/** Events per transaction: bounds lock counts and the work a retry repeats. */
const CHUNK = 250;
const MAX_ATTEMPTS = 30;

/**
 * The keyed hash of an identity that suppression entries store (HMAC-SHA256 under the server secret):
 * it matches later events without keeping the identity in clear text.
 *
 * @example
 * suppressionHash(secret, 'email:ann@example.com');
 */
export function suppressionHash(secret: string, key: string): string {
  return createHmac('sha256', secret).update(key).digest('base64url');
}

/**
 * Stage 2 for a set of stored events: drops suppressed ones, resolves identities (links, component,
 * guards, merges), attaches each event to its profile, folds traits and accounts, records consent, and
 * marks the events processed — one transaction per chunk, idempotent per event (processed events are
 * skipped), safe with any number of concurrent workers (see locks.ts).
 *
 * @example
 * await identifyEvents(sql, ['1', '2'], ctx);
 */
export async function identifyEvents(
  sql: Sql,
  ids: readonly string[],
  ctx: IdentifyContext,
  /**
   * Runs in each chunk's transaction before its commit (the worker hands the chunk to the next stages),
   * with the profiles the chunk created, merged, split or restored: every definition may have changed
   * for those, not only the ones reading the chunk's event names. `traitChanges`: the `trait.changed`
   * events recorded for traits live flows watch (trait-changes.ts), to hand over as `memberships.changed`.
   */
  onChunk?: (
    tx: Transaction,
    ids: readonly string[],
    restructured: readonly string[],
    traitChanges: readonly string[],
  ) => Promise<unknown>,
): Promise<IdentifyResult> {
  const total: IdentifyResult = { processed: 0, suppressed: 0, merges: 0, created: 0, retries: 0 };
  const sortedIds = [...new Set(ids)].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
  for (let i = 0; i < sortedIds.length; i += CHUNK) {
    const chunk = sortedIds.slice(i, i + CHUNK);
    let extra = new Set<string>();
    const r = await retryTransaction(
      sql,
      async (tx) => {
        const r = await processChunk(tx, chunk, extra, ctx);
        await onChunk?.(tx, chunk, r.restructured, r.traitChanges);
        return r;
      },
      {
        attempts: MAX_ATTEMPTS,
        // The component grew while we were locking it: restart holding the new identities' locks too.
        retryIf: (err) => {
          if (!(err instanceof NeedsMoreLocks)) return false;
          extra = new Set([...extra, ...err.keys]);
          return true;
        },
        onRetry: () => total.retries++,
      },
    );
    total.processed += r.processed;
    total.suppressed += r.suppressed;
    total.merges += r.merges;
    total.created += r.created;
  }
  return total;
}

async function loadEvents(tx: Tx, ids: readonly string[], ctx: IdentifyContext): Promise<LoadedEvent[]> {
  const rows = await tx<{ id: string; type: string; timestamp: Date; payload: JsonObject }[]>`
    SELECT id, type, timestamp, payload FROM events
    WHERE id = ANY(${ids}::bigint[]) AND processed_at IS NULL
    FOR UPDATE SKIP LOCKED`;
  return rows.map((r) => {
    const payload = ctx.pii.openPayload(r.payload);
    const ids = extractIdentities(payload as unknown as TrackingEvent, ctx.identity);
    const keys = ids.map(ctx.pii.identityKey);
    const sealed: [string, string][] = [];
    for (const [i, id] of ids.entries())
      if (ctx.pii.blinds(id.type)) sealed.push([keys[i]!, ctx.pii.identityValue(id)]);
    return {
      id: String(r.id),
      ts: r.timestamp.getTime(),
      type: r.type,
      payload,
      keys,
      setHash: keys.length ? linkHash(keys) : null,
      sealed,
    };
  });
}

async function dropSuppressed(tx: Tx, events: LoadedEvent[], ctx: IdentifyContext): Promise<LoadedEvent[]> {
  const hashes = new Map<string, string>();
  for (const e of events) for (const k of e.keys) hashes.set(k, suppressionHash(ctx.secret, k));
  if (!hashes.size) return events;
  const hit = await tx<
    { hash: string }[]
  >`SELECT hash FROM suppressions WHERE hash = ANY(${[...hashes.values()]}::text[])`;
  if (!hit.length) return events;
  const blocked = new Set(hit.map((h) => h.hash));
  const dropped = events.filter((e) => e.keys.some((k) => blocked.has(hashes.get(k)!)));
  const counts = new Map<string, number>();
  for (const e of dropped) {
    for (const k of e.keys) {
      const h = hashes.get(k)!;
      if (blocked.has(h)) counts.set(h, (counts.get(h) ?? 0) + 1);
    }
  }
  await tx`DELETE FROM events WHERE id = ANY(${dropped.map((e) => e.id)}::bigint[])`;
  const doc = JSON.stringify([...counts].map(([h, n]) => ({ h, n })));
  await tx`
    UPDATE suppressions s SET dropped = s.dropped + x.n, last_dropped_at = now()
    FROM json_to_recordset(${doc}::text::json) AS x (h text, n int) WHERE s.hash = x.h`;
  const gone = new Set(dropped.map((e) => e.id));
  return events.filter((e) => !gone.has(e.id));
}

type ChunkResult = Omit<IdentifyResult, 'retries'> & { restructured: string[]; traitChanges: string[] };

async function processChunk(
  tx: Tx,
  ids: readonly string[],
  extraLocks: ReadonlySet<string>,
  ctx: IdentifyContext,
): Promise<ChunkResult> {
  const loaded = await loadEvents(tx, ids, ctx);
  // One round trip (statements started together run in this order on the transaction's connection):
  // the suppression check, the identity locks (a suppressed event's too: harmless), and, once those
  // are held, the stored links of the chunk's identity sets.
  const [events, held, known] = await Promise.all([
    dropSuppressed(tx, loaded, ctx),
    lockIdentities(tx, [...loaded.flatMap((e) => e.keys), ...extraLocks]),
    // Which events bring new evidence: a set of identities never seen together, or seen only later.
    linksByHash(tx, [...new Set(loaded.flatMap((e) => (e.setHash ? [e.setHash] : [])))]),
  ]);
  const suppressed = loaded.length - events.length;
  // What identities.value holds for identities stored by blind index: the sealed value.
  const values = new Map(events.flatMap((e) => e.sealed));

  const newLinks = new Map<string, StoredLink>();
  const causeOf = new Map<string, LoadedEvent>();
  for (const e of [...events].sort((a, b) => compareRefs({ ts: a.ts, eventId: a.id }, { ts: b.ts, eventId: b.id }))) {
    if (!e.setHash) continue;
    const stored = newLinks.get(e.setHash) ?? known.get(e.setHash);
    const ref = { ts: e.ts, eventId: e.id };
    if (stored && compareRefs(stored, ref) <= 0) continue;
    newLinks.set(e.setHash, {
      setHash: e.setHash,
      keys: e.keys,
      ts: e.ts,
      eventId: e.id,
      disabledBy: stored?.disabledBy ?? null,
    });
    for (const k of e.keys) if (!causeOf.has(k)) causeOf.set(k, e);
  }
  await saveLinks(tx, [...newLinks.values()]);

  let applied: Applied | null = null;
  let componentKeys: string[] = [];
  const structural = [...new Set([...newLinks.values()].flatMap((l) => l.keys))];
  if (structural.length) {
    const component = await loadComponent(tx, structural, held);
    if (!component) {
      // A runaway component: keep the evidence out and say so; events still attach below.
      ctx.log.error('identity component too large; links refused', { identities: structural.length });
      await tx`DELETE FROM identity_links WHERE set_hash = ANY(${[...newLinks.keys()]}::text[])`;
    } else {
      componentKeys = [...component.keys];
      const previous = await assignmentOf(tx, componentKeys);
      await lockProfiles(tx, new Set([...previous.values(), ...(await profilesOf(tx, events, componentKeys))]));
      applied = await applyPartition(
        tx,
        component.links,
        previous,
        ctx.identity,
        (group) => {
          const e = group.identities.map((id) => causeOf.get(identityKey(id))).find(Boolean);
          return { reason: e ? `${e.type} event` : 'identity links', eventId: e?.id ?? null, actor: null };
        },
        previous,
        values,
      );
      await saveRefusals(tx, applied.partition);
    }
  }
  if (!applied) await lockProfiles(tx, await profilesOf(tx, events, []));

  // Attach each event to the profile of its deciding identity (the first in canonical order).
  const lookup = applied ? new Map(applied.assignment) : new Map<string, string>();
  const missing = events.flatMap((e) => (e.keys[0] && !lookup.has(e.keys[0]) ? [e.keys[0]] : []));
  for (const [k, p] of await assignmentOf(tx, missing)) lookup.set(k, p);
  const orphans = events.filter((e) => e.keys[0] && !lookup.has(e.keys[0]));
  const orphaned: string[] = [];
  if (orphans.length) {
    // Only when a runaway component refused the links: give the identity a profile of its own.
    for (const e of orphans) {
      const key = e.keys[0]!;
      if (lookup.has(key)) continue;
      const [row] = await tx<{ id: string }[]>`INSERT INTO profiles (id) VALUES (gen_random_uuid()) RETURNING id`;
      const { type, value } = parseIdentityKey(key);
      await tx`INSERT INTO identities (key, type, value, profile_id) VALUES (${key}, ${type}, ${values.get(key) ?? value}, ${row!.id})
        ON CONFLICT (key) DO NOTHING`;
      lookup.set(key, row!.id);
      orphaned.push(row!.id);
    }
  }
  const attach = events.map((e) => ({ i: e.id, p: e.keys[0] ? lookup.get(e.keys[0])! : null, k: e.keys[0] ?? null }));
  const changed = applied ? [...applied.changed] : [];
  const byProfile = new Map<string, LoadedEvent[]>();
  for (const e of events) {
    const p = e.keys[0] ? lookup.get(e.keys[0]) : undefined;
    if (p) byProfile.set(p, [...(byProfile.get(p) ?? []), e]);
  }
  const mergedAway = applied?.mergedAway ?? new Set<string>();
  const refold = new Set(changed.filter((p) => !mergedAway.has(p)));
  const incremental = [...byProfile.keys()].filter((p) => !refold.has(p));
  // Attach the events, re-point older events of profiles whose identities moved, and read the stored
  // states, started together (in this order; the states are traits and accounts, which neither
  // changes); then refold or fold traits (the refold reads the events as attached and re-pointed).
  const [, , before] = await Promise.all([
    attach.length
      ? tx`
      UPDATE events e SET profile_id = x.p, identity_key = x.k, processed_at = now()
      FROM json_to_recordset(${JSON.stringify(attach)}::text::json) AS x (i bigint, p uuid, k text)
      WHERE e.id = x.i`.then(() =>
          // Stage 6's first times (least) of the events just attached: after the UPDATE, whatever the
          // re-point's order (it recomputes its profiles from their events).
          addFirstTimesOf(
            tx,
            attach.map((a) => String(a.i)),
          ),
        )
      : undefined,
    changed.length ? repointEvents(tx, changed) : undefined,
    loadStates(tx, [...new Set([...incremental, ...refold, ...mergedAway])], ctx.pii),
  ]);
  const after = new Map<string, ProfileState>();
  for (const p of incremental) {
    const state = cloneState(before.get(p)!);
    if (foldEvents(state, byProfile.get(p)!, ctx.traits)) after.set(p, state);
    else refold.add(p);
  }
  for (const [p, state] of await refoldStates(tx, [...refold], ctx.traits, ctx.pii)) after.set(p, state);
  for (const p of mergedAway) after.set(p, emptyProfileState());
  // Independent writes (profile traits and accounts, account traits, consent), started together.
  await Promise.all([
    saveStates(tx, before, after, ctx.pii),
    saveAccountTraits(tx, events, ctx.pii),
    // Refolded profiles (merged, split, or an event earlier than the last one folded) get their consent
    // history rebuilt from their events, which includes this chunk's; the others only append to it.
    saveConsent(
      tx,
      events.filter((e) => !(e.keys[0] && refold.has(lookup.get(e.keys[0])!))),
      lookup,
      ctx,
    ),
  ]);
  await rebuildConsent(tx, [...refold], ctx);
  // Changes of traits a live flow's trait_changed trigger watches, as events (after the trait writes).
  const traitChanges = await recordPlainTraitChanges(
    tx,
    await plainTraitChanges(tx, before, after, mergedAway),
    ctx.pii,
  );
  return {
    traitChanges,
    processed: events.length,
    suppressed,
    merges: applied?.mergedAway.size ?? 0,
    created: applied?.created.size ?? 0,
    // New profiles match rules that hold without events ("never reviewed", "sum < 50"); merged, split
    // and restored ones have other events and traits than before. Not only what the events' names read.
    restructured: [...new Set([...(applied?.created ?? []), ...changed, ...mergedAway, ...orphaned])],
  };
}

/**
 * After identities moved between profiles (an unmerge, an erasure's neighbours): re-points their
 * events and consent, and refolds their traits; merged-away profiles lose theirs.
 *
 * @example
 * await settleProfiles(tx, applied, ctx);
 */
export async function settleProfiles(
  tx: Tx,
  applied: Pick<Applied, 'changed' | 'mergedAway'>,
  ctx: IdentifyContext,
): Promise<void> {
  const changed = [...applied.changed];
  if (!changed.length) return;
  await repointEvents(tx, changed);
  const live = changed.filter((p) => !applied.mergedAway.has(p));
  const before = await loadStates(tx, changed, ctx.pii);
  const after = await refoldStates(tx, live, ctx.traits, ctx.pii);
  for (const p of applied.mergedAway) after.set(p, emptyProfileState());
  await saveStates(tx, before, after, ctx.pii);
  // No measure job follows an unmerge's or a duplicate merge's refold: trait breakdowns move here.
  await reattributeTraitCells(tx, live);
  await rebuildConsent(tx, live, ctx);
}

function cloneState(s: ProfileState): ProfileState {
  return { traits: new Map(s.traits), groups: new Map(s.groups), through: s.through };
}

/** Profiles currently holding the deciding identities of these events (besides the component's). */
async function profilesOf(tx: Tx, events: readonly LoadedEvent[], exclude: readonly string[]): Promise<string[]> {
  const skip = new Set(exclude);
  const keys = [...new Set(events.flatMap((e) => (e.keys[0] && !skip.has(e.keys[0]) ? [e.keys[0]] : [])))];
  return [...new Set((await assignmentOf(tx, keys)).values())];
}

/**
 * Moves events (and the consent they recorded) to the profile their deciding identity now belongs to.
 *
 * @example
 * await repointEvents(tx, ['6f1c...']);
 */
export async function repointEvents(tx: Tx, profiles: readonly string[]): Promise<void> {
  // Stage 6's people-per-hour rollup and first times follow the events in this transaction
  // (measure/rollup-people.ts, rollup-first-times.ts).
  const moves = await movesOf(tx, profiles);
  const firstTimeMoves = await firstTimeMovesOf(tx, profiles);
  await tx`
    UPDATE events e SET profile_id = i.profile_id
    FROM identities i
    WHERE e.profile_id = ANY(${profiles}::uuid[]) AND i.key = e.identity_key AND e.profile_id <> i.profile_id`;
  await followRepoint(tx, moves);
  // People per local day (migration 0042): both sides recomputed from their events.
  if (moves.hours.length) await resyncPeriodPeople(tx, [...profiles, ...moves.to]);
  // Trait breakdowns (migration 0044): both sides' cells recounted from their events.
  if (moves.hours.length) await resyncTraitCells(tx, [...profiles, ...moves.to]);
  await followFirstTimes(tx, firstTimeMoves);
  await tx`
    UPDATE consent_changes c SET profile_id = e.profile_id
    FROM events e
    WHERE c.profile_id = ANY(${profiles}::uuid[]) AND c.event_id = e.id AND c.profile_id <> e.profile_id`;
  // Choices of events retention dropped follow the identity their event was attached by, as it would have.
  await tx`
    UPDATE consent_changes c SET profile_id = i.profile_id
    FROM identities i
    WHERE c.profile_id = ANY(${profiles}::uuid[]) AND i.key = c.identity_key AND c.profile_id <> i.profile_id`;
  // Consent given through the API follows a merged-away profile to its survivor.
  await tx`
    UPDATE consent_changes c SET profile_id = p.merged_into
    FROM profiles p
    WHERE c.profile_id = p.id AND p.id = ANY(${profiles}::uuid[]) AND p.merged_into IS NOT NULL`;
}

/** Account traits from group calls: last write by event time wins, per trait. */
async function saveAccountTraits(tx: Tx, events: readonly LoadedEvent[], pii: Pii): Promise<void> {
  const rows = new Map<string, { a: string; k: string; v: string; t: string; e: string; ts: number }>();
  for (const e of events) {
    const groupId = typeof e.payload.groupId === 'string' ? e.payload.groupId.trim() : '';
    const traits = e.payload.traits;
    if (e.type !== 'group' || !groupId) continue;
    if (typeof traits !== 'object' || traits === null || Array.isArray(traits)) {
      rows.set(`${groupId}\n`, { a: groupId, k: '', v: 'null', t: new Date(e.ts).toISOString(), e: e.id, ts: e.ts });
      continue;
    }
    for (const [k, v] of Object.entries(traits as JsonObject)) {
      const id = `${groupId}\n${k}`;
      const prev = rows.get(id);
      if (prev && compareRefs({ ts: prev.ts, eventId: prev.e }, { ts: e.ts, eventId: e.id }) > 0) continue;
      const value = JSON.stringify(pii.sealValue(k, v ?? null));
      rows.set(id, { a: groupId, k, v: value, t: new Date(e.ts).toISOString(), e: e.id, ts: e.ts });
    }
  }
  if (!rows.size) return;
  const list = [...rows.values()].sort((x, y) => (x.a < y.a ? -1 : x.a > y.a ? 1 : x.k < y.k ? -1 : 1));
  await tx`
    INSERT INTO accounts (id) SELECT DISTINCT a FROM json_to_recordset(${JSON.stringify(list)}::text::json) AS x (a text)
    ORDER BY a ON CONFLICT DO NOTHING`;
  const traits = list.filter((r) => r.k !== '');
  if (!traits.length) return;
  await tx`
    INSERT INTO account_traits (account_id, key, value, updated_at, event_id)
    SELECT a, k, v::jsonb, t, e FROM json_to_recordset(${JSON.stringify(traits)}::text::json)
      AS x (a text, k text, v text, t timestamptz, e bigint)
    ORDER BY a, k
    ON CONFLICT (account_id, key) DO UPDATE
    SET value = excluded.value, updated_at = excluded.updated_at, event_id = excluded.event_id
    WHERE (account_traits.updated_at, account_traits.event_id) < (excluded.updated_at, excluded.event_id)`;
}
