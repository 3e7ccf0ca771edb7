import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { CairnEvent } from '../src/types.ts';
import { harness, ready, until } from './helpers/browser.ts';

/** The outbox as stored: one queue per tab, `cairn_q_<tab>` → events. */
const queues = (page: Page) =>
  page.evaluate(() =>
    Object.keys(localStorage)
      .filter((k) => k.startsWith('cairn_q_'))
      .map((k) => JSON.parse(localStorage.getItem(k)!) as CairnEvent[]),
  );

const trackMany = (page: Page, name: string, n: number) =>
  page.evaluate(
    ([name, n]) => {
      for (let i = 0; i < n; i++) window.cairn.track(name, { i });
    },
    [name, n] as const,
  );

describe('two tabs sharing localStorage', { timeout: 120_000 }, () => {
  const h = harness();
  const deliveredIds = () => h.rec.delivered().map((e) => e.messageId);
  const expectEachOnce = (ids: string[]) => {
    const got = deliveredIds();
    for (const id of ids)
      expect(
        got.filter((x) => x === id),
        id,
      ).toHaveLength(1);
  };

  it('each tab sends its own queue, through a failing server and a reload: no loss, no repeat', async () => {
    h.rec.failWith = 500;
    const a = await h.open('/', { autoPage: false });
    const b = await h.open('/', { autoPage: false });
    await Promise.all([trackMany(a.page, 'From A', 10), trackMany(b.page, 'From B', 10)]);
    await until(async () => (await queues(a.page)).map((q) => q.length).join() === '10,10', 'two queues of 10');
    const queued = (await queues(a.page)).flat().map((e) => e.messageId);

    // A reload leaves A's queue behind (the server is failing); the new page or tab B takes it over.
    await a.page.reload();
    await ready(a.page);
    await trackMany(a.page, 'From A again', 5);
    await until(
      async () => (await queues(b.page)).flat().length === 25 && (await queues(b.page)).length === 2,
      'the old queue taken over',
    );
    const all = [...queued, ...(await queues(b.page)).flat().map((e) => e.messageId)];

    h.rec.failWith = 0;
    await until(() => new Set(deliveredIds()).size === 25, 'all 25 events delivered');
    expect(new Set(all).size).toBe(25);
    expectEachOnce(all);
  });

  it("a closed tab's queue is taken over by exactly one of the tabs left", async () => {
    h.rec.failWith = 500;
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => h.open('/', { autoPage: false })));
    await trackMany(a!.page, 'Orphan', 5);
    await until(async () => (await queues(b!.page)).flat().length === 5, "A's queue in storage");
    const orphans = (await queues(b!.page)).flat().map((e) => e.messageId);

    await a!.page.close();
    await until(
      async () => (await queues(b!.page)).length === 1 && (await queues(b!.page))[0]!.length === 5,
      'the orphaned events in the queue of one live tab',
    );
    h.rec.failWith = 0;
    await Promise.all([b!.page, c!.page].map((p) => p.evaluate(() => window.cairn.track('Marker'))));
    await until(() => h.rec.delivered().filter((e) => e.event === 'Marker').length === 2, 'both markers');
    await until(() => h.rec.delivered().filter((e) => e.event === 'Orphan').length >= 5, 'the orphans');
    expectEachOnce(orphans);
  });
});
