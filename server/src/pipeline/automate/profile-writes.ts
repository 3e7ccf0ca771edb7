import type { Effect, JsonObject } from '@cairn/core';
import type { Transaction, Tx } from '../../db/index.ts';
import type { HandOff } from '../../jobs/handoff.ts';
import type { Logger } from '../../log.ts';
import type { Pii } from '../../pii/index.ts';
import { lockProfiles } from '../compute/locks.ts';
import { recordInOrder } from '../compute/outbox.ts';
import { tagStore } from '../compute/store.ts';

// A flow's `update_profile`, written by the step's transaction through the paths the other stages
// already own, so nothing downstream needs to know flows exist:
//
// - traits: an `identify` event of the person (source `cairn`, messageId = the effect's key) handed to
//   stage 2 as `events.stored`. Traits are the fold of a person's events (identify/state.ts), so a trait
//   written anywhere else would be lost at the next refold (a merge, an earlier event arriving late).
//   As an event it is folded, sealed where sensitive, kept in the profile's history with its source,
//   sent to destinations, and handed on to stage 3 (audiences, computed traits, dynamic tags) and back
//   to stage 4 (trait_changed), like any identify call. The key makes a replay insert nothing.
// - static tags: stage 3's own store and change events, as `POST /api/profiles/:id/tags` does
//   (compute/static-tags.ts), under its profile lock; adding a tag the person carries does nothing.

/** One step's profile update, with the flow that asked for it. */
export type ProfileUpdate = Extract<Effect, { type: 'update_profile' }> & {
  profileId: string;
  flow: { id: string; runId: string };
};

/** What writing profile updates needs. */
export interface ProfileWriteDeps {
  handOff: HandOff;
  pii: Pick<Pii, 'sealPayload' | 'openValue'>;
  log: Pick<Logger, 'error'>;
}

/**
 * Writes the profile updates of a transaction's steps: trait changes as identify events handed to
 * stage 2, static tags added and removed with their change events. Tags that do not exist or are
 * dynamic (their rule decides) are skipped with a warning, as a publish with the tag list refuses them.
 *
 * @example
 * await writeProfileUpdates(tx, deps, updates, now);
 */
export async function writeProfileUpdates(
  tx: Transaction,
  deps: ProfileWriteDeps,
  updates: readonly ProfileUpdate[],
  now: number,
): Promise<void> {
  if (!updates.length) return;
  await writeTraits(
    tx,
    deps,
    updates.filter((u) => Object.keys(u.set).length || u.unset.length),
    now,
  );
  await writeTags(
    tx,
    deps,
    updates.filter((u) => u.addTags.length || u.removeTags.length),
    now,
  );
}

// The identity an event needs to be attached to the person by stage 2: a userId, else an anonymousId,
// else a custom id, else an email or phone (opened: sensitive identities are stored sealed).
async function identitiesOf(
  tx: Tx,
  profileIds: readonly string[],
): Promise<Map<string, { type: string; value: string }>> {
  const rows = await tx<{ p: string; type: string; value: string }[]>`
    SELECT DISTINCT ON (profile_id) profile_id::text AS p, type, value
    FROM identities
    WHERE profile_id = ANY(${profileIds as string[]}::uuid[])
    ORDER BY profile_id,
      CASE WHEN type = 'userId' THEN 0 WHEN type = 'anonymousId' THEN 1 WHEN type LIKE 'x:%' THEN 2 ELSE 3 END,
      created_at, key`;
  return new Map(rows.map((r) => [r.p, { type: r.type, value: r.value }]));
}

function identityFields(id: { type: string; value: string }, pii: Pick<Pii, 'openValue'>): JsonObject {
  const value = String(pii.openValue(id.value));
  if (id.type === 'userId') return { userId: value };
  if (id.type === 'anonymousId') return { anonymousId: value };
  if (id.type.startsWith('x:'))
    return { context: { externalIds: [{ type: id.type.slice(2), id: value, collection: 'users' }] } };
  return { context: { traits: { [id.type]: value } } };
}

