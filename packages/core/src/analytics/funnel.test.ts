import { describe, expect, it } from 'vitest';
import {
  addAttempt,
  type FunnelEvent,
  type FunnelPass,
  foldFunnel,
  funnelCounts,
  funnelEventsQuery,
  funnelPackedQuery,
  funnelStepStats,
  unpackFunnelEvents,
} from './funnel.ts';

const H = 3_600_000;
const pass = (over: Partial<FunnelPass> = {}): FunnelPass => ({
  steps: 3,
  order: 'sequential',
  windowMs: H,
  from: 0,
  to: 100 * H,
  until: 1_000 * H,
  exclusions: [],
  ...over,
});
// ev(t in minutes, step bits, exclusion bits, identify)
const ev = (
  min: number,
  steps: number,
  exclusions = 0,
  identify = false,
  group: string | null = null,
): FunnelEvent => ({
  t: min * 60_000,
  steps,
  exclusions,
  identify,
  group,
});

describe('foldFunnel', () => {
  it('walks steps in order, other steps allowed between', () => {
    const a = foldFunnel(pass(), [ev(1, 1), ev(2, 4), ev(3, 2), ev(5, 4)]);
    expect(a).toEqual({ start: 60_000, reached: 3, times: [60_000, 180_000, 300_000], group: null });
  });

  it('takes the furthest attempt, the earliest on ties', () => {
    // First attempt reaches 2 (step 3 past its window), second (at 70) reaches 3.
    const a = foldFunnel(pass(), [
      ev(0, 1, 0, false, '"a"'),
      ev(10, 2),
      ev(70, 1, 0, false, '"b"'),
      ev(75, 2),
      ev(80, 4),
    ]);
    expect(a?.reached).toBe(3);
    expect(a).toMatchObject({ start: 70 * 60_000, group: '"b"' });
    // 0: reaches 2 (step 2 at 10); 20: reaches 2 (step 2 at 30): the earliest stands.
    const b = foldFunnel(pass(), [ev(0, 1), ev(10, 2), ev(20, 1), ev(30, 2)]);
    expect(b).toMatchObject({ start: 0, reached: 2 });
  });

  it('counts a step exactly at the end of the window, not one a millisecond later', () => {
    const at = (ms: number) => ({ t: ms, steps: 2, exclusions: 0, identify: false, group: null });
    expect(foldFunnel(pass({ steps: 2 }), [ev(0, 1), at(H)])?.reached).toBe(2);
    expect(foldFunnel(pass({ steps: 2 }), [ev(0, 1), at(H + 1)])?.reached).toBe(1);
  });

  it('ignores entries outside the range and steps after now', () => {
    expect(foldFunnel(pass({ from: 10 * 60_000 }), [ev(5, 1), ev(15, 2)])).toBeNull();
    expect(foldFunnel(pass({ to: 10 * 60_000 }), [ev(10, 1)])).toBeNull();
    // Later steps may run past `to`, within the window, but not past until.
    expect(foldFunnel(pass({ to: 10 * 60_000 }), [ev(5, 1), ev(30, 2)])?.reached).toBe(2);
    expect(foldFunnel(pass({ until: 20 * 60_000 }), [ev(5, 1), ev(30, 2)])?.reached).toBe(1);
  });

  it('strict order: no other event between steps, identify calls aside', () => {
    const strict = pass({ order: 'strict' });
    expect(foldFunnel(strict, [ev(0, 1), ev(1, 0), ev(2, 2)])?.reached).toBe(1);
    expect(foldFunnel(strict, [ev(0, 1), ev(1, 0, 0, true), ev(2, 2), ev(3, 4)])?.reached).toBe(3);
    // A later entry can do better.
    expect(foldFunnel(strict, [ev(0, 1), ev(1, 0), ev(2, 1), ev(3, 2)])).toMatchObject({ start: 120_000, reached: 2 });
  });

  it('any order: distinct steps, one event for one step', () => {
    const any = pass({ order: 'any' });
    expect(foldFunnel(any, [ev(0, 4), ev(1, 2), ev(2, 1)])).toMatchObject({ start: 0, reached: 3 });
    // Two events matching steps 1 and 2 both: two steps, not three.
    expect(foldFunnel(any, [ev(0, 3), ev(1, 3)])?.reached).toBe(2);
    // The matching is re-arranged: the first event (1|2) gives way to the second (only 1), then a 2|4 — 3 steps.
    expect(foldFunnel(any, [ev(0, 3), ev(1, 1), ev(2, 6)])?.reached).toBe(3);
    // The same event repeated counts once.
    expect(foldFunnel(any, [ev(0, 2), ev(1, 2)])?.reached).toBe(1);
  });

  it('discards an attempt with an excluded event between its steps', () => {
    const ex = pass({ exclusions: [{ between: [1, 2] }] });
    expect(foldFunnel(ex, [ev(0, 1), ev(1, 0, 1), ev(2, 2)])).toBeNull();
    // After step 2 it does not matter.
    expect(foldFunnel(ex, [ev(0, 1), ev(2, 2), ev(3, 0, 1)])?.reached).toBe(2);
    // Short of step 2: within the window after step 1 it spoils, past the window not.
    expect(foldFunnel(ex, [ev(0, 1), ev(30, 0, 1)])).toBeNull();
    expect(foldFunnel(ex, [ev(0, 1), ev(61, 0, 1)])?.reached).toBe(1);
    // A clean later attempt still counts.
    expect(foldFunnel(ex, [ev(0, 1), ev(1, 0, 1), ev(2, 2), ev(200, 1), ev(201, 2)])).toMatchObject({
      start: 200 * 60_000,
      reached: 2,
    });
  });
});

