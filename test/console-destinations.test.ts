// The console's destinations pages in Chromium against a real server on Postgres: a webhook whose receiver
// fails, so its delivery goes dead; the dead letter with its last error; a test send that fails, then one that
// works once the receiver is fixed; Replay, seen delivered at the receiver and in the counts; pause and
// resume; secrets never shown; an analyst reads it all without a button that would fail; axe-core on each.
import type { Cairn } from '@cairn/server';
import {
  adminApi,
  basicAuth,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type Receiver,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '@cairn/server/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

const SECRET = 'whsec-console-0123456789abcdef';

describe('console: destinations', { timeout: 180_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let failing: Receiver;
  let good: Receiver;
  let failingId: string;
  let api: ReturnType<typeof adminApi>;

  const send = async (body: object) => {
    const res = await fetch(`${cairn.url}/v1/track`, {
      method: 'POST',
      headers: { authorization: basicAuth(cairn.demoSource!.writeKey), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
  };
  const create = async (body: object) => {
    const res = await api('/destinations', { method: 'POST', body: JSON.stringify(body) });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  };
  const counts = async (id: string) => (await api(`/destinations/${id}`)).body.deliveries;
  /** The card of one status on a destination's page: its number. */
  const card = (page: Page, status: string) =>
    page
      .getByRole('listitem')
      .filter({ has: page.getByRole('button', { name: `Show ${status} deliveries in the ledger` }) })
      .locator('.big');

  beforeAll(async () => {
    await ensureConsoleBuilt();
    db = await createTestDatabase('test/console-destinations.test.ts', 'postgres');
    [cairn, browser, failing, good] = await Promise.all([
      // Retries a second apart and a short circuit pause: the dead letter and the replay come quickly.
      startTestCairn({ ...db.env, CAIRN_DELIVERY_RETRY_DELAY_S: '1', CAIRN_CIRCUIT_PAUSE_S: '1' }),
      launch(),
      startReceiver({ answer: { status: 500, body: { error: 'database down' } } }),
      startReceiver(),
    ]);
    api = adminApi(cairn.url);
    failingId = await create({
      name: 'Failing hook',
      plugin: 'webhook',
      retryWindowSeconds: 2,
      settings: { url: failing.url, secret: SECRET },
    });
    const goodId = await create({ name: 'Good hook', plugin: 'webhook', settings: { url: good.url } });
    await send({ userId: 'u-dest-1', event: 'Order Completed', properties: { total: 42 } });
    await until('the dead letter', async () => (await counts(failingId)).dead === 1, { intervalMs: 200 });
    await until('the delivery', async () => (await counts(goodId)).delivered === 1, { intervalMs: 200 });
  });
  afterAll(async () => {
    await browser?.close();
    await failing?.close();
    await good?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('lists destinations with plugin, state, circuit and counts; shows the dead letter, test sends, replays', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Destinations' }).click();
    await page.getByRole('heading', { level: 1, name: 'Destinations' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'Failing hook' });
    await expect
      .poll(() => row.getByRole('cell').allTextContents())
      .toEqual([
        'Failing hook',
        'webhook',
        'enabled',
        expect.stringMatching(/^closed\s+\d+ failed batch(es)? in a row$/),
        '0',
        '0',
        '0',
        '0',
        '1',
        '0',
      ]);
    await expect
      .poll(() => page.getByRole('row').filter({ hasText: 'Good hook' }).getByRole('cell').nth(7).textContent())
      .toBe('1');
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'destinations');

    await row.getByRole('link', { name: 'Failing hook' }).click();
    await page.getByRole('heading', { level: 1, name: 'Destination Failing hook' }).waitFor();
    const dead = page.getByRole('table', { name: 'Dead letters, newest first' });
    // The dead letter says why it is dead, and keeps the receiver's last answer as its last error.
    await expect.poll(() => dead.getByRole('row').count()).toBe(2);
    const letter = await dead.getByRole('row').nth(1).textContent();
    expect(letter).toContain('retry window of 2 s exhausted');
    expect(letter).toContain('500 HTTP 500: {"error":"database down"}');
    expect(await page.getByLabel('Settings (JSON)').textContent()).toContain('"secret": "********"');
    expect(await page.content()).not.toContain(SECRET);

    // A test send while the receiver still fails, then after it is fixed.
    await page.getByRole('button', { name: 'Test send' }).click();
    await page.getByRole('status').filter({ hasText: 'Test send:' }).getByText('HTTP 500').waitFor();
    failing.answer({ status: 200 });
    await page.getByRole('button', { name: 'Test send' }).click();
    await page.getByRole('status').filter({ hasText: 'Test send:' }).getByText('delivered').waitFor();
    expect(failing.accepted.map((r) => (r.body as { event: { event: string } }).event.event)).toEqual([
      'Cairn Test Event',
    ]);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'destination');

    // Replay: the dead letter reaches the fixed receiver, and the page sees it delivered.
    await page.getByRole('button', { name: 'Replay dead letters' }).click();
    await page.getByText('1 dead letter queued again.').waitFor();
    await failing.waitFor((r) => (r.body as { event: { event: string } }).event.event === 'Order Completed');
    await expect.poll(() => card(page, 'delivered').textContent(), { timeout: 30_000 }).toBe('1');
    await expect.poll(() => card(page, 'dead').textContent()).toBe('0');
    await page.getByText('No dead letters.').waitFor();
    await page.getByLabel('Status').selectOption('delivered');
    await page
      .getByRole('table', { name: 'Deliveries, newest first' })
      .getByRole('cell', { name: 'delivered', exact: true })
      .waitFor();
    expect((await counts(failingId)).delivered).toBe(1);

    // Pause and resume.
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    expect((await api(`/destinations/${failingId}`)).body.enabled).toBe(false);
    await page.getByText('paused', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    expect((await api(`/destinations/${failingId}`)).body.enabled).toBe(true);
    expect(errors).toEqual([]);
  });

  it('shows an analyst, on a phone, the destinations and a destination without Replay, Test send or Pause', async () => {
    // A fresh dead letter for the analyst to read.
    failing.answer({ status: 500, body: { error: 'down again' } });
    await send({ userId: 'u-dest-2', event: 'Order Completed', properties: { total: 7 } });
    await until('a second dead letter', async () => (await counts(failingId)).dead === 1, { intervalMs: 200 });

    const { page, errors } = await signedIn(browser, cairn, 'analyst', { width: 390, height: 800 });
    await page.goto(`${cairn.url}/console/destinations`);
    await page.getByRole('row').filter({ hasText: 'Failing hook' }).waitFor();
    expect(await a11y(page)).toEqual([]);
    await page.getByRole('link', { name: 'Failing hook' }).click();
    await page.getByRole('heading', { level: 1, name: 'Destination Failing hook' }).waitFor();
    const dead = page.getByRole('table', { name: 'Dead letters, newest first' });
    await dead.getByText('HTTP 500: {"error":"down again"}').waitFor();
    for (const name of ['Replay dead letters', 'Test send', 'Pause', 'Resume'])
      expect(await page.getByRole('button', { name }).count(), name).toBe(0);
    expect(await page.content()).not.toContain(SECRET);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'destination-analyst-phone');
    expect(errors).toEqual([]);
  });
});
