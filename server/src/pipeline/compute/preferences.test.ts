import { randomUUID } from 'node:crypto';
import { r } from '@cairn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  settle,
  startTestCairn,
  type TestDatabase,
  until,
} from '../../testing/index.ts';
import { expected, generate, localTime, type Sent } from './preferences-oracle.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
const DAY = 86_400_000;

describe.each(['postgres', 'embedded'] as const)('behaviour preferences and scores on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  const run = randomUUID().slice(0, 8);
  // The windows reach back past the 2026 autumn DST changes the generator puts events on.
  const W = Math.ceil((Date.now() - Date.UTC(2026, 9, 20)) / DAY);
  const api = (path: string, init?: RequestInit) => adminApi(cairn.url)(path, init);
  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });

  const DEFINITIONS: Record<string, unknown> = {
    active_hour: { kind: 'active_time', part: 'hour', withinDays: W },
    active_weekday: { kind: 'active_time', part: 'weekday', withinDays: W },
    preferred: { kind: 'preferred', event: 'Product Viewed', property: 'category', halfLifeDays: 30 },
    coupons: { kind: 'coupons', windowDays: W },
    price_sensitivity: { kind: 'price_sensitivity' },
    repurchase_cycle: { kind: 'repurchase_cycle' },
    preferred_channel: { kind: 'preferred_channel', halfLifeDays: 30 },
    activity: { kind: 'activity', halfLifeDays: 14, windowDays: 180, weights: { 'Order Completed': 3 } },
    virality: { kind: 'virality', shares: ['Product Shared'], invites: ['Invite Sent'] },
    weighted: {
      kind: 'weighted',
      terms: [
        { trait: 'activity', weight: 0.5 },
        { trait: 'price_sensitivity', weight: 10 },
        { trait: 'coupons.rate', weight: 2 },
      ],
    },
  };

  /** The engine's values per userId, and when each was computed. */
  async function actual(): Promise<{ values: Map<string, Record<string, unknown>>; at: Map<string, number> }> {
    const rows = await cairn.sql<{ userId: string; key: string; value: unknown; at: Date }[]>`
      SELECT i.value AS "userId", c.key, c.value, c.computed_at AS at
      FROM computed_trait_values c
      JOIN identities i ON i.profile_id = c.profile_id AND i.type = 'userId'
      WHERE i.value LIKE ${`${run}-%`}`;
    const values = new Map<string, Record<string, unknown>>();
    const at = new Map<string, number>();
    for (const row of rows) {
      values.set(row.userId, { ...values.get(row.userId), [row.key]: row.value });
      if (row.key === 'activity') at.set(row.userId, row.at.getTime());
    }
    return { values, at };
  }

  /** Differences between engine and oracle ([] when equal); numbers equal to 3 decimals (float sums). */
  function differences(sent: readonly Sent[], got: Awaited<ReturnType<typeof actual>>): string[] {
    const now = Date.now();
    const want = expected(sent, now, W);
    const diffs: string[] = [];
    const close = (a: unknown, b: unknown): boolean =>
      typeof a === 'number' && typeof b === 'number'
        ? Math.abs(a - b) < 1e-3
        : a && b && typeof a === 'object' && typeof b === 'object'
          ? Object.keys({ ...a, ...b }).every((k) => close((a as Any)[k], (b as Any)[k]))
          : a === b;
    for (const [userId, w] of want) {
      // The activity score ages from the start of the UTC day it was computed in.
      const ref = got.at.get(userId);
      const e = ref && Math.floor(ref / DAY) !== Math.floor(now / DAY) ? expected(sent, ref, W).get(userId)! : w;
      const g = got.values.get(userId) ?? {};
      for (const key of Object.keys(DEFINITIONS)) {
        const [a, b] = [g[key], key === 'activity' || key === 'weighted' ? e[key] : w[key]];
        if (!close(a ?? null, b ?? null))
          diffs.push(`${userId} ${key}: engine ${JSON.stringify(a)}, oracle ${JSON.stringify(b)}`);
      }
    }
    return diffs;
  }

  async function matchOracle(sent: readonly Sent[]) {
    let last: string[] = [];
    await until(
      'engine equals oracle',
      async () => {
        last = differences(sent, await actual());
        return last.length === 0;
      },
      { tries: 600, intervalMs: 100 },
    ).catch(() => {});
    expect(last.slice(0, 20)).toEqual([]);
  }

  beforeAll(async () => {
    db = await createTestDatabase(`preferences.test.ts:${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_COMPUTE_SWEEP_S: '0.3' });
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('the oracle reads local time through DST: 00:20 and 01:40 UTC on 25 Oct 2026 are 02:20 and 02:40 in Berlin', () => {
    expect(localTime(Date.parse('2026-10-25T00:20:00Z'), 'Europe/Berlin')).toEqual({ hour: 2, weekday: 7 });
    expect(localTime(Date.parse('2026-10-25T01:40:00Z'), 'Europe/Berlin')).toEqual({ hour: 2, weekday: 7 });
    expect(localTime(Date.parse('2026-11-01T05:20:00Z'), 'America/New_York')).toEqual({ hour: 1, weekday: 7 });
    expect(localTime(Date.parse('2026-11-01T06:40:00Z'), 'America/New_York')).toEqual({ hour: 1, weekday: 7 });
  });

  it('every preference and score equals the independent evaluator, after a full computation and incrementally', async () => {
    const people = mode === 'postgres' ? 60 : 30;
    const sent = generate(run, people, Date.now(), W);
    const key = cairn.demoSource!.writeKey;
    // The messages' destinations (disabled: nothing is sent to them): a plugin's channel, an own channel.
    await cairn.sql`
      INSERT INTO destinations (id, name, plugin, settings, channel, enabled) VALUES
        (${`${run}-mail`}, 'mail', 'email-smtp', '{}', NULL, false),
        (${`${run}-sms`}, 'sms', 'sms-http', '{}', NULL, false),
        (${`${run}-hook`}, 'hook', 'webhook', '{}', 'push', false)`;
    for (let i = 0; i < sent.length; i += 400) await sendEvents(cairn, key, sent.slice(i, i + 400));
    await settle(cairn.sql, { timeoutMs: 60_000 });
    // Full computation: each definition is computed for every profile when created.
    for (const [k, definition] of Object.entries(DEFINITIONS)) {
      const res = await post('/computed-traits', { key: k, name: k, definition });
      expect(res.status, res.text).toBe(201);
    }
    await matchOracle(sent);
    // Incremental: more events for some people (and sign-ups naming others), kept current by batches and sweeps.
    // p0 sends nothing more: its referred sign-up count moves with a newcomer's event (found by the sweep).
    const inviter = `${run}-p0`;
    const newcomer: Sent = {
      type: 'track',
      userId: `${run}-newcomer`,
      event: 'Signed Up',
      timestamp: new Date(Date.now() - 60_000).toISOString(),
      properties: { referrer: inviter },
    };
    const more = [
      ...generate(run, people, Date.now(), W, 11).filter((e, i) => i % 3 === 0 && e.userId !== inviter),
      newcomer,
    ];
    await sendEvents(cairn, key, more);
    await settle(cairn.sql, { timeoutMs: 60_000 });
    await matchOracle([...sent, ...more]);
    const others = [...sent, ...more.filter((e) => e !== newcomer)];
    const before = expected(others, Date.now(), W).get(inviter)?.virality as { signups: number } | undefined;
    expect((await actual()).values.get(inviter)?.virality).toMatchObject({ signups: (before?.signups ?? 0) + 1 });
  }, 300_000);

  it('"coupon-sensitive" (>= 5 coupons in the window, >= 70% redeemed) as an audience rule over the computed traits', async () => {
    const res = await post('/audiences', {
      key: 'coupon_sensitive',
      name: 'Coupon-sensitive',
      rule: r.and(r.computed('coupons.issued').gte(5), r.computed('coupons.rate').gte(0.7)),
    });
    expect(res.status, res.text).toBe(201);
    await until('audience computed', async () => (await api('/audiences/coupon_sensitive')).body.computedAt);
    const members = await cairn.sql<{ userId: string }[]>`
      SELECT i.value AS "userId"
      FROM audience_memberships m
      JOIN identities i ON i.profile_id = m.profile_id AND i.type = 'userId'
      WHERE m.audience = 'coupon_sensitive' AND m.exited_at IS NULL`;
    const values = (await actual()).values;
    const want = [...values]
      .filter(([, v]) => {
        const c = v.coupons as { issued: number; rate: number | null } | undefined;
        return !!c && c.issued >= 5 && (c.rate ?? 0) >= 0.7;
      })
      .map(([u]) => u)
      .sort();
    expect(want.length).toBeGreaterThan(0);
    expect(members.map((m) => m.userId).sort()).toEqual(want);
  }, 120_000);
});
