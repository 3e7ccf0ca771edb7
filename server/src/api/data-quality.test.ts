import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { sendEvents, settle } from '../testing/events.ts';
import { describeOnDatabases } from '../testing/flows.ts';
import { adminApi } from '../testing/http.ts';
import { startTestCairn, TEST_ADMIN_KEY } from '../testing/server.ts';

// Data quality through the real server on a real Postgres: rules per trait set by an admin (refused
// with a reason when malformed), applied when stage 2 folds events and when a CSV is imported; fills
// derived and re-derived; the report's fill rate, types, failing values (masked for an analyst) and
// stale values.

const DAY = 86_400_000;

describeOnDatabases('data quality on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let admin: ReturnType<typeof adminApi>;
  let analyst: ReturnType<typeof adminApi>;
  const put = (key: string, rule: unknown, as = admin) =>
    as(`/data-quality/rules/${encodeURIComponent(key)}`, { method: 'PUT', body: JSON.stringify(rule) });
  const identify = (userId: string, traits: Record<string, unknown>, timestamp = new Date().toISOString()) => ({
    type: 'identify',
    userId,
    traits,
    timestamp,
  });
  const send = async (events: object[]) => {
    await sendEvents(cairn, cairn.demoSource!.writeKey, events);
    await settle(cairn.sql);
  };
  const traitsOf = async (userId: string) => {
    const r = await admin(`/profiles?userId=${userId}`);
    expect(r.status, r.text).toBe(200);
    return r.body.data[0].traits as Record<string, { value: unknown; source: string }>;
  };

  beforeAll(async () => {
    db = await createTestDatabase('api/data-quality.test.ts', mode);
    cairn = await startTestCairn(db.env);
    admin = adminApi(cairn.url, TEST_ADMIN_KEY);
    const key = await admin('/keys', { method: 'POST', body: JSON.stringify({ name: 'analyst', role: 'analyst' }) });
    expect(key.status, key.text).toBe(201);
    analyst = adminApi(cairn.url, key.body.key);
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('refuses malformed rules with a 4xx that says why, and lets only admins write', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['country', { normalize: [{ op: 'shout' }] }, /normalize\.0\.op/],
      ['country', { normalize: 'trim' }, /normalize/],
      ['country', {}, /normalize steps, a fill, or both/],
      ['country', { normalize: [{ op: 'country', languages: ['xx'] }] }, /not a language/],
      ['country', { normalize: [{ op: 'trim', evil: '<script>' }] }, /evil/],
      ['full_name', { fill: { template: '{{ event.name }}' } }, /only \{\{ traits\.<key> \}\}/],
      ['full_name', { fill: { template: 'Hi {{ traits.first_name' } }, /never closed/],
      ['full_name', { fill: { template: '{{ traits.full_name }}!' } }, /reads the trait it fills/],
      ['greeting', { fill: { template: 'Hello {{ traits.email }}' } }, /sensitive trait "email"/],
      ['$set', { normalize: [{ op: 'trim' }] }, /cannot start with \$/],
    ];
    for (const [key, rule, reason] of cases) {
      const r = await put(key, rule);
      expect(r.status, `${key} ${JSON.stringify(rule)}: ${r.text}`).toBe(400);
      expect(r.body.error.message).toMatch(reason);
    }
    const broken = await admin('/data-quality/rules/country', { method: 'PUT', body: '{"normalize": [' });
    expect(broken.status).toBe(400);
    // Fills deriving from each other in a circle.
    expect((await put('a_fill', { fill: { template: '{{ traits.b_fill }}' } })).status).toBe(201);
    const cycle = await put('b_fill', { fill: { template: '{{ traits.a_fill }}' } });
    expect(cycle.status).toBe(400);
    expect(cycle.body.error.message).toContain('b_fill → a_fill → b_fill');
    expect((await admin('/data-quality/rules/a_fill', { method: 'DELETE' })).status).toBe(204);
    expect((await admin('/data-quality/rules/a_fill', { method: 'DELETE' })).status).toBe(404);
    // Analysts read, never write.
    expect((await put('country', { normalize: [{ op: 'trim' }] }, analyst)).status).toBe(403);
    expect((await analyst('/data-quality/rules')).status).toBe(200);
    expect((await admin('/data-quality/rules')).body.data).toEqual([]);
  });

  it('normalises on ingest: one date in five layouts, a country in several spellings; a failing value is kept', async () => {
    // Stored before the rule: reported as not normalised, not as failing.
    await send([identify('early', { country: 'france' })]);
    const rules = {
      country: { normalize: [{ op: 'trim' }, { op: 'country', languages: ['en', 'de', 'fr'] }] },
      birthday: { normalize: [{ op: 'date' }] },
      phone: { normalize: [{ op: 'phone' }] },
    };
    for (const [key, rule] of Object.entries(rules)) {
      const r = await put(key, rule);
      expect(r.status, r.text).toBe(201);
      expect(r.body).toMatchObject({ key, rule: { ...rule, fill: null }, updatedBy: expect.any(String) });
    }
    expect((await put('birthday', rules.birthday)).status).toBe(200); // replaced
    const dates = ['1990-12-31', '31.12.1990', '31/12/1990', 'December 31, 1990', '31 Dec 1990'];
    const countries = ['Germany', ' germany ', 'Deutschland', 'Allemagne', 'DEU'];
    await send([
      ...dates.map((birthday, i) => identify(`u${i}`, { birthday, country: countries[i] })),
      identify('bad', { country: 'Atlantis', birthday: 'next tuesday', phone: 'call me', plan: 42 }),
    ]);
    for (let i = 0; i < 5; i++) {
      const t = await traitsOf(`u${i}`);
      expect(t.birthday?.value, dates[i]).toBe('1990-12-31');
      expect(t.country?.value, countries[i]).toBe('DE');
    }
    const bad = await traitsOf('bad');
    expect(bad.country?.value).toBe('Atlantis');
    expect(bad.birthday?.value).toBe('next tuesday');

    const report = await admin('/data-quality/traits');
    expect(report.status, report.text).toBe(200);
    expect(report.body).toMatchObject({ profiles: 7, exact: true, samplePercent: null, staleDays: 90 });
    const byKey = Object.fromEntries(report.body.traits.map((t: { key: string }) => [t.key, t]));
    expect(byKey.country).toMatchObject({
      filled: 7,
      fillRate: 1,
      types: { string: 7 },
      failed: { count: 1, examples: [{ value: 'Atlantis', reason: expect.stringContaining('Atlantis') }] },
      unnormalized: 1,
    });
    expect(byKey.birthday).toMatchObject({ filled: 6, failed: { count: 1 }, unnormalized: 0 });
    expect(byKey.birthday.fillRate).toBeCloseTo(6 / 7);
    // No rule: no rule check; a number among strings shows in the types.
    expect(byKey.plan).toMatchObject({ filled: 1, types: { number: 1 }, rule: null, failed: null });
    // A sensitive trait: sealed at rest in the list, opened in the trait's own report; masked for an analyst.
    expect(byKey.phone.types).toEqual({ sealed: 1 });
    const mine = await admin('/data-quality/traits/phone');
    expect(mine.body.trait).toMatchObject({
      types: { string: 1 },
      failed: { count: 1, examples: [{ value: 'call me' }] },
    });
    const theirs = await analyst('/data-quality/traits/phone');
    expect(theirs.status).toBe(200);
    expect(theirs.body.trait.failed.examples[0].value).not.toContain('call');
    expect((await admin('/data-quality/traits/no_such_trait')).status).toBe(404);
    // A sample says it is one.
    const sampled = await admin('/data-quality/traits?samplePercent=100');
    expect(sampled.body).toMatchObject({ exact: false, samplePercent: 100 });
    expect((await admin('/data-quality/traits?samplePercent=0')).status).toBe(400);
    expect((await admin('/data-quality/traits?staleDays=-3')).status).toBe(400);
  });

  it('normalises on import with the same rules', async () => {
    const csv = 'id,country,born\nimp1,Deutschland,31.12.1990\nimp2,atlantis,12 Mar 2001\n';
    const map = 'id=identity:userId,country=trait:country,born=trait:birthday';
    const res = await fetch(`${cairn.url}/api/imports?map=${encodeURIComponent(map)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'text/csv' },
      body: csv,
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'done', rowsBad: 0 });
    expect(await traitsOf('imp1')).toMatchObject({ country: { value: 'DE' }, birthday: { value: '1990-12-31' } });
    expect(await traitsOf('imp2')).toMatchObject({ country: { value: 'atlantis' }, birthday: { value: '2001-03-12' } });
    const r = await admin('/data-quality/traits/country?examples=5');
    expect(r.body.trait.failed.count).toBe(2);
    expect(r.body.trait.failed.examples.map((e: { value: string }) => e.value).sort()).toEqual([
      'Atlantis',
      'atlantis',
    ]);
  });

  it('fills a missing trait, marked derived, and derives it again when its inputs change', async () => {
    expect(
      (await put('full_name', { fill: { template: '{{ traits.first_name }} {{ traits.last_name }}' } })).status,
    ).toBe(201);
    expect((await put('tier', { fill: { default: 'standard' } })).status).toBe(201);
    await send([identify('ann', { first_name: 'Ann', last_name: 'Lee' })]);
    expect(await traitsOf('ann')).toMatchObject({
      full_name: { value: 'Ann Lee', source: 'derived' },
      tier: { value: 'standard', source: 'derived' },
    });
    await send([identify('ann', { last_name: 'Smith' })]);
    expect((await traitsOf('ann')).full_name).toMatchObject({ value: 'Ann Smith', source: 'derived' });
    await send([identify('ann', { full_name: 'Dr Ann Smith' })]);
    expect((await traitsOf('ann')).full_name).toMatchObject({ value: 'Dr Ann Smith', source: 'identify' });
    const r = await admin('/data-quality/traits/tier');
    expect(r.body.trait).toMatchObject({ filled: 1, derived: 1 });
  });

  it('reports stale values: traits not updated in N days', async () => {
    const old = new Date(Date.now() - 200 * DAY).toISOString();
    await send([identify('old', { plan: 'legacy', seats: 3 }, old), identify('new', { plan: 'pro' })]);
    const r90 = await admin('/data-quality/traits/plan?staleDays=90');
    expect(r90.body.trait).toMatchObject({ filled: 3, stale: 1 });
    expect(r90.body.trait.oldestUpdate).toBe(old);
    const r365 = await admin('/data-quality/traits/plan?staleDays=365');
    expect(r365.body.trait.stale).toBe(0);
    const all = await admin('/data-quality/traits?staleDays=30');
    const seats = all.body.traits.find((t: { key: string }) => t.key === 'seats');
    expect(seats).toMatchObject({ filled: 1, stale: 1 });
  });
});
