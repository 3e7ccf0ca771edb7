import { type Rule, ruleDependencies } from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import type { ReadSql } from '../../db/replica.ts';

/** An audience as the API shows it. */
export interface AudienceRow {
  key: string;
  name: string;
  description: string | null;
  rule: Rule;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  computedAt: Date | null;
  members: number;
}

/** Every audience with its current member count. */
export async function listAudiences(sql: Tx): Promise<AudienceRow[]> {
  return sql<AudienceRow[]>`
    SELECT a.key, a.name, a.description, a.rule, a.enabled, a.created_at AS "createdAt", a.updated_at AS "updatedAt",
      a.computed_at AS "computedAt",
      (SELECT count(*)::int FROM audience_memberships m WHERE m.audience = a.key AND m.exited_at IS NULL) AS members
    FROM audiences a ORDER BY a.key`;
}

/** One audience, or undefined. */
export async function getAudience(sql: Tx, key: string): Promise<AudienceRow | undefined> {
  const [row] = await sql<AudienceRow[]>`
    SELECT a.key, a.name, a.description, a.rule, a.enabled, a.created_at AS "createdAt", a.updated_at AS "updatedAt",
      a.computed_at AS "computedAt",
      (SELECT count(*)::int FROM audience_memberships m WHERE m.audience = a.key AND m.exited_at IS NULL) AS members
    FROM audiences a WHERE a.key = ${key}`;
  return row;
}

/** Every definition's rule (audiences and dynamic tags), for reference and cycle checks. */
export async function allRules(
  sql: Tx,
): Promise<{ kind: 'audience' | 'tag' | 'computed'; key: string; rule: Rule | null }[]> {
  return sql<{ kind: 'audience' | 'tag' | 'computed'; key: string; rule: Rule | null }[]>`
    SELECT 'audience' AS kind, key, rule FROM audiences
    UNION ALL SELECT 'tag', key, rule FROM tags
    UNION ALL SELECT 'computed', key, NULL FROM computed_traits`;
}

/**
 * The definitions whose rules read an audience, a tag or a computed trait (a definition in use cannot be deleted).
 *
 * @example
 * const users = await rulesReading(sql, 'tag', 'vip'); // [{ kind: 'audience', key: 'vip_buyers' }]
 */
export async function rulesReading(
  sql: Tx,
  kind: 'audience' | 'tag' | 'computed',
  key: string,
): Promise<{ kind: 'audience' | 'tag' | 'computed'; key: string }[]> {
  const field = ({ audience: 'audiences', tag: 'tags', computed: 'computed' } as const)[kind];
  return (await allRules(sql))
    .filter((d) => d.rule && ruleDependencies(d.rule)[field].has(key))
    .map(({ kind, key }) => ({ kind, key }));
}

/** A page of current members (keyset by profile id), with an identity to recognise them by. */
export async function membersPage(
  sql: Tx,
  table: 'audience' | 'tag',
  key: string,
  after: string | null,
  limit: number,
): Promise<{ profileId: string; since: Date; userId: string | null; email: string | null }[]> {
  const rows =
    table === 'audience'
      ? sql`SELECT profile_id, entered_at AS since FROM audience_memberships WHERE audience = ${key} AND exited_at IS NULL`
      : sql`SELECT profile_id, added_at AS since FROM tag_assignments WHERE tag = ${key} AND removed_at IS NULL`;
  return sql<{ profileId: string; since: Date; userId: string | null; email: string | null }[]>`
    SELECT m.profile_id::text AS "profileId", m.since,
      (SELECT value FROM identities i WHERE i.profile_id = m.profile_id AND i.type = 'userId' ORDER BY i.created_at LIMIT 1) AS "userId",
      (SELECT value FROM identities i WHERE i.profile_id = m.profile_id AND i.type = 'email' ORDER BY i.created_at LIMIT 1) AS email
    FROM (${rows}) m
    ${after ? sql`WHERE m.profile_id > ${after}::uuid` : sql``}
    ORDER BY m.profile_id
    LIMIT ${limit}`;
}

/** A profile's membership periods in an audience, newest first. */
export async function membershipHistory(
  sql: Tx,
  audience: string,
  profileId: string,
): Promise<{ enteredAt: Date; exitedAt: Date | null; enteredBy: string; exitedBy: string | null }[]> {
  return sql`
    SELECT entered_at AS "enteredAt", exited_at AS "exitedAt", entered_by AS "enteredBy", exited_by AS "exitedBy"
    FROM audience_memberships WHERE audience = ${audience} AND profile_id = ${profileId}
    ORDER BY entered_at DESC, id DESC LIMIT 100`;
}

/** Member counts over time. */
export async function audienceCounts(sql: Tx, audience: string): Promise<{ at: Date; members: number }[]> {
  return sql`SELECT at, members FROM audience_counts WHERE audience = ${audience} ORDER BY at DESC LIMIT 1000`;
}

/**
 * Members at the end of each UTC day of the last `days` (the last point is `now`), read from the
 * membership log (audience_memberships or tag_assignments): a period counts at an instant when it
 * had begun and had not yet ended.
 *
 * @example
 * const series = await dailyMemberCounts(sql, 'audience', 'vip', 30, new Date());
 * // [{ day: '2026-11-08', members: 0 }, …, { day: '2026-12-07', members: 42 }]
 */
export async function dailyMemberCounts(
  sql: ReadSql,
  kind: 'audience' | 'tag',
  key: string,
  days: number,
  now: Date,
): Promise<{ day: string; members: number }[]> {
  const periods =
    kind === 'audience'
      ? sql`SELECT entered_at AS since, exited_at AS until FROM audience_memberships
          WHERE audience = ${key} AND entered_at <= ${now}`
      : sql`SELECT added_at AS since, removed_at AS until FROM tag_assignments
          WHERE tag = ${key} AND added_at <= ${now}`;
  // Read once (MATERIALIZED), then counted at each day's end.
  return sql<{ day: string; members: number }[]>`
    WITH periods AS MATERIALIZED (${periods}),
    days AS (
      SELECT to_char(d, 'YYYY-MM-DD') AS day, LEAST((d + interval '1 day') AT TIME ZONE 'UTC', ${now}::timestamptz) AS at
      FROM generate_series(
        date_trunc('day', ${now}::timestamptz AT TIME ZONE 'UTC') - ${days - 1} * interval '1 day',
        date_trunc('day', ${now}::timestamptz AT TIME ZONE 'UTC'),
        interval '1 day'
      ) d
    )
    SELECT days.day,
      (SELECT count(*)::int FROM periods p WHERE p.since <= days.at AND (p.until IS NULL OR p.until > days.at)) AS members
    FROM days
    ORDER BY days.day`;
}
