// The console's shell and its live events page in Chromium against a real server on Postgres: sign-in, an
// event appearing as it is sent, filters, pause, the event's page with its deliveries, a refusal, masked PII
// for an analyst, keyboard and phone width, and axe-core on every page.
import type { Cairn } from '@cairn/server';
import {
  basicAuth,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type Receiver,
  startReceiver,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

describe('console: shell and live events', { timeout: 120_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let hook: Receiver;
  let writeKey: string;

  const send = async (path: string, body: object) => {
    const res = await fetch(`${cairn.url}/v1/${path}`, {
      method: 'POST',
      headers: { authorization: basicAuth(writeKey), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return res.status;
  };

  beforeAll(async () => {
    await ensureConsoleBuilt();
    db = await createTestDatabase('test/console-events.test.ts', 'postgres');
    [cairn, browser, hook] = await Promise.all([startTestCairn(db.env), launch(), startReceiver()]);
    writeKey = cairn.demoSource!.writeKey;
    const res = await fetch(`${cairn.url}/api/destinations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Hook', plugin: 'webhook', settings: { url: hook.url } }),
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await hook?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('signs an admin in and shows an event within moments of its 200, then its page with deliveries', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await expect.poll(() => page.url()).toContain('/console/events');
    await page.getByText('Live', { exact: true }).waitFor();
    const t0 = Date.now();
    expect(await send('track', { userId: 'u-live-1', event: 'Console Seen', properties: { n: 1 } })).toBe(200);
    const row = page.getByRole('row').filter({ hasText: 'Console Seen' });
    await row.waitFor({ timeout: 10_000 });
    console.log(`live view: the event showed ${Date.now() - t0} ms after its 200`);
    // It is processed and delivered to the webhook; its page says so.
    await row
      .getByText('processed')
      .waitFor({ timeout: 30_000 })
      .catch(() => undefined);
    await row.getByRole('link', { name: 'Console Seen' }).click();
    await page.getByRole('heading', { level: 1, name: /^Event \d+$/ }).waitFor();
    await expect
      .poll(
        async () => {
          await page.reload();
          await page.getByRole('heading', { name: 'Deliveries' }).waitFor();
          return page.getByRole('cell', { name: 'delivered' }).count();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1);
    expect(await page.getByLabel('Event payload').textContent()).toContain('"userId": "u-live-1"');
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'event');
    expect(errors).toEqual([]);
  });

  it('filters by event name, pauses and resumes, and lists a refusal with its reason', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.getByText('Live', { exact: true }).waitFor();
    expect(await send('track', { userId: 'u-live-2', event: 'Not This One' })).toBe(200);
    expect(await send('track', { userId: 'u-live-2' })).toBe(400); // no event name: refused
    await page.getByRole('row').filter({ hasText: 'Not This One' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'refused' }).first().waitFor();
    expect(await page.getByRole('button', { name: /^Replay refused event/ }).count()).toBeGreaterThan(0);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'live-events');

    await page.getByLabel('Event name').fill('Wanted');
    await page.getByText('Live', { exact: true }).waitFor();
    expect(await send('track', { userId: 'u-live-2', event: 'Not This One' })).toBe(200);
    expect(await send('track', { userId: 'u-live-2', event: 'Wanted' })).toBe(200);
    await page.getByRole('row').filter({ hasText: 'Wanted' }).waitFor();
    expect(await page.getByRole('row').filter({ hasText: 'Not This One' }).count()).toBe(0);

    await page.getByRole('button', { name: 'Pause' }).click();
    expect(await send('track', { userId: 'u-live-2', event: 'Wanted', properties: { second: true } })).toBe(200);
    await page.getByText('Paused (1 held)').waitFor();
    expect(await page.getByRole('row').filter({ hasText: 'Wanted' }).count()).toBe(1);
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => page.getByRole('row').filter({ hasText: 'Wanted' }).count()).toBe(2);
    expect(errors).toEqual([]);
  });

  it('shows an analyst masked PII and no replay button; keyboard and phone width work', async () => {
    expect(await send('identify', { userId: 'u-pii', traits: { email: 'grace.hopper@example.com' } })).toBe(200);
    expect(await send('track', { event: 'x' })).toBe(400); // no identity: refused
    const { page, errors } = await signedIn(browser, cairn, 'analyst', { width: 390, height: 800 });
    await page.getByText('Live', { exact: true }).waitFor();
    // The backlog shows recent rows; the identify is among them.
    const row = page.getByRole('row').filter({ hasText: 'u-pii' }).first();
    await row.waitFor();
    await page.getByRole('row').filter({ hasText: 'refused' }).first().waitFor();
    expect(await page.getByRole('button', { name: /^Replay/ }).count()).toBe(0);
    await row.getByRole('link').first().click();
    await page.getByLabel('Event payload').waitFor();
    const payload = await page.getByLabel('Event payload').textContent();
    expect(payload).toContain('g***@example.com');
    expect(payload).not.toContain('grace.hopper@example.com');
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'event-analyst-phone');

    // Keyboard: a new page moves focus to its title (screen readers announce it); Tab then reaches its
    // actions, and Enter works them.
    await page.goto(`${cairn.url}/console/events`);
    await page.getByText('Live', { exact: true }).waitFor();
    const focused = () =>
      page.evaluate(
        () =>
          (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document.activeElement
            .textContent,
      );
    expect(await focused()).toBe('Live events');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Pause');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    expect(errors).toEqual([]);
  });

  it('serves the console with a strict CSP, long-cached hashed assets and a first load under 200 KB', async () => {
    const res = await fetch(`${cairn.url}/console/people/some-id`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    const assets = [...html.matchAll(/\/console\/assets\/[^"]+/g)].map((m) => m[0]);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    let gz = html.length;
    for (const a of assets) {
      const r = await fetch(`${cairn.url}${a}`, { headers: { 'accept-encoding': 'gzip' } });
      expect(r.status).toBe(200);
      expect(r.headers.get('cache-control')).toContain('immutable');
      // fetch inflates the body; the length on the wire is the header's.
      gz += Number(r.headers.get('content-length') ?? (await r.arrayBuffer()).byteLength);
    }
    expect(gz).toBeLessThan(200 * 1024);
    expect((await fetch(`${cairn.url}/console/assets/nope.js`)).status).toBe(404);
  });
});
