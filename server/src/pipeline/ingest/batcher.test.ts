import { describe, expect, it } from 'vitest';
import { createBatcher } from './batcher.ts';

// The batcher is ingest's group commit: every accepted event's 200 waits on the write that carried it,
// so a lost, doubled or wrongly failed item here is a lost or doubled event.

/** A write the test finishes by hand: each call is recorded with the items it got. */
function controlledWrite<In>() {
  const calls: { items: In[]; finish(): void; fail(err: Error): void }[] = [];
  const write = (items: In[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, finish: () => resolve(items.map((i) => `ok:${String(i)}`)), fail: reject });
    });
  return { calls, write };
}

/** Lets the batcher's scheduled pump (setImmediate) and promise callbacks run. */
const turn = () => new Promise<void>((r) => setImmediate(r));

const settled = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

describe('createBatcher', () => {
  it('writes what arrives in one tick as one group and gives each item its own result', async () => {
    const { calls, write } = controlledWrite<string>();
    const b = createBatcher({ write, weight: () => 1, maxWeight: 100, concurrency: 4, parallelWeight: 10 });
    const results = ['a', 'b', 'c'].map((x) => b.submit(x));
    expect(calls).toHaveLength(0); // nothing is written synchronously: the tick gathers the group
    await turn();
    expect(calls.map((c) => c.items)).toEqual([['a', 'b', 'c']]);
    calls[0]!.finish();
    expect(await Promise.all(results)).toEqual(['ok:a', 'ok:b', 'ok:c']);
  });

  it('flushes on size: a group never exceeds maxWeight, except one item heavier than it, written alone', async () => {
    const { calls, write } = controlledWrite<number>();
    // Each item weighs its value (rows in a request); up to 10 per group; concurrency wide open.
    const b = createBatcher({ write, weight: (n) => n, maxWeight: 10, concurrency: 10, parallelWeight: 0 });
    const results = [4, 5, 3, 25, 2].map((n) => b.submit(n));
    await turn();
    expect(calls.map((c) => c.items)).toEqual([[4, 5], [3], [25], [2]]);
    for (const c of calls) c.finish();
    expect(await Promise.all(results)).toEqual(['ok:4', 'ok:5', 'ok:3', 'ok:25', 'ok:2']);
  });

  it('items arriving during a write wait and go together in the next one, in order', async () => {
    const { calls, write } = controlledWrite<string>();
    const b = createBatcher({ write, weight: () => 1, maxWeight: 100, concurrency: 4, parallelWeight: 50 });
    const first = b.submit('a');
    await turn();
    expect(calls).toHaveLength(1);
    const later = ['b', 'c', 'd'].map((x) => b.submit(x));
    await turn();
    await turn();
    expect(calls).toHaveLength(1); // three waiting rows do not justify a parallel commit
    calls[0]!.finish();
    await first;
    await turn();
    await turn();
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c', 'd']]);
    calls[1]!.finish();
    expect(await Promise.all(later)).toEqual(['ok:b', 'ok:c', 'ok:d']);
  });

  it('starts a parallel write once parallelWeight waits, never more than concurrency at once', async () => {
    const { calls, write } = controlledWrite<number>();
    const b = createBatcher({ write, weight: () => 1, maxWeight: 3, concurrency: 2, parallelWeight: 3 });
    const results = [b.submit(0)];
    await turn();
    expect(calls).toHaveLength(1);
    for (let i = 1; i <= 9; i++) results.push(b.submit(i));
    await turn();
    // Nine waiting, enough for a parallel write: a second starts with a full group, a third must wait.
    expect(calls.map((c) => c.items)).toEqual([[0], [1, 2, 3]]);
    calls[0]!.finish();
    await turn();
    await turn();
    expect(calls.map((c) => c.items)).toEqual([[0], [1, 2, 3], [4, 5, 6]]);
    calls[1]!.finish();
    await turn();
    await turn();
    expect(calls.map((c) => c.items)).toEqual([[0], [1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    for (const c of calls.slice(2)) c.finish();
    expect(await Promise.all(results)).toEqual(Array.from({ length: 10 }, (_, i) => `ok:${i}`));
  });

  it('a failed write rejects exactly the items of its group; the others succeed and the batcher goes on', async () => {
    const { calls, write } = controlledWrite<number>();
    const b = createBatcher({ write, weight: () => 1, maxWeight: 2, concurrency: 2, parallelWeight: 0 });
    const results = [1, 2, 3, 4].map((n) => settled(b.submit(n)));
    await turn();
    expect(calls.map((c) => c.items)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    const boom = new Error('deadlock detected');
    calls[0]!.fail(boom);
    calls[1]!.finish();
    expect(await Promise.all(results)).toEqual([
      { ok: false, error: boom },
      { ok: false, error: boom },
      { ok: true, value: 'ok:3' },
      { ok: true, value: 'ok:4' },
    ]);
    const next = b.submit(5);
    await turn();
    calls[2]!.finish();
    expect(await next).toBe('ok:5');
  });

  it('drain resolves at once when idle, and otherwise once everything submitted so far has settled, failures included', async () => {
    const { calls, write } = controlledWrite<string>();
    const b = createBatcher({ write, weight: () => 1, maxWeight: 1, concurrency: 1, parallelWeight: 1 });
    await b.drain();
    expect(b.pending()).toBe(0);
    const a = settled(b.submit('a'));
    const c = settled(b.submit('c'));
    expect(b.pending()).toBeGreaterThan(0);
    let drained = false;
    const draining = b.drain().then(() => {
      drained = true;
    });
    await turn();
    calls[0]!.fail(new Error('gone'));
    await turn();
    await turn();
    expect(drained).toBe(false); // 'c' is still to be written
    expect(b.pending()).toBeGreaterThan(0);
    calls[1]!.finish();
    await draining;
    expect(b.pending()).toBe(0);
    expect((await a).ok).toBe(false);
    expect(await c).toEqual({ ok: true, value: 'ok:c' });
  });
});
