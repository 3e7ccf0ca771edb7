import type { Sql } from '../../db/index.ts';
import { DomainError } from '../../infra/errors.ts';
import { type HandOff, handOffIds } from '../../jobs/handoff.ts';
import { getTag } from './definition-queries.ts';
import { lockProfiles } from './locks.ts';
import { recordInOrder } from './outbox.ts';
import { tagStore } from './store.ts';

/**
 * Adds (`enter`) or removes (`exit`) a static tag on a live profile, by hand: the change is kept with
 * who made it and why, recorded as a tag event after the profile's earlier changes still in the
 * outbox, and handed to fan-out (destinations) and to compute (audiences reading the tag) in the same
 * transaction. True when the profile's tags changed (false: it already had it, or did not).
 * Refuses an unknown tag (404) and a dynamic one, whose rule decides who carries it (409).
 *
 * @example
 * await changeStaticTag({ sql, handOff, clock }, profileId, 'vip', 'enter', 'api:key:k1', 'won the raffle');
 */
export async function changeStaticTag(
  deps: { sql: Sql; handOff: HandOff; clock: () => Date },
  profileId: string,
  tag: string,
  action: 'enter' | 'exit',
  actor: string,
  reason: string | null,
): Promise<boolean> {
  return (await changeStaticTagOf(deps, [profileId], tag, action, actor, reason, { liveOnly: false })) > 0;
}

/** Profiles tagged per transaction by {@link changeStaticTagOf}. */
export const STATIC_TAG_CHUNK = 500;

/**
 * {@link changeStaticTag} for many profiles (an analytics audience saved as a tag), in transactions of
 * {@link STATIC_TAG_CHUNK} profiles. With `liveOnly` (default), profiles merged away or erased since
 * the caller read them are skipped. Returns how many profiles' tags changed.
 *
 * @example
 * await changeStaticTagOf({ sql, handOff, clock }, ids, 'dropped-checkout', 'enter', 'api:key:k1', 'funnel');
 */
export async function changeStaticTagOf(
  deps: { sql: Sql; handOff: HandOff; clock: () => Date },
  profileIds: readonly string[],
  tag: string,
  action: 'enter' | 'exit',
  actor: string,
  reason: string | null,
  options: { liveOnly?: boolean } = {},
): Promise<number> {
  const { sql, handOff } = deps;
  const t = await getTag(sql, tag);
  if (!t) throw new DomainError(404, 'not_found', `no tag ${tag}`);
  if (t.rule) throw new DomainError(409, 'conflict', `tag ${tag} is dynamic: its rule decides who carries it`);
  let changed = 0;
  for (let i = 0; i < profileIds.length; i += STATIC_TAG_CHUNK) {
    const chunk = profileIds.slice(i, i + STATIC_TAG_CHUNK);
    const now = deps.clock();
    changed += await sql.begin(async (tx) => {
      await lockProfiles(tx, chunk);
      const ids =
        options.liveOnly === false
          ? chunk
          : (
              await tx<{ id: string }[]>`
                SELECT id::text FROM profiles
                WHERE id = ANY(${chunk}::uuid[]) AND merged_into IS NULL AND erased_at IS NULL`
            ).map((r) => r.id);
      const done =
        action === 'enter'
          ? await tagStore.enter(tx, tag, ids, now, actor, reason)
          : await tagStore.exit(tx, tag, ids, now, actor, reason);
      const eventIds = await recordInOrder(tx, { kind: 'tag', key: tag, name: t.name }, action, done, now, actor);
      if (eventIds.length) {
        // Destinations hear of it (fan-out), and audiences reading the tag follow (compute): handed over
        // in the transaction that recorded the change, so a crash cannot keep one without the other.
        await handOffIds(handOff, tx, 'memberships.changed', eventIds);
        await handOff(tx, 'profiles.changed', { profileIds: done });
      }
      return done.length;
    });
  }
  return changed;
}
