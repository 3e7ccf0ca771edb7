import { type Rule, r, validateRule } from '@cairn/core';
import type postgres from 'postgres';
import { EVENT_MIX } from './data.ts';

// The audiences of bench:audiences: the budget's 3-condition audience and two more shapes created
// through the API (full recompute), the time-window audiences of the sweep, and the one whose exits
// the real sweep is timed on.

/** An audience as the benchmark creates it. */
export interface BenchAudience {
  key: string;
  name: string;
  rule: Rule;
}

/** Countries of the budget audience (about half the profiles, see COUNTRIES in data.ts). */
export const BUYER_COUNTRIES = ['US', 'DE', 'GB', 'FR'];

/**
 * The budget's audience: 3 conditions (an event count in a window, a trait in a list, and the
 * absence of another event in a shorter window). The latency phase makes profiles enter it.
 */
export const REPEAT_BUYERS: BenchAudience = {
  key: 'repeat_buyers',
  name: 'Repeat buyers, no cart in the last week',
  rule: r.and(
    r.performed('Order Completed', { min: 2, within: r.last(90, 'days') }),
    r.trait('country').in(...BUYER_COUNTRIES),
    r.not(r.performed('Added to Cart', { within: r.last(7, 'days') })),
  ),
};

/** Recomputed through the API after the budget's audience: other shapes of rule, for comparison. */
export const MORE_AUDIENCES: BenchAudience[] = [
  {
    key: 'high_value',
    name: 'Spent 400 or more in 90 days',
    // An aggregate of a property: the events' payloads must be read, not only the index.
    rule: r.aggregate('sum', 'Order Completed', { property: 'total', within: r.last(90, 'days') }).gte(400),
  },
  {
    key: 'broad_reach',
    name: 'Browsing buyers-to-be in four countries',
    // Three conditions again, but about half the profiles match: the writes of a large audience.
    rule: r.and(
      r.trait('country').in(...BUYER_COUNTRIES),
      r.performed('Page Viewed', { within: r.last(180, 'days') }),
      r.not(r.performed('Order Completed', { within: r.last(7, 'days') })),
    ),
  },
  {
    key: 'engaged_paid',
    name: 'Paying and viewed 3+ products in 30 days',
    rule: r.and(
      r.trait('plan').in('pro', 'business'),
      r.performed('Product Viewed', { min: 3, within: r.last(30, 'days') }),
    ),
  },
];

/** The event whose exits the real sweep is timed on (no generated event has this name). */
export const PULSE_EVENT = 'Bench Pulse';

/** `performed PULSE_EVENT in the last N minutes`. */
export function pulseAudience(minutes: number): BenchAudience {
  return {
    key: 'pulse',
    name: `Pulsed in the last ${minutes} minutes`,
    rule: r.performed(PULSE_EVENT, { within: r.last(minutes, 'minutes') }),
  };
}

const HOURS = [1, 2, 3, 4, 6, 8, 12, 18, 24, 36, 48, 72];
const NAMES = EVENT_MIX.map((e) => e.name);

/**
 * `n` time-window audiences, deterministic: mostly `performed X (at least m times) in the last N
 * hours`, every fifth one "did X in the last 1-7 days but not Y in the last M hours" (an abandonment
 * audience), every tenth one in minutes — the kinds of window a sweep has to move.
 *
 * @example
 * const audiences = timeWindowAudiences(100);
 */
export function timeWindowAudiences(n: number): BenchAudience[] {
  const out: BenchAudience[] = [];
  for (let i = 0; i < n; i++) {
    const event = NAMES[i % NAMES.length]!;
    const other = NAMES[(i + 1 + (i >> 2)) % NAMES.length]!;
    const hours = HOURS[(i * 7) % HOURS.length]!;
    const key = `tw_${String(i).padStart(3, '0')}`;
    let rule: Rule;
    let name: string;
    if (i % 5 === 4 && other !== event) {
      const days = 1 + (i % 7);
      rule = r.and(
        r.performed(event, { within: r.last(days, 'days') }),
        r.not(r.performed(other, { within: r.last(hours, 'hours') })),
      );
      name = `${event} in ${days} d, no ${other} in ${hours} h`;
    } else if (i % 10 === 9) {
      const minutes = 15 + (i % 4) * 15;
      rule = r.performed(event, { within: r.last(minutes, 'minutes') });
      name = `${event} in ${minutes} min`;
    } else {
      const min = 1 + (i % 3);
      rule = r.performed(event, { min, within: r.last(hours, 'hours') });
      name = `${event} ${min}+ in ${hours} h`;
    }
    const v = validateRule(rule);
    if (!v.ok) throw new Error(`time-window audience ${key}: ${JSON.stringify(v.issues)}`);
    out.push({ key, name, rule: v.rule });
  }
  return out;
}

/**
 * Stores audiences with their current members, set-based in SQL, without going through the API's
 * full recompute (a setup step, not a measurement): each rule's members are selected by the rule
 * compiler's own statement (`members`, the one evaluateRule runs) for `now`. The server must be
 * stopped meanwhile, so that its sweep, when it starts again, covers the time since `now`.
 *
 * @example
 * await storeAudiences(sql, timeWindowAudiences(100), new Date(), compile);
 */
export async function storeAudiences(
  sql: postgres.Sql,
  audiences: readonly BenchAudience[],
  now: Date,
  membersSql: (rule: Rule) => { text: string; values: unknown[] },
): Promise<number> {
  let members = 0;
  let next = 0;
  // Two at a time: one statement keeps one core busy, and each scans every live profile.
  const worker = async () => {
    while (next < audiences.length) {
      const a = audiences[next++]!;
      const { text, values } = membersSql(a.rule);
      const [row] = await sql.begin(async (tx) => {
        await tx`
          INSERT INTO audiences (key, name, rule, enabled, computed_at)
          VALUES (${a.key}, ${a.name}, ${tx.json(a.rule as never)}, true, ${now})`;
        // The compiler renders its own parameterised text ($1..$n); postgres.js runs such text only
        // through unsafe. Its values stay bound parameters; the audience key is added as the last one.
        return tx.unsafe<{ n: number }[]>(
          `WITH added AS (
             INSERT INTO audience_memberships (audience, profile_id, entered_at, entered_by)
             SELECT $${values.length + 1}, m.id::uuid, $${values.length + 2}::timestamptz, 'recompute'
             FROM (${text}) m
             RETURNING 1)
           SELECT count(*)::int AS n FROM added`,
          [...values, a.key, now.toISOString()] as never[],
        );
      });
      members += row!.n;
    }
  };
  await Promise.all([worker(), worker()]);
  return members;
}
