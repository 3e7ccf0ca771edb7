import { describe, expect, it } from 'vitest';
import { activeSeries, activeSeriesSql, lifecycleSql, lifecycleTable } from './active.ts';

describe('active users', () => {
  it('turns the runs of active days into rolling DAU/WAU/MAU and stickiness', () => {
    // One person active on 02-20 and 03-02 (next 10 days later, then not again), another on 03-02 and 03-03.
    const marks = [
      { day: '2026-02-20', gap: 10, people: 1 },
      { day: '2026-03-02', gap: null, people: 1 },
      { day: '2026-03-02', gap: 1, people: 1 },
      { day: '2026-03-03', gap: null, people: 1 },
    ];
    const range = { from: '2026-03-01T00:00:00Z', to: '2026-03-04T00:00:00Z', timezone: 'UTC' };
    expect(activeSeries(range, marks)).toEqual({
      series: [
        { day: '2026-03-01', start: '2026-03-01T00:00:00.000Z', dau: 0, wau: 0, mau: 1, stickiness: 0 },
        { day: '2026-03-02', start: '2026-03-02T00:00:00.000Z', dau: 2, wau: 2, mau: 2, stickiness: 1 },
        { day: '2026-03-03', start: '2026-03-03T00:00:00.000Z', dau: 1, wau: 2, mau: 2, stickiness: 0.5 },
      ],
      stickiness: 0.5,
    });
  });

  it('names days by the local date, 23-hour days included', () => {
    const range = { from: '2026-03-28T12:00:00Z', to: '2026-03-30T12:00:00Z', timezone: 'Europe/Berlin' };
    const { series, stickiness } = activeSeries(range, []);
    expect(series.map((d) => [d.day, d.start])).toEqual([
      ['2026-03-28', '2026-03-27T23:00:00.000Z'],
      ['2026-03-29', '2026-03-28T23:00:00.000Z'],
      ['2026-03-30', '2026-03-29T22:00:00.000Z'],
    ]);
    expect(stickiness).toBeNull();
  });

  it('fills every lifecycle bucket and reports dormant as negative', () => {
    const q = {
      range: { from: '2026-03-02T00:00:00Z', to: '2026-03-16T00:00:00Z', timezone: 'UTC' },
      interval: 'week' as const,
    };
    const second = Date.parse('2026-03-09T00:00:00Z');
    const buckets = lifecycleTable(q, [
      { bucket_ms: second, status: 'new', people: 3 },
      { bucket_ms: second, status: 'dormant', people: 2 },
      { bucket_ms: second, status: 'resurrecting', people: 1 },
    ]);
    expect(buckets).toEqual([
      { start: '2026-03-02T00:00:00.000Z', new: 0, returning: 0, resurrecting: 0, dormant: 0 },
      { start: '2026-03-09T00:00:00.000Z', new: 3, returning: 0, resurrecting: 1, dormant: -2 },
    ]);
  });

  it('leaves identify out unless events are given, and keeps values out of the text', () => {
    const range = { from: '2026-03-01T00:00:00Z', to: '2026-03-04T00:00:00Z', timezone: 'UTC' };
    const now = new Date();
    expect(activeSeriesSql({ range, interval: 'day' }, { now }).render().text).toContain("e.type <> 'identify'");
    const given = lifecycleSql({ range, interval: 'week', events: { event: "it's" } }, { now }).render();
    expect(given.text).not.toContain('identify');
    expect(given.text).not.toContain("it's");
    expect(given.values).toContainEqual(["it's"]);
  });
});
