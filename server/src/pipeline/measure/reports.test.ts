import { messageIdFor } from '@cairn/plugin-email-smtp';
import type { ParsedMail } from 'mailparser';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import { type GeneratedEvent, generateAnalyticsEvents, sendGenerated } from '../../testing/analytics-data.ts';
import { createTestDatabase, type TestDatabase } from '../../testing/db.ts';
import { settle } from '../../testing/events.ts';
import { describeOnDatabases, movableClock } from '../../testing/flows.ts';
import { adminApi, until } from '../../testing/http.ts';
import { type Receiver, startReceiver } from '../../testing/index.ts';
import { startTestCairn } from '../../testing/server.ts';
import { type SmtpReceiver, smtpReceiver } from '../../testing/smtp.ts';

// A weekly report (Mondays 09:00 Berlin) on a moved clock: it arrives once per week at a real SMTP
// receiver with its chart inline and the numbers of the generated events, and once per week as JSON at a
// webhook; across a restart with two periods missed, only the latest missed one is sent, once (on
// Postgres with two servers checking at once).

// biome-ignore lint/suspicious/noExplicitAny: the webhook's JSON, checked by the assertions
type Any = any;
const WEEK = 7 * 24 * 3_600_000;
const ORDERS = { event: 'Order Completed' };
// Independent of the report code: the week's bounds in Berlin written out by hand.
const WEEKS = {
  w45: { from: '2026-11-01T23:00:00.000Z', to: '2026-11-08T23:00:00.000Z' },
  w44: { from: '2026-10-25T23:00:00.000Z', to: '2026-11-01T23:00:00.000Z' },
  w46: { from: '2026-11-08T23:00:00.000Z', to: '2026-11-15T23:00:00.000Z' },
  w48: { from: '2026-11-22T23:00:00.000Z', to: '2026-11-29T23:00:00.000Z' },
};

function expected(events: readonly GeneratedEvent[], week: { from: string; to: string }) {
  const inWeek = events.filter(
    (e) => e.body.event === ORDERS.event && e.body.timestamp >= week.from && e.body.timestamp < week.to,
  );
  const sum = inWeek.reduce((s, e) => s + ((e.body.properties?.total as number | undefined) ?? 0), 0);
  return { count: inWeek.length, people: new Set(inWeek.map((e) => e.person)).size, sum };
}
const change = (v: number, p: number) => (p === 0 ? null : ((v - p) / p) * 100);

