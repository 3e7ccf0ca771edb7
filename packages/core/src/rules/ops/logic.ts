import type { AndRule, NotRule, OrRule } from '../ast.ts';
import { join, sql } from '../sql.ts';
import type { Operator } from './types.ts';

const parens = (s: string) => (/ (and|or) /.test(s) ? `(${s})` : s);

export const and: Operator<AndRule> = {
  compile: (r, ctx, path) => ({
    truth: join(
      r.rules.map((c, i) => ctx.child(c, `${path}${path ? '.' : ''}rules.${i}`)),
      sql` AND `,
    ),
  }),
  dependencies: () => {},
  describe: (r, d) => r.rules.map((c) => parens(d(c))).join(' and '),
};

export const or: Operator<OrRule> = {
  compile: (r, ctx, path) => ({
    truth: join(
      r.rules.map((c, i) => ctx.child(c, `${path}${path ? '.' : ''}rules.${i}`)),
      sql` OR `,
    ),
  }),
  dependencies: () => {},
  describe: (r, d) => r.rules.map((c) => parens(d(c))).join(' or '),
};

export const not: Operator<NotRule> = {
  compile: (r, ctx, path) => ({ truth: sql`NOT ${ctx.child(r.rule, `${path}${path ? '.' : ''}rule`)}` }),
  dependencies: () => {},
  describe: (r, d) => `not (${d(r.rule)})`,
};
