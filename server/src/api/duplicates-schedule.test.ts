import { afterAll, beforeAll, expect, it } from 'vitest';
import { periodStart } from '../pipeline/identify/index.ts';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { sendEvents, settle } from '../testing/events.ts';
import { describeOnDatabases, movableClock } from '../testing/flows.ts';
import { adminApi, until } from '../testing/http.ts';
import { startTestCairn } from '../testing/server.ts';

// Scheduled duplicate scans through real servers on a moved clock: off by default; refused with a reason
// when malformed; once on, exactly one scan per period (on Postgres, two servers on one database check
// the schedule side by side; on both, a server restarted within a period does not scan it again); each
// scan's new pairs listed apart, and pairs grouped into clusters (A~B, A~C, B~C: one group of three).

const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeOnDatabases('scheduled duplicate scans on %s', (mode) => {
  let db: TestDatabase;
  const servers: Cairn[] = [];
  const clock = movableClock(Date.parse('2030-01-01T10:30:00Z'));
  const api = () => adminApi(servers[0]!.url);
  const start = () => startTestCairn(db.env, { clock: clock.read });
  const scans = async () =>
    servers[0]!.sql<{ id: string; trigger: string; period: Date | null; finished: boolean }[]>`
      SELECT id::text, trigger, period, finished_at IS NOT NULL AS finished FROM duplicate_scans ORDER BY id`;
  const profileOf = async (anonymousId: string) =>
    (
      await servers[0]!.sql<{ profile_id: string }[]>`
        SELECT profile_id FROM identities WHERE type = 'anonymousId' AND value = ${anonymousId}`
    )[0]!.profile_id;
  const person = (anonymousId: string, email: string) => ({ type: 'identify', anonymousId, traits: { email } });

  beforeAll(async () => {
    db = await createTestDatabase('api/duplicates-schedule.test.ts', mode);
    servers.push(await start());
    // Two servers on one database: both check the schedule (PGlite is one process's).
    if (mode === 'postgres') servers.push(await start());
    // One Gmail mailbox typed two ways: identity resolution keeps them apart, the scan pairs them.
    await sendEvents(servers[0]!, servers[0]!.demoSource!.writeKey, [
      person('s1', 'John.Smith@gmail.com'),
      person('s2', 'johnsmith+shop@googlemail.com'),
    ]);
    await settle(servers[0]!.sql);
  }, 120_000);
  afterAll(async () => {
    for (const s of servers) await s.close();
    await db?.drop();
  });

  it('is off by default and refuses malformed schedules with a reason', async () => {
    const off = await api()('/duplicates/schedule');
    expect(off.status, off.text).toBe(200);
    expect(off.body).toMatchObject({ enabled: false, everyHours: null, dailyAt: null, nextPeriod: null });
    const cases: [unknown, RegExp][] = [
      [{ enabled: true }, /needs everyHours or dailyAt/],
      [{ enabled: true, everyHours: 5 }, /everyHours/],
      [{ enabled: true, everyHours: 1, dailyAt: '03:00' }, /not both/],
      [{ enabled: true, dailyAt: '25:00' }, /HH:MM/],
      [{ enabled: true, dailyAt: '03:00', timeZone: 'Mars/Olympus' }, /not an IANA time zone/],
      [{ enabled: true, everyHours: 1, often: true }, /often/],
    ];
    for (const [body, reason] of cases) {
      const r = await api()('/duplicates/schedule', { method: 'PUT', body: JSON.stringify(body) });
      expect(r.status, `${JSON.stringify(body)}: ${r.text}`).toBe(400);
      expect(JSON.stringify(r.body.error)).toMatch(reason);
    }
    await sleep(3000);
    expect(await scans()).toEqual([]);
  }, 30_000);

  it('describes the new routes and schemas in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${servers[0]!.url}/api/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths['/api/duplicates/schedule'] ?? {}).sort()).toEqual(['get', 'put']);
    expect(doc.paths['/api/duplicates/groups']?.get).toBeDefined();
    expect(doc.paths['/api/data-quality/backfills']?.post).toBeDefined();
    expect(doc.paths['/api/data-quality/backfills/{id}']?.get).toBeDefined();
    for (const name of ['DuplicateSchedule', 'DuplicateGroup', 'TraitBackfill', 'DuplicateScan'])
      expect(doc.components.schemas[name], name).toBeDefined();
  });

  it('places periods in the time zone (DST included)', () => {
    const daily = { enabled: true, everyHours: null, dailyAt: '03:00', timeZone: 'Europe/Berlin' };
    expect(periodStart(daily, new Date('2030-01-01T12:00:00Z'))?.toISOString()).toBe('2030-01-01T02:00:00.000Z');
    expect(periodStart(daily, new Date('2030-01-01T01:59:00Z'))?.toISOString()).toBe('2029-12-31T02:00:00.000Z');
    expect(periodStart(daily, new Date('2030-07-01T12:00:00Z'))?.toISOString()).toBe('2030-07-01T01:00:00.000Z');
    const six = { enabled: true, everyHours: 6, dailyAt: null, timeZone: 'America/New_York' };
    expect(periodStart(six, new Date('2030-01-01T13:00:00Z'))?.toISOString()).toBe('2030-01-01T11:00:00.000Z');
    expect(periodStart({ ...six, enabled: false }, new Date())).toBeNull();
  });

  it('scans once per period across servers and restarts, and lists each scan’s new pairs and groups', async () => {
    const set = await api()('/duplicates/schedule', {
      method: 'PUT',
      body: JSON.stringify({ enabled: true, everyHours: 1 }),
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({
      enabled: true,
      everyHours: 1,
      timeZone: 'UTC',
      nextPeriod: '2030-01-01T11:00:00.000Z',
    });
    // The period it was set in (10:00) began before the change: not scanned.
    await sleep(3000);
    expect(await scans()).toEqual([]);

    clock.now = Date.parse('2030-01-01T11:00:05Z');
    await until('the 11:00 scan', async () => (await scans()).some((s) => s.finished), { tries: 300, intervalMs: 100 });
    // Every server has checked the schedule twice more since.
    await sleep(5000);
    const first = await scans();
    expect(first).toEqual([
      { id: first[0]!.id, trigger: 'schedule', period: new Date('2030-01-01T11:00:00Z'), finished: true },
    ]);
    const page = await api()('/duplicates?scan=latest');
    expect(page.body.scan).toMatchObject({ id: first[0]!.id, trigger: 'schedule', newCandidates: 1 });
    const s1 = await profileOf('s1');
    const s2 = await profileOf('s2');
    expect(page.body.data.map((c: { profiles: { id: string }[] }) => c.profiles.map((p) => p.id).sort())).toEqual([
      [s1, s2].sort(),
    ]);

    // A third spelling of the mailbox: the next period's scan finds two new pairs, the old one is not new.
    await sendEvents(servers[0]!, servers[0]!.demoSource!.writeKey, [person('s3', 'j.o.h.n.smith@gmail.com')]);
    await settle(servers[0]!.sql);
    clock.now = Date.parse('2030-01-01T12:00:05Z');
    await until('the 12:00 scan', async () => (await scans()).filter((s) => s.finished).length === 2, {
      tries: 300,
      intervalMs: 100,
    });
    // A server restarted within the period does not scan it again.
    await servers.pop()!.close();
    servers.push(await start());
    await sleep(5000);
    const second = await scans();
    expect(second.map((s) => s.period?.toISOString())).toEqual([
      '2030-01-01T11:00:00.000Z',
      '2030-01-01T12:00:00.000Z',
    ]);
    const [runs] = await servers[0]!.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM duplicate_schedule_runs`;
    expect(runs!.n).toBe(2);
    const s3 = await profileOf('s3');
    const fresh = await api()('/duplicates?scan=latest');
    expect(fresh.body.scan.newCandidates).toBe(2);
    expect(
      fresh.body.data.map((c: { profiles: { id: string }[] }) => c.profiles.map((p) => p.id).sort()).sort(),
    ).toEqual([[s1, s3].sort(), [s2, s3].sort()].sort());
    expect((await api()('/duplicates')).body.data).toHaveLength(3);

    const groups = await api()('/duplicates/groups');
    expect(groups.status, groups.text).toBe(200);
    expect(groups.body).toMatchObject({ total: 1, truncated: false });
    expect(groups.body.data[0].size).toBe(3);
    expect(groups.body.data[0].profiles.map((p: { id: string }) => p.id)).toEqual([s1, s2, s3].sort());
    expect(groups.body.data[0].pairs).toHaveLength(3);

    // Off again: the next period passes without a scan.
    await api()('/duplicates/schedule', { method: 'PUT', body: JSON.stringify({ enabled: false }) });
    clock.advance(HOUR);
    await sleep(3000);
    expect(await scans()).toHaveLength(2);
  }, 120_000);
});
