import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createYieldGate, WATCH_MS, watchCommits } from './yield.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Polls (a loaded machine delays timers): resolves once `ok` holds, or after 3 s.
const eventually = async (ok: () => boolean) => {
  for (const end = Date.now() + 3000; !ok() && Date.now() < end; ) await sleep(20);
};

describe('the pipeline yield gate', () => {
  it('lets a batch through at once when nobody asked, and holds it until the ask runs out', async () => {
    const gate = createYieldGate({ maxWaitMs: 5000 });
    expect(await gate.pass()).toBe(0);
    gate.yieldFor(120);
    const waited = await gate.pass();
    expect(waited).toBeGreaterThanOrEqual(100);
    expect(waited).toBeLessThan(3000);
    // A later ask extends an earlier one; an earlier-ending one does not shorten it.
    gate.yieldFor(150);
    gate.yieldFor(10);
    expect(await gate.pass()).toBeGreaterThanOrEqual(130);
  });

  it('never holds a batch longer than maxWaitMs, however long the asks go on', async () => {
    const gate = createYieldGate({ maxWaitMs: 80 });
    gate.yieldFor(60_000);
    const waited = await gate.pass();
    expect(waited).toBeGreaterThanOrEqual(70);
    expect(waited).toBeLessThan(3000);
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
