// Issue 17's seed flows, end to end: events posted to the tracking API move people through live flows
// on the runtime's clock (which the test moves: days pass in milliseconds), and the messages arrive at
// real receivers — an SMTP server (email-smtp), an SMS provider's HTTP API (sms-http) and a webhook.
// Each test checks what every person received, word for word and at which address or number, that
// nothing arrived before its time (a minute before it, and each send's time in the run's journal), and
// that the people who should get nothing got nothing; consent and unsubscribes are checked at send time
// by stage 5, and the flow goes on past a message not sent. The flows are in support/seed-flows.ts, the
// shop they run in (server, receivers, destinations, audiences) in support/seed-shop.ts.
import { POSTGRES_SKIP_REASON, until } from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unsubscribeUrlOf } from './support/receivers.ts';
import * as seeds from './support/seed-flows.ts';
import { DAY, EMPTY, HOUR, iso, MINUTE, type Person, type SeedShop, startSeedShop } from './support/seed-shop.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the assertions
type Any = any;

// The two databases at once (each its own server, receivers and clock); inside each, the tests run in
// order on one clock, as a shop's flows live side by side.
describe.concurrent.each(['postgres', 'embedded'] as const)('the seed flows on %s', (mode) => {
  describe('live together on one clock', { concurrent: false, timeout: 60_000 }, () => {
    const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
    if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    if (skip) return;

    let shop: SeedShop;
    beforeAll(async () => {
      shop = await startSeedShop(mode);
    });
    afterAll(async () => {
      await shop?.close();
    });

    it('new-user activation: D1 email coupon, D3 SMS guide, D7 coupon; no email after an unsubscribe, nothing without consent, the flow goes on', async () => {
      const flow = await shop.publish(seeds.activation(shop.dest));
      const [ada, bo, cy] = await Promise.all([shop.join('Ada'), shop.join('Bo'), shop.join('Cy', {}, false)]);
      const t0 = shop.now();
      for (const p of [ada, bo, cy])
        await shop.send({
          type: 'track',
          userId: p.userId,
          event: 'Signed Up',
          properties: { cohort: 'activation', coupon: `WELCOME10-${p.name.toUpperCase()}` },
        });
      for (const p of [ada, bo, cy]) {
        const waiting = await shop.runWhere(flow, p, 'waiting for day 1', (r) => r.node === 'd1');
        expect(waiting).toMatchObject({ status: 'waiting', due: iso(t0 + DAY) });
      }
      const welcome = (p: Person) => ({
        subject: `Welcome, ${p.name}: 10% off your first order`,
        body: `Hi ${p.name}, your coupon is WELCOME10-${p.name.toUpperCase()}.`,
      });
      const guide = (p: Person) => `${p.name}, get started in 3 steps: https://shop.example/guide`;
      const second = (p: Person) => ({
        subject: 'A second coupon for you',
        body: `Still looking, ${p.name}? Take 15% off with SECOND15.`,
      });

      shop.clockTo(t0 + DAY - MINUTE);
      await shop.quiet();
      expect([ada, bo, cy].map(shop.inbox)).toEqual(Array(3).fill(EMPTY));

      shop.clockTo(t0 + DAY);
      await shop.arrived('the D1 mails of Ada and Bo', () => shop.mailsTo(ada).length + shop.mailsTo(bo).length === 2);
      expect([shop.mailsTo(ada), shop.mailsTo(bo)]).toEqual([[welcome(ada)], [welcome(bo)]]);
      // Bo unsubscribes with the link of that mail, as a mail client does with List-Unsubscribe-Post.
      const boMail = shop.smtp.mails.find((m) => m.to.join() === bo.email)!.mail;
      const unsubscribed = await fetch(unsubscribeUrlOf(boMail), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
      expect(unsubscribed.status).toBe(200);

      // The next waits are due exactly on their day (their sends' times are checked in the journal below).
      for (const p of [ada, bo, cy])
        expect(await shop.runWhere(flow, p, 'waiting for day 3', (r) => r.node === 'd3')).toMatchObject({
          due: iso(t0 + 3 * DAY),
        });
      expect([ada, bo, cy].flatMap(shop.smsTo)).toEqual([]);
      shop.clockTo(t0 + 3 * DAY);
      await shop.arrived('the D3 SMS of Ada and Bo', () => shop.smsTo(ada).length + shop.smsTo(bo).length === 2);

      for (const p of [ada, bo, cy])
        expect(await shop.runWhere(flow, p, 'waiting for day 7', (r) => r.node === 'd7')).toMatchObject({
          due: iso(t0 + 7 * DAY),
        });
      expect(shop.mailsTo(ada)).toHaveLength(1);
      shop.clockTo(t0 + 7 * DAY);
      await shop.arrived("Ada's D7 mail", () => shop.mailsTo(ada).length === 2);
      for (const p of [ada, bo, cy]) await shop.runWhere(flow, p, 'completed', (r) => r.status === 'completed');
      // The ledger has every message, each final: Bo's D7 mail skipped (unsubscribed), all of Cy's
      // (no marketing consent); nothing of them reached a receiver.
      await until('every message final in the ledger', async () => {
        const rows = [
          ...(await shop.ledger(shop.dest.mail, bo)),
          ...(await shop.ledger(shop.dest.mail, cy)),
          ...(await shop.ledger(shop.dest.sms, cy)),
        ];
        return rows.length === 5 && rows.every((r) => r[1] !== 'pending');
      });
      expect(shop.inbox(ada)).toEqual({ mail: [welcome(ada), second(ada)], sms: [guide(ada)], push: [] });
      expect(shop.inbox(bo)).toEqual({ mail: [welcome(bo)], sms: [guide(bo)], push: [] });
      expect(shop.inbox(cy)).toEqual(EMPTY);
      expect(await shop.ledger(shop.dest.mail, bo)).toEqual([
        ['d1_coupon', 'delivered', expect.any(String)],
        ['d7_coupon', 'skipped', 'unsubscribed from email'],
      ]);
      const noConsent = 'consent: marketing not granted';
      expect([...(await shop.ledger(shop.dest.mail, cy)), ...(await shop.ledger(shop.dest.sms, cy))]).toEqual([
        ['d1_coupon', 'skipped', noConsent],
        ['d7_coupon', 'skipped', noConsent],
        ['d3_guide', 'skipped', noConsent],
      ]);
      // Each run sent its three messages on their day, on the clock; Bo's and Cy's runs went on as Ada's.
      for (const p of [ada, bo, cy])
        expect(await shop.effectTimes(flow, p, t0)).toEqual([
          ['d1_coupon', 24],
          ['d3_guide', 72],
          ['d7_coupon', 168],
        ]);
    });

    it('registered but no first order: D1 coupon, D3 expiry reminder, D7 tag for manual follow-up; an order stops it', async () => {
      const flow = await shop.publish(seeds.noFirstOrder(shop.dest));
      const [dan, eve] = await Promise.all([shop.join('Dan'), shop.join('Eve')]);
      const t0 = shop.now();
      for (const p of [dan, eve])
        await shop.send({ type: 'track', userId: p.userId, event: 'Signed Up', properties: { cohort: 'first_order' } });
      for (const p of [dan, eve]) await shop.runWhere(flow, p, 'waiting for day 1', (r) => r.node === 'd1');
      const tagsOf = async (p: Person) => (await shop.api(`/profiles/${p.profileId}/tags`)).body.current as string[];
      const coupon = (p: Person) => ({
        subject: 'Your first order: 10% off',
        body: `Use FIRST10 at checkout, ${p.name}.`,
      });

      for (const p of [dan, eve])
        expect((await shop.runsOf(flow, p))[0]).toMatchObject({ node: 'd1', due: iso(t0 + DAY) });
      expect([dan, eve].map(shop.inbox)).toEqual(Array(2).fill(EMPTY));
      shop.clockTo(t0 + DAY);
      await shop.arrived('the D1 coupons', () => shop.mailsTo(dan).length + shop.mailsTo(eve).length === 2);
      // Eve orders on day 2.
      shop.clockTo(t0 + 2 * DAY);
      await shop.send({ type: 'track', userId: eve.userId, event: 'Order Completed', properties: { total: 40 } });
      await until("Eve's order stored", async () => {
        const events = (await shop.api(`/profiles/${eve.profileId}/events?limit=100`)).body.data as Any[];
        return events?.some((e) => e.event === 'Order Completed');
      });

      for (const p of [dan, eve])
        expect(await shop.runWhere(flow, p, 'waiting for day 3', (r) => r.node === 'd3')).toMatchObject({
          due: iso(t0 + 3 * DAY),
        });
      expect([dan, eve].flatMap(shop.smsTo)).toEqual([]);
      shop.clockTo(t0 + 3 * DAY);
      await shop.arrived("Dan's expiry reminder", () => shop.smsTo(dan).length === 1);
      const eveRun = await shop.runWhere(flow, eve, 'ended', (r) => r.status !== 'waiting');
      expect(eveRun).toMatchObject({ status: 'completed', node: 'ordered' });
      expect(eveRun.steps.find((x: Any) => x.node === 'd3_check')).toMatchObject({
        outcome: 'case:0',
        to: 'ordered',
        reason: expect.stringContaining('performed "Order Completed": yes (1)'),
      });

      shop.clockTo(t0 + 7 * DAY - MINUTE);
      await shop.quiet();
      expect(await tagsOf(dan)).toEqual([]);
      shop.clockTo(t0 + 7 * DAY);
      await shop.runWhere(flow, dan, 'completed', (r) => r.status === 'completed');
      expect(await tagsOf(dan)).toEqual(['needs_manual_followup']);
      expect(await tagsOf(eve)).toEqual([]);
      expect(await shop.effectTimes(flow, dan, t0)).toEqual([
        ['coupon', 24],
        ['expiry', 72],
        ['followup', 168],
      ]);
      expect(await shop.effectTimes(flow, eve, t0)).toEqual([['coupon', 24]]);
      expect(shop.inbox(dan)).toEqual({
        mail: [coupon(dan)],
        sms: [`FIRST10 expires tomorrow, ${dan.name}.`],
        push: [],
      });
      expect(shop.inbox(eve)).toEqual({ mail: [coupon(eve)], sms: [], push: [] });
    });

    it('cart abandoned 24 h: the order ends the run (goal), no order → the reminder on the next day', async () => {
      const flow = await shop.publish(seeds.cartAbandoned(shop.dest));
      const [fay, gus] = await Promise.all([shop.join('Fay'), shop.join('Gus')]);
      const t0 = shop.now();
      await shop.send(
        { type: 'track', userId: fay.userId, event: 'Added To Cart', properties: { product: 'Lamp' } },
        { type: 'track', userId: gus.userId, event: 'Added To Cart', properties: { product: 'Desk' } },
      );
      for (const p of [fay, gus]) await shop.runWhere(flow, p, 'waiting 24 h', (r) => r.node === 'wait_24h');
      shop.clockTo(t0 + 5 * HOUR);
      await shop.send({ type: 'track', userId: fay.userId, event: 'Order Completed', properties: { total: 80 } });
      const converted = await shop.runWhere(flow, fay, 'ended', (r) => r.status !== 'waiting');
      expect(converted).toMatchObject({ status: 'exited', reason: 'goal reached', endedAt: iso(t0 + 5 * HOUR) });

      shop.clockTo(t0 + DAY - MINUTE);
      await shop.quiet();
      expect(shop.mailsTo(gus)).toEqual([]);
      shop.clockTo(t0 + DAY);
      await shop.arrived("Gus's reminder", () => shop.mailsTo(gus).length === 1);
      await shop.runWhere(flow, gus, 'completed', (r) => r.status === 'completed');
      expect(shop.inbox(gus)).toEqual({
        mail: [{ subject: 'Forgot your Desk?', body: 'Hi Gus, your Desk is still in your cart.' }],
        sms: [],
        push: [],
      });
      expect(shop.inbox(fay)).toEqual(EMPTY);
      expect(await shop.ledger(shop.dest.mail, fay)).toEqual([]);
      expect(await shop.effectTimes(flow, gus, t0)).toEqual([['reminder', 24]]);
    });

    it('coupon unused after 3 days → SMS: only the redemption of the coupon the run issued counts', async () => {
      const flow = await shop.publish(seeds.couponUnused(shop.dest));
      const [hal, ivy] = await Promise.all([shop.join('Hal'), shop.join('Ivy')]);
      const t0 = shop.now();
      for (const p of [hal, ivy])
        await shop.send({ type: 'track', userId: p.userId, event: 'Signed Up', properties: { cohort: 'coupon' } });
      for (const p of [hal, ivy]) await shop.runWhere(flow, p, 'waiting for the coupon', (r) => r.node === 'issued');
      shop.clockTo(t0 + HOUR);
      for (const p of [hal, ivy])
        await shop.send({
          type: 'track',
          userId: p.userId,
          event: 'Coupon Issued',
          properties: { code: `${p.name}-10` },
        });
      await shop.arrived('the welcome coupons', () => shop.mailsTo(hal).length + shop.mailsTo(ivy).length === 2);
      for (const p of [hal, ivy]) {
        expect(shop.mailsTo(p)).toEqual([{ subject: 'Your welcome coupon', body: `Use ${p.name}-10 for 10% off.` }]);
        const waiting = await shop.runWhere(flow, p, 'waiting for the redemption', (r) => r.node === 'redeemed');
        expect(waiting.due).toBe(iso(t0 + HOUR + 3 * DAY));
      }

      // Day 1: Hal redeems his coupon; Ivy redeems another one, which is not the coupon of her run.
      shop.clockTo(t0 + DAY);
      await shop.send(
        { type: 'track', userId: hal.userId, event: 'Coupon Redeemed', properties: { code: 'Hal-10' } },
        { type: 'track', userId: ivy.userId, event: 'Coupon Redeemed', properties: { code: 'SPRING-5' } },
      );
      const used = await shop.runWhere(flow, hal, 'ended', (r) => r.status !== 'waiting');
      expect(used.steps.find((x: Any) => x.node === 'redeemed' && x.outcome === 'matched')).toMatchObject({
        to: 'used',
        reason: 'event "Coupon Redeemed" arrived with properties.code = run.coupon ("Hal-10")',
      });

      shop.clockTo(t0 + HOUR + 3 * DAY - MINUTE);
      await shop.quiet();
      expect([hal, ivy].flatMap(shop.smsTo)).toEqual([]);
      expect((await shop.runsOf(flow, ivy))[0]).toMatchObject({ status: 'waiting', node: 'redeemed' });
      shop.clockTo(t0 + HOUR + 3 * DAY);
      await shop.arrived("Ivy's reminder", () => shop.smsTo(ivy).length === 1);
      await shop.runWhere(flow, ivy, 'completed', (r) => r.status === 'completed');
      expect(shop.inbox(ivy).sms).toEqual(['Ivy, your coupon Ivy-10 is still unused: it expires soon.']);
      expect(await shop.effectTimes(flow, ivy, t0)).toEqual([
        ['welcome', 1],
        ['reminder', 73],
      ]);
      expect(await shop.effectTimes(flow, hal, t0)).toEqual([['welcome', 1]]);
      expect(shop.inbox(hal)).toEqual({
        mail: [{ subject: 'Your welcome coupon', body: 'Use Hal-10 for 10% off.' }],
        sms: [],
        push: [],
      });
    });

    it('churn recall: 30 days without sign-in or order → SMS and a push through the webhook', async () => {
      const flow = await shop.publish(seeds.churnRecall(shop.dest));
      const [jo, kim] = await Promise.all([shop.join('Jo'), shop.join('Kim')]);
      const t0 = shop.now();
      await shop.send(
        { type: 'track', userId: jo.userId, event: 'Signed In' },
        { type: 'track', userId: kim.userId, event: 'Signed In' },
      );
      // Kim orders on day 10: her 30 days start again then.
      shop.clockTo(t0 + 10 * DAY);
      await shop.send({ type: 'track', userId: kim.userId, event: 'Order Completed', properties: { total: 20 } });
      const recall = (p: Person) => ({
        mail: [],
        sms: [`We miss you, ${p.name}! 20% off this week with COMEBACK20.`],
        push: [{ subject: 'Come back', body: `${p.name}, your COMEBACK20 offer is waiting.` }],
      });

      shop.clockTo(t0 + 30 * DAY - MINUTE);
      await shop.quiet();
      expect([jo, kim].map(shop.inbox)).toEqual(Array(2).fill(EMPTY));
      shop.clockTo(t0 + 30 * DAY);
      await shop.arrived(
        "Jo's recall on both channels",
        () => shop.smsTo(jo).length === 1 && shop.pushesTo(jo).length === 1,
      );
      expect(shop.inbox(jo)).toEqual(recall(jo));
      const [joRun] = await shop.runsOf(flow, jo);
      expect(joRun).toMatchObject({ status: 'completed', enteredAt: iso(t0 + 30 * DAY) });

      shop.clockTo(t0 + 40 * DAY - MINUTE);
      await shop.quiet();
      expect(shop.inbox(kim)).toEqual(EMPTY);
      shop.clockTo(t0 + 40 * DAY);
      await shop.arrived(
        "Kim's recall on both channels",
        () => shop.smsTo(kim).length === 1 && shop.pushesTo(kim).length === 1,
      );
      expect(shop.inbox(kim)).toEqual(recall(kim));
      expect(shop.inbox(jo)).toEqual(recall(jo));
      expect([await shop.effectTimes(flow, jo, t0), await shop.effectTimes(flow, kim, t0)]).toEqual([
        [
          ['recall_sms', 720],
          ['recall_push', 720],
        ],
        [
          ['recall_sms', 960],
          ['recall_push', 960],
        ],
      ]);
    });

    it('dormant high spender: 60 days without order and average order ≥ 600 → email, D7 SMS unless redeemed', async () => {
      const flow = await shop.publish(seeds.dormantHighSpender(shop.dest));
      const [max, ned, ola] = await Promise.all([shop.join('Max'), shop.join('Ned'), shop.join('Ola')]);
      const t0 = shop.now();
      const order = (p: Person, total: number | string) => ({
        type: 'track',
        userId: p.userId,
        event: 'Order Completed',
        properties: { total },
      });
      // Max: 500 and "700.5" (a string, as some shops send it) → 600.25; Ned: 500; Ola: 800.
      await shop.send(order(max, 500), order(max, '700.5'), order(ned, 500), order(ola, 800));
      const gift = (p: Person) => ({
        subject: `${p.name}, a gift for our best customers`,
        body: 'Take 100 off your next order with VIP100.',
      });

      shop.clockTo(t0 + 60 * DAY - MINUTE);
      await shop.quiet();
      expect([max, ned, ola].map(shop.inbox)).toEqual(Array(3).fill(EMPTY));
      const entered = t0 + 60 * DAY;
      shop.clockTo(entered);
      await shop.arrived('the gifts of Max and Ola', () => shop.mailsTo(max).length + shop.mailsTo(ola).length === 2);
      for (const p of [max, ola])
        expect((await shop.runsOf(flow, p))[0]).toMatchObject({
          enteredAt: iso(entered),
          node: 'd7',
          status: 'waiting',
        });
      // Ned is dormant too, but spends less: the entry rule keeps him out.
      const members = await until('Ned in the dormant audience', async () => {
        const page = (await shop.api(`/audiences/${seeds.DORMANT_AUDIENCE.key}/members?limit=1000`)).body.data as Any[];
        return page?.some((m) => m.profileId === ned.profileId) ? page : undefined;
      });
      expect(members.length).toBeGreaterThanOrEqual(3);
      expect(await shop.runsOf(flow, ned)).toEqual([]);

      // Ola redeems the gift on day 2.
      shop.clockTo(entered + 2 * DAY);
      await shop.send({ type: 'track', userId: ola.userId, event: 'Coupon Redeemed', properties: { code: 'VIP100' } });
      await shop.runWhere(flow, ola, 'ended', (r) => r.status !== 'waiting');

      expect((await shop.runsOf(flow, max))[0]).toMatchObject({ node: 'd7', due: iso(entered + 7 * DAY) });
      expect(shop.smsTo(max)).toEqual([]);
      shop.clockTo(entered + 7 * DAY);
      await shop.arrived("Max's nudge", () => shop.smsTo(max).length === 1);
      expect(shop.inbox(max)).toEqual({
        mail: [gift(max)],
        sms: ['Your VIP100 gift is still waiting, Max.'],
        push: [],
      });
      expect(shop.inbox(ola)).toEqual({ mail: [gift(ola)], sms: [], push: [] });
      expect(shop.inbox(ned)).toEqual(EMPTY);
      expect([await shop.effectTimes(flow, max, t0), await shop.effectTimes(flow, ola, t0)]).toEqual([
        [
          ['gift', 1440],
          ['nudge', 1608],
        ],
        [['gift', 1440]],
      ]);
    });

    it('VIP birthday − 7 days at 10:00 local, in two time zones; not for a customer outside the VIP audience', async () => {
      // A birthday ten days from shop.now() (never 29 February, which most years lack).
      let ahead = 10;
      while (iso(shop.now() + ahead * DAY).slice(5, 10) === '02-29') ahead++;
      const day = iso(shop.now() + ahead * DAY).slice(5, 10);
      const birthday = `1990-${day}`;
      const [uma, val, wes] = await Promise.all([
        shop.join('Uma', { tier: 'vip', birthday, timezone: 'Europe/Berlin' }),
        shop.join('Val', { tier: 'vip', birthday, timezone: 'America/New_York' }),
        shop.join('Wes', { tier: 'regular', birthday, timezone: 'Europe/Berlin' }),
      ]);
      await until('the VIPs in their audience', async () => {
        const page = (await shop.api(`/audiences/${seeds.VIP_AUDIENCE.key}/members?limit=100`)).body.data as Any[];
        return page?.length === 2;
      });
      const flow = await shop.publish(seeds.vipBirthday(shop.dest));
      const weekBefore = iso(shop.now() + (ahead - 7) * DAY).slice(0, 10);
      const [berlin, newYork] = [
        seeds.zonedInstant(weekBefore, '10:00', 'Europe/Berlin'),
        seeds.zonedInstant(weekBefore, '10:00', 'America/New_York'),
      ];
      const gift = (p: Person) => ({
        subject: `A gift for you, ${p.name}`,
        body: 'Happy birthday next week! BDAY25 is yours.',
      });

      shop.clockTo(berlin - MINUTE);
      await shop.quiet();
      expect([uma, val, wes].map(shop.inbox)).toEqual(Array(3).fill(EMPTY));
      shop.clockTo(berlin);
      await shop.arrived("Uma's gift", () => shop.mailsTo(uma).length === 1);
      expect((await shop.runsOf(flow, uma))[0]).toMatchObject({ enteredAt: iso(berlin) });
      shop.clockTo(newYork - MINUTE);
      await shop.quiet();
      expect(shop.mailsTo(val)).toEqual([]);
      shop.clockTo(newYork);
      await shop.arrived("Val's gift", () => shop.mailsTo(val).length === 1);
      expect((await shop.runsOf(flow, val))[0]).toMatchObject({ enteredAt: iso(newYork) });
      expect(shop.inbox(uma)).toEqual({ mail: [gift(uma)], sms: [], push: [] });
      expect(shop.inbox(val)).toEqual({ mail: [gift(val)], sms: [], push: [] });
      expect(shop.inbox(wes)).toEqual(EMPTY);
      expect(await shop.runsOf(flow, wes)).toEqual([]);
    });

    it('every Monday 09:00 (Berlin) to the newsletter audience, week after week', async () => {
      const [pia, quinn] = await Promise.all([
        shop.join('Pia', { newsletter: true }),
        shop.join('Quinn', { newsletter: false }),
      ]);
      await until('Pia in the newsletter audience', async () => {
        const page = (await shop.api(`/audiences/${seeds.NEWSLETTER_AUDIENCE.key}/members?limit=100`)).body
          .data as Any[];
        return page?.length === 1;
      });
      const flow = await shop.publish(seeds.mondayDigest(shop.dest));
      const mondayAfter = (ms: number) => {
        for (let d = 0; d < 8; d++) {
          const date = iso(ms + d * DAY).slice(0, 10);
          const nine = seeds.zonedInstant(date, '09:00', 'Europe/Berlin');
          if (new Date(`${date}T12:00:00Z`).getUTCDay() === 1 && nine > ms) return nine;
        }
        throw new Error('no Monday within a week');
      };
      const digest = { subject: 'This week at the shop', body: 'Hi Pia, here is what is new this week.' };
      const first = mondayAfter(shop.now() + MINUTE);
      const second = mondayAfter(first + HOUR);
      expect(
        new Date(first).toLocaleString('en-GB', {
          timeZone: 'Europe/Berlin',
          weekday: 'long',
          hour: '2-digit',
          minute: '2-digit',
        }),
      ).toBe('Monday 09:00');

      for (const [n, monday] of [first, second].entries()) {
        shop.clockTo(monday - MINUTE);
        if (n === 0) await shop.quiet();
        expect(shop.mailsTo(pia)).toHaveLength(n);
        shop.clockTo(monday);
        await shop.arrived(`Pia's digest ${n + 1}`, () => shop.mailsTo(pia).length === n + 1);
      }
      expect(shop.inbox(pia)).toEqual({ mail: [digest, digest], sms: [], push: [] });
      expect(shop.inbox(quinn)).toEqual(EMPTY);
      expect((await shop.runsOf(flow, pia)).map((r) => r.enteredAt).sort()).toEqual([iso(first), iso(second)]);
    });
  });
});
