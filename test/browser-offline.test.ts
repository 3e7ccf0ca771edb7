import {
  createTestDatabase,
  freePort,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn as Tracker } from '../sdk-web/src/types.ts';
import { ensureBuilt } from '../sdk-web/test/helpers/build.ts';
import { launch, ready, until } from './support/browser.ts';

/** Page functions run in Chromium; this project compiles with Node's types only, so the globals they use are declared. */
declare const window: { cairn: Tracker };

/** The backoff grows to tens of seconds while the server is down; the first retry after it returns may wait that long. */
const DELIVERY_TIMEOUT = 150_000;

describe('snippet through a server outage, against the real server', { timeout: 300_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let sql: postgres.Sql;
  let env: Record<string, string>;
  let server: ServerProcess | undefined;
  let browser: Browser;
  /** Every POST /v1/batch any page made, with the messageIds it carried. */
  const requests: { request: Request; ids: string[] }[] = [];

  const stop = async () => {
    const s = server!;
    server = undefined;
    s.proc.kill('SIGTERM');
    expect(await s.exited, s.output()).toBe(0);
  };
  const restart = async () => {
    server = await spawnServer(env);
  };
  /** The stored events of a visitor with this name: [properties.i, messageId], by i. */
  const stored = async (aid: string, name: string) =>
    (
      await sql<{ i: number; messageId: string }[]>`
        SELECT (payload -> 'properties' ->> 'i')::int AS i, message_id AS "messageId"
        FROM events
        WHERE anonymous_id = ${aid} AND event = ${name}
        ORDER BY 1`
    ).map((r) => [r.i, r.messageId] as const);
  const pageViews = async (aid: string) =>
    (await sql`SELECT 1 FROM events WHERE anonymous_id = ${aid} AND type = 'page'`).length;
  /** How many requests carrying this messageId the server answered with 200. */
  const answered = async (messageId: string) => {
    let n = 0;
    for (const r of requests.filter((x) => x.ids.includes(messageId)))
      if ((await r.request.response())?.status() === 200) n++;
    return n;
  };
  const attempts = (messageId: string) => requests.filter((x) => x.ids.includes(messageId)).length;

  const newContext = async () => {
    const context = await browser.newContext();
    context.on('request', (request) => {
      if (!request.url().endsWith('/v1/batch')) return;
      const body = JSON.parse(request.postData() ?? '{"batch":[]}') as { batch: { messageId: string }[] };
      requests.push({ request, ids: body.batch.map((e) => e.messageId) });
    });
    return context;
  };
  /** Opens the demo shop; the returned counter says how many of its deliveries failed (server down). */
  const open = async (context: BrowserContext) => {
    const page = await context.newPage();
    const failures = { count: 0 };
    page.on('requestfailed', (r) => r.url().endsWith('/v1/batch') && failures.count++);
    await page.goto(`${server!.url}/demo/`);
    await ready(page);
    const aid = await page.evaluate(() => window.cairn.user().anonymousId!);
    return { page, failures, aid };
  };
  const track = (page: Page, name: string, from: number, n: number) =>
    page.evaluate(
      ([name, from, n]) => {
        for (let i = from; i < from + n; i++) window.cairn.track(name, { i });
      },
      [name, from, n] as const,
    );
  const queued = (page: Page) =>
    page.evaluate(() =>
      Object.keys(localStorage)
        .filter((k) => k.startsWith('cairn_q_'))
        .map((k) => (JSON.parse(localStorage.getItem(k)!) as unknown[]).length),
    );
  /** Each i in [0, n) stored exactly once under its own messageId, each answered once. */
  const expectEachOnce = async (aid: string, name: string, n: number) => {
    const rows = await stored(aid, name);
    expect(rows.map(([i]) => i)).toEqual([...Array(n).keys()]);
    for (const [, id] of rows) expect(await answered(id), `200 answers for ${name} ${id}`).toBe(1);
    return rows.map(([, id]) => id);
  };

  beforeAll(async () => {
    await ensureBuilt();
    db = await createTestDatabase('test/browser-offline.test.ts', 'postgres');
    env = { ...db.env, PORT: String(await freePort()) };
    sql = postgres(db.url!, { max: 2, onnotice: () => {} });
    [server, browser] = await Promise.all([spawnServer(env), launch()]);
  });
  afterAll(async () => {
    await browser?.close();
    if (server) await stop();
    await sql?.end();
    await db?.drop();
  });

  it('events made while the server is down are delivered once it is back, each exactly once', async () => {
    const context = await newContext();
    const { page, failures, aid } = await open(context);
    await until(async () => (await pageViews(aid)) === 1, 'the page view while the server is up');

    await stop();
    await track(page, 'Offline', 0, 10);
    await until(() => failures.count > 0, 'a failed delivery while the server is down', 30_000);
    await track(page, 'Offline', 10, 5); // made during the backoff
    await restart();

    await until(async () => (await stored(aid, 'Offline')).length === 15, 'all 15 events', DELIVERY_TIMEOUT);
    const ids = await expectEachOnce(aid, 'Offline', 15);
    expect(Math.max(...ids.map(attempts))).toBeGreaterThan(1); // they were retried...
    await until(async () => (await queued(page)).every((n) => n === 0), 'an empty queue'); // ...and are done
    expect(await pageViews(aid)).toBe(1);
    await context.close();
  });

  it('two tabs, server down, one tab leaves: the other takes its queue over; no loss, no duplicate', async () => {
    const context = await newContext();
    const a = await open(context);
    const b = await open(context);
    expect(b.aid).toBe(a.aid); // one visitor, two tabs, one localStorage
    await until(async () => (await pageViews(a.aid)) === 2, 'both page views while the server is up');

    await stop();
    await Promise.all([track(a.page, 'From A', 0, 5), track(b.page, 'From B', 0, 5)]);
    await until(() => a.failures.count > 0 && b.failures.count > 0, 'failed deliveries in both tabs', 30_000);
    // Leaving: A beacons its queue (the server is down, so it stays stored) and lets it go; B takes it over.
    await a.page.goto('about:blank');
    await until(
      async () => JSON.stringify(await queued(b.page)) === '[10]',
      "A's queue moved into B's (one queue of 10)",
      60_000,
    );
    await restart();

    await until(
      async () => (await stored(a.aid, 'From A')).length === 5 && (await stored(a.aid, 'From B')).length === 5,
      'the events of both tabs',
      DELIVERY_TIMEOUT,
    );
    const ids = [...(await expectEachOnce(a.aid, 'From A', 5)), ...(await expectEachOnce(a.aid, 'From B', 5))];
    // A's events failed in A, then went out from B; none was answered twice.
    expect(ids.map(attempts).every((n) => n >= 2)).toBe(true);
    await until(async () => (await queued(b.page)).every((n) => n === 0), 'an empty queue');
    await context.close();
  });
});
