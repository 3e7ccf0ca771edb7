// PII at rest, proven at the database level. A real server ingests known PII over real HTTP — an
// identify with email, phone, id number and address, a track carrying the email in properties and
// context.traits, a second device joining the same person by email (a merge), an alias, a refused
// event and an unparseable body carrying the email (failed_events), a staff consent change and an
// unsubscribe through the admin API (audit log, subscriptions), a delivery to a real webhook receiver
// on loopback — and once the pipeline has settled, EVERY column of EVERY table of EVERY schema
// (pg-boss's and better-auth's included; bytea read as text too) is searched for the email, the phone
// as given, normalised and as bare digits, and the id number: zero hits. The same search finds a
// value that is stored in clear (the userId), so it is able to fail. The webhook received the clear
// address, lookups by email and phone still find the person, an admin sees clear traits and an
// analyst sees them masked. Rules that would compare encrypted traits are refused; after CAIRN_SECRET
// rotates, old values still open and the same email still finds and merges the person.
import { randomInt, randomUUID } from 'node:crypto';
import { type Cairn, createPii } from '@cairn/server';
import {
  createTestDatabase,
  type DbMode,
  POSTGRES_SKIP_REASON,
  postTracking,
  type Receiver,
  startReceiver,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, waitFor } from './support/http.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the assertions
type Any = any;

