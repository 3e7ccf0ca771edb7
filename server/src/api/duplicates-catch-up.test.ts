import { afterAll, beforeAll, expect, it } from 'vitest';
import { missedPeriods } from '../pipeline/identify/index.ts';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { sendEvents, settle } from '../testing/events.ts';
import { describeOnDatabases, movableClock } from '../testing/flows.ts';
import { adminApi, until } from '../testing/http.ts';
import { startTestCairn } from '../testing/server.ts';

// Scheduled duplicate scans missed while every server was down (migration 0043), through a real server on
// a moved clock: the server that comes back runs one catch-up scan for the current period (not one per
// missed period), recorded as a catch-up with the periods it missed; it finds the pairs made while the
// servers were down; a restart within that period scans nothing more; the next period is on time again.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeOnDatabases('duplicate scans caught up after downtime on %s', (mode) => {
  let db: TestDatabase;
  let server: Cairn | undefined;
  const clock = movableClock(Date.parse('2030-01-01T10:30:00Z'));
  const api = () => adminApi(server!.url);
  const start = async () => {
    server = await startTestCairn(db.env, { clock: clock.read });
  };
  const stop = async () => {
    await server?.close();
    server = undefined;
  };
  const runs = async () =>
    server!.sql<{ period: string; catchUp: boolean; missed: number; scanned: boolean }[]>`
      SELECT to_char(period AT TIME ZONE 'UTC', 'HH24:MI') AS period, catch_up AS "catchUp", missed,
        scan_id IS NOT NULL AS scanned
      FROM duplicate_schedule_runs ORDER BY period`;
  const person = (anonymousId: string, email: string) => ({ type: 'identify', anonymousId, traits: { email } });

  beforeAll(async () => {
    db = await createTestDatabase('api/duplicates-catch-up.test.ts', mode);
    await start();
    await sendEvents(server!, server!.demoSource!.writeKey, [
      person('k1', 'Jane.Doe@gmail.com'),
      person('k2', 'janedoe+news@googlemail.com'),
    ]);
    await settle(server!.sql);
  }, 120_000);
  afterAll(async () => {
    await stop();
    await db?.drop();
  });

  it('counts the periods missed between two claims (hourly and daily, in the zone)', () => {
    const hourly = { enabled: true, everyHours: 1, dailyAt: null, timeZone: 'UTC' };
    const at = (iso: string) => new Date(iso);
    expect(missedPeriods(hourly, at('2030-01-01T14:00Z'), at('2030-01-01T11:00Z'), at('2030-01-01T10:30Z'))).toBe(2);
    expect(missedPeriods(hourly, at('2030-01-01T12:00Z'), at('2030-01-01T11:00Z'), at('2030-01-01T10:30Z'))).toBe(0);
    // No claim before: counted from the schedule's change (10:00 began before it).
    expect(missedPeriods(hourly, at('2030-01-01T13:00Z'), null, at('2030-01-01T10:30Z'))).toBe(2);
    const daily = { enabled: true, everyHours: null, dailyAt: '03:00', timeZone: 'Europe/Berlin' };
    expect(missedPeriods(daily, at('2030-01-05T02:00Z'), at('2030-01-01T02:00Z'), at('2029-12-01T00:00Z'))).toBe(3);
  });

  it('runs one catch-up scan for the current period after every server was down, then keeps the schedule', async () => {
    const set = await api()('/duplicates/schedule', {
      method: 'PUT',
      body: JSON.stringify({ enabled: true, everyHours: 1 }),
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body.lastRun).toBeNull();
    clock.now = Date.parse('2030-01-01T11:00:05Z');
    await until('the 11:00 scan', async () => (await runs()).some((r) => r.scanned), { tries: 300, intervalMs: 100 });
    expect(await runs()).toEqual([{ period: '11:00', catchUp: false, missed: 0, scanned: true }]);

    // Every server down from 11:10 to 14:20: the periods 12:00, 13:00 and 14:00 begin meanwhile. A third
    // spelling of the mailbox is stored meanwhile (the database is up; no server checks the schedule).
    clock.now = Date.parse('2030-01-01T11:10:00Z');
    await sendEvents(server!, server!.demoSource!.writeKey, [person('k3', 'j.a.n.e.doe@gmail.com')]);
    await settle(server!.sql);
    await stop();
    clock.now = Date.parse('2030-01-01T14:20:00Z');
    await start();
    await until('the catch-up scan', async () => (await runs()).filter((r) => r.scanned).length === 2, {
      tries: 300,
      intervalMs: 100,
    });
    expect(await runs()).toEqual([
      { period: '11:00', catchUp: false, missed: 0, scanned: true },
      { period: '14:00', catchUp: true, missed: 2, scanned: true },
    ]);
    const schedule = await api()('/duplicates/schedule');
    expect(schedule.body.lastRun).toMatchObject({
      period: '2030-01-01T14:00:00.000Z',
      catchUp: true,
      missedPeriods: 2,
    });
    // The one catch-up scan found what the missed periods' scans would have: the two new pairs.
    const latest = await api()('/duplicates?scan=latest');
    expect(latest.body.scan).toMatchObject({ id: schedule.body.lastRun.scanId, trigger: 'schedule', newCandidates: 2 });

    // Restarted within the period: nothing more. The next period is scanned on time, not as a catch-up.
    await stop();
    await start();
    await sleep(5000);
    expect(await runs()).toHaveLength(2);
    clock.now = Date.parse('2030-01-01T15:00:05Z');
    await until('the 15:00 scan', async () => (await runs()).filter((r) => r.scanned).length === 3, {
      tries: 300,
      intervalMs: 100,
    });
    expect((await runs()).at(-1)).toEqual({ period: '15:00', catchUp: false, missed: 0, scanned: true });
    const [scans] = await server!.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM duplicate_scans`;
    expect(scans!.n).toBe(3);
  }, 180_000);
});
