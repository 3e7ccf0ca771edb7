// Consent and unsubscribe at send time, as a property: "random consent states, purposes and event
// orders → zero deliveries without the purposes granted; zero marketing messages to unsubscribed
// contact points".
//
// fast-check (fixed seed) generates people, each with a random script: events carrying random
// consent choices (some purposes capitalised, as Segment's consent format allows) with timestamps
// that do not follow the sending order (late, older events; events from the device's future), bursts
// of consent-only events sent concurrently, API consent changes, unsubscribes through the API or by
// POSTing the one-click link of a received email, re-subscribes, and link scanners GETting the link.
// Destinations are random too: webhooks with random extra purposes, some honouring the email channel
// (with a topic or not), and a real email-smtp destination sending to a local SMTP server; the source's
// consent policy (what counts for purposes never chosen) is random.
//
// Exact oracle. The script runs in rounds: in round r every person does their step r, then the test
// waits until every event so far is processed and every ledger row is final. A deliverable event is
// therefore sent (or skipped) after its own processing and before its person's next step, so the
// state in force at its send time is exactly the fold of that person's steps up to it — consent per
// purpose = the choice with the latest time (event timestamp; API changes at the server's clock, which
// lies between the "old" and "future" timestamp windows), else the source's policy; subscription per
// (address, topic) = the latest change. Bursts (several events of one person at once, in random
// arrival order) are excluded from every destination by its filter, so only their combined effect
// matters. The oracle predicts, for every (event, destination), the ledger status and reason and
// whether the receiver gets it; every difference is reported, and the assertion is zero differences.
import { randomUUID } from 'node:crypto';
import type { Cairn } from '@cairn/server';
import {
  createTestDatabase,
  freePort,
  openUnsubscribeToken,
  POSTGRES_SKIP_REASON,
  type Receiver,
  sendEvents,
  startReceiver,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '@cairn/server/testing';
import fc from 'fast-check';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, pool, sleep } from './support/http.ts';
import { headerOf, smtpReceiver, unsubscribeUrlOf } from './support/receivers.ts';

const SEED = Number(process.env.CONSENT_SEED ?? 20_260_601);
const RUNS = Number(process.env.CONSENT_RUNS ?? 6);

const PURPOSES = ['analytics', 'marketing', 'advertising', 'personalization', 'functional'] as const;
type Purpose = (typeof PURPOSES)[number];
type Choices = Partial<Record<Purpose, boolean>>;
type Topic = '' | 'news';
interface Policy {
  default: 'allow' | 'deny';
  purposes: Partial<Record<string, 'allow' | 'deny'>>;
}
/** The policy of sources that never set one (the server's own `cairn` source among them). */
const DEFAULT_POLICY: Policy = {
  default: 'deny',
  purposes: { analytics: 'allow', necessary: 'allow', functional: 'allow' },
};

/** When an event happened: hours before the run ("old") or after it ("future", within the 24 h allowed). */
interface Stamp {
  window: 'old' | 'future';
  second: number;
}
type Step =
  | { kind: 'event'; type: 'track' | 'identify'; consent: Choices | null; capitalise: boolean; at: Stamp }
  | { kind: 'burst'; events: { consent: Choices; at: Stamp }[] }
  | { kind: 'api-consent'; purposes: Choices }
  | { kind: 'unsubscribe'; via: 'link' | 'api'; topic: Topic }
  | { kind: 'resubscribe'; topic: Topic }
  | { kind: 'scan' };
interface DestinationPlan {
  plugin: 'webhook' | 'email-smtp';
  purposes: Purpose[];
  channel: 'email' | null;
  topic: Topic;
}
interface Plan {
  policy: Policy;
  destinations: DestinationPlan[];
  people: Step[][];
}

// ---- generators ------------------------------------------------------------------------------

