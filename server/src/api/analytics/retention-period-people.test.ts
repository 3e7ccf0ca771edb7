import type { Fragment, RetentionQuery } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { PinnedReader } from '../../pipeline/measure/index.ts';
import { type GeneratedEvent, generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { type Case, expectedRetention } from './retention.oracle.ts';
import { answerRetention } from './retention-read.ts';

// First-time retention with its returns read from the per-day people rollup (migration 0042) instead of
// events. Through the HTTP API, on a history with merges mid-history, every table equals the oracle, and
// equals the same query answered from events, after late events, a merge and its undo, and an erasure:
// in UTC and in New York (kept, across the November DST day), days, weeks and months, bounded and not.
// Tables the rollup cannot answer (a zone not kept, an event not kept, recurring cohorts) read events.

type Body = GeneratedEvent['body'];
const named =
  (...names: string[]) =>
  (e: Body) =>
    e.type === 'track' && names.includes(e.event!);
const anything = () => true;
const viewed = named('Product Viewed');
const ordered = named('Order Completed');

type Source = [string, string];
const q = (
  name: string,
  body: Omit<Case['body'], 'start' | 'return'> & { start: object; return: object },
  start: Case['start'],
  back: Case['back'],
  sources: Source,
): Case & { sources: Source } => ({ name, body, start, back, sources });

const NY = 'America/New_York';
const CASES = [
  q(
    'weekly first event → any event in UTC, bounded',
    {
      range: { from: '2026-03-02T00:00:00Z', to: '2026-05-25T00:00:00Z', timezone: 'UTC' },
      cohort: 'week',
      start: {},
      return: {},
      mode: 'first_time',
      periods: 6,
      bounded: true,
    },
    anything,
    anything,
    ['first_times', 'period_people'],
  ),
  q(
    'daily first event → any event in New York across the November DST day, unbounded',
    {
      range: { from: '2026-10-26T00:00:00-04:00', to: '2026-11-06T00:00:00-05:00', timezone: NY },
      cohort: 'day',
      start: {},
      return: {},
      mode: 'first_time',
      periods: 7,
      bounded: false,
    },
    anything,
    anything,
    ['first_times', 'period_people'],
  ),
  q(
    'daily first view → any event in New York, bounded (period 0 from the first day’s events)',
    {
      range: { from: '2026-10-20T00:00:00-04:00', to: '2026-11-10T00:00:00-05:00', timezone: NY },
      cohort: 'day',
      start: { event: 'Product Viewed' },
      return: {},
      mode: 'first_time',
      periods: 5,
      bounded: true,
    },
    viewed,
    anything,
    ['first_times', 'period_people'],
  ),
  q(
    'weekly first view → Order Completed (a kept event) in New York over DST, unbounded',
    {
      range: { from: '2026-09-28T00:00:00-04:00', to: '2026-11-09T00:00:00-05:00', timezone: NY },
      cohort: 'week',
      start: { event: 'Product Viewed' },
      return: { event: 'Order Completed' },
      mode: 'first_time',
      periods: 4,
      bounded: false,
    },
    viewed,
    ordered,
    ['first_times', 'period_people'],
  ),
  q(
    'monthly first track or page → Order Completed in New York, bounded (incomplete periods)',
    {
      range: { from: '2026-03-01T00:00:00-05:00', to: '2026-10-01T00:00:00-04:00', timezone: NY },
      cohort: 'month',
      start: { type: ['track', 'page'] },
      return: { event: 'Order Completed' },
      mode: 'first_time',
      periods: 3,
      bounded: true,
    },
    (e) => e.type === 'track' || e.type === 'page',
    ordered,
    ['first_times', 'period_people'],
  ),
  q(
    'monthly first order → any event in UTC, unbounded',
    {
      range: { from: '2026-02-01T00:00:00Z', to: '2026-09-01T00:00:00Z', timezone: 'UTC' },
      cohort: 'month',
      start: { event: 'Order Completed' },
      return: {},
      mode: 'first_time',
      periods: 4,
      bounded: false,
    },
    ordered,
    anything,
    ['first_times', 'period_people'],
  ),
  // Not served by the rollup: a zone not kept, an event not kept, recurring cohorts, a return with a type.
  q(
    'weekly first event → any event in Berlin (zone not kept)',
    {
      range: { from: '2026-03-16T00:00:00+01:00', to: '2026-05-04T00:00:00+02:00', timezone: 'Europe/Berlin' },
      cohort: 'week',
      start: {},
      return: {},
      mode: 'first_time',
      periods: 4,
      bounded: true,
    },
    anything,
    anything,
    ['first_times', 'events'],
  ),
  q(
    'weekly first event → Product Added in UTC (event not kept)',
    {
      range: { from: '2026-03-02T00:00:00Z', to: '2026-05-25T00:00:00Z', timezone: 'UTC' },
      cohort: 'week',
      start: {},
      return: { event: 'Product Added' },
      mode: 'first_time',
      periods: 4,
      bounded: false,
    },
    anything,
    named('Product Added'),
    ['first_times', 'events'],
  ),
  q(
    'weekly recurring any event → any event in New York',
    {
      range: { from: '2026-10-05T00:00:00-04:00', to: '2026-11-09T00:00:00-05:00', timezone: NY },
      cohort: 'week',
      start: {},
      return: {},
      mode: 'recurring',
      periods: 3,
      bounded: true,
    },
    anything,
    anything,
    ['events', 'events'],
  ),
];

describeOnDatabases('first-time retention returns from the per-day people rollup on %s', (mode) => {
  let h: FlowHarness;
  let events: GeneratedEvent[] = generateAnalyticsEvents({ seed: 43, people: 150, eventsPerPerson: 20 });
  beforeAll(async () => {
    h = await flowHarness('retention-period-people.test.ts', mode);
    for (const entry of [{ zone: NY }, { event: 'Order Completed' }]) {
      const res = await h.post('/analytics/rollups/people', entry);
      expect(res.status, res.text).toBe(200);
    }
    await sendGenerated(h.cairn, events);
    await settled();
  }, 600_000);
  afterAll(() => h?.close(), 60_000);

  const settled = () => settle(h.cairn.sql, { queues: ['measure'], timeoutMs: 60_000 });
  const reader = () =>
    ({
      rows: (f: Fragment) => {
        const { text, values } = f.render();
        return h.cairn.sql.unsafe(text, values as never[]);
      },
    }) as unknown as PinnedReader;
  const sorted = (rows: { cohort_ms: number; period: number; people: number }[]) =>
    rows.map((r) => [Number(r.cohort_ms), r.period, r.people]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);

  // Every case: the API's table equals the oracle and says its sources; the rows read through the rollup
  // equal the rows read from events; and the tables are worth something (people come back, period 0 too).
  const expectExact = async (oracle = true) => {
    let back = 0;
    let first = 0;
    for (const c of CASES) {
      const res = await h.post('/analytics/retention', c.body);
      expect(res.status, `${c.name}: ${res.text}`).toBe(200);
      expect(res.body.meta.sources, c.name).toEqual(c.sources);
      const expected: ReturnType<typeof expectedRetention> = oracle ? expectedRetention(c, events) : res.body.cohorts;
      expect(res.body.cohorts, c.name).toEqual(expected);
      const query = c.body as RetentionQuery;
      const now = new Date();
      const auto = await answerRetention(reader(), query, now);
      expect(auto.sources, c.name).toEqual(c.sources);
      const scanned = await answerRetention(reader(), query, now, undefined, 'events');
      expect(scanned.sources[1]).toBe('events');
      expect(sorted(auto.rows), c.name).toEqual(sorted(scanned.rows));
      if (c.sources[1] !== 'period_people') continue;
      for (const row of expected) {
        first += row.periods[0]!.people;
        back += row.periods.slice(1).reduce((n, p) => n + p.people, 0);
      }
    }
    expect(first).toBeGreaterThan(0);
    expect(back).toBeGreaterThan(0);
  };

  it('equals the oracle and the events path on a history with merges mid-history', async () => {
    await expectExact();
  }, 180_000);

  it('stays exact through late events, a merge and its undo, and an erasure', async () => {
    const track = (anonymousId: string, timestamp: string, event = 'Order Completed', extra: object = {}) => ({
      type: 'track',
      event,
      anonymousId,
      timestamp,
      properties: { total: 5 },
      ...extra,
    });
    const add = (person: string, ...bodies: object[]) => {
      events = [...events, ...bodies.map((body) => ({ person, body: body as Body }))];
    };
    // Late events: a signed-in person's first event ever, weeks before their history (their first time moves),
    // and a new device on the DST day: viewed at 00:30 and 01:30 (EDT), ordered at 01:10 EST, the same local day.
    const person = events.find((e) => e.body.userId)!;
    const late = [{ ...track('late-1', '2026-02-03T12:00:00Z', 'Product Viewed'), userId: person.body.userId }];
    const dst = [
      track('late-2', '2026-11-01T04:30:00Z', 'Product Viewed'),
      track('late-2', '2026-11-01T05:30:00Z', 'Product Viewed'),
      track('late-2', '2026-11-01T06:10:00Z'),
    ];
    await h.send(...late, ...dst);
    await settled();
    add(person.person, ...late);
    add('late-2', ...dst);
    await expectExact();

    // Two devices first seen on different days; they sign in as one person (a merge), then it is undone.
    const devices = [
      track('rp-a', '2026-10-27T14:00:00Z', 'Product Viewed'),
      track('rp-a', '2026-10-29T15:00:00Z'),
      track('rp-b', '2026-10-28T02:00:00Z', 'Product Viewed'),
      track('rp-b', '2026-11-02T16:00:00Z'),
    ];
    await h.send(...devices);
    await settled();
    add('rp-a', ...devices.slice(0, 2));
    add('rp-b', ...devices.slice(2));
    await expectExact();
    const signIns = [
      { type: 'identify', anonymousId: 'rp-a', userId: 'rp-user', timestamp: '2026-11-03T08:00:00Z' },
      { type: 'identify', anonymousId: 'rp-b', userId: 'rp-user', timestamp: '2026-11-03T09:00:00Z' },
    ];
    await h.send(...signIns);
    await settled();
    const merged = events.map((e) => (e.person === 'rp-a' || e.person === 'rp-b' ? { ...e, person: 'rp' } : e));
    const before = events;
    events = merged;
    add('rp', ...signIns);
    await expectExact();
    const survivor = await h.profileOf('rp-user');
    const merges = await h.api(`/profiles/${survivor}/merges`);
    const merge = merges.body.data.find((m: { kind: string }) => m.kind === 'merge');
    expect(merge, merges.text).toBeDefined();
    const undo = await h.post(`/profiles/${survivor}/unmerge`, { mergeId: merge.id });
    expect(undo.status, undo.text).toBe(200);
    await settled();
    // Apart again (the sign-ins go where the store says: the rollup path equals the events path).
    await expectExact(false);

    // Erasures: both devices' people and a generated person; their events leave the ground truth.
    const erased = events.find((e) => e.body.userId && e.person !== person.person)!.person;
    const ours = [await h.profileOf('rp-a', 'anonymousId'), await h.profileOf('rp-b', 'anonymousId')];
    expect(new Set(ours).size).toBe(2);
    for (const p of [...ours, await h.profileOf(erased)]) {
      const res = await h.api(`/profiles/${p}`, { method: 'DELETE' });
      expect(res.status, res.text).toBe(200);
    }
    await settled();
    events = before.filter((e) => e.person !== erased && e.person !== 'rp-a' && e.person !== 'rp-b');
    await expectExact();
  }, 300_000);
});
