import { adjustedRandIndex, seededRandom } from '@cairn/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { settle } from '../testing/events.ts';
import { describeOnDatabases, type FlowHarness, flowHarness } from '../testing/flows.ts';
import { until } from '../testing/http.ts';

// A clustering over real profiles: traits set by identify events, a run as a background job, the
// `segment` computed trait on every profile, descriptions in original units, ids kept on a re-run,
// and an audience reading the trait.

const GROUPS = [
  { spend: 80, visits: 30 }, // browsers, few purchases
  { spend: 2500, visits: 6 }, // big spenders
  { spend: 600, visits: 14 },
];
const PER_GROUP = 15;

describeOnDatabases('clustering on %s', (mode) => {
  let h: FlowHarness;
  const truth = new Map<string, number>();
  let clusteringId: string;

  const runToEnd = async () => {
    const queued = await h.post(`/clusterings/${clusteringId}/run`, {});
    expect(queued.status, queued.text).toBe(202);
    expect(queued.body.status).toBe('queued');
    return until(
      'the run to finish',
      async () => {
        const c = (await h.api(`/clusterings/${clusteringId}`)).body;
        return c.lastRun?.id === queued.body.id && ['succeeded', 'failed'].includes(c.lastRun.status) && c.lastRun;
      },
      { tries: 600, intervalMs: 100 },
    );
  };
  const clusterOf = async () => {
    const out = new Map<string, number>();
    for (const user of truth.keys()) {
      const id = await h.profileOf(user);
      out.set(user, (await h.api(`/profiles/${id}/computed-traits`)).body.segment?.value);
    }
    return out;
  };

  beforeAll(async () => {
    h = await flowHarness('clustering.test.ts', mode);
    const random = seededRandom(3);
    const events: object[] = [];
    GROUPS.forEach((g, gi) => {
      for (let i = 0; i < PER_GROUP; i++) {
        const userId = `c${gi}-${i}`;
        truth.set(userId, gi);
        const jitter = () => 0.85 + random() * 0.3;
        events.push({
          type: 'identify',
          userId,
          traits: { spend: Math.round(g.spend * jitter()), visits: Math.round(g.visits * jitter()) },
        });
      }
    });
    events.push({ type: 'identify', userId: 'no-spend', traits: { visits: 3 } });
    await h.send(...events);
    await settle(h.cairn.sql, { timeoutMs: 60_000 });
  }, 120_000);
  afterAll(() => h?.close());

  it('defines a clustering, runs it as a job, and writes a stable cluster trait with descriptions', async () => {
    const created = await h.post('/clusterings', {
      name: 'Shoppers',
      traitKey: 'segment',
      features: [
        { source: 'trait', key: 'spend' },
        { source: 'trait', key: 'visits' },
      ],
      kRange: [2, 5],
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ k: null, seed: 42, schedule: null, lastRun: null });
    clusteringId = created.body.id;
    const taken = await h.post('/clusterings', {
      name: 'Again',
      traitKey: 'segment',
      features: [{ source: 'trait', key: 'spend' }],
    });
    expect(taken.status).toBe(409);

    const run = await runToEnd();
    expect(run.status, run.error).toBe('succeeded');
    expect(run).toMatchObject({ k: 3, profiles: GROUPS.length * PER_GROUP, skipped: 1, progress: 1 });
    expect(run.scores.map((s: { k: number }) => s.k)).toEqual([2, 3, 4, 5]);
    const first = await clusterOf();
    const users = [...truth.keys()];
    const ari = adjustedRandIndex(
      users.map((u) => truth.get(u)!),
      users.map((u) => first.get(u)!),
    );
    console.log(`clustering test (${mode}): ARI ${ari.toFixed(4)}; clusters`, JSON.stringify(run.clusters));
    expect(ari).toBeGreaterThanOrEqual(0.9);
    const big = run.clusters.find((c: { centroid: { spend: number } }) => c.centroid.spend > 2000);
    expect(big.size).toBe(PER_GROUP);
    expect(big.centroid.spend).toBeGreaterThan(2200);
    expect(big.distinguishing[0]).toMatchObject({ feature: 'spend', direction: 'high' });
    // The profile without every feature has no value.
    const lone = await h.profileOf('no-spend');
    expect((await h.api(`/profiles/${lone}/computed-traits`)).body.segment).toBeUndefined();

    // A re-run with another seed (so K-means starts elsewhere) keeps every profile's id.
    const patched = await h.post(`/clusterings/${clusteringId}`, { seed: 7 }, 'PATCH');
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ name: 'Shoppers', kRange: [2, 5], traitKey: 'segment', seed: 7 });
    const again = await runToEnd();
    expect(again.status, again.error).toBe('succeeded');
    expect(await clusterOf()).toEqual(first);
    expect((await h.api(`/clusterings/${clusteringId}/runs`)).body.data).toHaveLength(2);
    // The trait is listed with the other computed traits (written by runs, not evaluated by stage 3).
    const traits = await h.api('/computed-traits');
    expect(traits.status, traits.text).toBe(200);
    expect(JSON.stringify(traits.body)).toContain('"segment"');
  }, 120_000);

  it('lets audiences read the cluster trait', async () => {
    const big = (await h.api(`/clusterings/${clusteringId}`)).body.lastRun.clusters.find(
      (c: { centroid: { spend: number } }) => c.centroid.spend > 2000,
    );
    const audience = await h.post('/audiences', {
      key: 'big_spenders',
      name: 'Big spenders',
      rule: { op: 'computed', trait: 'segment', cmp: '=', value: big.id },
    });
    expect(audience.status, audience.text).toBe(201);
    const members = await until('the audience to fill', async () => {
      const a = (await h.api('/audiences/big_spenders')).body;
      return a.members === PER_GROUP && a.members;
    });
    expect(members).toBe(PER_GROUP);
  }, 60_000);

  it('refuses bad definitions and deletes the trait with the clustering', async () => {
    const both = await h.post('/clusterings', {
      name: 'Both',
      traitKey: 'both',
      features: [{ source: 'trait', key: 'spend' }],
      k: 3,
      kRange: [2, 4],
    });
    expect(both.status).toBe(400);
    const other = await h.post('/clusterings', {
      name: 'Other',
      traitKey: 'other',
      features: [{ source: 'trait', key: 'spend' }],
      k: 2,
      schedule: '0 3 * * *',
    });
    expect(other.status, other.text).toBe(201);
    // The schedule is pg-boss's, keyed by the clustering; deleting the clustering removes it.
    const scheduled = () =>
      h.cairn.sql<
        { cron: string }[]
      >`SELECT cron FROM pgboss.schedule WHERE name = 'clustering' AND key = ${other.body.id}`;
    expect((await scheduled()).map((r) => r.cron)).toEqual(['0 3 * * *']);
    expect((await h.api(`/clusterings/${other.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await h.api(`/clusterings/${other.body.id}`)).status).toBe(404);
    expect((await h.api('/computed-traits/other')).status).toBe(404);
    expect(await scheduled()).toEqual([]);
  });
});
