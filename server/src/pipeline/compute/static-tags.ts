import type { Sql } from '../../db/index.ts';
import { DomainError } from '../../infra/errors.ts';
import type { HandOff } from '../../jobs/handoff.ts';
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
  const { sql, handOff } = deps;
  const t = await getTag(sql, tag);
  if (!t) throw new DomainError(404, 'not_found', `no tag ${tag}`);
  if (t.rule) throw new DomainError(409, 'conflict', `tag ${tag} is dynamic: its rule decides who carries it`);
  const now = deps.clock();
  const eventIds = await sql.begin(async (tx) => {
    await lockProfiles(tx, [profileId]);
    const done =
      action === 'enter'
        ? await tagStore.enter(tx, tag, [profileId], now, actor, reason)
        : await tagStore.exit(tx, tag, [profileId], now, actor, reason);
    const ids = await recordInOrder(tx, { kind: 'tag', key: tag, name: t.name }, action, done, now, actor);
    if (ids.length) {
      // Destinations hear of it (fan-out), and audiences reading the tag follow (compute): handed over
      // in the transaction that recorded the change, so a crash cannot keep one without the other.
      await handOff(tx, 'memberships.changed', { ids });
      await handOff(tx, 'profiles.changed', { profileIds: [profileId] });
    }
    return ids;
  });
  return eventIds.length > 0;
}