describe.each(['postgres', 'embedded'] as const)('PII at rest on %s', (mode: DbMode) => {
  if (mode === 'postgres' && POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let cairn: Cairn;
  let writeKey: string;
  const run = randomUUID().slice(0, 8);
  // Known PII, random so no other row can hold it by chance (and not derived from `run`, which
  // appears in clear-text ids); long enough that no ciphertext or hash spells it out by chance.
  const local = `pii.person.${randomUUID().slice(0, 8)}`;
  const email = `${local}@example.test`;
  const emailAsSent = ` ${local.toUpperCase()}@Example.TEST `;
  const tail = String(randomInt(10_000_000, 99_999_999));
  const phoneAsSent = `+49 (151) ${tail.slice(0, 4)}-${tail.slice(4)}`;
  const phone = `+49151${tail}`;
  const idNumber = `X${randomInt(100_000_000, 999_999_999)}`;
  const street = `${randomUUID().slice(0, 8)} Harbour Street`;
  const userId = `pii-user-${run}`;
  const dev1 = `pii-dev1-${run}`;
  const dev2 = `pii-dev2-${run}`;

  const track = (path: string, body: object | string) => postTracking(cairn, writeKey, `/${path}`, body);
  const as = async (key: string, path: string, init: RequestInit = {}) => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
    });
    return { status: res.status, body: (await res.json()) as Any };
  };

  /**
   * Rows of every table of every schema whose text form contains `needle` (case-insensitive), as
   * `schema.table` → count. bytea columns are searched as escaped text as well: a row's text form
   * shows them as hex, which would hide a clear body.
   */
  const scan = async (needle: string): Promise<Record<string, number>> => {
    const tables = await cairn.sql<{ schema: string; name: string }[]>`
      SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
      ORDER BY 1, 2`;
    const bytea = await cairn.sql<{ schema: string; name: string; column: string }[]>`
      SELECT table_schema AS schema, table_name AS name, column_name AS column FROM information_schema.columns
      WHERE data_type = 'bytea' AND table_schema NOT IN ('pg_catalog', 'information_schema')`;
    expect(tables.map((t) => `${t.schema}.${t.name}`)).toEqual(
      expect.arrayContaining([
        'public.events',
        'public.identities',
        'public.identity_links',
        'public.profile_traits',
        'public.failed_events',
        'public.audit_log',
        'public.subscriptions',
        'pgboss.job',
      ]),
    );
    const pattern = `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    const hits: Record<string, number> = {};
    for (const t of tables) {
      const sql = cairn.sql;
      const byteaMatch = bytea
        .filter((b) => b.schema === t.schema && b.name === t.name)
        .map((c) => sql`OR encode(t.${sql(c.column)}, 'escape') ILIKE ${pattern}`)
        .reduce((all, one) => sql`${all} ${one}`, sql``);
      const [row] = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM ${sql(t.schema)}.${sql(t.name)} t
        WHERE t::text ILIKE ${pattern} ${byteaMatch}`;
      if (row!.n) hits[`${t.schema}.${t.name}`] = row!.n;
    }
    return hits;
  };

  let hook: Receiver;
  let destinationId: string;
  let analystKey: string;
  let profileId: string;

  beforeAll(async () => {
    db = await createTestDatabase(`test/pii-at-rest.test.ts:${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_DELIVERY_RETRY_DELAY_S: '1', CAIRN_DELIVERY_RETRY_MAX_S: '2' });
    writeKey = cairn.demoSource!.writeKey;
    hook = await startReceiver();
    const dest = await admin(cairn.url, '/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: `hook ${run}`,
        plugin: 'webhook',
        settings: { url: hook.url, secret: 'whsec-pii-0123456789' },
      }),
    });
    destinationId = dest.id;
    analystKey = (
      await admin(cairn.url, '/keys', { method: 'POST', body: JSON.stringify({ name: 'analyst', role: 'analyst' }) })
    ).key;
  });
  afterAll(async () => {
    await hook?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('ingests known PII through every path, and the webhook gets clear values', async () => {
    const ok = async (path: string, body: object) => expect((await track(path, body)).status, path).toBe(200);
    // Device 2 is a profile of its own first: the identify below merges it into device 1's person.
    await ok('track', { anonymousId: dev2, event: 'Viewed', properties: { page: 'home' } });
    await ok('identify', {
      anonymousId: dev1,
      traits: { email: emailAsSent, phone: phoneAsSent, id_number: idNumber, address: { street }, plan: 'pro' },
    });
    await ok('track', {
      anonymousId: dev1,
      event: 'Signed Up',
      properties: { email, plan: 'pro' },
      context: { traits: { email, phone } },
    });
    // And device 1's person holds the email: were device 2's identify processed first (nothing orders two
    // people's events), the email would be device 2's, device 1 would join it without a merge (seen in CI).
    await waitFor('device 2 has its own profile, device 1 the email', async () => {
      const r = await admin(cairn.url, `/profiles?anonymousId=${dev2}`);
      const byEmail = await admin(cairn.url, `/profiles?email=${encodeURIComponent(emailAsSent)}`);
      const one = await admin(cairn.url, `/profiles?anonymousId=${dev1}`);
      return r.data.length === 1 && byEmail.data.length === 1 && byEmail.data[0].id === one.data[0]?.id;
    });
    await ok('identify', { anonymousId: dev2, traits: { email } });
    await ok('alias', { userId, previousId: dev1, context: { traits: { phone: phoneAsSent } } });

    // Refused: a track without its event name (stored as an event), and a body that is not JSON.
    expect((await track('track', { anonymousId: dev1, properties: { email, id_number: idNumber } })).status).toBe(400);
    expect((await track('identify', `{"traits": {"email": "${email}", "phone": "${phone}" x`)).status).toBe(400);

    await waitFor(
      'every event processed',
      async () => {
        const [r] = await cairn.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events WHERE processed_at IS NULL`;
        return r!.n === 0;
      },
      60_000,
    );
    // One person: both devices, the email, the phone and the userId.
    const found = await admin(cairn.url, `/profiles?email=${encodeURIComponent(emailAsSent)}`);
    expect(found.data).toHaveLength(1);
    profileId = found.data[0].id;
    const byPhone = await admin(cairn.url, `/profiles?phone=${encodeURIComponent(phoneAsSent)}`);
    expect(byPhone.data[0]?.id).toBe(profileId);
    expect((await admin(cairn.url, `/profiles?anonymousId=${dev2}`)).data[0]?.id).toBe(profileId);
    expect((await admin(cairn.url, `/profiles?userId=${userId}`)).data[0]?.id).toBe(profileId);
    const merges = await admin(cairn.url, `/profiles/${profileId}/merges`);
    expect(merges.data.some((m: Any) => m.kind === 'merge')).toBe(true);

    // Staff change consent and unsubscribe the email (audit log, consent history, subscriptions).
    await admin(cairn.url, `/profiles/${profileId}/consent`, {
      method: 'PUT',
      body: JSON.stringify({ purposes: { marketing: true } }),
    });
    const unsub = await admin(cairn.url, `/profiles/${profileId}/subscriptions`, {
      method: 'PUT',
      body: JSON.stringify({ channel: 'email', subscribed: false }),
    });
    expect(unsub.contacts).toEqual([`email:${email}`]);

    // The webhook destination got the clear values: in the event and in the profile.
    const hit = (await waitFor(
      'the Signed Up event at the receiver',
      async () => hook.accepted.find((h) => h.body?.event?.event === 'Signed Up'),
      60_000,
    ))!;
    expect(hit.body.event.properties.email).toBe(email);
    expect(hit.body.event.context.traits).toMatchObject({ email, phone });
    const identify = (await waitFor('the identify at the receiver', async () =>
      hook.accepted.find((h) => h.body?.event?.type === 'identify' && h.body.event.traits?.id_number),
    ))!;
    expect(identify.body.event.traits).toMatchObject({ id_number: idNumber, address: { street } });
    await waitFor(
      'the ledger settled',
      async () => {
        const rows = (await admin(cairn.url, `/destinations/${destinationId}/deliveries?limit=100`)).data as Any[];
        return rows.length >= 4 && rows.every((r) => ['delivered', 'skipped', 'dead'].includes(r.status));
      },
      60_000,
    );
    const withProfile = hook.accepted.find((h) => h.body?.profile?.traits?.id_number);
    expect(withProfile?.body.profile).toMatchObject({ email, traits: { email, phone, id_number: idNumber } });
  });

  it('no table of any schema holds the email, the phone (given, normalised, digits) or the id number', async () => {
    // The search can fail: it finds a value that is stored in clear, in the tables that hold it.
    const control = await scan(userId);
    expect(control['public.events']).toBeGreaterThan(0);
    expect(control['public.identities']).toBe(1);

    for (const needle of [email, emailAsSent.trim(), local, phoneAsSent, phone, phone.slice(1), idNumber, street]) {
      expect(await scan(needle), needle).toEqual({});
    }
    // Where the PII went: sealed (enc:v1:<kid>:...) or blind-indexed, never dropped.
    const [trait] = await cairn.sql<{ value: string }[]>`
      SELECT value #>> '{}' AS value FROM profile_traits WHERE profile_id = ${profileId} AND key = 'email'`;
    expect(trait!.value).toMatch(/^enc:v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    expect(cairn.pii.openValue(trait!.value)).toBe(email);
    const keys = await cairn.sql<{ key: string; value: string }[]>`
      SELECT key, value FROM identities WHERE profile_id = ${profileId} AND type IN ('email', 'phone') ORDER BY type`;
    expect(keys.map((k) => k.key)).toEqual([
      expect.stringMatching(/^email:[A-Za-z0-9_-]{43}$/),
      expect.stringMatching(/^phone:[A-Za-z0-9_-]{43}$/),
    ]);
    expect(keys.map((k) => cairn.pii.openValue(k.value))).toEqual([email, phone]);
    const [failed] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM failed_events WHERE raw IS NOT NULL OR event IS NOT NULL`;
    expect(failed!.n).toBeGreaterThanOrEqual(2);
  });

  it('admins see clear PII; analysts see it masked in profiles, events and refusals', async () => {
    const clear = await admin(cairn.url, `/profiles/${profileId}`);
    expect(clear.traits.email.value).toBe(email);
    expect(clear.traits.phone.value).toBe(phone);
    expect(clear.traits.id_number.value).toBe(idNumber);
    expect(clear.identities).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'email', value: email })]),
    );

    const masked = await as(analystKey, `/profiles/${profileId}`);
    expect(masked.status).toBe(200);
    expect(masked.body.traits.email.value).toBe(`${local[0]}***@example.test`);
    expect(masked.body.traits.phone.value).toBe(`+${'*'.repeat(phone.length - 5)}${phone.slice(-4)}`);
    expect(masked.body.traits.id_number.value).toBe(`${'*'.repeat(idNumber.length - 4)}${idNumber.slice(-4)}`);
    expect(masked.body.traits.address.value).toBe('***');
    expect(masked.body.traits.plan.value).toBe('pro');
    const text = JSON.stringify(masked.body);
    for (const v of [email, phone, idNumber, street]) expect(text).not.toContain(v);
    expect(masked.body.identities).toEqual(
      expect.arrayContaining([expect.objectContaining({ type: 'email', value: `${local[0]}***@example.test` })]),
    );

    // An analyst may still look people up by email: the lookup uses the blind index, the answer is masked.
    const lookup = await as(analystKey, `/profiles?email=${encodeURIComponent(email)}`);
    expect(lookup.body.data[0].id).toBe(profileId);
    expect(JSON.stringify(lookup.body)).not.toContain(email);

    for (const path of [`/profiles/${profileId}/events?limit=100`, '/events?limit=100', '/failed-events?limit=100']) {
      const page = await as(analystKey, path);
      expect(page.status, path).toBe(200);
      const body = JSON.stringify(page.body);
      for (const v of [email, phone, idNumber, street]) expect(body, path).not.toContain(v);
    }
    const events = (await as(analystKey, `/profiles/${profileId}/events?limit=100`)).body.data as Any[];
    const signedUp = events.find((e) => e.event === 'Signed Up');
    expect(signedUp.payload.properties.email).toBe(`${local[0]}***@example.test`);
    // The admin sees the same event in clear.
    const adminEvents = (await admin(cairn.url, `/profiles/${profileId}/events?limit=100`)).data as Any[];
    expect(adminEvents.find((e) => e.event === 'Signed Up').payload.properties.email).toBe(email);
    const refusals = (await admin(cairn.url, '/failed-events?limit=100')).data as Any[];
    expect(JSON.stringify(refusals)).toContain(email); // admins read refusals (and their raw bodies) in clear
  });

  it('rules cannot compare encrypted traits (refused with a reason), but can test them and follow unsubscribes', async () => {
    const refused = async (path: string, body: object, where: string) => {
      const r = await as(TEST_ADMIN_KEY, path, { method: 'POST', body: JSON.stringify(body) });
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error.message).toContain(where);
      expect(r.body.error.message).toContain('encrypted at rest');
    };
    await refused(
      '/audiences',
      {
        key: `acme_${run}`,
        name: 'Acme staff',
        rule: { op: 'trait', trait: 'email', cmp: 'contains', value: '@acme.com' },
      },
      'rule.cmp',
    );
    await refused(
      '/tags',
      {
        key: `signup_${run}`,
        name: 'Signed up with an address',
        rule: {
          op: 'and',
          rules: [
            { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
            { op: 'performed', event: 'Signed Up', where: [{ property: 'email', cmp: '=', value: email }] },
          ],
        },
      },
      'rule.rules[1].where[0].cmp',
    );
    await refused(
      '/computed-traits',
      {
        key: `last_email_${run}`,
        name: 'Last email',
        definition: { kind: 'aggregate', fn: 'last', event: 'Signed Up', property: 'email' },
      },
      'definition.property',
    );
    // Nothing refused was stored (the rules would have held the clear address).
    expect(await scan(email)).toEqual({});

    // exists works on a sealed value; the subscription leaf matches the unsubscribed address by blind index.
    for (const [key, rule] of [
      [`has_phone_${run}`, { op: 'trait', trait: 'phone', cmp: 'exists' }],
      [`unsub_${run}`, { op: 'subscription', channel: 'email', state: 'unsubscribed' }],
    ] as const) {
      await admin(cairn.url, '/audiences', { method: 'POST', body: JSON.stringify({ key, name: key, rule }) });
      const members = (await waitFor(`members of ${key}`, async () => {
        const page = await admin(cairn.url, `/audiences/${key}/members`);
        return page.data.length ? page.data : undefined;
      }))!;
      expect(members.map((m: Any) => m.profileId)).toEqual([profileId]);
      expect(members[0].email).toBe(email);
      const masked = await as(analystKey, `/audiences/${key}/members`);
      expect(masked.body.data[0].email).toBe(`${local[0]}***@example.test`);
    }
    // Equality works through the blind index (any spelling that normalises the same); the stored rule
    // holds keyed hashes, never the address. Another person with another address is the control.
    const otherEmail = `someone.else.${randomUUID().slice(0, 8)}@example.test`;
    expect((await track('identify', { anonymousId: `pii-other-${run}`, traits: { email: otherEmail } })).status).toBe(
      200,
    );
    const other = (await waitFor('the other person', async () => {
      const r = await admin(cairn.url, `/profiles?email=${encodeURIComponent(otherEmail)}`);
      return r.data[0]?.id as string | undefined;
    }))!;
    const byEmail = await admin(cairn.url, '/audiences', {
      method: 'POST',
      body: JSON.stringify({
        key: `by_email_${run}`,
        name: 'one address',
        rule: {
          op: 'or',
          rules: [
            { op: 'trait', trait: 'email', cmp: '=', value: emailAsSent },
            { op: 'trait', trait: 'phone', cmp: 'in', value: ['+1 555 0100', phoneAsSent] },
          ],
        },
      }),
    });
    expect(byEmail.rule.rules[0]).toEqual({
      op: 'trait_index',
      trait: 'email',
      in: [expect.stringMatching(/^[\w-]{43}$/)],
    });
    const notEmail = await admin(cairn.url, '/audiences', {
      method: 'POST',
      body: JSON.stringify({
        key: `not_email_${run}`,
        name: 'not it',
        rule: { op: 'trait', trait: 'email', cmp: '!=', value: email },
      }),
    });
    const inByEmail = (await waitFor('members of by_email', async () => {
      const page = await admin(cairn.url, `/audiences/by_email_${run}/members`);
      return page.data.length ? page.data : undefined;
    }))!;
    expect(inByEmail.map((m: Any) => m.profileId)).toEqual([profileId]);
    const notIt = (await waitFor('members of not_email', async () => {
      const page = await admin(cairn.url, `/audiences/${notEmail.key}/members`);
      return page.data.length ? page.data : undefined;
    }))!;
    expect(notIt.map((m: Any) => m.profileId)).toEqual([other]);
    for (const needle of [email, phone, phoneAsSent]) expect(await scan(needle), needle).toEqual({});

    // "Why is this profile in": the deciding phone value, opened for the admin, masked for the analyst.
    const why = await admin(cairn.url, `/audiences/has_phone_${run}/explain/${profileId}`);
    expect(why.tree).toMatchObject({ result: true, value: phone });
    const whyMasked = await as(analystKey, `/audiences/has_phone_${run}/explain/${profileId}`);
    expect(whyMasked.body.tree.value).toBe(`+${'*'.repeat(phone.length - 5)}${phone.slice(-4)}`);
  });

  it('after CAIRN_SECRET rotates, old values still open, new ones use the new key, and the same email still merges', async () => {
    const [row] = await cairn.sql<
      { secret: string }[]
    >`SELECT value->>'secret' AS secret FROM settings WHERE key = 'generated_secret'`;
    const oldSecret = row!.secret;
    const [before] = await cairn.sql<{ value: string }[]>`
      SELECT value #>> '{}' AS value FROM profile_traits WHERE profile_id = ${profileId} AND key = 'id_number'`;
    const oldKid = before!.value.split(':')[2];
    await cairn.close();
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_SECRET: `rotated-${randomUUID()}`,
      CAIRN_PII_OLD_SECRETS: oldSecret,
    });
    expect(cairn.pii.ring.currentKid).not.toBe(oldKid);
    // Old values open: lookups (blind index from the oldest secret) and clear traits for the admin.
    const found = await admin(cairn.url, `/profiles?email=${encodeURIComponent(email)}`);
    expect(found.data[0]?.id).toBe(profileId);
    expect(found.data[0].traits.id_number.value).toBe(idNumber);
    // A third device gives the same email: it joins the same person; its values are sealed under the new key.
    const dev3 = `pii-dev3-${run}`;
    expect((await track('identify', { anonymousId: dev3, traits: { email, phone: phoneAsSent } })).status).toBe(200);
    await waitFor('device 3 joined the person', async () => {
      const r = await admin(cairn.url, `/profiles?anonymousId=${dev3}`);
      return r.data[0]?.id === profileId;
    });
    const [after] = await cairn.sql<{ value: string }[]>`
      SELECT value #>> '{}' AS value FROM profile_traits WHERE profile_id = ${profileId} AND key = 'phone'`;
    expect(after!.value.split(':')[2]).toBe(cairn.pii.ring.currentKid);
    expect(cairn.pii.openValue(after!.value)).toBe(phone);
    expect(await scan(email)).toEqual({});
    // Without the old secret the old values do not open: refused loudly, never read as garbage.
    const [sealedOld] = await cairn.sql<{ value: string }[]>`
      SELECT value #>> '{}' AS value FROM profile_traits WHERE profile_id = ${profileId} AND key = 'id_number'`;
    expect(sealedOld!.value.split(':')[2]).toBe(oldKid);
    expect(() => createPii({ secret: 'another-secret-0123456789' }).openValue(sealedOld!.value)).toThrow(
      /not in the keyring/,
    );
  });
});
