import type { AudienceRule, TagRule } from '../ast.ts';
import { col, sql } from '../sql.ts';
import type { Operator } from './types.ts';

/** Carries a tag now (static or dynamic). */
export const hasTag: Operator<TagRule> = {
  compile(r, ctx) {
    const a = ctx.relation(sql`
      SELECT ta.profile_id AS id, ta.added_at AS v
      FROM tag_assignments ta
      JOIN scope s ON s.id = ta.profile_id
      WHERE ta.tag = ${r.tag}::text AND ta.removed_at IS NULL`);
    return { truth: sql`${col(a, 'v')} IS NOT NULL`, value: col(a, 'v') };
  },
  dependencies: (r, deps) => void deps.tags.add(r.tag),
  describe: (r) => `has tag ${r.tag}`,
};

/** Is a member of another audience now. */
export const inAudience: Operator<AudienceRule> = {
  compile(r, ctx) {
    const a = ctx.relation(sql`
      SELECT m.profile_id AS id, m.entered_at AS v
      FROM audience_memberships m
      JOIN scope s ON s.id = m.profile_id
      WHERE m.audience = ${r.audience}::text AND m.exited_at IS NULL`);
    return { truth: sql`${col(a, 'v')} IS NOT NULL`, value: col(a, 'v') };
  },
  dependencies: (r, deps) => void deps.audiences.add(r.audience),
  describe: (r) => `is in audience ${r.audience}`,
};
