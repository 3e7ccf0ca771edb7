import { randomUUID } from 'node:crypto';
import { r } from '@cairn/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
const DAY = 86_400_000;

describe.each(['postgres', 'embedded'] as const)('stage 3: tags and audiences on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let key: string;
  // The rules' clock: tests move it forward; events carry real timestamps.
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const run = randomUUID().slice(0, 8);
  const id = (name: string) => `${name}-${run}`;

  const send = (...events: object[]) => sendEvents(cairn, key, events);
  const api = (path: string, init?: RequestInit) => adminApi(cairn.url)(path, init);
  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });
  const profileOf = async (userId: string): Promise<string> =>
    until(`profile of ${userId}`, async () => {
      const res = await api(`/profiles?userId=${userId}`);
      return res.body?.data?.[0]?.id as string | undefined;
    });
  const isMember = async (audience: string, profileId: string) =>
    (await api(`/audiences/${audience}/explain/${profileId}`)).body.member as boolean;
  const changeEvents = async (profileId: string, name: string) =>
    (
      await cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM events WHERE profile_id = ${profileId} AND event = ${name}`
    )[0]!.n;
  const createAudience = async (k: string, rule: unknown) => {
    const res = await post('/audiences', { key: k, name: k, rule });
    expect(res.status, res.text).toBe(201);
    await until(`${k} computed`, async () => (await api(`/audiences/${k}`)).body.computedAt);
  };

  beforeAll(async () => {
    db = await createTestDatabase(`compute.test.ts:${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_COMPUTE_SWEEP_S: '0.2' }, { clock: now });
    key = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('"added to cart in the last 24 h and no order": in on the event, out when the 24 h pass, once', async () => {
    await createAudience(
      'cart_no_order',
      r.and(
        r.performed('Added to Cart', { within: r.last(24, 'hours') }),
        r.not(r.performed('Order Completed', { within: r.last(24, 'hours') })),
      ),
    );
    const [u1, u2] = [id('cart1'), id('cart2')];
    await send(
      { type: 'track', userId: u1, event: 'Added to Cart', properties: { sku: 'A' } },
      { type: 'track', userId: u2, event: 'Added to Cart', properties: { sku: 'B' } },
    );
    const [p1, p2] = [await profileOf(u1), await profileOf(u2)];
    await until('both enter', async () => (await isMember('cart_no_order', p1)) && isMember('cart_no_order', p2));
    // An order takes u2 out at once.
    await send({ type: 'track', userId: u2, event: 'Order Completed', properties: { total: 50 } });
    await until('u2 leaves on its order', async () => !(await isMember('cart_no_order', p2)));
    const why = (await api(`/audiences/cart_no_order/explain/${p2}`)).body;
    expect(why.matches).toBe(false);
    expect(why.tree.children[1]).toMatchObject({ result: false, children: [{ result: true, value: 1 }] });
    // No new event: 24 h pass on the rules' clock, and the sweep takes u1 out.
    expect(await isMember('cart_no_order', p1)).toBe(true);
    offset += DAY + 60_000;
    await until('u1 leaves with time', async () => !(await isMember('cart_no_order', p1)));
    await new Promise((res) => setTimeout(res, 600)); // several more sweeps
    expect(await changeEvents(p1, 'audience.entered')).toBe(1);
    expect(await changeEvents(p1, 'audience.exited')).toBe(1);
    const history = (await api(`/audiences/cart_no_order/explain/${p1}`)).body.history;
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ enteredBy: 'event', exitedBy: 'time' });
  });

  it("the brief's examples: dormant high AOV, registered a week ago without an order, birthday within 7 days", async () => {
    offset = 0;
    const t = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY).toISOString();
    const [dormant, recent, fresh, ordered, bday, noBday] = [
      'dormant',
      'recent',
      'fresh',
      'ordered',
      'bday',
      'nobday',
    ].map(id);
    await send(
      // Two orders 120 and 170 days ago, AOV 600: dormant and high value.
      { type: 'track', userId: dormant, event: 'Order Completed', properties: { total: 500 }, timestamp: t(170) },
      { type: 'track', userId: dormant, event: 'Order Completed', properties: { total: 700 }, timestamp: t(120) },
      // High value but ordered 10 days ago: not dormant.
      { type: 'track', userId: recent, event: 'Order Completed', properties: { total: 900 }, timestamp: t(100) },
      { type: 'track', userId: recent, event: 'Order Completed', properties: { total: 900 }, timestamp: t(10) },
      { type: 'identify', userId: fresh, traits: { signed_up_at: t(8) } },
      { type: 'identify', userId: ordered, traits: { signed_up_at: t(9) } },
      { type: 'track', userId: ordered, event: 'Order Completed', properties: { total: 20 }, timestamp: t(1) },
      { type: 'identify', userId: bday, traits: { birthday: `1990-${t(-3).slice(5, 10)}` } },
      { type: 'identify', userId: noBday, traits: { birthday: `1990-${t(-30).slice(5, 10)}` } },
    );
    const ids = await Promise.all([dormant, recent, fresh, ordered, bday, noBday].map((u) => profileOf(u!)));
    await createAudience(
      'dormant_high_aov',
      r.and(
        r.not(r.performed('Order Completed', { within: r.last(90, 'days') })),
        r.aggregate('avg', 'Order Completed', { property: 'total' }).gte(500),
        r.performed('Order Completed', { min: 2, within: r.last(180, 'days') }),
      ),
    );
    await createAudience(
      'no_first_order',
      r.and(r.trait('signed_up_at').olderThan(7), r.not(r.performed('Order Completed'))),
    );
    await createAudience('birthday_week', r.trait('birthday').anniversaryWithin(7));
    const members = async (k: string) =>
      new Set((await api(`/audiences/${k}/members?limit=1000`)).body.data.map((m: Any) => m.profileId));
    const [pDormant, pRecent, pFresh, pOrdered, pBday, pNoBday] = ids as string[];
    const dormantSet = await members('dormant_high_aov');
    expect(dormantSet.has(pDormant)).toBe(true);
    expect(dormantSet.has(pRecent)).toBe(false);
    const noOrder = await members('no_first_order');
    expect(noOrder.has(pFresh)).toBe(true);
    expect(noOrder.has(pOrdered)).toBe(false);
    const birthdays = await members('birthday_week');
    expect(birthdays.has(pBday)).toBe(true);
    expect(birthdays.has(pNoBday)).toBe(false);
    // The recomputed members got their entered events; a later order takes "fresh" out by event.
    expect(await changeEvents(pFresh!, 'audience.entered')).toBe(1);
    await send({ type: 'track', userId: fresh, event: 'Order Completed', properties: { total: 5 } });
    await until('fresh leaves', async () => !(await isMember('no_first_order', pFresh!)));
  });

  it('tags: static by API with history, dynamic by rule, audiences of tags follow', async () => {
    expect((await post('/tags', { key: 'vip', name: 'VIP' })).status).toBe(201);
    expect(
      (
        await post('/tags', {
          key: 'big_spender',
          name: 'Big spender',
          rule: r.aggregate('sum', 'Order Completed', { property: 'total' }).gte(1000),
        })
      ).status,
    ).toBe(201);
    await createAudience('vip_or_big', r.or(r.hasTag('vip'), r.hasTag('big_spender')));
    const [a, b] = [id('tag-a'), id('tag-b')];
    await send(
      { type: 'identify', userId: a, traits: { name: 'A' } },
      { type: 'track', userId: b, event: 'Order Completed', properties: { total: 1200 } },
    );
    const [pa, pb] = [await profileOf(a), await profileOf(b)];
    await until('b gets the dynamic tag and the audience', async () => isMember('vip_or_big', pb));
    expect((await api(`/profiles/${pb}/tags`)).body.current).toEqual(['big_spender']);
    expect((await post(`/profiles/${pa}/tags`, { tag: 'vip', reason: 'met at the fair' })).body).toEqual({
      changed: true,
    });
    expect((await post(`/profiles/${pa}/tags`, { tag: 'vip' })).body).toEqual({ changed: false });
    await until('a enters through its static tag', async () => isMember('vip_or_big', pa));
    expect((await post(`/profiles/${pa}/tags`, { tag: 'big_spender' })).status).toBe(409);
    expect((await api(`/profiles/${pa}/tags/vip?reason=left`, { method: 'DELETE' })).body).toEqual({ changed: true });
    await until('a leaves with its tag', async () => !(await isMember('vip_or_big', pa)));
    const tags = (await api(`/profiles/${pa}/tags`)).body;
    expect(tags.current).toEqual([]);
    expect(tags.history[0]).toMatchObject({ tag: 'vip', addedReason: 'met at the fair', removedReason: 'left' });
    expect(await changeEvents(pa, 'tag.added')).toBe(1);
    expect(await changeEvents(pa, 'tag.removed')).toBe(1);
    // In use: neither the tag nor the audience it feeds can be deleted from under the rule.
    expect((await api('/tags/vip', { method: 'DELETE' })).status).toBe(409);
  });

  it('refuses bad rules with the field at fault, unknown references and cycles; previews without saving', async () => {
    const bad = await post('/audiences', {
      key: 'bad',
      name: 'bad',
      rule: { op: 'and', rules: [{ op: 'trait', trait: 'age', cmp: '>=', value: true }] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toBe('rule.rules.0.value: booleans cannot be ordered');
    const typo = await post('/audiences', { key: 'typo', name: 't', rule: { op: 'performd', event: 'x' } });
    expect(typo.body.error.message).toMatch(/^rule\.op: unknown op "performd"/);
    // Messages name what is valid: every comparison, and what a missing rule is.
    const cmp = await post('/audiences', { key: 'cmp', name: 'c', rule: { op: 'trait', trait: 'plan', cmp: 'eq' } });
    expect(cmp.body.error.message).toBe(
      'rule.cmp: "eq" is not a comparison; one of =, !=, <, <=, >, >=, between, in, contains, starts_with, regex, ' +
        'exists, is_empty, within_last, within_next, older_than, anniversary_within',
    );
    const none = await post('/audiences', { key: 'none', name: 'n' });
    expect(none.status).toBe(400);
    expect(none.body.error.message).toMatch(
      /^rule: required: a rule object with an "op": one of and, or, not, trait, /,
    );
    const type = await post('/audiences', { key: 'type', name: 3, rule: r.trait('plan').exists() });
    expect(type.body.error.message).toBe('name: expected a string, got the number 3');
    const regex = await post('/audiences', { key: 'rx', name: 'r', rule: r.trait('name').matches('a{2,1}') });
    expect(regex.status).toBe(400);
    expect(
      (await post('/audiences', { key: 'ref', name: 'r', rule: r.inAudience('nope') })).body.error.message,
    ).toMatch(/audience nope, which does not exist/);
    await createAudience('loop_a', r.trait('plan').eq('pro'));
    await createAudience('loop_b', r.inAudience('loop_a'));
    const cycle = await api('/audiences/loop_a', {
      method: 'PATCH',
      body: JSON.stringify({ rule: r.inAudience('loop_b') }),
    });
    expect(cycle.status).toBe(400);
    expect(cycle.body.error.message).toMatch(/cycle: audience loop_a → audience loop_b → audience loop_a/);
    expect((await api('/audiences/loop_a', { method: 'DELETE' })).status).toBe(409);
    const preview = await post('/audiences/preview', { rule: r.performed('Order Completed'), sample: 2 });
    expect(preview.status).toBe(200);
    expect(preview.body.count).toBeGreaterThanOrEqual(4);
    expect(preview.body.sample).toHaveLength(2);
    expect(preview.body.words).toBe('performed "Order Completed"');
    expect((await api('/audiences')).body.data.some((x: Any) => x.key === 'preview')).toBe(false);
  });

  it('members page and export as CSV', async () => {
    const all = (await api('/audiences/dormant_high_aov/members?limit=1')).body;
    expect(all.data).toHaveLength(1);
    const csv = await api('/audiences/no_first_order/members?format=csv');
    expect(csv.status).toBe(200);
    expect(csv.text.split('\n')[0]).toBe('profile_id,since,user_id,email');
  });

  it('audience changes reach destinations as track events (audience sync)', async () => {
    const server = await startReceiver();
    try {
      const url = server.url;
      const dest = await post('/destinations', {
        name: 'audience sync',
        plugin: 'webhook',
        settings: { url },
        filter: { event: ['audience.entered', 'audience.exited'] },
      });
      expect(dest.status, dest.text).toBe(201);
      await createAudience('synced', r.performed('Wishlisted'));
      const u = id('sync');
      await send({ type: 'track', userId: u, event: 'Wishlisted' });
      const p = await profileOf(u);
      const hit = await until(
        'the audience.entered event at the webhook',
        async () =>
          server.accepted.find((r) => r.body.event?.event === 'audience.entered' && r.body.event?.userId === u)?.body,
      );
      expect(hit.event.properties).toMatchObject({ audience: { key: 'synced', name: 'synced' }, reason: 'event' });
      expect(hit.profile?.id ?? p).toBe(p);
    } finally {
      await server.close();
    }
  });

  it('consent set by staff, event types, and erasure: memberships follow and are erased with the person', async () => {
    await createAudience('marketing_ok', r.consent('marketing', 'granted'));
    await createAudience('pricing_page', r.performed('Pricing', { type: 'page' }));
    const u = id('consent');
    await send({ type: 'identify', userId: u, traits: { name: 'C' } }, { type: 'track', userId: u, event: 'Pricing' });
    const p = await profileOf(u);
    await until('processed', async () => (await changeEvents(p, 'Pricing')) === 1);
    expect(await isMember('marketing_ok', p)).toBe(false);
    const put = await api(`/profiles/${p}/consent`, {
      method: 'PUT',
      body: JSON.stringify({ purposes: { marketing: true } }),
    });
    expect(put.status).toBe(200);
    await until('enters on the staff change, without an event', async () => isMember('marketing_ok', p));
    // A track event named like the page does not count; the page does.
    expect(await isMember('pricing_page', p)).toBe(false);
    await send({ type: 'page', userId: u, name: 'Pricing' });
    await until('enters on the page view', async () => isMember('pricing_page', p));
    expect((await api(`/profiles/${p}`, { method: 'DELETE' })).status).toBe(200);
    const left = await cairn.sql<{ n: number }[]>`
      SELECT (SELECT count(*) FROM audience_memberships WHERE profile_id = ${p})
        + (SELECT count(*) FROM tag_assignments WHERE profile_id = ${p})
        + (SELECT count(*) FROM computed_trait_values WHERE profile_id = ${p}) AS n`;
    expect(Number(left[0]!.n)).toBe(0);
  });

  it('computed traits: RFM tiers, lifecycle, AOV, last order, preferred category, active hour; rules read them', async () => {
    offset = 0;
    const t = (daysAgo: number, hour = 10) => {
      const d = new Date(Date.now() - daysAgo * DAY);
      d.setUTCHours(hour, 0, 0, 0);
      return d.toISOString();
    };
    for (const preset of [
      'rfm',
      'lifecycle_stage',
      'average_order_value',
      'last_order_date',
      'preferred_category',
      'most_active_hour',
    ])
      expect((await post(`/computed-traits/presets/${preset}`, {})).status).toBe(201);
    const custom = await post('/computed-traits', {
      key: 'categories_seen',
      name: 'Categories seen',
      definition: { kind: 'aggregate', fn: 'unique_count', event: 'Product Viewed', property: 'category' },
    });
    expect(custom.status, custom.text).toBe(201);
    const bad = await post('/computed-traits', {
      key: 'bad',
      name: 'b',
      definition: { kind: 'aggregate', fn: 'sum', event: 'x' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toBe('definition.property: sum needs a property');
    await createAudience('rfm_high_value', r.computed('rfm.segment').eq('high value'));
    const order = (userId: string, daysAgo: number, total: number) => ({
      type: 'track',
      userId,
      event: 'Order Completed',
      properties: { total },
      timestamp: t(daysAgo, 21),
    });
    const [best, mid, risk, back, fresh] = ['rfm-best', 'rfm-mid', 'rfm-risk', 'won-back', 'newbie'].map(id) as [
      string,
      string,
      string,
      string,
      string,
    ];
    await send(
      // R 1 (5 days), F 1 (5 orders in 90 days), M 1 (1,250): score 3, high value.
      ...[5, 20, 40, 60, 80].map((d) => order(best, d, 250)),
      // R 2 (45 days), F 2 (3 orders), M 2 (600): score 6, potential.
      ...[45, 50, 70].map((d) => order(mid, d, 200)),
      // R 3 (200 days), F 3 (none in 90 days), M 3: score 9, at risk.
      order(risk, 200, 100),
      // Silent for 150 days, then back: won back.
      order(back, 160, 10),
      order(back, 3, 10),
      { type: 'identify', userId: fresh, traits: { name: 'New' } },
      { type: 'track', userId: best, event: 'Product Viewed', properties: { category: 'shoes' }, timestamp: t(3, 21) },
      { type: 'track', userId: best, event: 'Product Viewed', properties: { category: 'shoes' }, timestamp: t(2, 21) },
      { type: 'track', userId: best, event: 'Product Viewed', properties: { category: 'hats' }, timestamp: t(1, 9) },
    );
    const [pBest, pMid, pRisk] = [await profileOf(best), await profileOf(mid), await profileOf(risk)];
    const computed = async (p: string) => (await api(`/profiles/${p}/computed-traits`)).body;
    const b = await until('best computed', async () => {
      const v = await computed(pBest);
      // Every trait the checks below read: each is computed by its own job, in no set order.
      const all = ['rfm', 'average_order_value', 'last_order_date', 'preferred_category', 'most_active_hour'];
      return v.categories_seen?.value === 2 && all.every((k) => v[k]) && v.lifecycle_stage?.value === 'active' && v;
    });
    expect(b.rfm.value).toMatchObject({ r: 1, f: 1, m: 1, score: 3, segment: 'high value', orders: 5, revenue: 1250 });
    expect(b.average_order_value.value).toBe(250);
    expect(b.last_order_date.value).toBe(t(5, 21).replace('.000Z', '+00:00'));
    expect(b.preferred_category.value).toBe('shoes');
    expect(b.most_active_hour.value).toBe(21);
    expect(b.lifecycle_stage.value).toBe('active');
    const stage = async (u: string) =>
      until(`stage of ${u}`, async () => (await computed(await profileOf(u))).lifecycle_stage?.value as string);
    expect(await stage(back)).toBe('won_back');
    expect(await stage(fresh)).toBe('new');
    expect(await stage(mid)).toBe('dormant');
    expect((await computed(pMid)).rfm.value).toMatchObject({ r: 2, f: 2, m: 2, score: 6, segment: 'potential' });
    expect((await computed(pRisk)).rfm.value).toMatchObject({ r: 3, f: 3, m: 3, score: 9, segment: 'at risk' });
    expect((await computed(pRisk)).lifecycle_stage.value).toBe('churned');
    await until('best enters through its computed segment', async () => isMember('rfm_high_value', pBest));
    expect(await isMember('rfm_high_value', pMid)).toBe(false);
    // Time alone moves the tiers: 65 days on, best's last order is 70 days old (R 2), two orders are
    // left in the 90-day window (F 2) worth 500 (M 2): score 6, potential.
    offset += 65 * DAY;
    await until('best leaves high value with time', async () => !(await isMember('rfm_high_value', pBest)));
    expect((await computed(pBest)).rfm.value).toMatchObject({ r: 2, f: 2, m: 2, segment: 'potential' });
    expect((await api('/computed-traits/rfm', { method: 'DELETE' })).status).toBe(409);
    // (Last test: the rules' clock stays 65 days ahead.)
  });
});
