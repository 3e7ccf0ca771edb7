// The shop the seed flows run in (flows-seeds.test.ts): an in-process Cairn on a clock the test moves,
// three real receivers behind three destinations — an SMTP server (email-smtp), an SMS provider's HTTP
// API (sms-http) and a push gateway (webhook) —, the audiences and the tag the seeds read, and what a
// test needs to read back: what each person received, their runs' journeys and the ledger.
import { randomUUID } from 'node:crypto';
import type { Cairn } from '@cairn/server';
import {
  type ApiAnswer,
  adminApi,
  approveAndPublish,
  createTestDatabase,
  type DbMode,
  freePort,
  sendEvents,
  startReceiver,
  startTestCairn,
  until,
} from '@cairn/server/testing';
import { expect } from 'vitest';
import { sleep } from './http.ts';
import { smtpReceiver, unsubscribeUrlOf } from './receivers.ts';
import * as seeds from './seed-flows.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the tests' assertions
type Any = any;

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
export const iso = (ms: number) => new Date(ms).toISOString();

// What a flow-only destination gets of the event stream: nothing (no event has this name); the flows'
// messages go to it straight, not through its filter.
const FLOWS_ONLY = { event: 'Flow Message' };

/** A customer of the shop. */
export interface Person {
  name: string;
  userId: string;
  email: string;
  phone: string;
  profileId: string;
}

/** What one person received, by channel: mails (subject, body without the footer), SMS texts, pushes. */
export interface Inbox {
  mail: { subject: string | undefined; body: string | undefined }[];
  sms: string[];
  push: { subject: string | undefined; body: string }[];
}

/** Nothing received. */
export const EMPTY: Inbox = { mail: [], sms: [], push: [] };

/** The running shop; see {@link startSeedShop}. */
export type SeedShop = Awaited<ReturnType<typeof startSeedShop>>;

/**
 * Starts the shop on a fresh database of `mode`. The clock starts 200 days back, so that no event
 * stamped with it is ever in the server's real future (ingest refuses timestamps over 24 h ahead)
 * while a test moves it months on.
 *
 * @example
 * const shop = await startSeedShop('postgres');
 * const ada = await shop.join('Ada');
 * await shop.close();
 */
export async function startSeedShop(mode: DbMode) {
  const db = await createTestDatabase(`test/flows-seeds.test.ts:${mode}`, mode);
  const run = randomUUID().slice(0, 6);
  let now = Math.floor((Date.now() - 200 * DAY) / MINUTE) * MINUTE;
  let people = 0;
  const port = await freePort();
  const cairn: Cairn = await startTestCairn(
    {
      ...db.env,
      PORT: String(port),
      // Unsubscribe links point here, so a test can follow one as a mail client would.
      CAIRN_PUBLIC_URL: `http://127.0.0.1:${port}`,
      CAIRN_COMPUTE_SWEEP_S: '0.2',
    },
    { clock: () => new Date(now) },
  );
  const api: (path: string, init?: RequestInit) => Promise<ApiAnswer> = adminApi(cairn.url);
  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });
  const key = cairn.demoSource!.writeKey;
  const [smtp, sms, hook] = await Promise.all([smtpReceiver(), startReceiver(), startReceiver()]);

  const destination = async (name: string, plugin: string, settings: object) => {
    const res = await post('/destinations', { name, plugin, settings, filter: FLOWS_ONLY });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  };
  const dest: seeds.SeedDestinations = {
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

  /** Posts events to the tracking API, each stamped with the clock unless it says otherwise. */
  const send = (...events: object[]) =>
    sendEvents(
      cairn,
      key,
      events.map((e) => ({ timestamp: iso(now), ...e })),
    );
  const runsOf = async (flow: string, p: Person) =>
    (await api(`/flows/${flow}/runs?profile=${p.profileId}`)).body.data as Any[];
  /** The mails to a person: subject and body; the footer's unsubscribe link must be the List-Unsubscribe one. */
  const mailsTo = (p: Person): Inbox['mail'] =>
    smtp.mails
      .filter((m) => m.to.join() === p.email)
      .map(({ mail }) => {
        const [body, footer] = (mail.text ?? '').split('\n\nUnsubscribe: ');
        expect(footer?.trim(), `the unsubscribe footer of "${mail.subject}"`).toBe(unsubscribeUrlOf(mail));
        return { subject: mail.subject, body };
      });
  const smsTo = (p: Person): string[] => sms.accepted.filter((r) => r.body?.to === p.phone).map((r) => r.body.text);
  const pushesTo = (p: Person): Inbox['push'] =>
    hook.accepted
      .filter((r) => r.body?.message && r.body.profile?.id === p.profileId)
      .map((r) => ({ subject: r.body.message.subject, body: r.body.message.body }));

  return {
    api,
    dest,
    smtp,
    send,
    now: () => now,
    /** Moves the clock forward; the timer sees it within its 1 s sweep, the compute sweep within 0.2 s. */
    clockTo(ms: number) {
      expect(ms).toBeGreaterThanOrEqual(now);
      now = ms;
    },
    /**
     * Lets the pipeline see a moved clock (a timer pass, compute sweeps, their hand-offs): only to show
     * that nothing arrived early — a wait for something that must not happen.
     */
    quiet: () => sleep(1500),
    /** A person with an email address, a phone number and marketing consent (unless refused), identified now. */
    async join(name: string, traits: object = {}, consent = true): Promise<Person> {
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
      const profileId = await until<string>(`the profile of ${name}`, async () => {
        return (await api(`/profiles?userId=${p.userId}`)).body?.data?.[0]?.id;
      });
      return { ...p, profileId };
    },
    mailsTo,
    smsTo,
    pushesTo,
    /** Everything a person received, by channel. */
    inbox: (p: Person): Inbox => ({ mail: mailsTo(p), sms: smsTo(p), push: pushesTo(p) }),
    /** Waits until `check` holds of what the receivers got. */
    arrived: (what: string, check: () => boolean) => until(what, async () => check(), { tries: 400, intervalMs: 50 }),
    /** Saves a flow and makes it live; its id. */
    async publish(definition: object): Promise<string> {
      const created = await post('/flows', { definition });
      expect(created.status, created.text).toBe(201);
      const live = await approveAndPublish(cairn.url, created.body.id);
      expect(live.status, live.text).toBe(200);
      return created.body.id;
    },
    runsOf,
    /** A person's latest run of a flow once `check` holds of it. */
    runWhere: (flow: string, p: Person, what: string, check: (r: Any) => boolean) =>
      until(`${p.name}'s run: ${what}`, async () => {
        const [r] = await runsOf(flow, p);
        return r && check(r) ? r : undefined;
      }),
    /** A person's latest run's sends and profile updates, with the clock when each ran, in hours after `t0`. */
    effectTimes: async (flow: string, p: Person, t0: number) =>
      ((await runsOf(flow, p))[0].steps as Any[])
        .filter((s) => s.type === 'send' || s.type === 'update_profile')
        .map((s) => [s.node, (s.at - t0) / HOUR]),
    /** A person's flow messages in a destination's ledger: [node, status, reason], by node. */
    async ledger(destinationId: string, p: Person) {
      const rows = (await api(`/destinations/${destinationId}/deliveries?limit=1000`)).body.data as Any[];
      return rows
        .filter((d) => d.profileId === p.profileId && String(d.idempotencyKey).startsWith('flow:'))
        .map((d) => [String(d.idempotencyKey).split(':')[2], d.status, d.reason ?? null])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    },
    async close() {
      await cairn.close();
      await Promise.all([smtp.close(), sms.close(), hook.close()]);
      await db.drop();
    },
  };
}