// The definitions walked naively (every start, every event of its window), for random people.
function naive(p: FunnelPass, evs: FunnelEvent[]): { start: number; reached: number } | null {
  let best: { start: number; reached: number } | null = null;
  evs.forEach((e, s) => {
    const entry = p.order === 'any' ? e.steps !== 0 : (e.steps & 1) !== 0;
    if (!entry || e.t < p.from || e.t >= p.to || e.t > p.until) return;
    const end = Math.min(e.t + p.windowMs, p.until);
    const at: number[] = [];
    if (p.order === 'any') {
      let sets = [0];
      for (let i = s; i < evs.length && evs[i]!.t <= end; i++) {
        const grown = sets.flatMap((set) =>
          [...Array(p.steps).keys()]
            .filter((b) => !(set & (1 << b)) && evs[i]!.steps & (1 << b))
            .map((b) => set | (1 << b)),
        );
        sets = [...new Set([...sets, ...grown])];
        const size = Math.max(...sets.map((x) => x.toString(2).split('1').length - 1));
        if (size > at.length) at.push(i);
      }
    } else {
      at.push(s);
      for (let i = s + 1; i < evs.length && evs[i]!.t <= end && at.length < p.steps; i++) {
        if (evs[i]!.steps & (1 << at.length)) at.push(i);
        else if (p.order === 'strict' && !evs[i]!.identify) break;
      }
    }
    for (const [b, x] of p.exclusions.entries()) {
      const [i, j] = x.between;
      if (at.length < i) continue;
      const stop = at.length >= j ? at[j - 1]! : evs.length;
      for (let q = at[i - 1]! + 1; q < stop && evs[q]!.t <= end; q++) if (evs[q]!.exclusions & (1 << b)) return;
    }
    if (!best || at.length > best.reached) best = { start: e.t, reached: at.length };
  });
  return best;
}

describe('foldFunnel against the naive walk', () => {
  it('agrees on random people (busy ones, repeated steps, every order, exclusions)', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 600; n++) {
      const steps = 2 + Math.floor(rnd() * 3);
      const order = (['sequential', 'strict', 'any'] as const)[n % 3]!;
      const evs: FunnelEvent[] = [];
      let t = 0;
      for (let i = 0, len = Math.floor(rnd() * 60); i < len; i++) {
        t += Math.floor(rnd() * 40) * 60_000;
        const bits =
          rnd() < 0.2 ? 0 : (1 << Math.floor(rnd() * steps)) | (rnd() < 0.15 ? 1 << Math.floor(rnd() * steps) : 0);
        evs.push({ t, steps: bits, exclusions: rnd() < 0.1 ? 1 : 0, identify: rnd() < 0.1, group: null });
      }
      const p = pass({
        steps,
        order,
        windowMs: (1 + Math.floor(rnd() * 4)) * H,
        from: 60 * 60_000,
        to: 20 * H,
        until: 30 * H,
        exclusions: rnd() < 0.4 ? [{ between: [1, steps] }] : [],
      });
      const got = foldFunnel(p, evs);
      expect(got && { start: got.start, reached: got.reached }, JSON.stringify({ p, evs })).toEqual(naive(p, evs));
    }
  });
});

