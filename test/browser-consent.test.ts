// Consent mode in Chromium against the real server. The site is another origin (a tiny static server here, on
// `localhost`) that embeds the copy-paste snippet loading `${cairn.url}/demo/cairn.min.js`: events cross origins,
// so this also proves the server's CORS answers let the snippet read its 200s (otherwise it would retry).
import { readFileSync } from 'node:fs';
import type { Cairn } from '@cairn/server';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type Receiver,
  startReceiver,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn as Tracker } from '../sdk-web/src/types.ts';
import { ensureBuilt } from '../sdk-web/test/helpers/build.ts';
import { launch, ready, until } from './support/browser.ts';

/** Page functions run in Chromium; this project compiles with Node's types only, so the globals they use are declared. */
declare const window: { cairn: Tracker };

const SNIPPET = readFileSync(new URL('../sdk-web/snippet.html', import.meta.url), 'utf8');

/** A site page with the documented snippet, in consent mode, pointed at the Cairn server. */
const sitePage = (cairnUrl: string, writeKey: string) =>
  `<!doctype html><html><head><title>Consent site</title>${SNIPPET.replace('YOUR_WRITE_KEY', writeKey)
    .replace('https://YOUR_CAIRN_HOST/sdk/v0/cairn.min.js', `${cairnUrl}/demo/cairn.min.js`)
    .replace('https://YOUR_CAIRN_HOST', cairnUrl)
    .replace('<script ', '<script data-require-consent="true" data-flush-interval="100" ')}</head><body></body></html>`;

describe('consent mode, cross-origin, against the real server', { timeout: 90_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let site: Receiver;

  const stored = (anonymousId: string) =>
    // biome-ignore lint/suspicious/noExplicitAny: payloads are checked by the assertions
    cairn.sql<{ event: string | null; type: string; payload: any }[]>`
      SELECT event, type, payload
      FROM events
      WHERE anonymous_id = ${anonymousId}
      ORDER BY id`;

  beforeAll(async () => {
    await ensureBuilt();
    db = await createTestDatabase('test/browser-consent.test.ts', 'postgres');
    [cairn, browser] = await Promise.all([startTestCairn(db.env), launch()]);
    const html = sitePage(cairn.url, cairn.demoSource!.writeKey);
    // Both address families: Chromium may try ::1 first for localhost.
    site = await startReceiver({ answer: { headers: { 'content-type': 'text/html' }, body: html }, host: null });
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('sends and stores nothing before the grant; after it, every event flows carrying the preferences', async () => {
    const context = await browser.newContext();
    const origin = `http://localhost:${site.port}`;
    const requests: Request[] = [];
    context.on('request', (r) => r.url().startsWith(`${cairn.url}/v1/`) && requests.push(r));
    const page = await context.newPage();
    const errors: Error[] = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${origin}/shop`);
    await ready(page);
    const aid = await page.evaluate(() => window.cairn.track('Before Consent').user().anonymousId!);
    const storage = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cairn')));
    const cookies = async () => (await context.cookies()).filter((c) => c.name.startsWith('cairn'));

    // Absence can only be seen by waiting: several flush intervals (100 ms) pass.
    await page.evaluate(() => new Promise((r) => setTimeout(r, 1000)));
    expect(requests).toEqual([]);
    expect(await cookies()).toEqual([]);
    expect(await storage()).toEqual([]);
    expect(await stored(aid)).toEqual([]);

    await page.evaluate(() => window.cairn.consent({ analytics: true, marketing: false }).track('After Consent'));
    const names = async () => (await stored(aid)).map((e) => e.event ?? e.type);
    await until(async () => (await names()).includes('After Consent'), 'the event after the grant', 60_000);
    expect(await names()).toEqual(['page', 'Before Consent', 'Consent Updated', 'After Consent']);
    for (const e of await stored(aid)) {
      expect(e.payload.context.consent).toEqual({ categoryPreferences: { analytics: true, marketing: false } });
      expect(e.payload.anonymousId).toBe(aid);
    }
    expect((await stored(aid))[2]!.payload.properties).toEqual({ analytics: true, marketing: false });
    expect((await cookies()).map((c) => [c.name, c.value, c.domain])).toEqual([['cairn_aid', aid, 'localhost']]);
    expect(await storage()).toEqual(expect.arrayContaining(['cairn_aid', 'cairn_consent']));

    // CORS: every answer was readable by the page (the origin reflected), so nothing was sent twice.
    const answers = await Promise.all(requests.map((r) => r.response()));
    for (const res of answers) {
      expect(res?.status()).toBe(200);
      expect(res?.headers()['access-control-allow-origin']).toBe(origin);
    }
    const sent = requests.flatMap((r) =>
      (JSON.parse(r.postData()!).batch as { messageId: string }[]).map((e) => e.messageId),
    );
    expect(sent).toHaveLength(4);
    expect(new Set(sent).size).toBe(4);
    expect(errors).toEqual([]);
    await context.close();
  });
});