describeOnDatabases('scheduled reports on %s', (mode) => {
  const clock = movableClock(Date.parse('2026-11-09T07:00:00Z')); // Monday 08:00 in Berlin
  const env = { CAIRN_REPORTS_TICK_MS: '100' };
  let db: TestDatabase;
  const servers: Cairn[] = [];
  let smtp: SmtpReceiver | undefined;
  let hook: Receiver;
  const mails: ParsedMail[] = [];
  const events = generateAnalyticsEvents({
    seed: 28,
    people: 60,
    eventsPerPerson: 12,
    from: '2026-10-19T00:00:00Z',
    to: '2026-11-09T00:00:00Z',
  });
  let api: ReturnType<typeof adminApi>;
  let emailReport: string;
  let hookReport: string;
  const start = async () => {
    const s = await startTestCairn({ ...db.env, ...env }, { clock: clock.read });
    servers.push(s);
    return s;
  };

  beforeAll(async () => {
    smtp = await smtpReceiver({ onMail: (mail) => mails.push(mail) });
    hook = await startReceiver();
    db = await createTestDatabase(`reports.test.ts:${mode}`, mode);
    const cairn = await start();
    api = adminApi(cairn.url);
    await sendGenerated(cairn, events);
    await settle(cairn.sql, { queues: ['measure'], timeoutMs: 120_000 });
    const port = smtp.port;
    const mail = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'mail',
        plugin: 'email-smtp',
        settings: { host: '127.0.0.1', port, from: 'Cairn <reports@acme.test>', subject: 'unused', text: 'unused' },
      }),
    });
    expect(mail.status, mail.text).toBe(201);
    const web = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'hook', plugin: 'webhook', settings: { url: hook.url } }),
    });
    expect(web.status, web.text).toBe(201);
    const schedule = { every: 'week', weekday: 1, at: '09:00', timezone: 'Europe/Berlin' };
    const queries = [
      {
        title: 'Orders',
        interval: 'day',
        series: [
          { events: ORDERS, measure: 'count', name: 'orders' },
          { events: ORDERS, measure: 'people', name: 'buyers' },
        ],
      },
      { title: 'Revenue', interval: 'day', series: [{ events: ORDERS, measure: 'sum', property: 'total' }] },
    ];
    const created = await api('/reports', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Weekly shop',
        schedule,
        queries,
        destination: { type: 'email', destinationId: mail.body.id, to: ['ana@acme.test'] },
      }),
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.nextDue).toBe('2026-11-09T08:00:00.000Z');
    emailReport = created.body.id;
    const json = await api('/reports', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Weekly JSON',
        schedule,
        queries: queries.slice(0, 1),
        destination: { type: 'webhook', destinationId: web.body.id },
      }),
    });
    expect(json.status, json.text).toBe(201);
    hookReport = json.body.id;
  }, 600_000);
  afterAll(async () => {
    for (const s of servers.reverse()) await s.close().catch(() => {});
    await hook?.close();
    await smtp?.close();
    await db?.drop();
  });

  const runsOf = async (id: string) => (await api(`/reports/${id}/runs`)).body.data as { periodStart: string }[];
  // A few due checks (each server ticks every 100 ms): after them nothing more may have arrived.
  const ticks = () => new Promise((r) => setTimeout(r, 800));

  it('sends the week just ended once, by email with its chart inline and the right numbers', async () => {
    await ticks();
    expect(mails).toHaveLength(0); // not due before Monday 09:00
    clock.advance(3_600_000 + 1000);
    await until('the first report', async () => mails.length >= 1, { tries: 600 });
    await hook.waitFor(1);
    await ticks();
    expect(mails).toHaveLength(1);
    expect(hook.accepted).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.subject).toBe('Weekly shop: 2 Nov – 8 Nov 2026 (Europe/Berlin)');
    expect(mail.to && 'text' in mail.to ? mail.to.text : '').toBe('ana@acme.test');
    const key = `report:${emailReport}:${WEEKS.w45.from}:ana@acme.test`;
    expect(mail.messageId).toBe(messageIdFor(key, 'acme.test'));
    const charts = mail.attachments.filter((a) => a.contentType === 'image/png');
    expect(charts).toHaveLength(2);
    expect(charts[0]!.contentId).toBe('<chart-1@cairn>');
    expect(charts[0]!.contentDisposition).toBe('inline');
    expect(charts[0]!.content.subarray(1, 4).toString()).toBe('PNG');
    expect(mail.html).toContain('src="cid:chart-1@cairn"');
    expect(mail.html).toContain('src="cid:chart-2@cairn"');
    const now = expected(events, WEEKS.w45);
    const before = expected(events, WEEKS.w44);
    expect(now.count).toBeGreaterThan(5);
    expect(before.count).toBeGreaterThan(5);
    const fmt = (n: number) => new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(n);
    const pct = (c: number | null) => (c === null ? 'n/a' : `${c > 0 ? '+' : ''}${c.toFixed(1)}%`);
    expect(mail.text).toContain(
      `• orders: ${fmt(now.count)} (previous ${fmt(before.count)}, ${pct(change(now.count, before.count))})`,
    );
    expect(mail.text).toContain(
      `• buyers: ${fmt(now.people)} (previous ${fmt(before.people)}, ${pct(change(now.people, before.people))})`,
    );
    expect(mail.html).toContain(`>${fmt(now.count)}</td>`);
    // The webhook: the report as JSON, with the period's Idempotency-Key.
    const req = hook.accepted[0]!;
    expect(req.headers['idempotency-key']).toBe(`report:${hookReport}:${WEEKS.w45.from}`);
    const body = req.body as Any;
    expect(body.profile).toBeNull();
    expect(body.event.event).toBe('Report Sent');
    const r = body.event.properties;
    expect(r.period).toEqual({ ...WEEKS.w45, timezone: 'Europe/Berlin' });
    expect(r.previous).toEqual({ ...WEEKS.w44, timezone: 'Europe/Berlin' });
    const [orders, buyers] = r.queries[0].lines;
    expect(orders).toMatchObject({ name: 'orders', value: now.count, previous: before.count });
    expect(orders.change).toBeCloseTo(change(now.count, before.count)!, 6);
    expect(orders.values).toHaveLength(7);
    expect(orders.values.reduce((a: number, b: number) => a + b, 0)).toBe(now.count);
    expect(buyers).toMatchObject({ name: 'buyers', value: now.people, previous: before.people });
    // The run keeps what was sent.
    const runs = (await api(`/reports/${emailReport}/runs`)).body.data;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ periodStart: WEEKS.w45.from, status: 'sent', attempts: 1 });
    expect(runs[0].summary[1].lines[0].value).toBeCloseTo(now.sum, 6);
  }, 120_000);

  it('sends the next week once when it is due', async () => {
    clock.advance(WEEK);
    await until('the second report', async () => mails.length >= 2, { tries: 600 });
    await hook.waitFor(2);
    await ticks();
    expect(mails).toHaveLength(2);
    expect(hook.accepted).toHaveLength(2);
    expect(mails[1]!.subject).toBe('Weekly shop: 9 Nov – 15 Nov 2026 (Europe/Berlin)');
    const r = (hook.accepted[1]!.body as Any).event.properties;
    expect(r.period.from).toBe(WEEKS.w46.from);
    // The generated events end at 9 November 00:00 UTC (01:00 in Berlin): the week holds the last hour.
    const w46 = expected(events, WEEKS.w46).count;
    const w45 = expected(events, WEEKS.w45).count;
    expect(r.queries[0].lines[0]).toMatchObject({ value: w46, previous: w45 });
    expect(r.queries[0].lines[0].change).toBeCloseTo(change(w46, w45)!, 6);
  }, 120_000);

  it('after a restart with two periods missed, sends only the latest, once (two servers on Postgres)', async () => {
    await servers.shift()!.close();
    clock.advance(2 * WEEK); // Monday 30 November 09:00:01 Berlin: 23 and 30 November were missed
    const again = await start();
    if (mode === 'postgres') await start();
    api = adminApi(again.url);
    await until('the third report', async () => mails.length >= 3, { tries: 600 });
    await hook.waitFor(3);
    await ticks();
    expect(mails).toHaveLength(3);
    expect(hook.accepted).toHaveLength(3);
    expect(mails[2]!.subject).toBe('Weekly shop: 23 Nov – 29 Nov 2026 (Europe/Berlin)');
    expect(new Set(mails.map((m) => m.messageId)).size).toBe(3);
    expect((hook.accepted[2]!.body as Any).event.properties.period.from).toBe(WEEKS.w48.from);
    expect((await runsOf(emailReport)).map((r) => r.periodStart)).toEqual([
      WEEKS.w48.from,
      WEEKS.w46.from,
      WEEKS.w45.from,
    ]);
    expect((await runsOf(hookReport)).map((r) => r.periodStart)).toEqual([
      WEEKS.w48.from,
      WEEKS.w46.from,
      WEEKS.w45.from,
    ]);
  }, 120_000);

  it('sends a preview now, outside the runs', async () => {
    const res = await api(`/reports/${hookReport}/send-now`, { method: 'POST' });
    expect(res.status, res.text).toBe(200);
    expect(res.body.sent).toBe(true);
    expect(res.body.period.range.from).toBe(WEEKS.w48.from);
    const preview = await hook.waitFor(4);
    expect(preview[3]!.headers['idempotency-key']).toMatch(new RegExp(`^report:${hookReport}:preview:`));
    expect(await runsOf(hookReport)).toHaveLength(3);
  }, 60_000);

  it('sends a chat report as a text summary through the Slack plugin', async () => {
    const chat = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'team chat', plugin: 'slack', settings: { webhookUrl: hook.url, text: 'unused' } }),
    });
    expect(chat.status, chat.text).toBe(201);
    const created = await api('/reports', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Weekly chat',
        schedule: { every: 'week', weekday: 1, at: '09:00', timezone: 'Europe/Berlin' },
        queries: [{ title: 'Orders', interval: 'day', series: [{ events: ORDERS, measure: 'count', name: 'orders' }] }],
        destination: { type: 'chat', destinationId: chat.body.id },
      }),
    });
    expect(created.status, created.text).toBe(201);
    hook.reset();
    const res = await api(`/reports/${created.body.id}/send-now`, { method: 'POST' });
    expect(res.status, res.text).toBe(200);
    expect(res.body.sent).toBe(true);
    const [req] = await hook.waitFor(1);
    expect((req!.body as Any).text).toBe(
      '*Weekly chat: 23 Nov – 29 Nov 2026 (Europe/Berlin)*\n*Orders*\n• orders: 0 (previous 0, n/a)',
    );
  }, 60_000);

  it('changes only the fields a PATCH names, and refuses bad reports with a reason', async () => {
    const before = (await api(`/reports/${hookReport}`)).body;
    const patched = await api(`/reports/${hookReport}`, { method: 'PATCH', body: JSON.stringify({ enabled: false }) });
    expect(patched.status, patched.text).toBe(200);
    const { enabled: _a, updatedAt: _b, nextDue: _c, ...rest } = patched.body;
    const { enabled: _d, updatedAt: _e, nextDue: _f, ...restBefore } = before;
    expect(rest).toEqual(restBefore);
    expect(patched.body.enabled).toBe(false);
    const bad = async (body: object, message: RegExp) => {
      const res = await api('/reports', {
        method: 'POST',
        body: JSON.stringify({
          name: 'x',
          schedule: { every: 'day', at: '07:00', timezone: 'UTC' },
          queries: [{ interval: 'day', series: [{ events: ORDERS, measure: 'count' }] }],
          destination: before.destination,
          ...body,
        }),
      });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.message).toMatch(message);
    };
    await bad({ schedule: { every: 'week', at: '07:00', timezone: 'UTC' } }, /^schedule\.weekday/);
    await bad({ schedule: { every: 'day', at: '25:00', timezone: 'UTC' } }, /^schedule\.at: a local time/);
    await bad({ schedule: { every: 'day', at: '07:00', timezone: 'Nowhere/City' } }, /not an IANA time zone/);
    await bad(
      { destination: { type: 'email', destinationId: before.destination.destinationId, to: ['a@b.test'] } },
      /is not a email plugin/,
    );
    await bad({ destination: { type: 'chat', destinationId: 'nope' } }, /no destination nope/);
    await bad({ queries: [] }, /^queries/);
    await bad(
      { queries: [{ interval: 'day', series: [{ events: ORDERS, measure: 'count' }], breakdown: { trait: 'email' } }] },
      /^queries\[0\]: breakdown: email is a sensitive trait/,
    );
    expect((await api('/reports/not-a-report')).status).toBe(404);
  }, 60_000);

  it('retries a failed send at a later check with the same idempotency key, and records it once', async () => {
    const web = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'hook 2', plugin: 'webhook', settings: { url: hook.url } }),
    });
    expect(web.status, web.text).toBe(201);
    const created = await api('/reports', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Daily JSON',
        schedule: { every: 'day', at: '09:30', timezone: 'Europe/Berlin' },
        queries: [{ interval: 'hour', series: [{ events: ORDERS, measure: 'count' }] }],
        destination: { type: 'webhook', destinationId: web.body.id },
      }),
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    hook.reset();
    hook.queue({ status: 503 });
    clock.advance(30 * 60_000); // 09:30:01 on Monday 30 November in Berlin
    const [first] = await hook.waitFor(1, { among: 'all' });
    const run = await until('the failed try recorded', async () => {
      const [r] = (await api(`/reports/${id}/runs`)).body.data;
      return r?.lastError ? r : undefined;
    });
    expect(run).toMatchObject({ periodStart: '2026-11-28T23:00:00.000Z', status: 'sending', attempts: 1 });
    expect(run.lastError).toMatch(/503/);
    clock.advance(61_000); // past the retry's lease
    const [second] = await hook.waitFor(1);
    expect(second!.headers['idempotency-key']).toBe(first!.headers['idempotency-key']);
    expect(first!.headers['idempotency-key']).toBe(`report:${id}:2026-11-28T23:00:00.000Z`);
    const done = await until('the retry recorded', async () => {
      const [r] = (await api(`/reports/${id}/runs`)).body.data;
      return r?.status === 'sent' ? r : undefined;
    });
    expect(done).toMatchObject({ attempts: 2, lastError: null });
    await ticks();
    expect(hook.requests).toHaveLength(2);
  }, 60_000);
});
