// Issue 17's seed flows, end to end: events posted to the tracking API move people through live flows
// on the runtime's clock (which the test moves: days pass in milliseconds), and the messages arrive at
// real receivers — an SMTP server (email-smtp), an SMS provider's HTTP API (sms-http) and a webhook.
// Each test checks what every person received, word for word and at which address or number, that
// nothing arrived before its day, and that the people who should get nothing got nothing; consent and
// unsubscribes are checked at send time by stage 5, and the flow goes on past a message not sent.
import { randomUUID } from 'node:crypto';
import type { Cairn } from '@cairn/server';
import {
  type ApiAnswer,
  adminApi,
  createTestDatabase,
  freePort,
  POSTGRES_SKIP_REASON,
  type Receiver,
  sendEvents,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from './support/http.ts';
import { smtpReceiver, unsubscribeUrlOf } from './support/receivers.ts';
import * as seeds from './support/seed-flows.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the assertions
type Any = any;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
// What a flow-only destination gets of the event stream: nothing (no event has this name); the flows'
// messages go to it straight, not through its filter.
const FLOWS_ONLY = { event: 'Flow Message' };

interface Person {
  name: string;
  userId: string;
  email: string;
  phone: string;
  profileId: string;
}

describe.each(['postgres', 'embedded'] as const)('the seed flows on %s', { timeout: 60_000 }, (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let key: string;
  let smtp: Awaited<ReturnType<typeof smtpReceiver>>;
  let sms: Receiver;
  let hook: Receiver;
  let dest: seeds.SeedDestinations;
  const run = randomUUID().slice(0, 6);
  // The runtime's clock. It starts 200 days back so that no event stamped with it is ever in the
  // server's real future (ingest refuses timestamps over 24 h ahead) while the tests move it ~140 days on.
  let now = Math.floor((Date.now() - 200 * DAY) / MINUTE) * MINUTE;
  let people = 0;

  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });
  /** Posts events to the tracking API, each stamped with the clock unless it says otherwise. */
  const send = (...events: object[]) =>
    sendEvents(
      cairn,
      key,
      events.map((e) => ({ timestamp: iso(now), ...e })),
    );
  /** Moves the clock; a timer pass sees it within its 1 s sweep. */
  const clockTo = (ms: number) => {
    expect(ms).toBeGreaterThanOrEqual(now);
    now = ms;
  };
  // The timer sleeps at most 1 s and the compute sweep runs every 0.2 s: after this, a moved clock has
  // been seen. Only used to show that nothing arrived early (a wait for something that must not happen).
  const quiet = () => sleep(1500);

  /** A person with an email address, a phone number and marketing consent (unless refused), identified now. */
  const join = async (name: string, traits: object = {}, consent = true): Promise<Person> => {
    const n = ++people;
    const p = {
      name,
      userId: `${name.toLowerCase()}-${run}`,
      email: `${name.toLowerCase()}.${run}@example.test`,
      phone: `+49151${String(n).padStart(8, '0')}`,
    };
    await send({
      type: 'identify',
      userId: p.userId,
      traits: { email: p.email, phone: p.phone, first_name: name, ...traits },
      context: { consent: { categoryPreferences: { marketing: consent } } },
    });
    const profileId = await until(`the profile of ${name}`, async () => {
      const found = (await api(`/profiles?userId=${p.userId}`)).body?.data?.[0]?.id as string | undefined;
      return found;
    });
    return { ...p, profileId };
  };

  // ---- what arrived where -------------------------------------------------------------------------
  /** The mails to a person: subject and body; the footer's unsubscribe link is the List-Unsubscribe one. */
  const mailsTo = (p: Person) =>
    smtp.mails
      .filter((m) => m.to.join() === p.email)
      .map(({ mail }) => {
        const [body, footer] = (mail.text ?? '').split('\n\nUnsubscribe: ');
        expect(footer?.trim(), `the unsubscribe footer of "${mail.subject}"`).toBe(unsubscribeUrlOf(mail));
        return { subject: mail.subject, body };
      });
  const smsTo = (p: Person) => sms.accepted.filter((r) => r.body?.to === p.phone).map((r) => r.body.text as string);
  const pushesTo = (p: Person) =>
    hook.accepted
      .filter((r) => r.body?.message && r.body.profile?.id === p.profileId)
      .map((r) => ({ subject: r.body.message.subject, body: r.body.message.body }));
  /** Everything a person received, by channel. */
  const inbox = (p: Person) => ({ mail: mailsTo(p), sms: smsTo(p), push: pushesTo(p) });
  const arrived = (what: string, check: () => boolean) =>
    until(what, async () => check(), { tries: 400, intervalMs: 50 });

  // ---- the flows' side ----------------------------------------------------------------------------
  const publish = async (definition: object): Promise<string> => {
    const created = await post('/flows', { definition });
    expect(created.status, created.text).toBe(201);
    const live = await post(`/flows/${created.body.id}/publish`, {});
    expect(live.status, live.text).toBe(200);
    return created.body.id;
  };
  const runsOf = async (flow: string, p: Person) =>
    (await api(`/flows/${flow}/runs?profile=${p.profileId}`)).body.data as Any[];
  const runWhere = (flow: string, p: Person, what: string, check: (r: Any) => boolean) =>
    until(`${p.name}'s run: ${what}`, async () => {
      const [r] = await runsOf(flow, p);
      return r && check(r) ? r : undefined;
    });
  /** The nodes a run's sends ran at, with the clock then (relative to `t0`). */
  const sendTimes = (r: Any, t0: number) =>
    (r.steps as Any[]).filter((s) => s.type === 'send').map((s) => [s.node, (s.at - t0) / HOUR]);
  /** A person's final ledger rows of a destination: [node, status, reason]. */
  const ledger = async (destination: string, p: Person) => {
    const rows = (await api(`/destinations/${destination}/deliveries?limit=1000`)).body.data as Any[];
    return rows
      .filter((d) => d.profileId === p.profileId && String(d.idempotencyKey).startsWith('flow:'))
      .map((d) => [String(d.idempotencyKey).split(':')[2], d.status, d.reason ?? null])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  };

  beforeAll(async () => {
    db = await createTestDatabase(`test/flows-seeds.test.ts:${mode}`, mode);
    const port = await freePort();
    cairn = await startTestCairn(
      {
        ...db.env,
        PORT: String(port),
        // Unsubscribe links point here, so the test can follow one as a mail client would.
        CAIRN_PUBLIC_URL: `http://127.0.0.1:${port}`,
        CAIRN_COMPUTE_SWEEP_S: '0.2',
      },
      { clock: () => new Date(now) },
    );
    api = adminApi(cairn.url);
    key = cairn.demoSource!.writeKey;
    [smtp, sms, hook] = await Promise.all([smtpReceiver(), startReceiver(), startReceiver()]);
    const destination = async (name: string, plugin: string, settings: object) => {
      const res = await post('/destinations', { name, plugin, settings, filter: FLOWS_ONLY });
      expect(res.status, res.text).toBe(201);
      return res.body.id as string;
    };
    dest = {
      mail: await destination('Shop mail', 'email-smtp', {
        host: '127.0.0.1',
        port: smtp.port,
        from: '"Acme Shop" <shop@acme.example>',
        subject: 'Acme Shop',
        text: 'Events are not mailed here',
        timeoutMs: 10_000,
      }),
      sms: await destination('Shop SMS', 'sms-http', {
        url: `${sms.url}/messages`,
        body: { to: '{{phone}}', text: '{{text}}', from: 'Acme' },
        text: 'Events are not texted here',
      }),
      hook: await destination('Push gateway', 'webhook', { url: hook.url }),
    };
    for (const audience of [
      seeds.CHURN_AUDIENCE,
      seeds.DORMANT_AUDIENCE,
      seeds.VIP_AUDIENCE,
      seeds.NEWSLETTER_AUDIENCE,
    ]) {
      const res = await post('/audiences', audience);
      expect(res.status, res.text).toBe(201);
    }
    const tag = await post('/tags', { key: 'needs_manual_followup', name: 'Needs manual follow-up' });
    expect(tag.status, tag.text).toBe(201);
  });
  afterAll(async () => {
    await cairn?.close();
    await Promise.all([smtp?.close(), sms?.close(), hook?.close()]);
    await db?.drop();
  });

  it('new-user activation: D1 email coupon, D3 SMS guide, D7 coupon; no email after an unsubscribe, nothing without consent, the flow goes on', async () => {
    const flow = await publish(seeds.activation(dest));
    const ada = await join('Ada');
    const bo = await join('Bo');
    const cy = await join('Cy', {}, false);
    const t0 = now;
    for (const p of [ada, bo, cy])
      await send({
        type: 'track',
        userId: p.userId,
        event: 'Signed Up',
        properties: { cohort: 'activation', coupon: `WELCOME10-${p.name.toUpperCase()}` },
      });
    for (const p of [ada, bo, cy]) {
      const waiting = await runWhere(flow, p, 'waiting for day 1', (r) => r.node === 'd1');
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

    clockTo(t0 + DAY - MINUTE);
    await quiet();
    expect([ada, bo, cy].map(inbox)).toEqual(Array(3).fill({ mail: [], sms: [], push: [] }));

    clockTo(t0 + DAY);
    await arrived('the D1 mails of Ada and Bo', () => mailsTo(ada).length + mailsTo(bo).length === 2);
    expect([mailsTo(ada), mailsTo(bo)]).toEqual([[welcome(ada)], [welcome(bo)]]);
    // Bo unsubscribes with the link of that mail, as a mail client does with List-Unsubscribe-Post.
    const boMail = smtp.mails.find((m) => m.to.join() === bo.email)!.mail;
    const unsubscribed = await fetch(unsubscribeUrlOf(boMail), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(unsubscribed.status).toBe(200);

    clockTo(t0 + 3 * DAY - MINUTE);
    await quiet();
    expect([ada, bo, cy].flatMap(smsTo)).toEqual([]);
    clockTo(t0 + 3 * DAY);
    await arrived('the D3 SMS of Ada and Bo', () => smsTo(ada).length + smsTo(bo).length === 2);

    clockTo(t0 + 7 * DAY - MINUTE);
    await quiet();
    expect(mailsTo(ada)).toHaveLength(1);
    clockTo(t0 + 7 * DAY);
    await arrived("Ada's D7 mail", () => mailsTo(ada).length === 2);
    for (const p of [ada, bo, cy]) await runWhere(flow, p, 'completed', (r) => r.status === 'completed');
    // The ledger has every message, each final: Bo's D7 mail skipped (unsubscribed), all of Cy's
    // (no marketing consent); nothing of them reached a receiver.
    await until('every message final in the ledger', async () => {
      const rows = [
        ...(await ledger(dest.mail, bo)),
        ...(await ledger(dest.mail, cy)),
        ...(await ledger(dest.sms, cy)),
      ];
      return rows.length === 5 && rows.every((r) => r[1] !== 'pending');
    });
    expect(inbox(ada)).toEqual({ mail: [welcome(ada), second(ada)], sms: [guide(ada)], push: [] });
    expect(inbox(bo)).toEqual({ mail: [welcome(bo)], sms: [guide(bo)], push: [] });
    expect(inbox(cy)).toEqual({ mail: [], sms: [], push: [] });
    expect(await ledger(dest.mail, bo)).toEqual([
      ['d1_coupon', 'delivered', expect.any(String)],
      ['d7_coupon', 'skipped', 'unsubscribed from email'],
    ]);
    const noConsent = 'consent: marketing not granted';
    expect([...(await ledger(dest.mail, cy)), ...(await ledger(dest.sms, cy))]).toEqual([
      ['d1_coupon', 'skipped', noConsent],
      ['d7_coupon', 'skipped', noConsent],
      ['d3_guide', 'skipped', noConsent],
    ]);
    // Each run sent its three messages on their day, on the clock; Bo's and Cy's runs went on as Ada's.
    for (const p of [ada, bo, cy])
      expect(sendTimes((await runsOf(flow, p))[0], t0)).toEqual([
        ['d1_coupon', 24],
        ['d3_guide', 72],
        ['d7_coupon', 168],
      ]);
  });
});
