import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSecret } from '../../secret.ts';
import type { Cairn } from '../../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  startReceiver,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../../testing/index.ts';
import { signUnsubscribe } from './unsubscribe.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

describe.each(['postgres', 'embedded'] as const)('delivery on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let key: string;
  const run = randomUUID().slice(0, 8);

  const send = (...events: object[]) => sendEvents(cairn, key, events);
  const api = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: Any }> => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    });
    return { status: res.status, body: res.status === 204 ? null : await res.json() };
  };
  const until = async <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const ledger = async (id: string, status?: string) =>
    (await api(`/destinations/${id}/deliveries?limit=1000${status ? `&status=${status}` : ''}`)).body.data as Any[];

  beforeAll(async () => {
    db = await createTestDatabase(`deliver.test.ts:${mode}`, mode);
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_DELIVERY_RETRY_DELAY_S: '1',
      CAIRN_DELIVERY_RETRY_MAX_S: '1',
      CAIRN_CIRCUIT_THRESHOLD: '3',
      CAIRN_CIRCUIT_PAUSE_S: '1',
      CAIRN_CIRCUIT_MAX_PAUSE_S: '2',
      CAIRN_SOURCE_REFRESH_MS: '200',
    });
    key = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('delivers an event to a webhook, signed, with its idempotency key', async () => {
    const hook = await startReceiver();
    const secret = 'webhook-secret-1234567890';
    const created = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'hook', plugin: 'webhook', settings: { url: hook.url, secret } }),
    });
    expect(created.status).toBe(201);
    expect(created.body.settings.secret).toBe('********');
    const id = created.body.id;
    const messageId = `m-${run}`;
    await send({ messageId, type: 'track', userId: `u-${run}`, event: 'Order Completed', properties: { total: 5 } });
    const hit = await until('the webhook', async () => hook.accepted.find((h) => h.body.event.messageId === messageId));
    expect(hit.headers['idempotency-key']).toBe(`${messageId}:${id}`);
    const [, t, mac] = /^t=(\d+),v1=([0-9a-f]+)$/.exec(String(hit.headers['cairn-signature']))!;
    expect(createHmac('sha256', secret).update(`${t}.${hit.raw}`).digest('hex')).toBe(mac);
    expect(hit.body.profile).toMatchObject({ userId: `u-${run}` });
    const rows = await until('the ledger', async () => {
      const r = await ledger(id, 'delivered');
      return r.length ? r : undefined;
    });
    expect(rows[0]).toMatchObject({ idempotencyKey: `${messageId}:${id}`, attempts: 1 });
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('skips without consent, retries through an outage, dead-letters, and replays', async () => {
    const hook = await startReceiver();
    const created = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'marketing hook',
        plugin: 'webhook',
        purposes: ['marketing'],
        settings: { url: hook.url },
      }),
    });
    const id = created.body.id;
    const [yes, no, unknown] = [`yes-${run}`, `no-${run}`, `unknown-${run}`];
    const consent = (m: boolean) => ({ consent: { categoryPreferences: { marketing: m } } });
    hook.answer({ status: 503 });
    await send(
      { type: 'track', userId: yes, event: 'A', context: consent(true) },
      { type: 'track', userId: no, event: 'B', context: consent(false) },
      { type: 'track', userId: unknown, event: 'C' },
    );
    await until('skips and a retry', async () => {
      const rows = await ledger(id);
      return rows.filter((r) => r.status === 'skipped').length === 2 && rows.some((r) => r.status === 'retrying');
    });
    const skipped = await ledger(id, 'skipped');
    expect(skipped.map((r) => r.reason)).toEqual(['consent: marketing not granted', 'consent: marketing not granted']);
    hook.answer({ status: 200 });
    await until('delivery after the outage', async () => hook.accepted.some((h) => h.body.profile?.userId === yes));
    expect(hook.accepted.filter((h) => h.body.profile?.userId !== yes)).toHaveLength(0);

    // A receiver that refuses for good: dead letters; fixing it and replaying delivers them.
    hook.answer({ status: 400 });
    await send({ type: 'track', userId: yes, event: 'D', context: consent(true) });
    const dead = await until('a dead letter', async () => {
      const r = await ledger(id, 'dead');
      return r.length ? r : undefined;
    });
    expect(dead[0].reason).toContain('HTTP 400');
    hook.answer({ status: 200 });
    const replay = await api(`/destinations/${id}/replay`, { method: 'POST', body: '{}' });
    expect(replay.body.replayed).toBe(1);
    await until('the replayed event', async () => hook.accepted.some((h) => h.body.event.event === 'D'));
    expect(hook.accepted.filter((h) => h.body.event.event === 'D')).toHaveLength(1);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });

  it("a dead letter keeps the receiver's last status and an excerpt of its answer, secrets masked", async () => {
    const hook = await startReceiver();
    const secret = `hook-secret-${run}-abcdef`;
    const created = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'failing hook',
        plugin: 'webhook',
        retryWindowSeconds: 2,
        settings: { url: hook.url, secret },
      }),
    });
    const id = created.body.id;
    // A receiver that echoes what it was sent (the secret among it) and says more than a ledger keeps.
    const answer = `{"error":"database down","echo":"${secret}","trace":"${'x'.repeat(3000)}"}`;
    hook.answer({ status: 500, headers: { 'content-type': 'application/json' }, body: answer });
    await send({ type: 'track', userId: `dl-${run}`, event: 'Order Completed' });
    const [dead] = await until('the retry window to run out', async () => {
      const r = await ledger(id, 'dead');
      return r.length ? r : undefined;
    });
    expect(dead.reason).toBe('retry window of 2 s exhausted');
    expect(dead.attempts).toBeGreaterThanOrEqual(1);
    expect(dead.lastStatus).toBe(500);
    expect(dead.lastError).toMatch(/^HTTP 500: \{"error":"database down","echo":"\*{8}","trace":"x+$/);
    expect(dead.lastError.length).toBeLessThanOrEqual(1024);
    expect(dead.lastError).not.toContain(secret);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('validates destinations and tests them', async () => {
    expect(
      (await api('/destinations', { method: 'POST', body: JSON.stringify({ name: 'x', plugin: 'nope' }) })).status,
    ).toBe(400);
    const bad = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'x', plugin: 'webhook', settings: { url: 'not a url' } }),
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^settings\.url/);
    const hook = await startReceiver();
    const d = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 't', plugin: 'webhook', settings: { url: hook.url } }),
    });
    const tested = await api(`/destinations/${d.body.id}/test`, { method: 'POST', body: '{}' });
    expect(tested.body.outcome).toEqual({ status: 'delivered' });
    expect(hook.accepted[0]!.body.event.event).toBe('Cairn Test Event');
    expect((await api('/destinations/plugins')).body.data.map((p: Any) => p.name)).toContain('webhook');
    await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
  });

  it("masks a destination's secret in a test send's error, as the ledger does", async () => {
    const secret = 'whsec-console-must-not-see-this';
    const hook = await startReceiver({ answer: { status: 401, body: `bad signature for key ${secret}` } });
    const d = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'echo', plugin: 'webhook', settings: { url: hook.url, secret } }),
    });
    const tested = await api(`/destinations/${d.body.id}/test`, { method: 'POST', body: '{}' });
    expect(JSON.stringify(tested.body)).toContain('bad signature for key ********');
    expect(JSON.stringify(tested.body)).not.toContain(secret);
    await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('keeps one profile in order through an outage, and a dead destination holds back no other', async () => {
    const hook = await startReceiver();
    const ordered = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'ordered', plugin: 'webhook', settings: { url: hook.url } }),
    });
    const dead = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'dead',
        plugin: 'webhook',
        settings: { url: 'http://127.0.0.1:1/nothing', timeoutMs: 200 },
      }),
    });
    hook.answer({ status: 503 });
    const user = `order-${run}`;
    for (let i = 0; i < 5; i++) {
      await send({
        type: 'track',
        userId: user,
        event: `step ${i}`,
        timestamp: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
      });
    }
    await until('retries', async () => (await ledger(ordered.body.id, 'retrying')).length > 0);
    hook.answer({ status: 200 });
    await until('all five', async () => hook.accepted.filter((h) => h.body.profile?.userId === user).length === 5);
    const seen = hook.accepted.filter((h) => h.body.profile?.userId === user).map((h) => h.body.event.event);
    expect(seen).toEqual(['step 0', 'step 1', 'step 2', 'step 3', 'step 4']);
    expect(new Set(hook.accepted.map((h) => h.headers['idempotency-key'])).size).toBe(hook.accepted.length);
    // The dead destination delivered nothing and is still retrying (events fanned out behind the
    // first unfinished one wait without a job); the healthy one got everything.
    const counts = (await api(`/destinations/${dead.body.id}`)).body.deliveries;
    expect(counts.delivered).toBe(0);
    expect(counts.retrying + counts.pending + counts.waiting).toBe(5);
    for (const row of await ledger(dead.body.id, 'waiting')) {
      expect(row.reason).toBe('behind an earlier event of this profile');
    }
    expect((await api(`/destinations/${ordered.body.id}`)).body.deliveries.delivered).toBe(5);
    for (const d of [ordered, dead]) await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('one-click unsubscribe stops messages to that contact point, also for a re-identified person', async () => {
    const hook = await startReceiver();
    const mail = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'mail-like', plugin: 'webhook', channel: 'email', settings: { url: hook.url } }),
    });
    const [user, email] = [`unsub-${run}`, `unsub-${run}@example.com`];
    await send({ type: 'identify', userId: user, traits: { email } });
    await until('first message', async () => hook.accepted.some((h) => h.body.profile?.userId === user));
    const profileId = hook.accepted.find((h) => h.body.profile?.userId === user)!.body.profile.id;
    const secret = await resolveSecret(cairn.sql, { secret: undefined } as never);
    const token = signUnsubscribe(secret, { p: profileId, c: 'email', t: '', k: `email:${email}` });
    const page = await fetch(`${cairn.url}/u/${token}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form method="post">');
    // Tampered inside the signature: its last character carries padding bits a decoder ignores, so replacing
    // the last two with "xx" left the signature intact about once in a thousand tokens (failed once in CI).
    const at = token.length - 6;
    const tampered = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
    expect((await fetch(`${cairn.url}/u/${tampered}`, { method: 'POST' })).status).toBe(400);
    const one = await fetch(`${cairn.url}/u/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(one.status).toBe(200);
    const subs = await api(`/profiles/${profileId}/subscriptions`);
    expect(subs.body.data).toEqual([
      expect.objectContaining({ contact: `email:${email}`, channel: 'email', subscribed: false, source: 'link' }),
    ]);
    await until('the Unsubscribed event', async () =>
      (await api(`/profiles/${profileId}/events`)).body.data.some((e: Any) => e.event === 'Unsubscribed'),
    );
    const before = hook.accepted.length;
    // Same person, and a new account re-using the address: neither is messaged.
    await send(
      { type: 'track', userId: user, event: 'After' },
      { type: 'identify', userId: `${user}-new`, traits: { email } },
    );
    await until(
      'skips',
      async () =>
        (await ledger(mail.body.id, 'skipped')).filter((r) => r.reason?.startsWith('unsubscribed')).length >= 3,
    );
    expect(hook.accepted.length).toBe(before);
    // Subscribing again through the API lets messages through.
    const put = await api(`/profiles/${profileId}/subscriptions`, {
      method: 'PUT',
      body: JSON.stringify({ channel: 'email', subscribed: true }),
    });
    expect(put.body.contacts).toEqual([`email:${email}`]);
    await send({ type: 'track', userId: user, event: 'Welcome back' });
    await until('delivery again', async () => hook.accepted.some((h) => h.body.event.event === 'Welcome back'));
    await api(`/destinations/${mail.body.id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('tells destinations that had the data about an erasure, and only them', async () => {
    const hook = await startReceiver();
    const other = await startReceiver();
    const had = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'had', plugin: 'webhook', settings: { url: hook.url } }),
    });
    const user = `forget-${run}`;
    await send({ type: 'identify', userId: user, traits: { email: `${user}@example.com` } });
    const profileId = (await until('delivery', async () => hook.accepted.find((h) => h.body.profile?.userId === user)))!
      .body.profile.id;
    await until('the ledger', async () => (await ledger(had.body.id, 'delivered')).length > 0);
    // Created after the person's events: it never had their data.
    const never = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'never', plugin: 'webhook', settings: { url: other.url } }),
    });
    const erased = await api(`/profiles/${profileId}`, { method: 'DELETE' });
    expect(erased.status).toBe(200);
    const notice = await until('the erasure notice', async () => hook.accepted.find((h) => h.body.type === 'erasure'));
    expect(notice.headers['idempotency-key']).toBe(`erasure:${erased.body.erasureId}`);
    expect(notice.body.identities).toContainEqual({ type: 'userId', value: user });
    expect(notice.body.profileIds).toContain(profileId);
    await new Promise((r) => setTimeout(r, 1000));
    expect(other.accepted.filter((h) => h.body.type === 'erasure')).toHaveLength(0);
    for (const d of [had, never]) await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
    await other.close();
  });

  it("honours a receiver's Retry-After", async () => {
    const hook = await startReceiver();
    const d = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'slow down', plugin: 'webhook', settings: { url: hook.url } }),
    });
    hook.answer({ status: 429, headers: { 'retry-after': '120' } });
    await send({ type: 'track', userId: `ra-${run}`, event: 'Throttled' });
    const [row] = await until('a retry', async () => {
      const r = await ledger(d.body.id, 'retrying');
      return r.length ? r : undefined;
    });
    // The job's next attempt is scheduled no sooner than the receiver asked (the backoff alone is 1 s).
    const [job] = await until('the rescheduled job', async () => {
      const jobs = await cairn.sql<{ start_after: Date }[]>`
        SELECT start_after FROM pgboss.job WHERE name = ${`deliver.${d.body.id}`} AND state = 'retry'`;
      return jobs.length && jobs[0]!.start_after.getTime() - Date.parse(row.lastAttemptAt) > 100_000 ? jobs : undefined;
    });
    expect(job!.start_after.getTime() - Date.parse(row.lastAttemptAt)).toBeGreaterThan(110_000);
    await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('a destination with wrong settings ends in dead letters; fixing the settings and replaying delivers them', async () => {
    const hook = await startReceiver();
    const server = new URL(hook.url);
    // A URL nobody listens on with a path the receiver would refuse: 404 → permanent.
    const wrong = await startReceiver();
    wrong.answer({ status: 404 });
    const d = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'misconfigured', plugin: 'webhook', settings: { url: wrong.url } }),
    });
    const user = `fix-${run}`;
    await send({ type: 'track', userId: user, event: 'One' }, { type: 'track', userId: user, event: 'Two' });
    await until('dead letters', async () => (await ledger(d.body.id, 'dead')).length === 2);
    const patched = await api(`/destinations/${d.body.id}`, {
      method: 'PATCH',
      body: JSON.stringify({ settings: { url: `${server.origin}/hook` } }),
    });
    expect(patched.status).toBe(200);
    const replay = await api(`/destinations/${d.body.id}/replay`, { method: 'POST', body: '{}' });
    expect(replay.body.replayed).toBe(2);
    await until('both delivered', async () => (await ledger(d.body.id, 'delivered')).length === 2);
    expect(
      hook.accepted
        .filter((h) => h.body.profile?.userId === user)
        .map((h) => h.body.event.event)
        .sort(),
    ).toEqual(['One', 'Two']);
    await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
    await wrong.close();
  });

  it('uses the source consent policy for purposes a profile never chose', async () => {
    const hook = await startReceiver();
    const d = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'personalize',
        plugin: 'webhook',
        purposes: ['personalization'],
        settings: { url: hook.url },
      }),
    });
    const src = cairn.demoSource!.id;
    await send({ type: 'track', userId: `pol-a-${run}`, event: 'Denied by default' });
    await until('a consent skip', async () =>
      (await ledger(d.body.id, 'skipped')).some((r) => r.reason === 'consent: personalization not granted'),
    );
    const patched = await api(`/sources/${src}`, {
      method: 'PATCH',
      body: JSON.stringify({
        consentPolicy: { default: 'deny', purposes: { analytics: 'allow', personalization: 'allow' } },
      }),
    });
    expect(patched.body.consentPolicy.purposes.personalization).toBe('allow');
    await send({ type: 'track', userId: `pol-b-${run}`, event: 'Allowed by policy' });
    await until('delivery under the new policy', async () =>
      hook.accepted.some((h) => h.body.event.event === 'Allowed by policy'),
    );
    // A recorded refusal still wins over the policy.
    await send({
      type: 'track',
      userId: `pol-c-${run}`,
      event: 'Refused',
      context: { consent: { categoryPreferences: { personalization: false } } },
    });
    await until(
      'the refusal skipped',
      async () =>
        (await ledger(d.body.id, 'skipped')).filter((r) => r.reason === 'consent: personalization not granted')
          .length === 2,
    );
    expect(hook.accepted.some((h) => h.body.event.event === 'Refused')).toBe(false);
    await api(`/sources/${src}`, {
      method: 'PATCH',
      body: JSON.stringify({
        consentPolicy: { default: 'deny', purposes: { analytics: 'allow', necessary: 'allow', functional: 'allow' } },
      }),
    });
    expect(
      (await api(`/sources/${src}`, { method: 'PATCH', body: JSON.stringify({ consentPolicy: { default: 'maybe' } }) }))
        .status,
    ).toBe(400);
    // The internal source that records unsubscribes cannot be enabled or changed.
    expect((await api('/sources/cairn', { method: 'PATCH', body: JSON.stringify({ enabled: true }) })).status).toBe(
      409,
    );
    expect((await api('/sources/cairn/enable', { method: 'POST' })).status).toBe(409);
    await api(`/destinations/${d.body.id}`, { method: 'DELETE' });
    await hook.close();
  });
});

describe('circuit breaker (postgres)', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }
  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase('deliver.test.ts:circuit', 'postgres');
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_DELIVERY_RETRY_DELAY_S: '1',
      CAIRN_DELIVERY_RETRY_MAX_S: '1',
      CAIRN_CIRCUIT_THRESHOLD: '3',
      // Long enough that nothing but the open circuit can explain silence.
      CAIRN_CIRCUIT_PAUSE_S: '600',
      CAIRN_CIRCUIT_MAX_PAUSE_S: '600',
    });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('pauses a failing destination instead of hammering it, and closes when its settings are fixed', async () => {
    const hook = await startReceiver();
    const counting = await startReceiver({ answer: { status: 503 }, path: '/' });
    const failing = counting.url;
    const auth = { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' };
    const created = (await (
      await fetch(`${cairn.url}/api/destinations`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ name: 'flaky', plugin: 'webhook', settings: { url: failing } }),
      })
    ).json()) as Any;
    const key = cairn.demoSource!.writeKey;
    const batch = Array.from({ length: 30 }, (_, i) => ({
      type: 'track',
      userId: `cb-${i}`,
      event: 'E',
      messageId: randomUUID(),
    }));
    await sendEvents(cairn, key, batch);
    const destination = async () =>
      (await (await fetch(`${cairn.url}/api/destinations/${created.id}`, { headers: auth })).json()) as Any;
    for (let i = 0; i < 300 && !(await destination()).circuit.openUntil; i++)
      await new Promise((r) => setTimeout(r, 100));
    const open = await destination();
    expect(open.circuit.failures).toBeGreaterThanOrEqual(3);
    expect(Date.parse(open.circuit.openUntil)).toBeGreaterThan(Date.now() + 60_000);
    await new Promise((r) => setTimeout(r, 1000)); // batches already in flight finish
    const atOpen = counting.requests.length;
    await new Promise((r) => setTimeout(r, 3000));
    expect(counting.requests.length).toBe(atOpen); // silence while open, although 30 events wait
    // At most the threshold's worth of failed batches (a batch here is the 30 events, sent in parallel).
    expect(atOpen).toBeLessThanOrEqual(3 * 30);
    // Fixing the settings closes the circuit; everything is delivered.
    await fetch(`${cairn.url}/api/destinations/${created.id}`, {
      method: 'PATCH',
      headers: auth,
      body: JSON.stringify({ settings: { url: hook.url } }),
    });
    for (let i = 0; i < 600 && hook.accepted.length < 30; i++) await new Promise((r) => setTimeout(r, 100));
    expect(new Set(hook.accepted.map((h) => h.body.event.messageId)).size).toBe(30);
    // Closed. A batch that read the settings just before the PATCH may still fail at the old URL after the
    // reset and count one failure, which the next healthy batch clears (sender.ts, wasClean): seen once in CI
    // under load. Closed means no pause and fewer failures than the threshold.
    const closed = (await destination()).circuit;
    expect(closed.openUntil).toBeNull();
    expect(closed.failures).toBeLessThan(3);
    await hook.close();
    await counting.close();
  });
});
