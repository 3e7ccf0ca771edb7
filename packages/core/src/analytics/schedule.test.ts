import { describe, expect, it } from 'vitest';
import { latestDue, nextDue, type ReportSchedule, reportPeriod, reportScheduleSchema } from './schedule.ts';

const at = (iso: string) => new Date(iso);
const weekly: ReportSchedule = { every: 'week', weekday: 1, at: '09:00', timezone: 'Europe/Berlin' };

describe('report schedules', () => {
  it('weekly: the latest Monday 09:00 in Berlin, and the week before it with the one before that', () => {
    const due = latestDue(weekly, at('2026-11-18T12:00:00Z'));
    expect(due.toISOString()).toBe('2026-11-16T08:00:00.000Z');
    expect(latestDue(weekly, at('2026-11-16T08:00:00Z')).toISOString()).toBe('2026-11-16T08:00:00.000Z');
    expect(latestDue(weekly, at('2026-11-16T07:59:59Z')).toISOString()).toBe('2026-11-09T08:00:00.000Z');
    expect(nextDue(weekly, at('2026-11-16T08:00:00Z')).toISOString()).toBe('2026-11-23T08:00:00.000Z');
    expect(reportPeriod(weekly, due)).toEqual({
      due: '2026-11-16T08:00:00.000Z',
      interval: 'week',
      range: { from: '2026-11-08T23:00:00.000Z', to: '2026-11-15T23:00:00.000Z', timezone: 'Europe/Berlin' },
      previous: { from: '2026-11-01T23:00:00.000Z', to: '2026-11-08T23:00:00.000Z', timezone: 'Europe/Berlin' },
    });
  });

  it('weekly on a Wednesday covers Monday to Sunday of the week before', () => {
    const s: ReportSchedule = { every: 'week', weekday: 3, at: '07:00', timezone: 'UTC' };
    const due = latestDue(s, at('2026-11-16T10:00:00Z')); // a Monday: last Wednesday
    expect(due.toISOString()).toBe('2026-11-11T07:00:00.000Z');
    expect(reportPeriod(s, due).range).toEqual({
      from: '2026-11-02T00:00:00.000Z',
      to: '2026-11-09T00:00:00.000Z',
      timezone: 'UTC',
    });
  });

  it('a week across the autumn DST change is 169 hours; the one across spring 167', () => {
    const autumn = reportPeriod(weekly, latestDue(weekly, at('2026-10-27T12:00:00Z')));
    expect(autumn.range).toEqual({
      from: '2026-10-18T22:00:00.000Z',
      to: '2026-10-25T23:00:00.000Z',
      timezone: 'Europe/Berlin',
    });
    expect(latestDue(weekly, at('2026-10-27T12:00:00Z')).toISOString()).toBe('2026-10-26T08:00:00.000Z');
    const spring = reportPeriod(weekly, latestDue(weekly, at('2026-03-31T12:00:00Z')));
    expect(spring.range).toEqual({
      from: '2026-03-22T23:00:00.000Z',
      to: '2026-03-29T22:00:00.000Z',
      timezone: 'Europe/Berlin',
    });
  });

  it('daily: DST days are 23 and 25 hours long; a send time clocks skip moves forward by the gap', () => {
    const daily: ReportSchedule = { every: 'day', at: '06:00', timezone: 'America/New_York' };
    const p = reportPeriod(daily, latestDue(daily, at('2026-03-09T12:00:00Z')));
    expect(p.range).toEqual({
      from: '2026-03-08T05:00:00.000Z',
      to: '2026-03-09T04:00:00.000Z',
      timezone: 'America/New_York',
    });
    expect(p.previous.from).toBe('2026-03-07T05:00:00.000Z');
    const fall = reportPeriod(daily, latestDue(daily, at('2026-11-02T12:00:00Z')));
    expect(fall.range).toEqual({
      from: '2026-11-01T04:00:00.000Z',
      to: '2026-11-02T05:00:00.000Z',
      timezone: 'America/New_York',
    });
    // 02:30 does not exist on 8 March 2026 in New York: the report goes at 03:30 EDT (07:30 UTC).
    const gap: ReportSchedule = { every: 'day', at: '02:30', timezone: 'America/New_York' };
    expect(nextDue(gap, at('2026-03-08T00:00:00Z')).toISOString()).toBe('2026-03-08T07:30:00.000Z');
    // 01:30 happens twice on 1 November 2026: one of them (luxon takes the standard-time one, 06:30 UTC), once.
    const twice: ReportSchedule = { every: 'day', at: '01:30', timezone: 'America/New_York' };
    expect(nextDue(twice, at('2026-11-01T00:00:00Z')).toISOString()).toBe('2026-11-01T06:30:00.000Z');
    expect(nextDue(twice, at('2026-11-01T05:30:00Z')).toISOString()).toBe('2026-11-01T06:30:00.000Z');
    expect(nextDue(twice, at('2026-11-01T06:30:00Z')).toISOString()).toBe('2026-11-02T06:30:00.000Z');
  });

  it('monthly on the 31st goes on the last day of shorter months and covers the month before', () => {
    const s: ReportSchedule = { every: 'month', day: 31, at: '08:00', timezone: 'Europe/Berlin' };
    expect(nextDue(s, at('2026-02-01T00:00:00Z')).toISOString()).toBe('2026-02-28T07:00:00.000Z');
    expect(nextDue(s, at('2028-02-01T00:00:00Z')).toISOString()).toBe('2028-02-29T07:00:00.000Z');
    expect(nextDue(s, at('2026-02-28T07:00:00Z')).toISOString()).toBe('2026-03-31T06:00:00.000Z');
    expect(latestDue(s, at('2026-04-15T00:00:00Z')).toISOString()).toBe('2026-03-31T06:00:00.000Z');
    const p = reportPeriod(s, at('2026-03-31T06:00:00Z'));
    expect(p.range).toEqual({
      from: '2026-01-31T23:00:00.000Z',
      to: '2026-02-28T23:00:00.000Z',
      timezone: 'Europe/Berlin',
    });
    expect(p.previous).toEqual({
      from: '2025-12-31T23:00:00.000Z',
      to: '2026-01-31T23:00:00.000Z',
      timezone: 'Europe/Berlin',
    });
    const first: ReportSchedule = { every: 'month', day: 1, at: '00:00', timezone: 'UTC' };
    expect(latestDue(first, at('2026-01-01T00:00:00Z')).toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(reportPeriod(first, at('2026-01-01T00:00:00Z')).range.from).toBe('2025-12-01T00:00:00.000Z');
  });

  it('refuses bad schedules with a reason', () => {
    const bad = (v: unknown) => reportScheduleSchema.safeParse(v).error?.issues.map((i) => `${i.path}: ${i.message}`);
    expect(bad({ every: 'week', weekday: 8, at: '09:00', timezone: 'UTC' })![0]).toMatch(/^weekday/);
    expect(bad({ every: 'day', at: '9:00', timezone: 'UTC' })![0]).toMatch(/^at: a local time/);
    expect(bad({ every: 'day', at: '09:00', timezone: 'Mars/Olympus' })![0]).toMatch(/not an IANA/);
    expect(bad({ every: 'month', day: 0, at: '09:00', timezone: 'UTC' })![0]).toMatch(/^day/);
    expect(bad({ every: 'week', at: '09:00', timezone: 'UTC' })![0]).toMatch(/^weekday/);
  });
});
