import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  describeOnDatabases,
  type FlowHarness,
  flowHarness,
  movableClock,
  type Receiver,
  until,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

// Next year, so the test's clock is ahead of the real one whenever it runs; the instants below are what
// the IANA rules say (Tokyo +9 all year; New York EST and Berlin CET before their March DST change).
const Y = new Date().getUTCFullYear() + 1;
const at = (iso: string) => Date.parse(iso.replace('Y', String(Y)));

// Time-based and change triggers, end to end on each database, on a clock the test moves: calendar days
// (a public holiday, a custom calendar), a schedule (every Monday 09:00, also with a second server), a date
// trait (birthday − 7 days at 10:00 in each person's zone, re-planned when it moves), and a computed trait
// becoming `churn_risk` — each entering people into a live flow that sends through a real webhook.
describeOnDatabases('time and change triggers on %s', (mode) => {
  let h: FlowHarness;
  let second: Cairn | undefined;
  let hook: Receiver;
  let hookId: string;
  const run = randomUUID().slice(0, 8);
  const members = `members_${run}`;
  const clock = movableClock(at('Y-01-02T00:00:00Z'));
  const messages = (body: string) =>
    hook.accepted.filter((r) => r.body?.message?.body?.startsWith(body)).map((r) => r.body.profile.userId as string);
  const waitFor = (body: string, n: number) =>
    until(`${n} "${body}" messages`, async () => (messages(body).length >= n ? messages(body) : undefined));
  // Longer than the timer's longest sleep (1 s): a pass has run on the moved clock.
  const pause = () => new Promise((r) => setTimeout(r, 1200));
  const sender = (id: string, body: string) => ({
    id,
    type: 'send',
    destination: hookId,
    message: { body: `${body} {{ traits.first_name }}` },
  });
  const timerOf = async (flowId: string) => {
    const [row] = await h.cairn.sql<{ due: Date | null; cursor: string | null }[]>`
      SELECT due, cursor::text FROM flow_timers WHERE flow_id = ${flowId}`;
    return row;
  };
  const plannedOf = async (flowId: string) =>
    Object.fromEntries(
      (
        await h.cairn.sql<{ userId: string; due: Date }[]>`
          SELECT i.value AS "userId", p.due FROM flow_planned p
          JOIN identities i ON i.profile_id = p.profile_id AND i.type = 'userId'
          WHERE p.flow_id = ${flowId}`
      ).map((r) => [r.userId, new Date(r.due).toISOString()]),
    );
  const runsOf = async (flowId: string, userId: string) => h.runsOf(flowId, await h.profileOf(userId));

  beforeAll(async () => {
    h = await flowHarness('triggers.test.ts', mode, { clock });
    ({ receiver: hook, destinationId: hookId } = await h.webhook());
    const audience = await h.post('/audiences', {
      key: members,
      name: 'Members',
      rule: { op: 'trait', trait: 'member', cmp: '=', value: true },
    });
    expect(audience.status, audience.text).toBe(201);
    await h.send(
      { type: 'identify', userId: `m1-${run}`, traits: { member: true, first_name: 'Mia' } },
      { type: 'identify', userId: `m2-${run}`, traits: { member: true, first_name: 'Max' } },
    );
    await until('two members', async () => (await h.api(`/audiences/${members}`)).body.members === 2);
  });
  afterAll(() => h?.close());

  it('calendar days: a public holiday − 1 day and a custom calendar’s day − 2 days, at local times', async () => {
    const unknown = await h.post('/flows', {
      definition: {
        version: 1,
        name: `Nope ${run}`,
        trigger: { type: 'calendar', calendar: { custom: 'nope' }, offsetDays: 0, time: '10:00' },
        entry: { reentry: 'every_time' },
        nodes: [{ id: 'x', type: 'exit' }],
        edges: [],
      },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('nope');

    const calendar = `winter_${run}`;
    const created = await h.post('/calendars', {
      key: calendar,
      name: 'Sales',
      days: [
        { date: `${Y}-01-09`, name: 'Winter sale' },
        { date: '11-11', name: 'Singles Day' },
      ],
    });
    expect(created.status, created.text).toBe(201);
    expect((await h.post('/calendars', { key: calendar, name: 'x', days: [] })).status).toBe(409);
    expect((await h.post('/calendars', { key: 'bad_day', name: 'x', days: [{ date: '02-30' }] })).status).toBe(400);

    // Epiphany (6 January) is a public holiday in Bavaria: the day before at 09:00 in Berlin (CET).
    const holiday = await h.publish({
      version: 1,
      name: `Holiday ${run}`,
      trigger: {
        type: 'calendar',
        calendar: { country: 'DE', region: 'BY' },
        offsetDays: -1,
        time: '09:00',
        timezone: 'Europe/Berlin',
        audience: members,
      },
      entry: { reentry: 'every_time' },
      nodes: [sender('greet', 'Holiday')],
      edges: [],
    });
    const sale = await h.publish({
      version: 1,
      name: `Sale ${run}`,
      trigger: {
        type: 'calendar',
        calendar: { custom: calendar },
        offsetDays: -2,
        time: '10:00',
        timezone: 'Asia/Shanghai',
        audience: members,
      },
      entry: { reentry: 'every_time' },
      nodes: [sender('tease', 'Sale')],
      edges: [],
    });
    expect((await h.api(`/calendars/${calendar}`, { method: 'DELETE' })).status).toBe(409);
    expect((await timerOf(holiday))?.due?.toISOString()).toBe(new Date(at('Y-01-05T08:00:00Z')).toISOString());
    expect((await timerOf(sale))?.due?.toISOString()).toBe(new Date(at('Y-01-07T02:00:00Z')).toISOString());

    clock.now = at('Y-01-05T08:00:01Z');
    expect((await waitFor('Holiday', 2)).sort()).toEqual([`m1-${run}`, `m2-${run}`]);
    expect(messages('Sale')).toEqual([]);
    // Planned on to the eve of Bavaria's next public holiday.
    await until('the holiday flow planned on', async () => (await timerOf(holiday))!.due!.getTime() > clock.now);

    // The sale moves to the 10th: the flow using the calendar is planned again.
    const moved = await h.post(
      `/calendars/${calendar}`,
      {
        name: 'Sales',
        days: [
          { date: `${Y}-01-10`, name: 'Winter sale' },
          { date: '11-11', name: 'Singles Day' },
        ],
      },
      'PUT',
    );
    expect(moved.status, moved.text).toBe(200);
    expect((await timerOf(sale))?.due?.toISOString()).toBe(new Date(at('Y-01-08T02:00:00Z')).toISOString());
    clock.now = at('Y-01-07T02:00:01Z');
    await pause();
    expect(messages('Sale')).toEqual([]);
    clock.now = at('Y-01-08T02:00:01Z');
    expect((await waitFor('Sale', 2)).sort()).toEqual([`m1-${run}`, `m2-${run}`]);
    // The next day of the calendar: 11.11 − 2 days at 10:00 in Shanghai.
    await until('the sale flow planned on', async () => {
      const due = (await timerOf(sale))?.due?.toISOString();
      return due === new Date(at('Y-11-09T02:00:00Z')).toISOString();
    });
    for (const id of [holiday, sale]) expect((await h.post(`/flows/${id}/pause`, {})).status).toBe(200);
  });

  it('every Monday 09:00 (Berlin) enters the audience once per firing, also with a second server and a replayed firing', async () => {
    if (mode === 'postgres') second = await h.startServer();
    const start = clock.now;
    const weekly = await h.publish({
      version: 1,
      name: `Weekly ${run}`,
      trigger: { type: 'schedule', cron: '0 9 * * 1', timezone: 'Europe/Berlin', audience: members },
      entry: { reentry: 'every_time' },
      nodes: [sender('digest', 'Digest')],
      edges: [],
    });
    // The first Monday after now, 09:00 CET = 08:00 UTC.
    let monday = Date.UTC(Y, 0, new Date(start).getUTCDate(), 8);
    while (new Date(monday).getUTCDay() !== 1 || monday <= start) monday += 86_400_000;
    expect((await timerOf(weekly))?.due?.getTime()).toBe(monday);

    clock.now = monday + 1000;
    await waitFor('Digest', 2);
    await until(
      'the next Monday planned',
      async () => (await timerOf(weekly))!.due!.getTime() === monday + 7 * 86_400_000,
    );
    // A crash after the people entered but before the next firing was planned: the firing runs again.
    await h.cairn.sql`UPDATE flow_timers SET due = ${new Date(monday)}, cursor = NULL WHERE flow_id = ${weekly}`;
    await until('the replayed firing planned on', async () => (await timerOf(weekly))!.due!.getTime() > monday);
    await pause();
    expect(messages('Digest').sort()).toEqual([`m1-${run}`, `m2-${run}`]);
    expect((await runsOf(weekly, `m1-${run}`)).length).toBe(1);

    // Down for two weeks and a half: the missed Mondays fire once, then the next is planned from now.
    clock.now = monday + 17 * 86_400_000;
    await waitFor('Digest', 4);
    await until(
      'planned after the gap',
      async () => (await timerOf(weekly))!.due!.getTime() === monday + 21 * 86_400_000,
    );
    await pause();
    expect(messages('Digest')).toHaveLength(4);
    expect((await runsOf(weekly, `m2-${run}`)).length).toBe(2);
    expect((await h.post(`/flows/${weekly}/pause`, {})).status).toBe(200);
    await second?.close();
    second = undefined;
  });

  it('a birthday − 7 days at 10:00 in each person’s zone (Tokyo, New York), re-planned when the date moves', async () => {
    clock.now = at('Y-02-01T00:00:00Z');
    const people = [
      {
        userId: `aiko-${run}`,
        traits: { vip: true, first_name: 'Aiko', birthday: '1990-03-10', timezone: 'Asia/Tokyo' },
      },
      { userId: `bob-${run}`, traits: { vip: true, first_name: 'Bob', birthday: '1988-03-10' } },
      // Carol's birthday moves a month later after the flow is live.
      {
        userId: `carol-${run}`,
        traits: { vip: true, first_name: 'Carol', birthday: '1985-02-20', timezone: 'Europe/Berlin' },
      },
      { userId: `dan-${run}`, traits: { vip: false, first_name: 'Dan', birthday: '1990-03-10', timezone: 'UTC' } },
    ];
    await h.send(...people.map((p) => ({ type: 'identify', ...p })));
    // Bob's zone comes from his events' context (no timezone trait).
    await h.send({ type: 'track', userId: `bob-${run}`, event: 'Visited', context: { timezone: 'America/New_York' } });
    for (const p of people) await h.profileOf(p.userId);
    await until('Bob’s visit attached', async () => {
      const [row] = await h.cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM events WHERE event = 'Visited' AND user_id = ${`bob-${run}`} AND profile_id IS NOT NULL`;
      return row!.n === 1;
    });
    await until('the profiles folded', async () => {
      const [row] = await h.cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM profile_traits WHERE key = 'birthday' AND value::text LIKE '"19%'`;
      return row!.n >= 4;
    });
    const flow = await h.publish({
      version: 1,
      name: `Birthday ${run}`,
      trigger: { type: 'date_trait', trait: 'birthday', offsetDays: -7, time: '10:00', repeat: 'yearly' },
      entry: { reentry: { afterDays: 300 }, rule: { op: 'trait', trait: 'vip', cmp: '=', value: true } },
      nodes: [sender('wish', 'Birthday')],
      edges: [],
    });
    const iso = (s: string) => new Date(at(s)).toISOString();
    await until('everyone with a birthday planned', async () => {
      const p = await plannedOf(flow);
      return p[`aiko-${run}`] && p[`bob-${run}`] && p[`carol-${run}`] && p[`dan-${run}`] ? p : undefined;
    });
    expect(await plannedOf(flow)).toEqual({
      [`aiko-${run}`]: iso('Y-03-03T01:00:00Z'),
      [`bob-${run}`]: iso('Y-03-03T15:00:00Z'),
      [`carol-${run}`]: iso('Y-02-13T09:00:00Z'),
      [`dan-${run}`]: iso('Y-03-03T10:00:00Z'),
    });

    await h.send({ type: 'identify', userId: `carol-${run}`, traits: { birthday: '1985-03-20' } });
    await until('Carol re-planned', async () => (await plannedOf(flow))[`carol-${run}`] === iso('Y-03-13T09:00:00Z'));

    clock.now = at('Y-02-13T09:00:01Z');
    await pause();
    expect(messages('Birthday')).toEqual([]);

    clock.now = at('Y-03-03T01:00:01Z');
    expect(await waitFor('Birthday', 1)).toEqual([`aiko-${run}`]);
    await until('Aiko planned for next year', async () =>
      (await plannedOf(flow))[`aiko-${run}`]?.startsWith(`${Y + 1}-03-03T01:00`),
    );
    expect(await runsOf(flow, `bob-${run}`)).toEqual([]);
    clock.now = at('Y-03-03T14:59:00Z');
    await pause();
    // Dan's moment passed (10:00 UTC) without him: the entry rule (vip) kept him out.
    expect(messages('Birthday')).toEqual([`aiko-${run}`]);
    expect(await runsOf(flow, `dan-${run}`)).toEqual([]);

    clock.now = at('Y-03-03T15:00:01Z');
    expect(await waitFor('Birthday', 2)).toEqual([`aiko-${run}`, `bob-${run}`]);
    clock.now = at('Y-03-13T09:00:01Z');
    expect(await waitFor('Birthday', 3)).toEqual([`aiko-${run}`, `bob-${run}`, `carol-${run}`]);
    const [carol] = await runsOf(flow, `carol-${run}`);
    expect(carol).toMatchObject({ status: 'completed', enteredAt: iso('Y-03-13T09:00:01Z') });
    expect((await h.post(`/flows/${flow}/pause`, {})).status).toBe(200);
  });

  it('a computed trait becoming churn_risk enters the person, with the value before and after', async () => {
    const risk = `risk_${run}`;
    const trait = await h.post('/computed-traits', {
      key: risk,
      name: 'Risk',
      definition: { kind: 'aggregate', fn: 'last', event: 'Risk Scored', property: 'segment' },
    });
    expect(trait.status, trait.text).toBe(201);
    const flow = await h.publish({
      version: 1,
      name: `Win back ${run}`,
      trigger: { type: 'trait_changed', trait: risk, computed: true, to: { cmp: '=', value: 'churn_risk' } },
      entry: { reentry: 'every_time' },
      nodes: [
        {
          id: 'recall',
          type: 'send',
          destination: hookId,
          message: { body: `Recall {{ computed.${risk} }}` },
        },
      ],
      edges: [],
    });
    const user = `eve-${run}`;
    // A minute apart on the clock: the trait is the segment of the latest event.
    const scored = (segment: string) => {
      clock.advance(60_000);
      return h.send({ type: 'track', userId: user, event: 'Risk Scored', properties: { segment } });
    };
    await scored('loyal');
    const profile = await h.profileOf(user);
    await until('the trait computed', async () =>
      (await h.api(`/profiles/${profile}/computed-traits`)).text.includes('loyal'),
    );
    await scored('churn_risk');
    await waitFor('Recall', 1);
    expect(hook.accepted.find((r) => r.body?.message?.body?.startsWith('Recall'))?.body.message.body).toBe(
      'Recall churn_risk',
    );
    // The change is recorded as an event of the person, with the value before and after.
    const [change] = await h.cairn.sql<{ properties: Any }[]>`
      SELECT payload->'properties' AS properties FROM events
      WHERE event = 'trait.changed' AND profile_id = ${profile}::uuid ORDER BY id DESC LIMIT 1`;
    expect(change?.properties).toMatchObject({ trait: { key: risk, computed: true }, from: 'loyal', to: 'churn_risk' });
    // Staying churn_risk is no change; becoming something else and back is.
    const computed = (value: string) =>
      until(`the trait ${value}`, async () =>
        (await h.api(`/profiles/${profile}/computed-traits`)).text.includes(`"${value}"`),
      );
    await scored('churn_risk');
    await scored('loyal');
    await computed('loyal');
    await scored('churn_risk');
    await waitFor('Recall', 2);
    await pause();
    expect(messages('Recall')).toEqual([user, user]);
    expect((await runsOf(flow, user)).length).toBe(2);
  });
});