describe('funnelStepStats', () => {
  it('counts people per step, conversion, drop-off and times', () => {
    const c = funnelCounts(3);
    addAttempt(c, { start: 0, reached: 3, times: [0, 1_000, 4_000], group: null });
    addAttempt(c, { start: 0, reached: 2, times: [0, 3_000], group: null });
    addAttempt(c, { start: 0, reached: 1, times: [0], group: null });
    expect(funnelStepStats(c)).toEqual([
      { step: 1, entered: 3, fromPrevious: 100, fromFirst: 100, dropOff: 0, medianSeconds: null, averageSeconds: null },
      { step: 2, entered: 2, fromPrevious: 66.67, fromFirst: 66.67, dropOff: 1, medianSeconds: 2, averageSeconds: 2 },
      { step: 3, entered: 1, fromPrevious: 50, fromFirst: 33.33, dropOff: 1, medianSeconds: 3, averageSeconds: 3 },
    ]);
    expect(funnelStepStats(funnelCounts(2))[1]).toMatchObject({ entered: 0, fromPrevious: null, medianSeconds: null });
  });
});

describe('funnelEventsQuery', () => {
  it('binds every value as a parameter and orders by person, time, id', () => {
    const { text, values } = funnelEventsQuery({
      steps: [{ event: 'A' }, { event: "B'; DROP TABLE events; --" }],
      exclusions: [{ event: 'X' }],
      order: 'sequential',
      from: '2026-01-01T00:00:00Z',
      to: '2026-02-01T00:00:00Z',
      windowMs: 86_400_000,
      now: new Date('2026-03-01T00:00:00Z'),
      breakdown: { property: 'plan' },
    }).render();
    expect(text).not.toContain('DROP');
    expect(values).toContainEqual(["B'; DROP TABLE events; --"]);
    expect(values).toContain('2026-02-02T00:00:00.000Z');
    expect(text).toMatch(/ORDER BY r\.profile_id, r\.timestamp, r\.id\s*$/);
  });
});

describe('funnelPackedQuery', () => {
  const query = {
    steps: [{ event: 'A' }, { event: ['B', 'C'] }],
    exclusions: [{ event: 'X' }],
    order: 'sequential' as const,
    from: '2026-01-01T00:00:00Z',
    to: '2026-02-01T00:00:00Z',
    windowMs: 86_400_000,
    now: new Date('2026-03-01T00:00:00Z'),
  };
  it('limits the scan to the named events (the index), groups by the first byte of the id, binds values', () => {
    const { text, values } = funnelPackedQuery(query).render();
    expect(values).toContainEqual(['A', 'B', 'C', 'X']);
    expect(text).toMatch(/e\.event = ANY\(\$\d+::text\[\]\)/);
    expect(text).toContain('get_byte(uuid_send(e.profile_id), 0)');
    expect(text).toMatch(/ORDER BY k\.b\s*$/);
  });
  it('reads every event but identify calls in strict order, and any name when a step names none', () => {
    for (const q of [
      { ...query, order: 'strict' as const },
      { ...query, steps: [{ event: 'A' }, { type: 'page' as const }] },
    ])
      expect(funnelPackedQuery(q).render().values).not.toContainEqual(['A', 'B', 'C', 'X']);
  });
});

describe('unpackFunnelEvents', () => {
  it('groups by person in id order, orders each person by (timestamp, id) and decodes the bits', () => {
    const b = 'bbbbbbbb-0000-4000-8000-000000000000';
    const a = 'aaaaaaaa-0000-4000-8000-000000000000';
    const packed = [
      `${b} 2000 10 2`,
      `${a} 1000 9 ${1 | (1 << 20)}`,
      `${b} 1000 100 1`,
      `${b} 1000 99 ${1 << 30}`,
    ].join(',');
    expect(unpackFunnelEvents(packed)).toEqual([
      { profile: a, events: [{ t: 1000, steps: 1, exclusions: 1, identify: false, group: null }] },
      {
        profile: b,
        events: [
          { t: 1000, steps: 0, exclusions: 0, identify: true, group: null },
          { t: 1000, steps: 1, exclusions: 0, identify: false, group: null },
          { t: 2000, steps: 2, exclusions: 0, identify: false, group: null },
        ],
      },
    ]);
  });
});
