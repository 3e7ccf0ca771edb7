import { randomUUID } from 'node:crypto';
import type { ParsedMail } from 'mailparser';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, until } from '../testing/index.ts';
import { type SmtpReceiver, smtpReceiver } from '../testing/smtp.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the assertions
type Any = any;

const BROWSER =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';
const HOUR = 3_600_000;
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

// A campaign of two published flows (email over real SMTP with tracked links, and a webhook with a
// frequency cap) and two UTM values; opens, clicks and an unsubscribe made through the real URLs of the
// received mails; goal events in and out of the window, one after a merge of two profiles; a cost entry.
describeOnDatabases('campaigns and their results on %s', (mode) => {
  let h: FlowHarness;
  let smtp: SmtpReceiver | undefined;
  const mails: ParsedMail[] = [];
  const tag = randomUUID().slice(0, 8);
  const who = (name: string) => `${name}-${tag}`;
  const mailOf = (name: string) => `${name}-${tag}@example.test`;
  let mailFlow = '';
  let hookFlow = '';
  let campaignId = '';
  let t0 = 0;

  beforeAll(async () => {
    smtp = await smtpReceiver({ onMail: (mail) => mails.push(mail) });
    const port = smtp.port;
    h = await flowHarness('campaigns.test.ts', mode);
    const mail = await h.post('/destinations', {
      name: 'mail',
      plugin: 'email-smtp',
      settings: { host: '127.0.0.1', port, from: 'Shop <shop@acme.test>', subject: 'Hello', text: 'unused' },
    });
    expect(mail.status, mail.text).toBe(201);
    const { destinationId: hook } = await h.webhook();
    mailFlow = await h.publish({
      version: 1,
      name: `Welcome ${tag}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'welcome',
          type: 'send',
          destination: mail.body.id,
          message: {
            subject: 'Welcome',
            body: 'New: https://shop.example.test/new and https://shop.example.test/sale',
          },
        },
        {
          id: 'followup',
          type: 'send',
          destination: mail.body.id,
          message: { subject: 'Follow-up', body: 'Still there? https://shop.example.test/back' },
        },
      ],
      edges: [{ from: 'welcome', to: 'followup', on: 'next' }],
    });
    hookFlow = await h.publish({
      version: 1,
      name: `Nudge ${tag}`,
      trigger: { type: 'event', event: 'Browsed' },
      entry: { reentry: 'once' },
      nodes: [
        { id: 'nudge', type: 'send', destination: hook, message: { body: 'nudge' }, onCap: 'skip' },
        { id: 'nudge2', type: 'send', destination: hook, message: { body: 'again' }, onCap: 'skip' },
      ],
      edges: [{ from: 'nudge', to: 'nudge2', on: 'next' }],
    });
    const caps = await h.post(
      '/flow-governance',
      { caps: [{ channel: 'webhook', max: 1, windowHours: 24 }], quietHours: [] },
      'PUT',
    );
    expect(caps.status, caps.text).toBe(200);
  });
  afterAll(async () => {
    await h?.close();
    await smtp?.close();
  });

  it('refuses bad campaigns and cost entries with reasons', async () => {
    const base = { name: 'Bad', startDate: '2026-12-01' };
    const cases: [object, number, RegExp][] = [
      [{ ...base, endDate: '2026-11-30' }, 400, /endDate: 2026-11-30 is before startDate 2026-12-01/],
      [{ ...base, flows: ['flw_nope'] }, 400, /flows\[0\]: no flow flw_nope/],
      [{ ...base, startDate: '2026-02-30' }, 400, /startDate/],
      [{ ...base, budget: -5 }, 400, /budget/],
      [{ ...base, currency: 'euro' }, 400, /currency/],
      [{ ...base, utm: ['a', 'a'] }, 400, /utm\[1\]: a is listed twice/],
    ];
    for (const [body, status, message] of cases) {
      const res = await h.post('/campaigns', body);
      expect(res.status, res.text).toBe(status);
      expect(res.body.error.message).toMatch(message);
    }
    const made = await h.post('/campaigns', { ...base, flows: [hookFlow], utm: ['x'] });
    expect(made.status, made.text).toBe(201);
    const taken = await h.post('/campaigns', { ...base, flows: [hookFlow] });
    expect(taken.status).toBe(409);
    expect(taken.body.error.message).toBe(`flows[0]: flow ${hookFlow} belongs to campaign ${made.body.id}`);
    for (const amount of [-10, 0]) {
      const cost = await h.post(`/campaigns/${made.body.id}/costs`, { amount });
      expect(cost.status).toBe(400);
      expect(cost.body.error.message).toMatch(/^amount: /);
    }
    expect((await h.post(`/campaigns/cmp_nope/costs`, { amount: 1 })).status).toBe(404);
    // A patch changes what it names only; an end before the start is refused on a patch too.
    const renamed = await h.post(`/campaigns/${made.body.id}`, { name: 'Renamed' }, 'PATCH');
    expect(renamed.body).toMatchObject({ name: 'Renamed', flows: [hookFlow], utm: ['x'], startDate: '2026-12-01' });
    const early = await h.post(`/campaigns/${made.body.id}`, { endDate: '2026-01-01' }, 'PATCH');
    expect(early.status).toBe(400);
    expect((await h.api(`/campaigns/${made.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await h.api(`/campaigns/${made.body.id}`)).status).toBe(404);
    const results = await h.post('/analytics/campaigns/cmp_nope/results', {});
    expect(results.status).toBe(404);
  });

  it('counts sends, opens, clicks, unsubscribes, conversions, revenue and ROI per flow, step and message', async () => {
    const now = Date.now();
    const created = await h.post('/campaigns', {
      name: `Spring ${tag}`,
      budget: 1000,
      currency: 'EUR',
      startDate: dayOf(now - 24 * HOUR),
      endDate: dayOf(now + 24 * HOUR),
      flows: [mailFlow, hookFlow],
      utm: [`spring-${tag}`, `summer-${tag}`],
    });
    expect(created.status, created.text).toBe(201);
    campaignId = created.body.id;
    const cost = await h.post(`/campaigns/${campaignId}/costs`, { amount: 50, note: 'ads' });
    expect(cost.status, cost.text).toBe(201);
    expect(cost.body).toMatchObject({ amount: 50, note: 'ads' });

    const marketing = { consent: { categoryPreferences: { marketing: true, analytics: true } } };
    // ivy has an account; she signs up on her laptop without signing in: her emails go to the laptop's profile,
    // which merges into her account's later.
    await h.send({ type: 'identify', userId: who('ivy') });
    const account = await h.profileOf(who('ivy'));
    await h.send({
      type: 'identify',
      anonymousId: who('ivy-laptop'),
      traits: { email: mailOf('ivy') },
      context: marketing,
    });
    for (const name of ['ada', 'bob', 'cy'])
      await h.send({ type: 'identify', userId: who(name), traits: { email: mailOf(name) }, context: marketing });
    // dee never consented to marketing: both emails skipped.
    await h.send({ type: 'identify', userId: who('dee'), traits: { email: mailOf('dee') } });
    await h.send({ type: 'identify', userId: who('eve'), context: marketing });
    // bob bought before any message: not a conversion.
    await h.send({
      type: 'track',
      userId: who('bob'),
      event: 'Order Completed',
      properties: { revenue: 500 },
      timestamp: new Date(now - 2 * HOUR).toISOString(),
    });
    for (const name of ['ada', 'bob', 'cy'])
      await h.send({ type: 'track', userId: who(name), event: 'Signed Up', context: marketing });
    await h.send({ type: 'track', anonymousId: who('ivy-laptop'), event: 'Signed Up', context: marketing });
    await h.send({ type: 'track', userId: who('dee'), event: 'Signed Up' });
    await h.send({ type: 'track', userId: who('eve'), event: 'Browsed', context: marketing });

    const received = await until(
      'eight emails',
      async () => {
        const got = (name: string, subject: string) =>
          mails.find((m) => JSON.stringify(m.to).includes(mailOf(name)) && m.subject === subject);
        const all = ['ada', 'bob', 'cy', 'ivy'].flatMap((n) => [got(n, 'Welcome'), got(n, 'Follow-up')]);
        return all.every(Boolean) ? (all as ParsedMail[]) : undefined;
      },
      { tries: 300, intervalMs: 100 },
    );
    const [adaWelcome, adaFollow, bobWelcome, , , cyFollow] = received;
    await until('the webhook send and the capped one', async () => {
      const runs = await h.runsOf(hookFlow, await h.profileOf(who('eve')));
      return runs?.[0]?.status === 'completed' ? true : undefined;
    });
    // Readers act later than the machine window (2 s) after the send.
    await until(
      'the sends 2.5 s old',
      async () => {
        const [row] = await h.cairn.sql<{ old: boolean }[]>`
          SELECT bool_and(status = 'skipped' OR now() - delivered_at > interval '2.5 seconds') AS old
          FROM deliveries WHERE event_id IS NULL`;
        return row?.old || undefined;
      },
      { tries: 200, intervalMs: 100 },
    );
    const links = (m: ParsedMail) => [...String(m.html).matchAll(/href="([^"]+\/t\/c\/[\w-]+)"/g)].map((x) => x[1]!);
    const pixel = (m: ParsedMail) => /<img src="([^"]+\/t\/o\/[\w-]+\.gif)"/.exec(String(m.html))![1]!;
    const get = (url: string, ua: string) => fetch(url, { redirect: 'manual', headers: { 'user-agent': ua } });
    // ada: opens the welcome, clicks its first link twice and its second once; Apple's proxy fetches her follow-up.
    expect((await get(pixel(adaWelcome!), BROWSER)).status).toBe(200);
    const [first, second] = links(adaWelcome!);
    for (const url of [first!, first!, second!]) expect((await get(url, BROWSER)).status).toBe(302);
    expect((await get(pixel(adaFollow!), 'Mozilla/5.0')).status).toBe(200);
    // bob: only machines — Apple's proxy and a link scanner.
    expect((await get(pixel(bobWelcome!), 'Mozilla/5.0')).status).toBe(200);
    expect((await get(links(bobWelcome!)[0]!, 'Proofpoint URL Defense')).status).toBe(302);
    // cy unsubscribes from the follow-up (one-click POST).
    const unsubscribe = /https?:\/\/[^\s>]+\/u\/[\w-]+/.exec(String(cyFollow!.text))![0];
    expect((await fetch(unsubscribe, { method: 'POST' })).status).toBe(200);

    t0 = Date.now();
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const order = (userId: object, revenue: object, ms: number) => ({
      type: 'track',
      ...userId,
      event: 'Order Completed',
      properties: revenue,
      timestamp: at(ms),
    });
    await h.send(
      // ada: two orders in the hour after her emails (the second's revenue is its `total`).
      order({ userId: who('ada') }, { revenue: 100 }, 0),
      order({ userId: who('ada') }, { total: 40 }, 30 * 60_000),
      // bob: three hours later, outside the window.
      order({ userId: who('bob') }, { revenue: 70 }, 3 * HOUR),
      // eve: after the webhook message.
      order({ userId: who('eve') }, { revenue: 10 }, 60_000),
      // frank came from an ad of the campaign, hal from another campaign's.
      {
        type: 'page',
        userId: who('frank'),
        name: 'Landing',
        context: { campaign: { name: `spring-${tag}`, source: 'ads' } },
        timestamp: at(0),
      },
      order({ userId: who('frank') }, { revenue: 30 }, 10 * 60_000),
      { type: 'page', userId: who('hal'), context: { campaign: { name: 'other' } }, timestamp: at(0) },
      order({ userId: who('hal') }, { revenue: 999 }, 60_000),
      // gina: the ad on one device (anonymous), the order on another (signed in).
      {
        type: 'page',
        anonymousId: who('gina-phone'),
        context: { campaign: { name: `spring-${tag}` } },
        timestamp: at(0),
      },
      order({ userId: who('gina') }, { revenue: 25 }, 5 * 60_000),
    );
    // ivy signs in on the laptop: its profile (the one her emails went to) merges into her account's.
    const laptop = await h.profileOf(who('ivy-laptop'), 'anonymousId');
    await h.send({ type: 'identify', userId: who('ivy'), anonymousId: who('ivy-laptop') });
    const into = await until('the merge of ivy’s profiles', async () => {
      const [row] = await h.cairn.sql<{ into: string | null }[]>`
        SELECT merged_into::text AS into FROM profiles WHERE id = ${laptop}`;
      return row?.into ?? undefined;
    });
    expect(into).toBe(account);
    await h.send(order({ userId: who('ivy') }, { revenue: 5 }, 2 * 60_000));
    const phone = await h.profileOf(who('gina-phone'), 'anonymousId');
    const signedIn = await h.profileOf(who('gina'));
    expect(phone).not.toBe(signedIn);
    // She signs in on the phone: the two profiles merge.
    await h.send({ type: 'identify', userId: who('gina'), anonymousId: who('gina-phone') });
    await until('the merge of gina’s profiles', async () => {
      const [row] = await h.cairn.sql<{ n: number }[]>`
        SELECT count(DISTINCT profile_id)::int AS n FROM events
        WHERE profile_id IS NOT NULL AND (user_id = ${who('gina')} OR anonymous_id = ${who('gina-phone')})`;
      return row?.n === 1 || undefined;
    });
    // Every event attached (tracking events and the unsubscribe come through ingestion too).
    await until('events attached', async () => {
      const [row] = await h.cairn.sql<{ n: number; clicks: number }[]>`
        SELECT count(*) FILTER (WHERE profile_id IS NULL)::int AS n,
          count(*) FILTER (WHERE event = 'Link Clicked' AND profile_id IS NOT NULL)::int AS clicks
        FROM events`;
      return row?.n === 0 && row.clicks === 3 ? true : undefined;
    });
    // The clicks carry the campaign of the flow.
    const [click] = await h.cairn.sql<{ campaign: string }[]>`
      SELECT payload->'properties'->>'campaign' AS campaign FROM events WHERE event = 'Link Clicked' LIMIT 1`;
    expect(click!.campaign).toBe(campaignId);

    const goal = { events: { event: 'Order Completed' }, window: { value: 1, unit: 'hours' } };
    const res = await h.post(`/analytics/campaigns/${campaignId}/results`, { goal });
    expect(res.status, res.text).toBe(200);
    const r = res.body;
    const consent = r.flows[1].skipped.reasons[0].reason;
    expect(consent).toMatch(/consent|marketing/i);
    const metrics = (m: Partial<Any>) => ({
      sent: 0,
      delivered: 0,
      failed: 0,
      pending: 0,
      skipped: { count: 0, reasons: [] },
      reached: 0,
      opened: { people: 0, messages: 0, rate: 0 },
      clicked: { people: 0, clicks: 0, rate: 0 },
      unsubscribed: 0,
      converted: 0,
      conversions: 0,
      revenue: 0,
      ...m,
    });
    const welcome = metrics({
      sent: 4,
      delivered: 4,
      skipped: { count: 1, reasons: [{ reason: consent, count: 1 }] },
      reached: 4,
      opened: { people: 1, messages: 1, rate: 0.25 },
      clicked: { people: 1, clicks: 2, rate: 0.25 },
      converted: 2,
      conversions: 3,
      revenue: 145,
    });
    const followup = metrics({
      sent: 4,
      delivered: 4,
      skipped: { count: 1, reasons: [{ reason: consent, count: 1 }] },
      reached: 4,
      unsubscribed: 1,
      converted: 2,
      conversions: 3,
      revenue: 145,
    });
    // By flow name: Nudge, then Welcome.
    expect(r.flows).toEqual([
      {
        flowId: hookFlow,
        name: `Nudge ${tag}`,
        ...metrics({
          sent: 1,
          delivered: 1,
          skipped: { count: 1, reasons: [{ reason: 'capped', count: 1 }] },
          reached: 1,
          converted: 1,
          conversions: 1,
          revenue: 10,
        }),
        steps: [
          {
            node: 'nudge',
            ...metrics({ sent: 1, delivered: 1, reached: 1, converted: 1, conversions: 1, revenue: 10 }),
            messages: [
              {
                version: 1,
                ...metrics({ sent: 1, delivered: 1, reached: 1, converted: 1, conversions: 1, revenue: 10 }),
              },
            ],
          },
          {
            node: 'nudge2',
            ...metrics({
              skipped: { count: 1, reasons: [{ reason: 'capped', count: 1 }] },
              opened: { people: 0, messages: 0, rate: null },
              clicked: { people: 0, clicks: 0, rate: null },
            }),
            messages: [
              {
                version: 1,
                ...metrics({
                  skipped: { count: 1, reasons: [{ reason: 'capped', count: 1 }] },
                  opened: { people: 0, messages: 0, rate: null },
                  clicked: { people: 0, clicks: 0, rate: null },
                }),
              },
            ],
          },
        ],
      },
      {
        flowId: mailFlow,
        name: `Welcome ${tag}`,
        ...metrics({
          sent: 8,
          delivered: 8,
          skipped: { count: 2, reasons: [{ reason: consent, count: 2 }] },
          reached: 4,
          opened: { people: 1, messages: 1, rate: 0.25 },
          clicked: { people: 1, clicks: 2, rate: 0.25 },
          unsubscribed: 1,
          converted: 2,
          conversions: 3,
          revenue: 145,
        }),
        steps: [
          { node: 'followup', ...followup, messages: [{ version: 1, ...followup }] },
          { node: 'welcome', ...welcome, messages: [{ version: 1, ...welcome }] },
        ],
      },
    ]);
    expect(r.utm).toEqual([
      { value: `spring-${tag}`, people: 2, converted: 2, conversions: 2, revenue: 55 },
      { value: `summer-${tag}`, people: 0, converted: 0, conversions: 0, revenue: 0 },
    ]);
    // ada 140, ivy 5 and gina 25 (each after a merge), eve 10, frank 30; bob's orders before and 3 h after: none.
    expect(r.totals).toEqual({
      ...metrics({
        sent: 9,
        delivered: 9,
        skipped: {
          count: 3,
          reasons: [
            { reason: consent, count: 2 },
            { reason: 'capped', count: 1 },
          ],
        },
        reached: 5,
        opened: { people: 1, messages: 1, rate: 0.2 },
        clicked: { people: 1, clicks: 2, rate: 0.2 },
        unsubscribed: 1,
        converted: 5,
        conversions: 6,
        revenue: 210,
      }),
      touched: 7,
      cost: 50,
      costEntries: 1,
      roi: 3.2,
      costPerAcquisition: 10,
      revenuePerConversion: 42,
      budget: { amount: 1000, spent: 50, remaining: 950, used: 0.05 },
    });

    // Machine opens and clicks when asked: bob's proxy open and scanner click, ada's proxy open of the follow-up.
    const all = (await h.post(`/analytics/campaigns/${campaignId}/results`, { goal, includeMachine: true })).body;
    expect(all.totals.opened).toEqual({ people: 2, messages: 3, rate: 0.4 });
    expect(all.totals.clicked).toEqual({ people: 2, clicks: 3, rate: 0.4 });

    // A window of 4 hours takes bob's later order; a revenue property of `total` takes ada's second only.
    const wide = await h.post(`/analytics/campaigns/${campaignId}/results`, {
      goal: { ...goal, window: { value: 4, unit: 'hours' } },
    });
    expect(wide.body.totals).toMatchObject({ converted: 6, conversions: 7, revenue: 280 });
    const byTotal = await h.post(`/analytics/campaigns/${campaignId}/results`, {
      goal: { ...goal, revenueProperty: 'total' },
    });
    expect(byTotal.body.totals).toMatchObject({ converted: 5, conversions: 6, revenue: 40, roi: -0.2 });

    // A range before anything happened: nothing, and no cost dated in it.
    const past = await h.post(`/analytics/campaigns/${campaignId}/results`, {
      goal,
      range: { from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z' },
    });
    expect(past.body.totals).toMatchObject({ sent: 0, converted: 0, revenue: 0, cost: 0, roi: null, touched: 0 });
    // Without a goal: no conversions, no ROI.
    const plain = (await h.post(`/analytics/campaigns/${campaignId}/results`, {})).body;
    expect(plain.totals).toMatchObject({ sent: 9, converted: null, revenue: null, roi: null, cost: 50 });
    const bad = await h.post(`/analytics/campaigns/${campaignId}/results`, {
      goal: { ...goal, window: { value: 100, unit: 'days' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/goal.window.value: the conversion window is at most 90 days/);

    // The writes are in the audit log.
    const audit = await h.api(`/audit?resourceType=campaign`);
    expect((audit.body.data as Any[]).map((e) => e.action)).toEqual(
      expect.arrayContaining(['campaign.create', 'campaign.cost_add', 'campaign.update', 'campaign.delete']),
    );
  });
});
