import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, movableClock } from '../testing/flows.ts';
import { until } from '../testing/http.ts';

// The routes the console's audience pages added: daily member counts of audiences and tags, read from the
// membership log on a moved clock (people enter on one day, one leaves the next, and each day's end shows
// who was in then), and why a profile carries a tag or not.

const DAY = 86_400_000;
const plan = (userId: string, value: string) => ({ type: 'identify', userId, traits: { plan: value } });
const pro = { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' };

describeOnDatabases('audience and tag routes on %s', (mode) => {
  let h: FlowHarness;
  const clock = movableClock(Date.parse('2026-12-01T12:00:00Z'));
  const members = async (path: string) => (await h.api(path)).body?.members as number | undefined;

  beforeAll(async () => {
    h = await flowHarness('audience-api.test.ts', mode, { clock });
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

  it('explains why a profile carries a tag: the rule now for a dynamic tag, the reason for a static one', async () => {
    const [u1, u2] = [await h.profileOf('u1'), await h.profileOf('u2')];
    const yes = await h.api(`/tags/pro/explain/${u1}`);
    expect(yes.status, yes.text).toBe(200);
    expect(yes.body).toMatchObject({ tag: 'pro', profileId: u1, member: true, matches: true });
    expect(yes.body.tree).toMatchObject({ result: true, value: 'pro', description: 'plan is "pro"' });
    expect(yes.body.history).toEqual([expect.objectContaining({ addedBy: 'recompute', removedAt: null })]);
    const no = await h.api(`/tags/pro/explain/${u2}`);
    expect(no.body).toMatchObject({ member: false, matches: false, history: [] });
    expect(no.body.tree).toMatchObject({ result: false, value: 'free' });

    expect((await h.post('/tags', { key: 'vip', name: 'VIP' })).status).toBe(201);
    const added = await h.post(`/profiles/${u2}/tags`, { tag: 'vip', reason: 'met at a fair' });
    expect(added.status, added.text).toBe(200);
    const manual = await h.api(`/tags/vip/explain/${u2}`);
    expect(manual.body).toMatchObject({ member: true, matches: null, tree: null });
    expect(manual.body.history[0]).toMatchObject({ addedReason: 'met at a fair', removedAt: null });
    expect((await h.api(`/tags/nope/explain/${u2}`)).status).toBe(404);
    expect((await h.api('/tags/vip/explain/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('answers 404 for an unknown definition and 400 for a bad number of days', async () => {
    expect((await h.api('/audiences/nope/daily-counts')).status).toBe(404);
    expect((await h.api('/tags/nope/daily-counts')).status).toBe(404);
    const bad = await h.api('/audiences/pro_plan/daily-counts?days=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('days');
  });
});
