import {
  compareTraitEvents,
  emptyProfileState,
  foldEvent,
  type JsonObject,
  type ProfileState,
  type TraitEvent,
  type TraitOptions,
  type TraitSource,
} from '@cairn/core';
import type { PendingQuery, Row } from 'postgres';
import type { Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import { loadBaselines, mergeBaselines, profileBaselineKey } from './baseline.ts';

/** What the fold's storage needs of PII protection: sensitive trait values are stored sealed. */
export type TraitSealer = Pick<Pii, 'sealValue' | 'openValue' | 'openPayload' | 'traitIndex'>;

/**
 * The stored fold of each profile: its traits (sealed values opened), accounts and the last event
 * folded in.
 *
 * @example
 * const states = await loadStates(tx, ['6f1c...'], pii);
 */
export async function loadStates(tx: Tx, ids: readonly string[], pii: TraitSealer): Promise<Map<string, ProfileState>> {
  const states = new Map<string, ProfileState>();
  if (!ids.length) return states;
  for (const id of ids) states.set(id, emptyProfileState());
  const [profiles, traits, accounts] = await Promise.all([
    tx<{ id: string; ts: Date | null; event_id: string | null }[]>`
      SELECT id, traits_through_ts AS ts, traits_through_id AS event_id FROM profiles WHERE id = ANY(${ids}::uuid[])`,
    tx<{ profile_id: string; key: string; value: unknown; updated_at: Date; event_id: string; source: TraitSource }[]>`
      SELECT profile_id, key, value, updated_at, event_id, source FROM profile_traits WHERE profile_id = ANY(${ids}::uuid[])`,
    tx<{ profile_id: string; account_id: string; first_seen_at: Date; last_seen_at: Date }[]>`
      SELECT profile_id, account_id, first_seen_at, last_seen_at FROM profile_accounts WHERE profile_id = ANY(${ids}::uuid[])`,
  ]);
  for (const p of profiles) {
    if (p.ts && p.event_id) states.get(p.id)!.through = { ts: p.ts.getTime(), id: String(p.event_id) };
  }
  for (const t of traits) {
    states.get(t.profile_id)!.traits.set(t.key, {
      value: pii.openValue(t.value),
      ts: t.updated_at.getTime(),
      eventId: String(t.event_id),
      source: t.source,
    });
  }
  for (const a of accounts) {
    states.get(a.profile_id)!.groups.set(a.account_id, {
      firstTs: a.first_seen_at.getTime(),
      lastTs: a.last_seen_at.getTime(),
      eventId: '',
    });
  }
  return states;
}

/**
 * Folds every event of each profile again (after a merge or split, or when an event arrives earlier
 * than the last one folded in), starting from the fold baselines of its identities (the fold of events
 * retention dropped, baseline.ts) and folding the events none of them holds. Same fold as the
 * incremental path, so both agree.
 *
 * @example
 * const states = await refoldStates(tx, ids, {}, pii);
 */
export async function refoldStates(
  tx: Tx,
  ids: readonly string[],
  options: TraitOptions,
  pii: TraitSealer,
): Promise<Map<string, ProfileState>> {
  const states = new Map<string, ProfileState>();
  for (const id of ids) states.set(id, emptyProfileState());
  if (!ids.length) return states;
  type Row = {
    id: string;
    profile_id: string;
    identity_key: string | null;
    part: string;
    type: string;
    timestamp: Date;
    payload: JsonObject;
  };
  const [all, baselines] = await Promise.all([
    tx<Row[]>`
      SELECT id, profile_id, identity_key, tableoid::bigint::text AS part, type, timestamp, payload FROM events
      WHERE profile_id = ANY(${ids}::uuid[])
      ORDER BY timestamp, id`,
    loadBaselines(tx, ids, pii),
  ]);
  for (const [p, state] of baselines.states) states.set(p, state);
  // Events of a partition being dropped are still there while its baselines are already recorded.
  const rows = all.filter(
    (r) => !baselines.foldedParts.get(r.identity_key ?? profileBaselineKey(r.profile_id))?.has(r.part),
  );
  const events: (TraitEvent & { profile: string })[] = rows.map((r) => ({
    id: String(r.id),
    ts: r.timestamp.getTime(),
    type: r.type,
    // The fold normalises and compares clear values; they are sealed again when saved.
    payload: pii.openPayload(r.payload),
    profile: r.profile_id,
  }));
  events.sort(compareTraitEvents);
  // A kept event earlier than a baseline's position (received later than the dropped ones, or another
  // identity's): folded apart, then merged with the baseline by the same rules as two baselines, so an
  // earlier first touch still wins; the events after the position fold on top as usual.
  const early = new Map<string, ProfileState>();
  const settled = (p: string) => {
    const e = early.get(p);
    if (!e) return;
    states.set(p, mergeBaselines([states.get(p)!, e]));
    early.delete(p);
  };
  const position = new Map([...baselines.states].map(([p, b]) => [p, b.through]));
  for (const e of events) {
    const through = position.get(e.profile);
    if (through && compareTraitEvents(e, through) < 0) {
      if (!early.has(e.profile)) early.set(e.profile, emptyProfileState());
      foldEvent(early.get(e.profile)!, e, options);
      continue;
    }
    settled(e.profile);
    foldEvent(states.get(e.profile)!, e, options);
  }
  for (const p of [...early.keys()]) settled(p);
  return states;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Writes what changed between the stored and the new state of each profile: trait rows, account
 * memberships, and the fold position. Sensitive trait values are sealed.
 *
 * @example
 * await saveStates(tx, before, after, pii);
 */
export async function saveStates(
  tx: Tx,
  before: ReadonlyMap<string, ProfileState>,
  after: ReadonlyMap<string, ProfileState>,
  pii: TraitSealer,
): Promise<void> {
  const upserts: { p: string; k: string; v: string; b: string | null; t: string; e: string; s: string }[] = [];
  const deletes: { p: string; k: string }[] = [];
  const accounts: { p: string; a: string; f: string; l: string }[] = [];
  const accountDeletes: { p: string; a: string }[] = [];
  const through: { p: string; t: string | null; e: string | null }[] = [];
  for (const [profile, next] of after) {
    const prev = before.get(profile) ?? emptyProfileState();
    for (const [key, t] of next.traits) {
      const old = prev.traits.get(key);
      if (old && old.ts === t.ts && old.eventId === t.eventId && old.source === t.source && same(old.value, t.value)) {
        continue;
      }
      upserts.push({
        p: profile,
        k: key,
        v: JSON.stringify(pii.sealValue(key, t.value)),
        b: pii.traitIndex(key, t.value),
        t: new Date(t.ts).toISOString(),
        e: t.eventId,
        s: t.source,
      });
    }
    for (const key of prev.traits.keys()) if (!next.traits.has(key)) deletes.push({ p: profile, k: key });
    for (const [account, g] of next.groups) {
      const old = prev.groups.get(account);
      if (old && old.firstTs === g.firstTs && old.lastTs === g.lastTs) continue;
      accounts.push({
        p: profile,
        a: account,
        f: new Date(g.firstTs).toISOString(),
        l: new Date(g.lastTs).toISOString(),
      });
    }
    for (const account of prev.groups.keys())
      if (!next.groups.has(account)) accountDeletes.push({ p: profile, a: account });
    const t = next.through;
    if (prev.through?.ts !== t?.ts || prev.through?.id !== t?.id) {
      through.push({ p: profile, t: t ? new Date(t.ts).toISOString() : null, e: t?.id ?? null });
    }
  }
  // Sent together, run in this order (one round trip).
  const writes: PendingQuery<Row[]>[] = [];
  if (deletes.length) {
    writes.push(tx`
      DELETE FROM profile_traits t USING json_to_recordset(${JSON.stringify(deletes)}::text::json) AS x (p uuid, k text)
      WHERE t.profile_id = x.p AND t.key = x.k`);
  }
  if (upserts.length) {
    writes.push(tx`
      INSERT INTO profile_traits (profile_id, key, value, blind, updated_at, event_id, source)
      SELECT p, k, v::jsonb, b, t, e, s
      FROM json_to_recordset(${JSON.stringify(upserts)}::text::json)
        AS x (p uuid, k text, v text, b text, t timestamptz, e bigint, s text)
      ORDER BY p, k
      ON CONFLICT (profile_id, key) DO UPDATE
      SET value = excluded.value, blind = excluded.blind, updated_at = excluded.updated_at,
        event_id = excluded.event_id, source = excluded.source`);
  }
  if (accountDeletes.length) {
    writes.push(tx`
      DELETE FROM profile_accounts t USING json_to_recordset(${JSON.stringify(accountDeletes)}::text::json) AS x (p uuid, a text)
      WHERE t.profile_id = x.p AND t.account_id = x.a`);
  }
  if (accounts.length) {
    writes.push(tx`
      INSERT INTO accounts (id) SELECT DISTINCT a FROM json_to_recordset(${JSON.stringify(accounts)}::text::json) AS x (a text)
      ORDER BY a ON CONFLICT DO NOTHING`);
    writes.push(tx`
      INSERT INTO profile_accounts (profile_id, account_id, first_seen_at, last_seen_at)
      SELECT p, a, f, l FROM json_to_recordset(${JSON.stringify(accounts)}::text::json) AS x (p uuid, a text, f timestamptz, l timestamptz)
      ON CONFLICT (profile_id, account_id) DO UPDATE SET first_seen_at = excluded.first_seen_at, last_seen_at = excluded.last_seen_at`);
  }
  if (through.length) {
    writes.push(tx`
      UPDATE profiles p SET traits_through_ts = x.t, traits_through_id = x.e, updated_at = now()
      FROM json_to_recordset(${JSON.stringify(through)}::text::json) AS x (p uuid, t timestamptz, e bigint)
      WHERE p.id = x.p`);
  }
  await Promise.all(writes.map((q) => q.execute()));
}