async function writeTraits(tx: Transaction, deps: ProfileWriteDeps, updates: readonly ProfileUpdate[], now: number) {
  if (!updates.length) return;
  const who = await identitiesOf(
    tx,
    updates.map((u) => u.profileId),
  );
  const at = new Date(now).toISOString();
  const rows: { m: string; u: string | null; a: string | null; p: JsonObject }[] = [];
  for (const u of updates) {
    const id = who.get(u.profileId);
    if (!id) {
      deps.log.error(`flow ${u.flow.id}: ${u.profileId} has no identity left; traits of ${u.key} not written`);
      continue;
    }
    const fields = identityFields(id, deps.pii);
    const context = { ...((fields.context as JsonObject | undefined) ?? {}) };
    const traits: JsonObject = { ...u.set };
    if (u.unset.length) traits.$unset = [...u.unset];
    const payload: JsonObject = {
      type: 'identify',
      messageId: u.key,
      ...fields,
      traits,
      timestamp: at,
      receivedAt: at,
      context: { ...context, library: { name: 'cairn' }, flow: { id: u.flow.id, runId: u.flow.runId, node: u.node } },
    };
    rows.push({
      m: u.key,
      u: typeof fields.userId === 'string' ? fields.userId : null,
      a: typeof fields.anonymousId === 'string' ? fields.anonymousId : null,
      p: deps.pii.sealPayload(payload),
    });
  }
  if (!rows.length) return;
  // The effect's key is the messageId: a step replayed after a crash inserts nothing twice.
  const inserted = await tx<{ id: string }[]>`
    INSERT INTO events (source_id, message_id, type, user_id, anonymous_id, timestamp, received_at, payload)
    SELECT 'cairn', m, 'identify', u, a, ${at}::timestamptz, ${at}::timestamptz, p
    FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS x (m text, u text, a text, p jsonb)
    -- A (source_id, message_id) already stored is refused by the events_dedup trigger (migration 0034).
    RETURNING id::text`;
  if (inserted.length) await deps.handOff(tx, 'events.stored', { ids: inserted.map((r) => r.id) });
}

async function writeTags(tx: Transaction, deps: ProfileWriteDeps, updates: readonly ProfileUpdate[], now: number) {
  if (!updates.length) return;
  const keys = [...new Set(updates.flatMap((u) => [...u.addTags, ...u.removeTags]))];
  const defs = await tx<{ key: string; name: string; dynamic: boolean }[]>`
    SELECT key, name, rule IS NOT NULL AS dynamic FROM tags WHERE key = ANY(${keys}::text[])`;
  const statics = new Map(defs.filter((d) => !d.dynamic).map((d) => [d.key, d.name]));
  for (const k of keys)
    if (!statics.has(k))
      deps.log.error(
        `flows: tag ${k} is ${defs.some((d) => d.key === k) ? 'dynamic' : 'unknown'}; not changed by flows`,
      );
  const people = [...new Set(updates.map((u) => u.profileId))];
  await lockProfiles(tx, people);
  const at = new Date(now);
  const ids: string[] = [];
  const changed = new Set<string>();
  for (const u of updates) {
    const by = `flow:${u.flow.id}`;
    const reason = `flow ${u.flow.id}, node ${u.node} (${u.key})`;
    for (const [list, change] of [
      [u.addTags, 'enter'],
      [u.removeTags, 'exit'],
    ] as const) {
      for (const tag of list) {
        const name = statics.get(tag);
        if (name === undefined) continue;
        const done =
          change === 'enter'
            ? await tagStore.enter(tx, tag, [u.profileId], at, by, reason)
            : await tagStore.exit(tx, tag, [u.profileId], at, by, reason);
        if (!done.length) continue;
        ids.push(...(await recordInOrder(tx, { kind: 'tag', key: tag, name }, change, done, at, by)));
        changed.add(u.profileId);
      }
    }
  }
  if (!ids.length) return;
  // As a tag changed through the API: destinations and flows hear of it (memberships.changed), and
  // audiences reading the tag follow (profiles.changed), in the transaction that made the change.
  await deps.handOff(tx, 'memberships.changed', { ids });
  await deps.handOff(tx, 'profiles.changed', { profileIds: [...changed] });
}