const choicesArb = fc.record(
  Object.fromEntries(PURPOSES.map((p) => [p, fc.boolean()])) as Record<Purpose, fc.Arbitrary<boolean>>,
  { requiredKeys: [] },
) as fc.Arbitrary<Choices>;
const someChoicesArb = choicesArb.filter((c) => Object.keys(c).length > 0);
const stampArb: fc.Arbitrary<Stamp> = fc.record({
  window: fc.constantFrom('old', 'future'),
  second: fc.integer({ min: 0, max: 3599 }),
});
const topicArb = fc.constantFrom<Topic>('', 'news');
const eventStepArb = (type: fc.Arbitrary<'track' | 'identify'>) =>
  fc.record({
    kind: fc.constant('event' as const),
    type,
    consent: fc.option(someChoicesArb, { nil: null, freq: 3 }),
    capitalise: fc.boolean(),
    at: stampArb,
  });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: eventStepArb(fc.constantFrom('track', 'identify')) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('burst' as const),
      events: fc.array(fc.record({ consent: someChoicesArb, at: stampArb }), { minLength: 2, maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('api-consent' as const), purposes: someChoicesArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('unsubscribe' as const),
      via: fc.constantFrom('link', 'link', 'api'),
      topic: topicArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('resubscribe' as const), topic: topicArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'scan' as const }) },
);
const personArb: fc.Arbitrary<Step[]> = fc
  .tuple(eventStepArb(fc.constant('identify')), fc.array(stepArb, { minLength: 2, maxLength: 6 }))
  .map(([first, rest]) => [first, ...rest]);
const planArb: fc.Arbitrary<Plan> = fc.record({
  policy: fc.record({
    default: fc.constantFrom('allow', 'deny'),
    purposes: fc.record(
      Object.fromEntries(PURPOSES.map((p) => [p, fc.constantFrom('allow', 'deny')])) as Record<
        Purpose,
        fc.Arbitrary<'allow' | 'deny'>
      >,
      { requiredKeys: [] },
    ),
  }),
  destinations: fc
    .tuple(
      fc.array(
        fc.record({
          plugin: fc.constant('webhook' as const),
          purposes: fc.subarray([...PURPOSES], { maxLength: 2 }),
          channel: fc.constantFrom(null, 'email' as const),
          topic: topicArb,
        }),
        { minLength: 2, maxLength: 3 },
      ),
      fc.record({
        plugin: fc.constant('email-smtp' as const),
        purposes: fc.subarray(['analytics', 'personalization'] as Purpose[], { maxLength: 1 }),
        channel: fc.constant('email' as const),
        topic: topicArb,
      }),
    )
    .map(([hooks, email]) => [...hooks, email]),
  people: fc.array(personArb, { minLength: 20, maxLength: 40 }),
});

// ---- the oracle ----------------------------------------------------------------------------------

interface Choice {
  purpose: string;
  granted: boolean;
  /** Event timestamp, or for API changes a time between the two windows, in order of the calls. */
  at: number;
  /** For reports: '(api)' or '(<messageId>)'. */
  source: string;
}
interface Person {
  n: number;
  userId: string;
  email: string;
  profileId?: string;
  choices: Choice[];
  subs: Map<Topic, boolean>;
  events: number;
}
/** What the oracle knows about one event at its send time. */
interface Expectation {
  messageId: string;
  person: number;
  round: number;
  filtered: boolean;
  consent: Map<string, boolean>;
  subs: Map<Topic, boolean>;
  policy: Policy;
  what: string;
}
interface Dest {
  id: string;
  plan: DestinationPlan;
  required: string[];
}

/** The choice in force per purpose: the latest by time (no two choices of a person share a time). */
function inForce(choices: readonly Choice[]): Map<string, boolean> {
  const latest = new Map<string, Choice>();
  for (const c of choices) {
    const prev = latest.get(c.purpose);
    if (!prev || c.at > prev.at) latest.set(c.purpose, c);
  }
  return new Map([...latest].map(([p, c]) => [p, c.granted]));
}

function predict(x: Expectation, d: Dest): { status: 'delivered' | 'skipped'; reason: string | null } {
  if (x.filtered) return { status: 'skipped', reason: 'filter' };
  const missing = d.required.filter((p) => {
    const choice = x.consent.get(p);
    if (choice !== undefined) return !choice;
    return (x.policy.purposes[p] ?? x.policy.default) !== 'allow';
  });
  if (missing.length) return { status: 'skipped', reason: `consent: ${missing.join(', ')} not granted` };
  const topic = d.plan.topic;
  if (d.plan.channel === 'email' && (x.subs.get('') === false || (topic !== '' && x.subs.get(topic) === false))) {
    return { status: 'skipped', reason: `unsubscribed from email${topic ? `/${topic}` : ''}` };
  }
  return { status: 'delivered', reason: null };
}

const describeState = (x: Expectation) =>
  `consent {${[...x.consent].map(([p, g]) => `${p}:${g}`).join(', ')}} subs {${[...x.subs]
    .map(([t, s]) => `'${t}':${s}`)
    .join(', ')}} policy ${JSON.stringify(x.policy)}`;

