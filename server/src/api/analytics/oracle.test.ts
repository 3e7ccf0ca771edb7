import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { describeOnPostgres, type FlowHarness, flowHarness } from '../../testing/flows.ts';
import { checkActive } from './active.oracle.ts';
import { checkAttribution } from './attribution.oracle.ts';
import { checkFunnels } from './funnels.oracle.ts';
import { checkPaths } from './paths.oracle.ts';
import { checkRetention } from './retention.oracle.ts';
import { checkTrends } from './trends.oracle.ts';

// The oracle test of issue 19: one generated history of more than 100,000 events (people on several devices
// whose profiles merge mid-history, sessions crowded around DST days) sent through the tracking API and the
// whole pipeline, then every query type checked against its independent evaluator (the `*.oracle.ts` files).
// Each query type's own test runs the same checks on a small history on both databases; this one runs them at
// scale on Postgres (the embedded database would take minutes to take the history in).
describeOnPostgres('every analytics query against its oracle, on 100,000+ events', (mode) => {
  let h: FlowHarness;
  const events = generateAnalyticsEvents({ seed: 2026, people: 3_000, eventsPerPerson: 60 });
  const ctx = () => ({ post: h.post, events });
  beforeAll(async () => {
    h = await flowHarness('oracle.test.ts', mode);
    await sendGenerated(h.cairn, events, { batch: 500 });
  }, 900_000);
  afterAll(() => h?.close());

  it('holds more than 100,000 events attached to their people', async () => {
    expect(events.length).toBeGreaterThan(100_000);
    const [row] = await h.cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events WHERE message_id LIKE 'gen-2026-%' AND profile_id IS NOT NULL`;
    expect(row!.n).toBe(events.length);
  });

  it('trends', () => checkTrends(ctx()), 300_000);
  it('funnels', () => checkFunnels(ctx()), 300_000);
  it('paths', () => checkPaths(ctx()), 300_000);
  it('retention', () => checkRetention(ctx()), 300_000);
  it('active users', () => checkActive(ctx()), 300_000);
  it('attribution', () => checkAttribution(ctx()), 300_000);
});
