import type { Tx } from '../../db/index.ts';

// The audiences a person is or was in, for their page in the console (why: GET /api/audiences/:key/explain/:id).

/** A person's latest membership period in one audience. */
export interface PersonAudience {
  key: string;
  name: string;
  /** In it now. */
  member: boolean;
  enteredAt: Date;
  exitedAt: Date | null;
  /** 'event', 'time', 'recompute', 'merge', 'definition' */
  enteredBy: string;
  exitedBy: string | null;
  /** How many times they entered it. */
  periods: number;
}

/**
 * Every audience the profile is or was in, with its latest period: current ones first, then by name
 * (through audience_memberships_profile_idx).
 *
 * @example
 * const audiences = await audiencesOfProfile(sql, profileId);
 */
export async function audiencesOfProfile(sql: Tx, profileId: string): Promise<PersonAudience[]> {
  return sql<PersonAudience[]>`
    WITH periods AS (
      SELECT audience, entered_at, exited_at, entered_by, exited_by,
        row_number() OVER (PARTITION BY audience ORDER BY entered_at DESC, id DESC) AS n,
        count(*) OVER (PARTITION BY audience)::int AS periods
      FROM audience_memberships
      WHERE profile_id = ${profileId})
    SELECT a.key, a.name, p.exited_at IS NULL AS member, p.entered_at AS "enteredAt", p.exited_at AS "exitedAt",
      p.entered_by AS "enteredBy", p.exited_by AS "exitedBy", p.periods
    FROM periods p
    JOIN audiences a ON a.key = p.audience
    WHERE p.n = 1
    ORDER BY p.exited_at IS NULL DESC, a.name, a.key`;
}