// ---- the test ------------------------------------------------------------------------------------

describe('consent and unsubscribe at send time, property-tested (postgres)', { timeout: 600_000 }, () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let cairn: Cairn;
  let sql: postgres.Sql;
  let hook: Receiver;
  let smtp: Awaited<ReturnType<typeof smtpReceiver>>;

  beforeAll(async () => {
    db = await createTestDatabase('test/deliver-consent.test.ts', 'postgres');
    const port = await freePort();
    cairn = await startTestCairn({
      ...db.env,
      PORT: String(port),
      CAIRN_PUBLIC_URL: `http://127.0.0.1:${port}`,
      CAIRN_DELIVERY_RETRY_DELAY_S: '1',
      CAIRN_DELIVERY_RETRY_MAX_S: '2',
    });
    sql = postgres(db.url!, { max: 3, onnotice: () => {} });
    hook = await startReceiver();
    smtp = await smtpReceiver();
  });
  afterAll(async () => {
    await cairn?.close();
    await sql?.end();
    await hook?.close();
    await smtp?.close();
    await db?.drop();
  });

  it('never delivers without every required purpose granted, nor emails an unsubscribed address', async () => {
    const totals = {
      runs: 0,
      delivered: 0,
      consentSkips: 0,
      unsubscribeSkips: 0,
      linkUnsubscribes: 0,
      scans: 0,
      apiConsent: 0,
      lateEvents: 0,
      withdrawals: 0,
      emails: 0,
    };

    const runPlan = async (plan: Plan) => {
      const run = `k${totals.runs++}-${randomUUID().slice(0, 6)}`;
      const runStart = Date.now();
      const stampOf = (at: Stamp, n: number) =>
        runStart + (at.window === 'old' ? -3 : 1) * 3_600_000 + at.second * 1000 + n; // n < 1000: unique per person
      let apiClock = runStart; // API changes: between the windows, in call order

      const source = await admin(cairn.url, '/sources', { method: 'POST', body: JSON.stringify({ name: run }) });
      await sql`UPDATE sources SET consent_policy = ${sql.json(plan.policy as never)} WHERE id = ${source.id}`;
      const filter = { where: [{ not: { property: 'burst', cmp: '=', value: true } }] };
      const dests: Dest[] = [];
      for (const [i, d] of plan.destinations.entries()) {
        const settings =
          d.plugin === 'webhook'
            ? { url: hook.url }
            : {
                host: '127.0.0.1',
                port: smtp.port,
                from: 'news@acme.example',
                subject: 'News for {{userId}}',
                text: 'Unsubscribe: {{unsubscribe_url}}',
                timeoutMs: 10_000,
              };
        const created = await admin(cairn.url, '/destinations', {
          method: 'POST',
          body: JSON.stringify({
            name: `${run} ${i}`,
            plugin: d.plugin,
            settings,
            filter,
            purposes: d.purposes,
            topic: d.topic,
            ...(d.plugin === 'webhook' ? { channel: d.channel } : {}),
          }),
        });
        const required = [...new Set([d.plugin === 'webhook' ? 'analytics' : 'marketing', ...d.purposes])];
        expect(created.requiredPurposes).toEqual(required);
        dests.push({ id: created.id, plan: d, required });
      }
      const destIds = dests.map((d) => d.id);

      const people: Person[] = plan.people.map((_, n) => ({
        n,
        userId: `${run}-p${n}`,
        email: `${run}-p${n}@example.test`,
        choices: [],
        subs: new Map(),
        events: 0,
      }));
      const expectations: Expectation[] = [];
      const pendingUnsubscribed: { person: number; round: number; state: Omit<Expectation, 'messageId'> }[] = [];
      const knownInternal = new Set<string>();
      let sentEvents = 0;
      let linkPosts = 0;

      const snapshot = (p: Person, round: number, filtered: boolean, what: string, policy = plan.policy) => ({
        person: p.n,
        round,
        filtered,
        consent: inForce(p.choices),
        subs: new Map(p.subs),
        policy,
        what,
      });
      /** An event of person `p` at `at`, applying its consent choices to the oracle. */
      const makeEvent = (
        p: Person,
        round: number,
        type: 'track' | 'identify',
        consent: Choices | null,
        capitalise: boolean,
        at: Stamp,
        burst: boolean,
        suffix: string,
      ) => {
        const ts = stampOf(at, p.events++);
        const messageId = `${p.userId}-r${round}${suffix}`;
        if (consent) {
          const before = inForce(p.choices);
          const latestConsentAt = Math.max(-Infinity, ...p.choices.map((c) => c.at));
          if (ts < latestConsentAt) totals.lateEvents++;
          for (const [purpose, granted] of Object.entries(consent)) {
            if (before.get(purpose) === true && !granted) totals.withdrawals++;
            p.choices.push({ purpose, granted, at: ts, source: `(${messageId})` });
          }
        }
        const prefs = consent
          ? Object.fromEntries(
              Object.entries(consent).map(([k, v]) => [capitalise ? k[0]!.toUpperCase() + k.slice(1) : k, v]),
            )
          : undefined;
        const event = {
          type,
          messageId,
          userId: p.userId,
          timestamp: new Date(ts).toISOString(),
          ...(type === 'track'
            ? { event: burst ? 'Consent Changed' : 'Order Completed', properties: { round, burst } }
            : { traits: { email: p.email } }),
          ...(prefs ? { context: { consent: { categoryPreferences: prefs } } } : {}),
        };
        expectations.push({
          messageId,
          ...snapshot(p, round, burst, `${type}${consent ? ` ${JSON.stringify(consent)}` : ''} @${at.window}`),
        });
        sentEvents++;
        return event;
      };

      const post = (batch: object[]) => sendEvents(cairn, source.writeKey, batch, { messageIds: false });
      const latestLink = (p: Person) => {
        const mails = smtp.mails.filter((m) => m.to.includes(p.email));
        return mails.length ? unsubscribeUrlOf(mails.at(-1)!.mail) : undefined;
      };
      const emailDest = dests.find((d) => d.plan.plugin === 'email-smtp')!;

      /** Waits until every event so far is processed and every ledger row of this run is final. */
      const settle = async (round: number) => {
        const deadline = Date.now() + 120_000;
        for (;;) {
          const [e] = await sql<{ n: number; open: number }[]>`
            SELECT count(*)::int AS n, count(*) FILTER (WHERE processed_at IS NULL)::int AS open
            FROM events WHERE starts_with(user_id, ${`${run}-`})`;
          const [d] = await sql<{ n: number; open: number }[]>`
            SELECT count(*)::int AS n, count(*) FILTER (WHERE status IN ('pending', 'waiting', 'retrying'))::int AS open
            FROM deliveries WHERE destination_id = ANY(${destIds}::text[])`;
          const events = sentEvents + linkPosts;
          if (e!.n === events && e!.open === 0 && d!.n === events * dests.length && d!.open === 0) return;
          if (Date.now() > deadline) {
            throw new Error(
              `round ${round} did not settle: ${e!.n}/${events} events (${e!.open} unprocessed), ` +
                `${d!.n}/${events * dests.length} ledger rows (${d!.open} open)`,
            );
          }
          await sleep(100);
        }
      };

      const rounds = Math.max(...plan.people.map((s) => s.length));
      for (let round = 0; round < rounds; round++) {
        const batch: object[] = [];
        const bursts: object[][] = [];
        const actions: (() => Promise<void>)[] = [];
        for (const p of people) {
          const step = plan.people[p.n]![round];
          if (!step) continue;
          if (step.kind === 'event') {
            batch.push(makeEvent(p, round, step.type, step.consent, step.capitalise, step.at, false, ''));
          } else if (step.kind === 'burst') {
            for (const [j, b] of step.events.entries())
              bursts.push([makeEvent(p, round, 'track', b.consent, j % 2 === 1, b.at, true, `-b${j}`)]);
          } else if (step.kind === 'api-consent') {
            totals.apiConsent++;
            const before = inForce(p.choices);
            for (const [purpose, granted] of Object.entries(step.purposes)) {
              if (before.get(purpose) === true && !granted) totals.withdrawals++;
              p.choices.push({ purpose, granted, at: ++apiClock, source: '(api)' });
            }
            actions.push(async () => {
              await admin(cairn.url, `/profiles/${p.profileId}/consent`, {
                method: 'PUT',
                body: JSON.stringify({ purposes: step.purposes }),
              });
            });
          } else if (step.kind === 'unsubscribe' || step.kind === 'resubscribe') {
            const link = step.kind === 'unsubscribe' && step.via === 'link' ? latestLink(p) : undefined;
            if (link) {
              // What a mail client does with List-Unsubscribe-Post.
              totals.linkUnsubscribes++;
              linkPosts++;
              const token = link.slice(link.indexOf('/u/') + 3);
              // Tokens are opaque (no address in the link): open it with the server's own secret.
              const claim = await openUnsubscribeToken(cairn.sql, token);
              expect(claim).toMatchObject({ c: 'email', t: emailDest.plan.topic, k: `email:${p.email}` });
              p.subs.set(emailDest.plan.topic, false);
              // The server records the unsubscribe as an event of its own source, sent after this change.
              pendingUnsubscribed.push({
                person: p.n,
                round,
                state: snapshot(p, round, false, 'Unsubscribed (server event)', DEFAULT_POLICY),
              });
              actions.push(async () => {
                const res = await fetch(link, {
                  method: 'POST',
                  headers: { 'content-type': 'application/x-www-form-urlencoded' },
                  body: 'List-Unsubscribe=One-Click',
                });
                expect(res.status).toBe(200);
              });
            } else {
              const subscribed = step.kind === 'resubscribe';
              p.subs.set(step.topic, subscribed);
              actions.push(async () => {
                await admin(cairn.url, `/profiles/${p.profileId}/subscriptions`, {
                  method: 'PUT',
                  body: JSON.stringify({ channel: 'email', topic: step.topic, subscribed }),
                });
              });
            }
          } else if (step.kind === 'scan') {
            const link = latestLink(p);
            if (link) {
              totals.scans++;
              actions.push(async () => {
                const res = await fetch(link); // a link scanner: must change nothing
                expect(res.status).toBe(200);
                await res.text();
              });
            }
          }
        }
        const requests: (() => Promise<void>)[] = [
          ...Array.from({ length: Math.ceil(batch.length / 8) }, (_, i) => () => post(batch.slice(i * 8, i * 8 + 8))),
          ...bursts.map((b) => () => post(b)),
          ...actions,
        ];
        await pool(requests.length, 8, (i) => requests[i]!());
        await settle(round);
        if (round === 0) {
          for (const p of people) p.profileId = (await admin(cairn.url, `/profiles?userId=${p.userId}`)).data[0].id;
        }
        // The Unsubscribed events the server made this round, paired with the state at their send time.
        const internal = await sql<{ message_id: string; user_id: string }[]>`
          SELECT message_id, user_id FROM events WHERE source_id = 'cairn' AND starts_with(user_id, ${`${run}-`})`;
        for (const row of internal) {
          if (knownInternal.has(row.message_id)) continue;
          knownInternal.add(row.message_id);
          const person = people.find((p) => p.userId === row.user_id)!.n;
          const at = pendingUnsubscribed.findIndex((u) => u.person === person && u.round === round);
          expect(at, `unexpected server event ${row.message_id} for ${row.user_id}`).toBeGreaterThanOrEqual(0);
          expectations.push({ messageId: row.message_id, ...pendingUnsubscribed.splice(at, 1)[0]!.state });
        }
      }
      expect(pendingUnsubscribed, 'link POSTs without their Unsubscribed event').toEqual([]);

      // ---- compare: ledger and receivers against the oracle -------------------------------------
      const ledger = await sql<{ destination_id: string; message_id: string; status: string; reason: string | null }[]>`
        SELECT d.destination_id, e.message_id, d.status, d.reason
        FROM deliveries d JOIN events e ON e.id = d.event_id
        WHERE d.destination_id = ANY(${destIds}::text[])`;
      const rowOf = new Map(ledger.map((r) => [`${r.message_id}:${r.destination_id}`, r]));
      const received = new Map<string, number>();
      for (const h of hook.accepted) {
        const key = String(h.headers['idempotency-key'] ?? '');
        received.set(key, (received.get(key) ?? 0) + 1);
      }
      for (const m of smtp.mails) {
        const key = headerOf(m.mail, 'x-cairn-idempotency-key');
        received.set(key, (received.get(key) ?? 0) + 1);
      }
      const differences: string[] = [];
      for (const x of expectations) {
        const p = people[x.person]!;
        for (const d of dests) {
          const key = `${x.messageId}:${d.id}`;
          const want = predict(x, d);
          const row = rowOf.get(key);
          const got = received.get(key) ?? 0;
          const where = `${p.userId} round ${x.round} ${x.what} → ${d.plan.plugin} ${d.id} (needs ${d.required.join('+')}${
            d.plan.channel ? `, honours email${d.plan.topic ? `/${d.plan.topic}` : ''}` : ''
          }) with ${describeState(x)}`;
          if (want.status === 'skipped' && got > 0) {
            differences.push(`VIOLATION: received ${got}x although ${want.reason}: ${where}; ledger ${row?.status}`);
          } else if (want.status === 'delivered' && got !== 1) {
            differences.push(`received ${got}x, expected once: ${where}; ledger ${row?.status} ${row?.reason}`);
          }
          if (!row) differences.push(`no ledger row: ${where}`);
          else if (row.status !== want.status || (want.status === 'skipped' && row.reason !== want.reason)) {
            differences.push(
              `ledger ${row.status} (${row.reason}), expected ${want.status} (${want.reason}): ${where}`,
            );
          }
          if (row?.status === 'delivered') totals.delivered++;
          if (row?.reason?.startsWith('consent:')) totals.consentSkips++;
          if (row?.reason?.startsWith('unsubscribed')) totals.unsubscribeSkips++;
        }
      }
      totals.emails += smtp.mails.filter((m) => m.to.some((t) => t.startsWith(`${run}-`))).length;

      // The profiles' current consent, as the API shows it, against the oracle's final state.
      for (const p of people) {
        const profile = await admin(cairn.url, `/profiles/${p.profileId}`);
        const shown = Object.fromEntries(
          Object.entries(profile.consent as Record<string, { granted: boolean }>).map(([k, v]) => [k, v.granted]),
        );
        const want = Object.fromEntries(inForce(p.choices));
        if (JSON.stringify(Object.entries(shown).sort()) !== JSON.stringify(Object.entries(want).sort())) {
          const history = await sql<
            { purpose: string; granted: boolean; at: Date; source: string; message_id: string }[]
          >`
            SELECT c.purpose, c.granted, c.at, c.source, e.message_id
            FROM consent_changes c LEFT JOIN events e ON e.id = c.event_id
            WHERE c.profile_id = ${p.profileId!} ORDER BY c.purpose, c.at, c.id`;
          differences.push(
            `profile ${p.userId} shows consent ${JSON.stringify(shown)}, oracle ${JSON.stringify(want)}\n` +
              `  oracle choices (time order): ${[...p.choices]
                .sort((a, b) => a.at - b.at)
                .map((c) => `${c.purpose}=${c.granted}@${c.at - runStart}${c.source}`)
                .join(' ')}\n` +
              `  server history: ${history
                .map(
                  (h) =>
                    `${h.purpose}=${h.granted}@${h.at.getTime() - runStart}${h.source === 'api' ? '(api)' : `(${h.message_id})`}`,
                )
                .join(' ')}`,
          );
        }
      }

      // This run's destinations go, so the next run's events fan out to its own only.
      for (const d of destIds) {
        const res = await fetch(`${cairn.url}/api/destinations/${d}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
        });
        expect(res.status).toBe(204);
      }
      if (differences.length) {
        console.log(`[deliver-consent] run ${run}: ${differences.length} differences\n${differences.join('\n')}`);
      }
      expect(differences.slice(0, 30)).toEqual([]);
    };

    // No shrinking (each run takes seconds, and the differences already name events and states); the
    // failing run's own assertion is rethrown instead of fast-check's report with the whole plan.
    const details = await fc.check(fc.asyncProperty(planArb, runPlan), {
      seed: SEED,
      numRuns: RUNS,
      endOnFailure: true,
    });
    if (details.failed) {
      console.log(
        `[deliver-consent] run ${details.numRuns} of ${RUNS} failed; CONSENT_SEED=${SEED} reproduces it ` +
          `(path ${details.counterexamplePath})`,
      );
      throw details.errorInstance;
    }

    console.log(`[deliver-consent] seed ${SEED}: ${JSON.stringify(totals)}`);
    // A property that cannot fail proves nothing: every kind of outcome must have happened.
    expect(totals.delivered).toBeGreaterThan(0);
    expect(totals.consentSkips).toBeGreaterThan(0);
    expect(totals.unsubscribeSkips).toBeGreaterThan(0);
    expect(totals.linkUnsubscribes).toBeGreaterThan(0);
    expect(totals.lateEvents).toBeGreaterThan(0);
    expect(totals.withdrawals).toBeGreaterThan(0);
    expect(totals.emails).toBeGreaterThan(0);
  });
});
