import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, movableClock } from '../testing/flows.ts';
import { until } from '../testing/http.ts';

// Daily member counts of audiences and tags, read from the membership log on a moved clock: people
// enter on one day, one leaves the next, and each day's end shows who was in then.

const DAY = 86_400_000;
const plan = (userId: string, value: string) => ({ type: 'identify', userId, traits: { plan: value } });
const pro = { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' };

describeOnDatabases('daily member counts on %s', (mode) => {
  let h: FlowHarness;
  const clock = movableClock(Date.parse('2026-12-01T12:00:00Z'));
  const members = async (path: string) => (await h.api(path)).body?.members as number | undefined;

  beforeAll(async () => {
    h = await flowHarness('audience-counts.test.ts', mode, { clock });
  }, 120_000);
  afterAll(() => h?.close());

  it('counts the members at the end of each UTC day, today until now', async () => {
    const created = await h.post('/audiences', { key: 'pro_plan', name: 'Pro plan', rule: pro });
    expect(created.status, created.text).toBe(201);
    await h.send(plan('u1', 'pro'), plan('u2', 'pro'), plan('u3', 'free'));
    await until('two members', async () => (await members('/audiences/pro_plan')) === 2, { tries: 600 });

    clock.advance(DAY);
    await h.send(plan('u2', 'free'));
    await until('one member', async () => (await members('/audiences/pro_plan')) === 1, { tries: 600 });

    const res = await h.api('/audiences/pro_plan/daily-counts?days=3');
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      days: 3,
      data: [
        { day: '2026-11-30', members: 0 },
        { day: '2026-12-01', members: 2 },
        { day: '2026-12-02', members: 1 },
      ],
    });
    // 30 days by default.
    const month = await h.api('/audiences/pro_plan/daily-counts');
    expect(month.body.data).toHaveLength(30);
    expect(month.body.data.at(-1)).toEqual({ day: '2026-12-02', members: 1 });
  });

  it('counts a dynamic tag from its assignments, from the moment it was made', async () => {
    const created = await h.post('/tags', { key: 'pro', name: 'Pro', rule: pro });
    expect(created.status, created.text).toBe(201);
    await until('the tag computed', async () => (await members('/tags/pro')) === 1, { tries: 600 });
    const res = await h.api('/tags/pro/daily-counts?days=2');
    expect(res.status, res.text).toBe(200);
    expect(res.body.data).toEqual([
      { day: '2026-12-01', members: 0 },
      { day: '2026-12-02', members: 1 },
    ]);
  });

  it('answers 404 for an unknown definition and 400 for a bad number of days', async () => {
    expect((await h.api('/audiences/nope/daily-counts')).status).toBe(404);
    expect((await h.api('/tags/nope/daily-counts')).status).toBe(404);
    const bad = await h.api('/audiences/pro_plan/daily-counts?days=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('days');
  });
});
