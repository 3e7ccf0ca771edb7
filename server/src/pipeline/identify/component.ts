import { createHash, randomUUID } from 'node:crypto';
import {
  compareStrings,
  diffPartitions,
  type Group,
  type Identity,
  type IdentityLink,
  type IdentityOptions,
  type IdentityType,
  identityKey,
  type Partition,
  resolveIdentities,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { moveEmployeeLinks } from './employee-links.ts';
import { moveExperimentAssignments } from './experiment-people.ts';
import { moveFlowRuns } from './flow-runs.ts';
import { NeedsMoreLocks, tryLockIdentities } from './locks.ts';
import { movePointsAndCoupons } from './points-moves.ts';

/** One stored link: a distinct set of identities and the earliest event that carried it. */
export interface StoredLink {
  setHash: string;
  keys: string[];
  ts: number;
  eventId: string;
  disabledBy: string | null;
}

/**
 * Most links one connected component may hold. Guards keep real components small (a person's devices,
 * a shared device's users); a bigger one is a bot or a junk id that slipped past the blocked list.
 * Links that would grow a component past this are refused (recorded), never truncated.
 */
export const COMPONENT_MAX_LINKS = 5000;

/** The hash that names a set of identity keys (sorted, so any order names the same set). */
export function linkHash(keys: readonly string[]): string {
  return createHash('sha1')
    .update([...keys].sort(compareStrings).join('\n'))
    .digest('base64url');
}

/** Parses an identity key back into an identity (`type` never contains a colon, see identityKey). */
export function parseIdentityKey(key: string): Identity {
  const i = key.startsWith('x:') ? key.indexOf(':', 2) : key.indexOf(':');
  return { type: key.slice(0, i) as IdentityType, value: key.slice(i + 1) };
}

/**
 * The stored links with these set hashes.
 *
 * @example
 * const known = await linksByHash(tx, hashes);
 */
export async function linksByHash(tx: Tx, hashes: readonly string[]): Promise<Map<string, StoredLink>> {
  if (!hashes.length) return new Map();
  const rows = await tx<{ set_hash: string; ts: Date; event_id: string; disabled_by: string | null; keys: string[] }[]>`
    SELECT set_hash, keys, ts, event_id, disabled_by FROM identity_links WHERE set_hash = ANY(${hashes}::text[])`;
  return new Map(rows.map((r) => [r.set_hash, toLink(r)]));
}

function toLink(r: { set_hash: string; ts: Date; event_id: string; disabled_by: string | null; keys: string[] }) {
  return {
    setHash: r.set_hash,
    keys: r.keys,
    ts: r.ts.getTime(),
    eventId: String(r.event_id),
    disabledBy: r.disabled_by,
  };
}

/**
 * Writes links (new sets, or an earlier event for a known set). The caller holds the locks of every
 * identity in them, so no one else writes these rows meanwhile.
 *
 * @example
 * await saveLinks(tx, [{ setHash, keys, ts, eventId, disabledBy: null }]);
 */
export async function saveLinks(tx: Tx, links: readonly StoredLink[]): Promise<void> {
  if (!links.length) return;
  const doc = JSON.stringify(
    links.map((l) => ({ h: l.setHash, k: l.keys, t: new Date(l.ts).toISOString(), e: l.eventId })),
  );
  await tx`
    INSERT INTO identity_links (set_hash, keys, ts, event_id)
    SELECT h, ARRAY(SELECT json_array_elements_text(k)), t, e
    FROM json_to_recordset(${doc}::text::json) AS x (h text, k json, t timestamptz, e bigint)
    ON CONFLICT (set_hash) DO UPDATE SET ts = excluded.ts, event_id = excluded.event_id`;
}

// Estimates for `keys && array` grow with the array: past ~100 keys the planner picks a full scan of
// identity_links (seconds at 400k rows, measured by bench:identify), so large frontiers go in slices.
const FRONTIER_SLICE = 50;

type LinkRow = { set_hash: string; ts: Date; event_id: string; disabled_by: string | null; keys: string[] };

async function linksTouching(tx: Tx, keys: readonly string[]): Promise<LinkRow[]> {
  const rows: LinkRow[] = [];
  for (let i = 0; i < keys.length; i += FRONTIER_SLICE) {
    const slice = keys.slice(i, i + FRONTIER_SLICE);
    rows.push(
      ...(await tx<LinkRow[]>`
      SELECT set_hash, keys, ts, event_id, disabled_by FROM identity_links WHERE keys && ${slice}::text[]`),
    );
  }
  return rows;
}

/**
 * Loads the whole connected component of links reachable from `keys`, and locks every identity in it
 * (without waiting: if one is held, the transaction must restart holding them all up front). Null
 * when the component has more than {@link COMPONENT_MAX_LINKS} links.
 *
 * @example
 * const links = await loadComponent(tx, ['userId:u1'], held);
 */
export async function loadComponent(
  tx: Tx,
  keys: Iterable<string>,
  held: Set<number>,
): Promise<{ links: StoredLink[]; keys: Set<string> } | null> {
  const seen = new Set(keys);
  const links = new Map<string, StoredLink>();
  let frontier = [...seen];
  while (frontier.length) {
    const rows = await linksTouching(tx, frontier);
    const next: string[] = [];
    for (const row of rows) {
      if (links.has(row.set_hash)) continue;
      links.set(row.set_hash, toLink(row));
      for (const k of row.keys) {
        if (!seen.has(k)) {
          seen.add(k);
          next.push(k);
        }
      }
    }
    if (links.size > COMPONENT_MAX_LINKS) return null;
    frontier = next;
  }
  if (!(await tryLockIdentities(tx, seen, held))) throw new NeedsMoreLocks(seen);
  return { links: [...links.values()], keys: seen };
}

/**
 * The links as the resolver sees them. A disabled link still says its identities exist (and when they
 * were first seen) but no longer joins them.
 */
export function resolverLinks(links: readonly StoredLink[]): IdentityLink[] {
  const out: IdentityLink[] = [];
  for (const l of links) {
    const ids = l.keys.map(parseIdentityKey);
    if (!l.disabledBy) out.push({ eventId: l.eventId, ts: l.ts, ids });
    else for (const [i, id] of ids.entries()) out.push({ eventId: `${l.eventId}/${i}`, ts: l.ts, ids: [id] });
  }
  return out;
}

/** Current profile of each identity key. */
export async function assignmentOf(tx: Tx, keys: readonly string[]): Promise<Map<string, string>> {
  if (!keys.length) return new Map();
  const rows = await tx<{ key: string; profile_id: string }[]>`
    SELECT key, profile_id FROM identities WHERE key = ANY(${keys}::text[])`;
  return new Map(rows.map((r) => [r.key, r.profile_id]));
}

/** What applying a partition changed. */
export interface Applied {
  /** identity key → profile id, for every identity of the component. */
  assignment: Map<string, string>;
  /** Profiles whose identities changed (merged, split, restored): events and traits need re-pointing. */
  changed: Set<string>;
  /** Profiles merged away in this change (no longer live). */
  mergedAway: Set<string>;
  created: Set<string>;
  partition: Partition;
}

/** Why a partition is being applied: the merge log's reason and triggering event. */
export interface ChangeCause {
  reason: string;
  eventId: string | null;
  actor: string | null;
  /** Merge log kind for merges (an unmerge records its restorations as kind 'unmerge'). */
  kind?: 'merge' | 'unmerge';
}

/**
 * Resolves the component's links and applies the result to `identities` and `profiles`: new profiles
 * for new groups, merges (logged with the state before), automatic splits (logged), restorations.
 * `previous` is the stored assignment; `labels` (default: the same) the one whose profile ids the
 * new groups carry on — an unmerge passes the assignment it restores. `values` holds what
 * `identities.value` gets for new identities stored by blind index (their sealed value).
 *
 * @example
 * const applied = await applyPartition(tx, links, previous, { reason: 'identify', eventId: '42', actor: null });
 */
export async function applyPartition(
  tx: Tx,
  links: readonly StoredLink[],
  previous: ReadonlyMap<string, string>,
  options: IdentityOptions,
  cause: (group: Group) => ChangeCause,
  labels: ReadonlyMap<string, string> = previous,
  values: ReadonlyMap<string, string> = new Map(),
): Promise<Applied> {
  const partition = resolveIdentities(resolverLinks(links), options);
  // `labels` says which profile each identity should carry on (an unmerge's restoration); `previous`
  // is what is stored, which decides the rows to write.
  const diff = diffPartitions(labels, partition);
  const groupOf = (key: string) => partition.groups.find((g) => g.key === key)!;
  const assignment = new Map<string, string>();
  const created = new Set<string>();
  const changed = new Set<string>();
  const mergedAway = new Set<string>();
  const profileOfGroup = new Map<string, string>();
  for (const origin of diff.groups) {
    const id = origin.continues ?? randomUUID();
    if (!origin.continues) created.add(id);
    profileOfGroup.set(origin.key, id);
  }
  const beforeKeys = new Map<string, string[]>();
  for (const [key, label] of labels) beforeKeys.set(label, [...(beforeKeys.get(label) ?? []), key]);
  const rows: { key: string; type: string; value: string; profile: string }[] = [];
  for (const group of partition.groups) {
    const profile = profileOfGroup.get(group.key)!;
    for (const id of group.identities) {
      const key = identityKey(id);
      assignment.set(key, profile);
      if (previous.get(key) !== profile) {
        rows.push({ key, type: id.type, value: values.get(key) ?? id.value, profile });
        // An identity new to the store has no older events: only moves need re-pointing and a refold.
        const old = previous.get(key);
        if (old) changed.add(old).add(profile);
      }
    }
  }
  if (created.size) {
    await tx`INSERT INTO profiles (id) SELECT unnest(${[...created]}::uuid[])`;
  }
  const continuing = [...profileOfGroup.values()].filter((p) => !created.has(p));
  if (continuing.length) {
    // A profile an unmerge (or a split) brings back is live again.
    await tx`UPDATE profiles SET merged_into = NULL, updated_at = now() WHERE id = ANY(${continuing}::uuid[]) AND merged_into IS NOT NULL`;
  }
  if (rows.length) {
    await tx`
      INSERT INTO identities (key, type, value, profile_id)
      SELECT key, type, value, profile
      FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (key text, type text, value text, profile uuid)
      ON CONFLICT (key) DO UPDATE SET profile_id = excluded.profile_id`;
  }
  const log: {
    kind: string;
    survivor: string;
    merged: string;
    reason: string;
    event: string | null;
    actor: string | null;
    before: unknown;
  }[] = [];
  for (const merge of diff.merges) {
    const survivor = profileOfGroup.get(merge.key)!;
    const c = cause(groupOf(merge.key));
    for (const label of merge.merged) {
      if (continuing.includes(label)) continue; // it carries on another group: a split, logged below
      mergedAway.add(label);
      log.push({
        kind: c.kind ?? 'merge',
        survivor,
        merged: label,
        reason: c.reason,
        event: c.eventId,
        actor: c.actor,
        before: { survivor: sorted(beforeKeys.get(survivor)), merged: sorted(beforeKeys.get(label)) },
      });
    }
  }
  for (const split of diff.splits) {
    for (const key of split.into) {
      const profile = profileOfGroup.get(key)!;
      if (profile === split.from) continue;
      const c = cause(groupOf(key));
      log.push({
        kind: c.kind === 'unmerge' ? 'unmerge' : 'split',
        survivor: split.from,
        merged: profile,
        reason:
          c.kind === 'unmerge'
            ? c.reason
            : `a link earlier than ${split.from}'s merge re-bound identities (${c.reason})`,
        event: c.eventId,
        actor: c.actor,
        before: { survivor: sorted(beforeKeys.get(split.from)), merged: [] },
      });
    }
  }
  if (mergedAway.size) {
    const doc = JSON.stringify([...mergedAway].map((m) => ({ m, s: log.find((l) => l.merged === m)!.survivor })));
    // Redirect the merged profile and everything that already redirected to it.
    await tx`
      UPDATE profiles p SET merged_into = x.s, updated_at = now()
      FROM json_to_recordset(${doc}::text::json) AS x (m uuid, s uuid)
      WHERE p.id = x.m OR p.merged_into = x.m`;
    const moves = new Map([...mergedAway].map((m) => [m, log.find((l) => l.merged === m)!.survivor]));
    await moveFlowRuns(tx, moves);
    await moveEmployeeLinks(tx, moves);
    await movePointsAndCoupons(tx, moves);
    await moveExperimentAssignments(tx, moves);
  }
  if (log.length) {
    await tx`
      INSERT INTO merges (kind, survivor_id, merged_id, reason, event_id, actor, before)
      SELECT kind, survivor, merged, reason, event, actor, before
      FROM json_to_recordset(${JSON.stringify(log)}::text::json)
        AS x (kind text, survivor uuid, merged uuid, reason text, event bigint, actor text, before jsonb)`;
  }
  return { assignment, changed, mergedAway, created, partition };
}

function sorted(keys: string[] | undefined): string[] {
  return [...(keys ?? [])].sort(compareStrings);
}

/**
 * Records guard refusals of links (deduplicated: the replay reports them again on every run).
 *
 * @example
 * await saveRefusals(tx, partition.refusals);
 */
export async function saveRefusals(tx: Tx, partition: Partition): Promise<void> {
  const rows = partition.refusals
    .filter((r) => /^\d+$/.test(r.eventId))
    .map((r) => ({ e: r.eventId, r: r.reason, t: r.type, g: r.groups }));
  if (!rows.length) return;
  await tx`
    INSERT INTO identity_refusals (event_id, reason, type, groups)
    SELECT e, r, t, ARRAY(SELECT json_array_elements_text(g))
    FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (e bigint, r text, t text, g json)
    ON CONFLICT DO NOTHING`;
}
