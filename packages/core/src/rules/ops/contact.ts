import type { ConsentRule, SubscriptionRule } from '../ast.ts';
import { col, type Fragment, sql } from '../sql.ts';
import type { Operator } from './types.ts';

/** The latest consent choice for a purpose. */
export const consent: Operator<ConsentRule> = {
  compile(r, ctx) {
    const a = ctx.relation(sql`
      SELECT DISTINCT ON (c.profile_id) c.profile_id AS id, c.granted AS v
      FROM consent_changes c
      JOIN scope s ON s.id = c.profile_id
      WHERE c.purpose = ${r.purpose}::text
      ORDER BY c.profile_id, c.at DESC, c.id DESC`);
    const v = col(a, 'v');
    const truth =
      r.state === 'granted' ? sql`${v} IS TRUE` : r.state === 'denied' ? sql`${v} IS FALSE` : sql`${v} IS NULL`;
    return { truth, value: v };
  },
  dependencies: (_r, deps) => {
    deps.consent = true;
  },
  describe: (r) =>
    r.state === 'unknown' ? `never chose about consent to ${r.purpose}` : `${r.state} consent to ${r.purpose}`,
};

// The contact point a channel reaches, as the delivery stage computes it (deliver/unsubscribe.ts
// contactFor), in the form subscriptions are keyed by. With PII protection on (the server's default)
// an email or phone trait is sealed and its blind index sits beside it (profile_traits.blind), and the
// identity key is `email:<blind index>`: both are exactly the stored contact key. A trait that is not
// protected is used as text, as before.
function contactSql(channel: string): Fragment {
  // Clear text is lower-cased for email (as contactFor does); a blind index is used as it is.
  const trait = (key: string, clear: (v: Fragment) => Fragment) =>
    sql`(SELECT coalesce(t.blind, CASE WHEN t.value #>> '{}' NOT LIKE 'enc:v1:%' THEN ${clear(sql`t.value #>> '{}'`)} END) FROM profile_traits t WHERE t.profile_id = s.id AND t.key = ${key}::text AND jsonb_typeof(t.value) = 'string')`;
  const identity = (type: string) =>
    sql`(SELECT i.key FROM identities i WHERE i.profile_id = s.id AND i.type = ${type}::text ORDER BY i.created_at, i.key LIMIT 1)`;
  if (channel === 'email')
    return sql`coalesce('email:' || ${trait('email', (v) => sql`lower(${v})`)}, ${identity('email')})`;
  if (channel === 'sms') return sql`coalesce('phone:' || ${trait('phone', (v) => v)}, ${identity('phone')})`;
  return sql`coalesce(${identity('userId')}, 'profile:' || s.id::text)`;
}

/** Subscribed or unsubscribed on a channel (and topic). */
export const subscription: Operator<SubscriptionRule> = {
  compile(r, ctx) {
    const a = ctx.relation(sql`
      SELECT c.id, c.contact AS v, EXISTS (
        SELECT 1 FROM subscriptions u
        WHERE u.contact = c.contact AND u.channel = ${r.channel}::text
          AND u.topic IN ('', ${r.topic ?? ''}::text) AND NOT u.subscribed
      ) AS unsubscribed
      FROM (SELECT s.id, ${contactSql(r.channel)} AS contact FROM scope s) c
      WHERE c.contact IS NOT NULL`);
    const u = col(a, 'unsubscribed');
    return { truth: r.state === 'unsubscribed' ? sql`${u} IS TRUE` : sql`${u} IS FALSE`, value: col(a, 'v') };
  },
  dependencies: (_r, deps) => {
    deps.subscriptions = true;
  },
  describe: (r) =>
    `${r.state} ${r.state === 'subscribed' ? 'to' : 'from'} ${r.channel}${r.topic ? ` (${r.topic})` : ''}`,
};
