import type { Tx } from '../../db/index.ts';
import type { ReadSql } from '../../db/replica.ts';

// What the console's people pages read of stage 2 beyond profileView: the ids a person's history is
// kept under (merged-away profiles keep theirs until it moves), a page of their events for the mixed
// timeline, and the people seen most recently.

/**
 * Where a timeline page starts (exclusive), for one kind of item: `us` is an instant in microseconds
 * since the epoch (exact: Postgres keeps microseconds, a JS Date only milliseconds). Items at `us`
 * with an id below `id` when `id` is given; else items before `us`, or at it too when `inclusive`
 * (the cursor was an item of a kind that sorts after this one at the same instant).
 */
export interface TimelineBound {
  us: string;
  id?: string;
  inclusive?: boolean;
}

/**
 * The live profile and every profile merged into it (directly or through another): the ids its
 * events, messages and runs may still carry.
 *
 * @example
 * const ids = await profileChain(sql, profileId); // [profileId, mergedId, …]
 */
export async function profileChain(tx: Tx, id: string): Promise<string[]> {
  const rows = await tx<{ id: string }[]>`
    WITH RECURSIVE chain AS (
      SELECT id FROM profiles WHERE id = ${id}
      UNION
      SELECT p.id FROM profiles p JOIN chain c ON p.merged_into = c.id)
    SELECT id FROM chain`;
  return rows.map((r) => r.id);
}

/** An event as a timeline item: what happened, not its whole payload (its page has that). */
export interface TimelineEvent {
  id: string;
  at: Date;
  /** `at` in microseconds since the epoch (a cursor's instant). */
  atUs: string;
  type: string;
  /** The track event's name, or the page/screen name. */
  name: string | null;
  sourceId: string;
  messageId: string;
}

/**
 * The newest events of a live profile before `before`, newest first (by event time, then id), at
 * most `limit`, through events_profile_idx. (A merge moves the events to the survivor: repointEvents.)
 *
 * @example
 * const events = await timelineEvents(sql, profileId, undefined, 50);
 */
export function timelineEvents(
  tx: Tx,
  profileId: string,
  before: TimelineBound | undefined,
  limit: number,
): Promise<TimelineEvent[]> {
  const t = before && tx`(timestamptz 'epoch' + ${before.us}::bigint * interval '1 microsecond')`;
  const bound = !before
    ? tx``
    : before.id !== undefined
      ? tx`AND (timestamp, id) < (${t!}, ${before.id}::bigint)`
      : before.inclusive
        ? tx`AND timestamp <= ${t!}`
        : tx`AND timestamp < ${t!}`;
  return tx<TimelineEvent[]>`
    SELECT id::text, timestamp AS at, (extract(epoch FROM timestamp) * 1000000)::bigint::text AS "atUs", type, coalesce(event, payload->>'name') AS name,
      source_id AS "sourceId", message_id AS "messageId"
    FROM events
    WHERE profile_id = ${profileId}
      ${bound}
    ORDER BY timestamp DESC, id DESC
    LIMIT ${limit}`;
}

/** A live profile in the list of people seen recently. */
export interface RecentProfile {
  id: string;
  createdAt: Date;
  /** When its traits last took an event in (or it last merged): when the person was last seen. */
  updatedAt: Date;
  /** `updatedAt` in microseconds since the epoch (the next page's cursor). */
  updatedUs: string;
  identities: { type: string; value: string }[];
}

/**
 * Live profiles, most recently updated first, after the cursor `before` (`updatedAt` and id of the
 * previous page's last one, in microseconds since the epoch). Identities as stored (the caller opens or masks them).
 *
 * There is no index on profiles.updated_at: a page is a scan of the profiles table with a top-N
 * sort (a console page, not a hot path; an index would need a migration).
 *
 * @example
 * const page = await recentProfiles(sql, { limit: 25 });
 */
export async function recentProfiles(
  tx: ReadSql,
  q: { before?: { us: string; id: string }; limit: number },
): Promise<RecentProfile[]> {
  const b = q.before;
  const rows = await tx<Omit<RecentProfile, 'identities'>[]>`
    SELECT id, created_at AS "createdAt", updated_at AS "updatedAt",
      (extract(epoch FROM updated_at) * 1000000)::bigint::text AS "updatedUs"
    FROM profiles
    WHERE merged_into IS NULL
      AND erased_at IS NULL
      ${b ? tx`AND (updated_at, id) < (timestamptz 'epoch' + ${b.us}::bigint * interval '1 microsecond', ${b.id}::uuid)` : tx``}
    ORDER BY updated_at DESC, id DESC
    LIMIT ${q.limit}`;
  if (!rows.length) return [];
  const identities = await tx<{ profile_id: string; type: string; value: string }[]>`
    SELECT profile_id, type, value
    FROM identities
    WHERE profile_id = ANY(${rows.map((r) => r.id)}::uuid[])
    ORDER BY created_at, key`;
  return rows.map((r) => ({
    ...r,
    identities: identities.filter((i) => i.profile_id === r.id).map((i) => ({ type: i.type, value: i.value })),
  }));
}
