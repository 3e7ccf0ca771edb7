import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createYieldGate, WATCH_MS, watchCommits } from './yield.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Polls (a loaded machine delays timers): resolves once `ok` holds, or after 3 s.
const eventually = async (ok: () => boolean) => {
  for (const end = Date.now() + 3000; !ok() && Date.now() < end; ) await sleep(20);
};

describe('the pipeline yield gate', () => {
  it('lets every batch through at once when nobody asked', async () => {
    const gate = createYieldGate({ restFactor: 3 });
    const [a, b] = await Promise.all([gate.pass(), gate.pass()]);
    expect([a.waited, b.waited]).toEqual([0, 0]);
  });

  it('while asked, lets one batch run at a time and rests after it for restFactor times as long', async () => {
    const gate = createYieldGate({ restFactor: 3 });
    gate.yieldFor(60_000);
    const first = await gate.pass();
    let second: { waited: number } | undefined;
    const waiting = gate.pass().then((r) => {
      second = r;
      return r;
    });
    await sleep(80);
    expect(second).toBeUndefined();
    // The first batch took ~80 ms: the next starts ~240 ms after it ended.
    first.done();
    const ended = Date.now();
    const next = await waiting;
    expect(Date.now() - ended).toBeGreaterThanOrEqual(200);
    expect(next.waited).toBeGreaterThanOrEqual(270);
    next.done();
  });

  it('lets the held batches go as soon as the ask runs out', async () => {
    const gate = createYieldGate({ restFactor: 3 });
    gate.yieldFor(150);
    await gate.pass(); // runs, and never ends during this test
    const held = await Promise.all([gate.pass(), gate.pass()]);
    for (const h of held) {
      expect(h.waited).toBeGreaterThanOrEqual(100);
      expect(h.waited).toBeLessThan(3000);
    }
  });
});

describe('watching the group commits', () => {
  const histogram = () =>
    new Histogram({
      name: 'commit_seconds',
      help: 'commits',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [new Registry()],
    });

  it('asks when a commit of the last interval was slower than the bound, and not for fast ones', async () => {
    const h = histogram();
    let asks = 0;
    const stop = watchCommits(h, 25, () => asks++);
    try {
      // The watcher's first read is its baseline.
      await sleep(WATCH_MS * 5);
      for (let i = 0; i < 50; i++) h.observe(0.004);
      await sleep(WATCH_MS * 3);
      expect(asks).toBe(0);
      h.observe(0.004);
      h.observe(0.04);
      await eventually(() => asks > 0);
      expect(asks).toBe(1);
      // Only the interval it fell in: quiet again after.
      await sleep(WATCH_MS * 3);
      expect(asks).toBe(1);
    } finally {
      stop();
    }
  });

  it('counts every commit as slow with a bound of 0', async () => {
    const h = histogram();
    let asks = 0;
    const stop = watchCommits(h, 0, () => asks++);
    try {
      await sleep(WATCH_MS * 5);
      h.observe(0.0001);
      await eventually(() => asks > 0);
      expect(asks).toBe(1);
    } finally {
      stop();
    }
  });
});
