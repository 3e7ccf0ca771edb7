import { describe, expect, it } from 'vitest';
import type { FlowDefinition } from './ast.ts';
import { advance, enter } from './engine.ts';
import {
  dateTraitTime,
  localIso,
  nextAnniversary,
  nextCalendarDay,
  nextCron,
  nextLocalTime,
  publicHolidays,
} from './time.ts';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe('nextLocalTime across DST', () => {
  // 2026: Europe/Berlin springs forward on 29 March (02:00 → 03:00) and falls back on 25 October
  // (03:00 → 02:00); America/New_York on 8 March and 1 November.
  it.each([
    ['Europe/Berlin', 'the day before spring-forward', '2026-03-28T12:00:00Z', '2026-03-29T08:00:00.000Z'],
    ['Europe/Berlin', 'spring-forward night, before the gap', '2026-03-29T00:30:00Z', '2026-03-29T08:00:00.000Z'],
    ['Europe/Berlin', 'after 10:00 on spring-forward day', '2026-03-29T09:00:00Z', '2026-03-30T08:00:00.000Z'],
    ['Europe/Berlin', 'the day before fall-back', '2026-10-24T12:00:00Z', '2026-10-25T09:00:00.000Z'],
    ['Europe/Berlin', 'fall-back night, inside the repeated hour', '2026-10-25T00:30:00Z', '2026-10-25T09:00:00.000Z'],
    ['America/New_York', 'the day before spring-forward', '2026-03-07T20:00:00Z', '2026-03-08T14:00:00.000Z'],
    ['America/New_York', 'the day before fall-back', '2026-10-31T20:00:00Z', '2026-11-01T15:00:00.000Z'],
    ['America/New_York', 'after 10:00 on fall-back day', '2026-11-01T16:00:00Z', '2026-11-02T15:00:00.000Z'],
  ])('%s, %s: 10:00 local', (zone, _case, from, expected) => {
    const due = nextLocalTime(at(from), zone, '10:00');
    expect(iso(due)).toBe(expected);
    expect(localIso(due, zone)).toMatch(/T10:00:00\.000[+-]\d\d:00$/);
  });

  it('a time inside the spring-forward gap is the first instant after it; an ambiguous one its first occurrence', () => {
    expect(localIso(nextLocalTime(at('2026-03-28T12:00:00Z'), 'Europe/Berlin', '02:30'), 'Europe/Berlin')).toBe(
      '2026-03-29T03:30:00.000+02:00',
    );
    expect(localIso(nextLocalTime(at('2026-10-24T12:00:00Z'), 'Europe/Berlin', '02:30'), 'Europe/Berlin')).toBe(
      '2026-10-25T02:30:00.000+02:00',
    );
  });

  it('keeps to the given weekdays, and a time now is now', () => {
    // 2026-03-27 is a Friday: the next Monday or Wednesday at 09:00 is Monday the 30th (CEST).
    expect(iso(nextLocalTime(at('2026-03-27T10:00:00Z'), 'Europe/Berlin', '09:00', ['mon', 'wed']))).toBe(
      '2026-03-30T07:00:00.000Z',
    );
    expect(nextLocalTime(at('2026-03-30T07:00:00Z'), 'Europe/Berlin', '09:00')).toBe(at('2026-03-30T07:00:00Z'));
  });
});

describe('two people in different zones wait until 10:00 their time', () => {
  const flow: FlowDefinition = {
    version: 1,
    name: 'morning',
    timezone: 'UTC',
    trigger: { type: 'api' },
    entry: { reentry: 'every_time' },
    nodes: [
      { id: 'morning', type: 'wait_until', until: { time: '10:00' } },
      { id: 'hello', type: 'send', destination: 'email', message: { body: 'Good morning' } },
    ],
    edges: [{ from: 'morning', to: 'hello', on: 'next' }],
  };
  const now = at('2026-03-28T12:00:00Z');

  it.each([
    ['Europe/Berlin', '2026-03-29T08:00:00.000Z'],
    ['America/New_York', '2026-03-28T14:00:00.000Z'], // 08:00 there when the run starts
    ['Asia/Tokyo', '2026-03-29T01:00:00.000Z'],
  ])('%s', (zone, due) => {
    const profile = { id: zone, traits: { timezone: zone }, audiences: [], tags: [] };
    const run = enter(flow, { runId: zone, flowId: 'f', profileId: zone, now });
    const { state, journal } = advance(flow, run, { type: 'due' }, { now, profile });
    expect(iso(state.due!)).toBe(due);
    expect(journal.at(-1)!.reason).toContain(`(${zone}, from trait)`);
    const sent = advance(flow, state, { type: 'due' }, { now: state.due!, profile });
    expect(sent.effects).toHaveLength(1);
  });
});

describe('dates of traits, anniversaries, cron and calendars', () => {
  it('a date trait − 3 days at a local time, and a timestamp trait as its local date', () => {
    expect(iso(dateTraitTime('2026-06-01', { offsetDays: -3, time: '09:00' }, 'Europe/Berlin')!)).toBe(
      '2026-05-29T07:00:00.000Z',
    );
    // 02:00 UTC on 1 May is still 30 April in New York.
    expect(iso(dateTraitTime('2026-05-01T02:00:00Z', { time: '09:00' }, 'America/New_York')!)).toBe(
      '2026-04-30T13:00:00.000Z',
    );
    expect(iso(dateTraitTime('2026-05-01T02:00:00Z', { offsetDays: 1 }, 'America/New_York')!)).toBe(
      '2026-05-02T02:00:00.000Z',
    );
    expect(dateTraitTime('tomorrow', {}, 'UTC')).toBeUndefined();
  });

  it('the next birthday − 7 days at 10:00, crossing into the year before, and 29 February', () => {
    expect(iso(nextAnniversary('1990-01-03', -7, '10:00', 'Asia/Tokyo', at('2026-06-01T00:00:00Z'))!)).toBe(
      '2026-12-27T01:00:00.000Z',
    );
    expect(iso(nextAnniversary('2000-02-29', 0, '10:00', 'UTC', at('2026-01-01T00:00:00Z'))!)).toBe(
      '2026-02-28T10:00:00.000Z',
    );
    expect(iso(nextAnniversary('2000-02-29', 0, '10:00', 'UTC', at('2027-03-01T00:00:00Z'))!)).toBe(
      '2028-02-29T10:00:00.000Z',
    );
  });

  it('every Monday 09:00 in Berlin follows the clock across spring-forward', () => {
    const first = nextCron('0 9 * * 1', 'Europe/Berlin', at('2026-03-20T00:00:00Z'));
    const second = nextCron('0 9 * * 1', 'Europe/Berlin', first);
    expect([iso(first), iso(second)]).toEqual(['2026-03-23T08:00:00.000Z', '2026-03-30T07:00:00.000Z']);
  });

  it('public holidays by country and a custom calendar with an offset', () => {
    const de = publicHolidays('DE', 2026);
    expect(de).toContainEqual({ date: '2026-10-03', name: 'Tag der Deutschen Einheit' });
    expect(de.every((d) => d.date.startsWith('2026-'))).toBe(true);
    expect(
      nextCalendarDay(['2026-11-11', '2025-11-11'], -3, '09:00', 'Asia/Shanghai', at('2026-01-01T00:00:00Z')),
    ).toEqual({
      at: at('2026-11-08T01:00:00Z'),
      day: '2026-11-11',
    });
  });
});
