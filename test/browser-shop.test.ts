import type { Cairn } from '@cairn/server';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Cairn as Tracker } from '../sdk-web/src/types.ts';
import { ensureBuilt } from '../sdk-web/test/helpers/build.ts';
import { launch, ready, until } from './support/browser.ts';

/** Page functions run in Chromium; this project compiles with Node's types only, so the globals they use are declared. */
declare const window: { cairn: Tracker };
declare const history: {
  pushState(s: unknown, t: string, u: string): void;
  replaceState(s: unknown, t: string, u: string): void;
};
declare const document: { querySelector(s: string): { click(): void } | null };

/** An event as stored (columns Cairn fills from the payload, and the payload itself). */
interface Stored {
  messageId: string;
  type: string;
  event: string | null;
  anonymousId: string | null;
  userId: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: payloads are checked by the assertions
  payload: any;
}

describe('demo shop in Chromium against the real server', { timeout: 90_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let context: BrowserContext;
  let errors: Error[];

  // Payloads opened: sensitive traits (the email below) are stored encrypted (docs/design/pii.md).
  const stored = async (anonymousId: string) =>
    (
      await cairn.sql<Stored[]>`
    SELECT message_id AS "messageId", type, event, anonymous_id AS "anonymousId", user_id AS "userId", payload
    FROM events
    WHERE anonymous_id = ${anonymousId}
    ORDER BY id`
    ).map((e) => ({ ...e, payload: cairn.pii.openPayload(e.payload) as Stored['payload'] }));
  const has = async (aid: string, name: string) => (await stored(aid)).some((e) => (e.event ?? e.type) === name);
  const anonymousId = (page: Page) => page.evaluate(() => window.cairn.user().anonymousId!);
  /** Tracks a marker and waits until it is stored: the queue goes out oldest first, so everything made before it is in. */
  const settle = async (page: Page, aid: string, marker: string) => {
    await page.evaluate((m) => setTimeout(() => window.cairn.track(m)), marker);
    await until(() => has(aid, marker), `the ${marker} marker stored`);
  };
  const open = async (path: string) => {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${cairn.url}${path}`);
    await ready(page);
    return page;
  };

  beforeAll(async () => {
    await ensureBuilt(); // the server serves sdk-web/dist/cairn.min.js at /demo/cairn.min.js
    db = await createTestDatabase('test/browser-shop.test.ts', 'postgres');
    [cairn, browser] = await Promise.all([startTestCairn(db.env), launch()]);
  });
  beforeEach(async () => {
    await context?.close();
    context = await browser.newContext();
    errors = [];
  });
  afterAll(async () => {
    await browser?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('loading /demo/ sends exactly one page view', async () => {
    const page = await open('/demo/');
    const aid = await anonymousId(page);
    await settle(page, aid, 'Marker');
    const events = await stored(aid);
    expect(events.map((e) => e.event ?? e.type)).toEqual(['page', 'Product List Viewed', 'Marker']);
    expect(events[0]!.payload).toMatchObject({
      type: 'page',
      anonymousId: aid,
      properties: { path: '/demo/', url: `${cairn.url}/demo/`, title: 'Products · Cairn demo shop' },
      context: { library: { name: 'cairn-web' }, page: { path: '/demo/' } },
    });
    expect(errors).toEqual([]);
  });

  it('clicks send track events; sign-up ties the anonymousId to the userId; a reload keeps the anonymousId', async () => {
    const page = await open('/demo/');
    const aid = await anonymousId(page);
    await page.click('text=Analytics only');
    await page.click('text=Cairn mug');
    await page.click('#add');
    await page.click('text=View cart');
    await page.click('#checkout');
    await page.fill('input[name=email]', 'ada@example.com');
    await page.fill('input[name=name]', 'Ada');
    await page.click('text=Place order');
    await page.waitForSelector('#thanks:not([hidden])');
    await until(() => has(aid, 'Order Completed'), 'Order Completed stored');
    // A page left quickly hands its queued events to the next page (the snippet's storage), which sends
    // them with its own: they can land after the order. Wait for all four views; a lost one still fails.
    await until(
      async () => (await stored(aid)).filter((e) => e.type === 'page').length >= 4,
      'the four page views stored',
    );

    const byName = (events: Stored[], name: string) => events.filter((e) => e.event === name);
    let events = await stored(aid);
    expect(byName(events, 'Product Added')).toHaveLength(1);
    expect(byName(events, 'Product Added')[0]!.payload.properties).toMatchObject({ product_id: 'p1', quantity: 1 });
    expect(byName(events, 'Checkout Started')).toHaveLength(1);
    expect(byName(events, 'Order Completed')[0]!.payload).toMatchObject({
      properties: { total: 12, currency: 'EUR', products: [{ product_id: 'p1', quantity: 1 }] },
      context: { consent: { categoryPreferences: { analytics: true, marketing: false } } },
    });
    expect(events.filter((e) => e.type === 'page').map((e) => e.payload.properties.path)).toEqual([
      '/demo/',
      '/demo/product.html',
      '/demo/cart.html',
      '/demo/checkout.html',
    ]);

    // Sign up: identify(userId, traits) with the same anonymousId, and the userId on what follows.
    await page.click('text=Sign up');
    await ready(page);
    await page.fill('input[name=email]', 'ada@example.com');
    await page.fill('input[name=name]', 'Ada');
    await page.check('input[name=newsletter]');
    await page.click('button[type=submit]');
    await page.waitForSelector('#welcome:not([hidden])');
    const userId = await page.evaluate(() => localStorage.getItem('shop_user'));
    expect(userId).toMatch(/^user_/);
    await until(() => has(aid, 'Signed Up'), 'Signed Up stored');
    events = await stored(aid);
    const identify = events.filter((e) => e.type === 'identify' && e.userId === userId);
    expect(identify).toHaveLength(1);
    expect(identify[0]!.payload).toMatchObject({
      anonymousId: aid,
      userId,
      traits: { email: 'ada@example.com', name: 'Ada', newsletter: true },
    });
    expect(byName(events, 'Signed Up')[0]).toMatchObject({ anonymousId: aid, userId });

    // The admin API lists the same identify event.
    const res = await fetch(`${cairn.url}/api/events?messageId=${identify[0]!.messageId}`, {
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
    });
    const listed = (await res.json()) as { data: Stored[] };
    expect(listed.data.map((e) => [e.type, e.payload.anonymousId, e.payload.userId])).toEqual([
      ['identify', aid, userId],
    ]);

    await page.reload();
    await ready(page);
    expect(await page.evaluate(() => window.cairn.user())).toMatchObject({ anonymousId: aid, userId });
    await settle(page, aid, 'After Reload');
    events = await stored(aid);
    const signupViews = events.filter((e) => e.type === 'page' && e.payload.properties.path === '/demo/signup.html');
    expect(signupViews).toHaveLength(2);
    expect(signupViews[1]).toMatchObject({ anonymousId: aid, userId });
    expect(new Set(events.map((e) => e.anonymousId))).toEqual(new Set([aid]));
    expect(errors).toEqual([]);
  });

  it('events fired right before leaving the page arrive: navigation away, and a link click', async () => {
    const page = await open('/demo/product.html?id=p2');
    const aid = await anonymousId(page);
    // The page goes away well within flushInterval (1 s), so the pagehide beacon carries it; /healthz has no snippet
    // that could resend it later.
    await page.evaluate(() => window.cairn.track('Left By Navigation', { n: 1 }));
    await page.goto(`${cairn.url}/healthz`);
    await until(() => has(aid, 'Left By Navigation'), 'the event fired before navigating away');

    const shop = await open('/demo/product.html?id=p3');
    await shop.evaluate(() => {
      window.cairn.track('Left By Link', { n: 2 });
      document.querySelector('a[href="cart.html"]')!.click();
    });
    await shop.waitForURL('**/demo/cart.html');
    await until(() => has(aid, 'Left By Link'), 'the event fired before following a link');
    await until(() => has(aid, 'Cart Viewed'), 'the next page');
    const events = await stored(aid);
    expect(events.filter((e) => e.event?.startsWith('Left By')).map((e) => e.payload.properties)).toEqual([
      { n: 1 },
      { n: 2 },
    ]);
    expect(errors).toEqual([]);
  });

  /** The paths of the page views stored for a visitor, in order. */
  const pagePaths = async (aid: string) =>
    (await stored(aid)).filter((e) => e.type === 'page').map((e) => e.payload.properties.path as string);
  const navigate = (page: Page, how: 'pushState' | 'replaceState', url: string) =>
    page.evaluate(([how, url]) => history[how]({}, '', url), [how, url] as const);

  it('SPA: one page view per pushState route change, none for a replaceState on the same path', async () => {
    const page = await open('/demo/');
    const aid = await anonymousId(page);
    // A route change at a time, as a visitor clicks: each is stored before the next.
    await navigate(page, 'pushState', '/demo/spa/a');
    await until(async () => (await pagePaths(aid)).includes('/demo/spa/a'), 'the page view of /demo/spa/a');
    await navigate(page, 'pushState', '/demo/spa/b?tab=1');
    await until(async () => (await pagePaths(aid)).includes('/demo/spa/b'), 'the page view of /demo/spa/b');
    await navigate(page, 'replaceState', '/demo/spa/b?tab=2');
    // The marker is made after any page view the replaceState could have scheduled (both are timeouts).
    await settle(page, aid, 'Marker');
    expect(await pagePaths(aid)).toEqual(['/demo/', '/demo/spa/a', '/demo/spa/b']);
    const views = (await stored(aid)).filter((e) => e.type === 'page');
    expect(views[2]!.payload.properties).toMatchObject({ search: '?tab=1', referrer: `${cairn.url}/demo/spa/a` });
    expect(errors).toEqual([]);
  });

  // Routers redirect by changing the route twice in one task (push /a, then push or replace /b at once).
  // Fails with sdk-web as of this writing: history.ts defers page() with setTimeout and the page view reads `location`
  // when the timeout fires, so both views get the second path (and the same referrer).
  it('SPA: two route changes in one task give one page view each, with its own path', async () => {
    const page = await open('/demo/');
    const aid = await anonymousId(page);
    await page.evaluate(() => {
      history.pushState({}, '', '/demo/spa/first');
      history.pushState({}, '', '/demo/spa/second');
    });
    await settle(page, aid, 'Marker');
    expect(await pagePaths(aid)).toEqual(['/demo/', '/demo/spa/first', '/demo/spa/second']);
  });
});
