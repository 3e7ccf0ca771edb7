import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  settle,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
const T0 = Date.UTC(2026, 9, 1, 12);
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

describe.each(['postgres', 'embedded'] as const)('identity resolution on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let key: string;
  // Each test uses its own ids, so tests share one server.
  const run = randomUUID().slice(0, 8);
  const id = (name: string) => `${name}-${run}`;

  /** Sends the events and waits until identity resolution has processed them. */
  const send = async (...events: object[]) => {
    await sendEvents(cairn, key, events);
    await settle(cairn.sql);
  };
  const api = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: Any; url: string }> => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    });
    return { status: res.status, body: res.status === 204 ? null : await res.json(), url: res.url };
  };
  const lookup = async (query: string): Promise<Any> => {
    const { status, body } = await api(`/profiles?${query}`);
    expect(status).toBe(200);
    return body.data[0];
  };
  const idsOf = (profile: Any) => profile.identities.map((i: Any) => `${i.type}:${i.value}`).sort();
  const eventsOf = async (profileId: string): Promise<string[]> =>
    (await api(`/profiles/${profileId}/events?limit=500`)).body.data.map((e: Any) => e.messageId).sort();

  beforeAll(async () => {
    db = await createTestDatabase(`identify.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
    key = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('anonymous browsing then sign-up ends in one profile with every event', async () => {
    const [a, u] = [id('anon'), id('user')];
    await send(
      {
        type: 'page',
        anonymousId: a,
        name: 'Home',
        timestamp: at(0),
        context: { page: { url: 'https://shop.test/?utm_source=news', referrer: 'https://search.test/q' } },
      },
      { type: 'track', anonymousId: a, event: 'Product Viewed', timestamp: at(1) },
    );
    const before = await lookup(`anonymousId=${a}`);
    expect(before.traits.initial_utm_source.value).toBe('news');
    await send({
      type: 'identify',
      anonymousId: a,
      userId: u,
      traits: { email: ' Ann@Example.COM ', name: ' Ann ' },
      timestamp: at(2),
    });
    const profile = await lookup(`userId=${u}`);
    expect(profile.id).toBe((await lookup(`anonymousId=${a}`)).id);
    expect(idsOf(profile)).toEqual([`anonymousId:${a}`, 'email:ann@example.com', `userId:${u}`].sort());
    expect(profile.traits.email.value).toBe('ann@example.com');
    expect(profile.traits.name).toMatchObject({ value: 'Ann', source: 'identify' });
    expect(profile.traits.initial_utm_source.value).toBe('news');
    expect(profile.traits.initial_referring_domain.value).toBe('search.test');
    expect(profile.traits.first_seen_at.value).toBe(at(0));
    expect((await eventsOf(profile.id)).length).toBe(3);
    expect((await lookup('email=ANN@example.com')).id).toBe(profile.id);
  });

  it('a direct first visit stays the first touch when internal pages follow, even arriving late', async () => {
    const a = id('direct');
    // What the snippet sends: document.referrer ('' on a direct visit, the site's own page after a link).
    const page = (minutes: number, url: string, referrer: string) => ({
      type: 'page',
      anonymousId: a,
      timestamp: at(minutes),
      context: { page: { url, referrer } },
    });
    // The internal page is ingested first; the direct landing (earlier by event time) comes in a later batch.
    await send(page(1, 'https://shop.test/product/1', 'https://shop.test/'));
    await send(page(0, 'https://shop.test/', ''), page(2, 'https://shop.test/cart', 'https://shop.test/product/1'));
    const profile = await lookup(`anonymousId=${a}`);
    expect(profile.traits.initial_referrer.value).toBe('$direct');
    expect(profile.traits.initial_referring_domain.value).toBe('$direct');
    expect(profile.traits.last_referrer).toBeUndefined();
  });

  it('one user on two devices: one profile, two anonymousIds', async () => {
    const [a1, a2, u] = [id('dev1'), id('dev2'), id('u2dev')];
    await send({ type: 'identify', anonymousId: a1, userId: u, timestamp: at(0) });
    await send({ type: 'track', anonymousId: a2, event: 'Opened', timestamp: at(1) });
    await send({ type: 'identify', anonymousId: a2, userId: u, timestamp: at(2) });
    const profile = await lookup(`userId=${u}`);
    expect(idsOf(profile)).toEqual([`anonymousId:${a1}`, `anonymousId:${a2}`, `userId:${u}`].sort());
    expect((await eventsOf(profile.id)).length).toBe(3);
    const merges = (await api(`/profiles/${profile.id}/merges`)).body.data;
    expect(merges).toHaveLength(1);
    expect(merges[0]).toMatchObject({ kind: 'merge', survivorId: profile.id, reason: 'identify event' });
    // The merged-away id redirects to the survivor.
    const moved = await api(`/profiles/${merges[0].mergedId}`);
    expect(moved.status).toBe(200);
    expect(moved.body.id).toBe(profile.id);
    expect(moved.url).toContain(profile.id);
  });

  it('two users on one shared device: two profiles, the device stays with the first', async () => {
    const [a, u1, u2] = [id('kiosk'), id('alice'), id('bob')];
    await send({ type: 'identify', anonymousId: a, userId: u1, timestamp: at(0) });
    await send({ type: 'identify', anonymousId: a, userId: u2, timestamp: at(5) });
    await send({ type: 'track', anonymousId: a, userId: u2, event: 'Checkout', timestamp: at(6) });
    const alice = await lookup(`userId=${u1}`);
    const bob = await lookup(`userId=${u2}`);
    expect(alice.id).not.toBe(bob.id);
    expect(idsOf(alice)).toEqual([`anonymousId:${a}`, `userId:${u1}`].sort());
    expect(idsOf(bob)).toEqual([`userId:${u2}`]);
    // Bob's events (they carry his userId) are his, not Alice's.
    expect((await eventsOf(bob.id)).length).toBe(2);
    const refusals = await cairn.sql`SELECT reason FROM identity_refusals WHERE ${`userId:${u2}`} = ANY(groups)`;
    expect(refusals.length).toBeGreaterThan(0);
  });

  it('alias joins the previous anonymous id to the user', async () => {
    const [a, u] = [id('prev'), id('aliased')];
    await send({ type: 'track', anonymousId: a, event: 'Browsed', timestamp: at(0) });
    await send({ type: 'track', userId: u, event: 'Logged In', timestamp: at(1) });
    await send({ type: 'alias', userId: u, previousId: a, timestamp: at(2) });
    const profile = await lookup(`userId=${u}`);
    expect(profile.id).toBe((await lookup(`anonymousId=${a}`)).id);
    expect((await eventsOf(profile.id)).length).toBe(3);
  });

  it('blocked values never link anyone', async () => {
    const [a1, a2] = [id('junk1'), id('junk2')];
    await send(
      { type: 'identify', anonymousId: a1, userId: 'null', timestamp: at(0) },
      { type: 'identify', anonymousId: a2, userId: 'undefined', traits: { email: 'undefined' }, timestamp: at(1) },
      { type: 'identify', anonymousId: a2, userId: ' Anonymous ', timestamp: at(2) },
    );
    const p1 = await lookup(`anonymousId=${a1}`);
    const p2 = await lookup(`anonymousId=${a2}`);
    expect(p1.id).not.toBe(p2.id);
    expect(await lookup('userId=null')).toBeUndefined();
    const [row] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM identities WHERE value IN ('null', 'undefined', 'Anonymous', 'anonymous')`;
    expect(row!.n).toBe(0);
  });

  it('an email another user holds does not merge two users', async () => {
    const [u1, u2, email] = [id('first'), id('second'), `shared-${run}@example.com`];
    await send({ type: 'identify', userId: u1, traits: { email }, timestamp: at(0) });
    await send({ type: 'identify', userId: u2, traits: { email }, timestamp: at(1) });
    const first = await lookup(`userId=${u1}`);
    const second = await lookup(`userId=${u2}`);
    expect(first.id).not.toBe(second.id);
    expect((await lookup(`email=${email}`)).id).toBe(first.id);
    // The second user's own trait still says what they told us.
    expect(second.traits.email.value).toBe(email);
  });

  it('late-arriving older events never overwrite newer traits; $set_once, $add, $unset', async () => {
    const u = id('late');
    await send({
      type: 'identify',
      userId: u,
      traits: { plan: 'pro', $set_once: { signup: 'web' }, $add: { logins: 1 }, trial: true },
      timestamp: at(10),
    });
    await send({
      type: 'identify',
      userId: u,
      traits: { plan: 'free', $set_once: { signup: 'ios' }, $add: { logins: 1 } },
      timestamp: at(5),
    });
    await send({ type: 'identify', userId: u, traits: { $unset: ['trial'], $add: { logins: 2 } }, timestamp: at(12) });
    await send({ type: 'track', userId: u, event: 'X', context: { traits: { plan: 'stale' } }, timestamp: at(1) });
    const p = await lookup(`userId=${u}`);
    expect(p.traits.plan).toMatchObject({ value: 'pro', source: 'identify', updatedAt: at(10) });
    expect(p.traits.signup.value).toBe('ios');
    expect(p.traits.logins.value).toBe(4);
    expect(p.traits.trial).toBeUndefined();
    expect(p.traits.first_seen_at.value).toBe(at(1));
    expect(p.traits.last_seen_at.value).toBe(at(12));
  });

  it('normalises well-known traits', async () => {
    const u = id('norm');
    await send({
      type: 'identify',
      userId: u,
      traits: {
        email: ' X@Y.Test ',
        phone: '+44 20 7946-0018',
        birthday: '1990-04-01',
        createdAt: '2024-01-02T03:04:05+02:00',
      },
      timestamp: at(0),
    });
    const p = await lookup(`userId=${u}`);
    expect(p.traits.email.value).toBe('x@y.test');
    expect(p.traits.phone.value).toBe('+442079460018');
    expect(p.traits.birthday.value).toBe('1990-04-01');
    expect(p.traits.createdAt.value).toBe('2024-01-02T01:04:05.000Z');
  });

  it('unmerge restores the profiles, identities, traits and events exactly as before', async () => {
    const [a, u] = [id('um-anon'), id('um-user')];
    await send(
      { type: 'page', anonymousId: a, name: 'Home', context: { traits: { color: 'red' } }, timestamp: at(0) },
      { type: 'identify', userId: u, traits: { plan: 'gold', color: 'blue' }, timestamp: at(1) },
    );
    const anon = await lookup(`anonymousId=${a}`);
    const user = await lookup(`userId=${u}`);
    const anonEvents = await eventsOf(anon.id);
    const userEvents = await eventsOf(user.id);
    await send({ type: 'identify', anonymousId: a, userId: u, timestamp: at(2) });
    const merged = await lookup(`userId=${u}`);
    expect(merged.id).toBe(user.id);
    expect(merged.traits.color.value).toBe('blue');
    const mergeLog = (await api(`/profiles/${merged.id}/merges`)).body.data;
    const merge = mergeLog.find((m: Any) => m.kind === 'merge');
    expect(merge).toMatchObject({ survivorId: user.id, mergedId: anon.id });

    const undo = await api(`/profiles/${merged.id}/unmerge`, {
      method: 'POST',
      body: JSON.stringify({ mergeId: merge.id }),
    });
    expect(undo.status).toBe(200);
    expect(undo.body).toMatchObject({ survivor: user.id, restored: anon.id });
    const anonAfter = await lookup(`anonymousId=${a}`);
    const userAfter = await lookup(`userId=${u}`);
    expect(anonAfter.id).toBe(anon.id);
    expect(idsOf(anonAfter)).toEqual(idsOf(anon));
    expect(idsOf(userAfter)).toEqual(idsOf(user));
    expect(anonAfter.traits.color).toEqual(anon.traits.color);
    expect(userAfter.traits).toMatchObject({ plan: user.traits.plan, color: user.traits.color });
    expect(await eventsOf(anon.id)).toEqual(anonEvents);
    // The identify that merged them carries the userId: it stays with the user.
    expect((await eventsOf(user.id)).length).toBe(userEvents.length + 1);
    // The same evidence again does not re-merge them; a second undo is refused.
    await send({ type: 'track', anonymousId: a, userId: u, event: 'Again', timestamp: at(3) });
    expect((await lookup(`anonymousId=${a}`)).id).toBe(anon.id);
    const again = await api(`/profiles/${merged.id}/unmerge`, {
      method: 'POST',
      body: JSON.stringify({ mergeId: merge.id }),
    });
    expect(again.status).toBe(409);
    const log = (await api(`/profiles/${user.id}/merges`)).body.data;
    expect(log.find((m: Any) => m.kind === 'unmerge')).toMatchObject({ actor: expect.any(String) });
    expect(log.find((m: Any) => m.id === merge.id).undoneAt).not.toBeNull();
  });

  it('erase deletes everything, suppresses the identities and drops their later events', async () => {
    const [a, u, email] = [id('gone-anon'), id('gone'), `gone-${run}@example.com`];
    await send(
      { type: 'identify', anonymousId: a, userId: u, traits: { email, plan: 'x' }, timestamp: at(0) },
      {
        type: 'track',
        userId: u,
        event: 'Bought',
        context: { consent: { categoryPreferences: { marketing: true } } },
        timestamp: at(1),
      },
    );
    const p = await lookup(`userId=${u}`);
    const erased = await api(`/profiles/${p.id}`, { method: 'DELETE' });
    expect(erased.status).toBe(200);
    expect(erased.body).toMatchObject({ identities: 3, events: 2 });
    expect((await api(`/profiles/${p.id}`)).status).toBe(410);
    expect(await lookup(`userId=${u}`)).toBeUndefined();
    for (const [table, column] of [
      ['events', 'profile_id'],
      ['identities', 'profile_id'],
      ['profile_traits', 'profile_id'],
      ['consent_changes', 'profile_id'],
    ] as const) {
      const [row] = await cairn.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM ${cairn.sql(table)} WHERE ${cairn.sql(column)} = ${p.id}`;
      expect(row!.n, table).toBe(0);
    }
    // No clear text of the identities is left in the suppression list.
    const text = JSON.stringify(await cairn.sql`SELECT * FROM suppressions`);
    expect(text).not.toContain(email);
    expect(text).not.toContain(u);
    const [erasure] = await cairn.sql<Any[]>`SELECT requested_by, identities FROM erasures WHERE profile_id = ${p.id}`;
    expect(erasure.requested_by).toBeTruthy();
    const [notice] = await cairn.sql<
      Any[]
    >`SELECT data FROM pgboss.job WHERE name = 'forget' AND data->>'erasureId' = ${String(erased.body.erasureId)}`;
    // The notice sits in pg-boss's table: the email in it is sealed, opened only for the plugin.
    expect(JSON.stringify(notice.data)).not.toContain(email);
    const opened = notice.data.identities.map((i: Any) => ({ type: i.type, value: cairn.pii.openValue(i.value) }));
    expect(opened).toContainEqual({ type: 'email', value: email });

    await send(
      { type: 'track', userId: u, event: 'After', timestamp: at(5) },
      { type: 'identify', anonymousId: id('other'), traits: { email }, timestamp: at(6) },
    );
    expect(await lookup(`userId=${u}`)).toBeUndefined();
    expect(await lookup(`anonymousId=${id('other')}`)).toBeUndefined();
    const [dropped] = await cairn.sql<
      { n: number }[]
    >`SELECT sum(dropped)::int AS n FROM suppressions WHERE erasure_id = ${erased.body.erasureId}`;
    expect(dropped!.n).toBe(2);
  });

  it('consent from events and the API, with its history', async () => {
    const u = id('consent');
    await send(
      {
        type: 'track',
        userId: u,
        event: 'A',
        context: { consent: { categoryPreferences: { Analytics: true, Marketing: true } } },
        timestamp: at(0),
      },
      {
        type: 'track',
        userId: u,
        event: 'B',
        context: { consent: { categoryPreferences: { Analytics: true, Marketing: true } } },
        timestamp: at(1),
      },
      {
        type: 'track',
        userId: u,
        event: 'C',
        context: { consent: { categoryPreferences: { Marketing: false } } },
        timestamp: at(2),
      },
    );
    const p = await lookup(`userId=${u}`);
    expect(p.consent.analytics).toMatchObject({ granted: true, source: 'event' });
    expect(p.consent.marketing).toMatchObject({ granted: false, at: at(2) });
    const put = await api(`/profiles/${p.id}/consent`, {
      method: 'PUT',
      body: JSON.stringify({ purposes: { marketing: true } }),
    });
    expect(put.status).toBe(200);
    expect(put.body.consent.marketing).toMatchObject({ granted: true, source: 'api' });
    const history = (await api(`/profiles/${p.id}/consent`)).body.data;
    const seen = history.map((h: Any) => `${h.purpose}:${h.granted}:${h.source}`);
    expect(seen.slice(0, 2)).toEqual(['marketing:true:api', 'marketing:false:event']);
    expect(seen.slice(2).sort()).toEqual(['analytics:true:event', 'marketing:true:event']);
    expect(history).toHaveLength(4);
    expect((await api(`/profiles/${p.id}/consent`, { method: 'PUT', body: '{"purposes":{}}' })).status).toBe(400);
  });

  it('group() links the profile to an account with its own traits', async () => {
    const [u, g] = [id('b2b'), id('acme')];
    await send(
      { type: 'group', userId: u, groupId: g, traits: { name: 'Acme', plan: 'enterprise' }, timestamp: at(0) },
      { type: 'group', userId: u, groupId: g, traits: { plan: 'old' }, timestamp: at(-5) },
    );
    const p = await lookup(`userId=${u}`);
    expect(p.accounts).toEqual([
      expect.objectContaining({
        id: g,
        traits: { name: 'Acme', plan: 'enterprise' },
        firstSeenAt: at(-5),
        lastSeenAt: at(0),
      }),
    ]);
  });

  it('answers lookups with bad input clearly', async () => {
    expect((await api('/profiles')).status).toBe(400);
    expect((await api('/profiles?userId=a&email=b')).status).toBe(400);
    expect((await api('/profiles?externalId=nocolon')).status).toBe(400);
    expect((await api('/profiles/not-a-uuid')).status).toBe(400);
    expect((await api(`/profiles/${randomUUID()}`)).status).toBe(404);
  });
});
