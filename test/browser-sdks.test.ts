// The published browser SDKs of Segment (analytics.js 2.0, @segment/analytics-next) and RudderStack
// (v3, @rudderstack/analytics-js), unmodified, in Chromium, on a page of another site than Cairn's, with
// every host but this machine unreachable: each page, identify and track they make lands in `events`
// exactly once, in every delivery mode they have.

import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Cairn } from '@cairn/server';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type Receiver,
  startReceiver,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch, until } from './support/browser.ts';

// biome-ignore lint/suspicious/noExplicitAny: the SDKs' globals, typed by the calls the page functions make
type Sdk = any;
/** Page functions run in Chromium; this project compiles with Node's types only, so the globals they use are declared. */
declare const window: { AnalyticsNext: Sdk; rudderanalytics: Sdk; sdk: Sdk; location: { pathname: string } };

/** The directory of an installed package (its `exports` may hide package.json from require.resolve). */
function packageDir(name: string): string {
  let dir = dirname(createRequire(import.meta.url).resolve(name));
  const nameOf = (d: string) => JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).name;
  while (!existsSync(join(dir, 'package.json')) || nameOf(dir) !== name) dir = dirname(dir);
  return dir;
}

/** The SDKs' own browser builds, as a site would serve them. */
const BUNDLES: Record<string, string> = {
  '/segment.js': join(packageDir('@segment/analytics-next'), 'dist/umd/index.js'),
  // The "bundled" build carries its plugins; the default one fetches them from RudderStack's CDN.
  '/rudderstack.js': join(packageDir('@rudderstack/analytics-js'), 'dist/npm/modern/bundled/umd/index.js'),
};

/** The lazily loaded chunks of analytics.js 2.0's browser build, which it fetches from `<cdn>/analytics-next/bundles/`. */
const SEGMENT_CHUNKS = '/analytics-next/bundles/';

/**
 * A static site: /<sdk>.html loads /<sdk>.js from node_modules; with `?selfhost`, the page points
 * analytics.js 2.0 at the site itself for its lazy chunks (`window.analytics._cdn`), served from the package.
 */
function startSite(): Promise<Receiver> {
  return startReceiver({
    answer: (req) => {
      const url = new URL(req.path, 'http://site');
      const path = url.pathname;
      const bundle = BUNDLES[path];
      if (bundle) return { headers: { 'content-type': 'text/javascript' }, body: readFileSync(bundle) };
      if (path.startsWith(SEGMENT_CHUNKS) && /^[\w.-]+\.js$/.test(path.slice(SEGMENT_CHUNKS.length))) {
        const chunk = join(dirname(BUNDLES['/segment.js']!), path.slice(SEGMENT_CHUNKS.length));
        if (existsSync(chunk)) return { headers: { 'content-type': 'text/javascript' }, body: readFileSync(chunk) };
        return { status: 404 };
      }
      if (/^\/\w+\.html$/.test(path)) {
        const script = path.replace('.html', '.js');
        const cdn = url.searchParams.has('selfhost')
          ? '<script>window.analytics = { _cdn: location.origin }</script>'
          : '';
        return {
          headers: { 'content-type': 'text/html' },
          body: `<!doctype html><title>Shop</title><h1>Shop</h1>${cdn}<script src="${script}"></script>`,
        };
      }
      return { status: 404 };
    },
  });
}

interface StoredRow {
  type: string;
  event: string | null;
  message_id: string;
  user_id: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: payloads are checked by the assertions
  payload: Record<string, any>;
}

/** What every test sends: seven calls, so seven events, each of them once. */
const EXPECTED = [
  'alias',
  'group',
  'identify',
  'page',
  'track:Order Completed',
  'track:Order Completed',
  'track:Product Viewed',
];

describe('browser SDKs against Cairn, cross-origin, other hosts unreachable', { timeout: 120_000 }, () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let cairn: Cairn;
  let site: Receiver;
  let siteUrl: string;
  let browser: Browser;
  let writeKey: string;
  /** Requests the pages tried to send anywhere but this machine (all of them failed). */
  const outside: string[] = [];
  /** Every answer Cairn gave the pages: method, path and status. */
  const answers: string[] = [];
  /** Every event the pages posted to Cairn, by messageId, as it went over the wire. */
  // biome-ignore lint/suspicious/noExplicitAny: events as the SDKs built them
  const sent = new Map<string, Record<string, any>>();

  beforeAll(async () => {
    db = await createTestDatabase('test/browser-sdks.test.ts', 'postgres');
    [cairn, site, browser] = await Promise.all([
      startTestCairn(db.env),
      startSite(),
      // Every host name but localhost resolves to nothing: no CDN, settings or metrics host is reachable.
      launch(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1']),
    ]);
    // Another site than Cairn's: localhost:<port> vs 127.0.0.1:<port>.
    siteUrl = `http://localhost:${site.port}`;
    const created = await adminApi(cairn.url)('/sources', {
      method: 'POST',
      body: JSON.stringify({ name: 'shop (browser SDKs)', allowedOrigins: [siteUrl] }),
    });
    expect(created.status, created.text).toBe(201);
    writeKey = created.body.writeKey;
    // The source directory refreshes every 200 ms in tests: wait until it lets the site's preflights through.
    await until(async () => {
      const res = await fetch(`${cairn.url}/v1/t`, {
        method: 'OPTIONS',
        headers: { origin: siteUrl, 'access-control-request-method': 'POST' },
      });
      return res.headers.get('access-control-allow-origin') === siteUrl;
    }, 'the new source in the directory');
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await cairn?.close();
    await db?.drop();
  });

  const newContext = async (): Promise<BrowserContext> => {
    const context = await browser.newContext();
    context.on('request', (r) => {
      const body = r.method() === 'POST' && r.url().startsWith(cairn.url) ? r.postData() : null;
      if (body) {
        const parsed = JSON.parse(body);
        for (const e of parsed.batch ?? [parsed]) sent.set(e.messageId, e);
      }
      const url = new URL(r.url());
      const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1';
      if (url.protocol.startsWith('http') && !local) outside.push(`${r.method()} ${r.url()}`);
    });
    context.on('response', (r) => {
      if (r.url().startsWith(cairn.url))
        answers.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
    });
    return context;
  };

  /** The events Cairn stored for this visitor, payloads opened. */
  const storedFor = async (anonymousId: string) =>
    (
      await cairn.sql<StoredRow[]>`
        SELECT type, event, message_id, user_id, payload
        FROM events
        WHERE anonymous_id = ${anonymousId}
        ORDER BY id`
    ).map((r) => ({ ...r, payload: cairn.pii.openPayload(r.payload) as StoredRow['payload'] }));

  /** Waits for the seven events, then checks each was stored once, as the page sent it. */
  const expectEachOnce = async (anonymousId: string, userId: string, library: string, wire = true) => {
    await until(async () => (await storedFor(anonymousId)).length >= 7, `seven events of ${anonymousId}`).catch(
      async (err) => {
        const kinds = (await storedFor(anonymousId)).map((r) => r.type);
        throw new Error(`${err.message}; stored: ${kinds}; Cairn answered: ${answers}; outside: ${outside}`);
      },
    );
    const rows = await storedFor(anonymousId);
    const kinds = rows.map((r) => (r.type === 'track' ? `track:${r.event}` : r.type));
    expect(kinds.sort()).toEqual(EXPECTED);
    expect(new Set(rows.map((r) => r.message_id)).size).toBe(7);
    // The write key travels with each event of a batch (analytics.js 2.0); it is never stored.
    for (const r of rows) expect(JSON.stringify(r.payload)).not.toContain(writeKey);
    // What the SDK put on the wire is what was stored, each messageId once (a retry is not a second event).
    // Playwright shows no body for sendBeacon and unload keepalive requests: those cases say `wire: false`.
    if (wire) {
      const mine = [...sent.values()].filter((e) => e.anonymousId === anonymousId);
      expect(mine.map((e) => e.messageId).sort()).toEqual(rows.map((r) => r.message_id).sort());
      const fields = ['type', 'event', 'name', 'userId', 'previousId', 'groupId', 'properties', 'traits'];
      // Absent, null and '' ids are all "not given" (RudderStack sends userId '' before identify).
      const given = (v: unknown) => (v === '' || v === null ? undefined : v);
      for (const r of rows) {
        const e = sent.get(r.message_id)!;
        for (const f of fields) expect(r.payload[f], `${r.type}.${f}`).toEqual(given(e[f]));
        expect(r.payload.context?.traits, `${r.type}.context.traits`).toEqual(e.context?.traits);
      }
    }
    const of = (type: string) => rows.filter((r) => r.type === type);
    expect(of('identify')[0]!.user_id).toBe(userId);
    expect(of('track').map((r) => r.payload.properties)).toEqual(
      expect.arrayContaining([{ total: 10 }, { total: 20 }, { sku: 'p-1' }]),
    );
    expect(of('group')[0]!.payload).toMatchObject({ groupId: 'acme', traits: { name: 'Acme' } });
    expect(of('alias')[0]!.payload.previousId).toBe(userId);
    const page = rows.find((r) => r.type === 'page')!;
    expect(page.event).toBe('Home');
    expect(page.payload.properties).toMatchObject({ path: `/${library}.html` });
    // The identify reached the profile: Segment sends traits, RudderStack context.traits.
    const api = adminApi(cairn.url);
    await until(async () => {
      const found = (await api(`/profiles?userId=${encodeURIComponent(userId)}`)).body?.data?.[0];
      return found && (await api(`/profiles/${found.id}`)).body?.traits?.email?.value === `${userId}@shop.test`;
    }, `the email trait on the profile of ${userId}`);
    return rows;
  };

  /** The seven calls, the same for both SDKs' APIs (page(category, name, properties), ...). */
  const sendCalls = (page: Page, userId: string) =>
    page.evaluate(async (userId) => {
      const a = window.sdk;
      await a.page('Docs', 'Home', { path: window.location.pathname });
      await a.identify(userId, { email: `${userId}@shop.test`, plan: 'pro' });
      await a.track('Order Completed', { total: 10 });
      await a.track('Order Completed', { total: 20 });
      await a.track('Product Viewed', { sku: 'p-1' });
      await a.group('acme', { name: 'Acme' });
      await a.alias(`${userId}-new`, userId);
    }, userId);

  /** Opens the site with analytics.js 2.0 configured for Cairn; returns the visitor's anonymousId. */
  const openSegment = async (context: BrowserContext, deliveryStrategy: unknown, query = '') => {
    const page = await context.newPage();
    await page.goto(`${siteUrl}/segment.html${query}`);
    const anonymousId = await page.evaluate(
      async ({ writeKey, apiHost, deliveryStrategy }) => {
        const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load({
          writeKey,
          // The settings Segment's CDN would serve, given inline: the SDK fetches nothing.
          cdnSettings: {
            integrations: { 'Segment.io': { apiKey: writeKey, apiHost, protocol: 'http', deliveryStrategy } },
            // The SDK's own usage counters would otherwise go to Segment's API every 30 s.
            metrics: { sampleRate: 0 },
          },
        });
        window.sdk = analytics;
        return analytics.user().anonymousId() as string;
      },
      { writeKey, apiHost: `${new URL(cairn.url).host}/v1`, deliveryStrategy },
    );
    return { page, anonymousId };
  };

  const segmentCases: [string, unknown, RegExp][] = [
    ['standard (one request per event: /v1/p, /v1/i, /v1/t, /v1/g, /v1/a)', undefined, /^POST \/v1\/[pitga] 200$/],
    ['batching (/v1/b)', { strategy: 'batching', config: { size: 10, timeout: 300 } }, /^POST \/v1\/b 200$/],
    [
      'batching with keepalive',
      { strategy: 'batching', config: { size: 3, timeout: 300, keepalive: true } },
      /^POST \/v1\/b 200$/,
    ],
  ];
  it.each(segmentCases)('analytics.js 2.0, %s: each call stored once', async (_name, strategy, posts) => {
    answers.length = 0;
    const context = await newContext();
    const { page, anonymousId } = await openSegment(context, strategy);
    const userId = `seg-${randomUUID().slice(0, 8)}`;
    await sendCalls(page, userId);
    const rows = await expectEachOnce(anonymousId, userId, 'segment');
    expect(rows.find((r) => r.type === 'track')!.payload.context.library.name).toBe('analytics.js');
    const postsSeen = answers.filter((a) => a.startsWith('POST'));
    expect(postsSeen.length).toBeGreaterThan(0);
    for (const a of postsSeen) expect(a).toMatch(posts);
    for (const a of answers.filter((a) => a.startsWith('OPTIONS'))) expect(a).toMatch(/ 204$/);
    expect(outside).toEqual([]);
    await context.close();
  });

  it('analytics.js 2.0, batching: the events still buffered when the visitor leaves are sent on the way out', async () => {
    answers.length = 0;
    const context = await newContext();
    // A minute's wait and room for 100 events: only leaving the page can flush them.
    const { page, anonymousId } = await openSegment(context, {
      strategy: 'batching',
      config: { size: 100, timeout: 60_000 },
    });
    const userId = `seg-${randomUUID().slice(0, 8)}`;
    await sendCalls(page, userId);
    expect(answers.filter((a) => a.startsWith('POST'))).toEqual([]);
    await page.goto('about:blank');
    await expectEachOnce(anonymousId, userId, 'segment', false);
    expect(outside).toEqual([]);
    await context.close();
  });

  it('analytics.js 2.0 browser build: an ajs_ link needs its lazy chunk, from Segment unless the site serves it', async () => {
    const aid = `ajs-${randomUUID().slice(0, 8)}`;
    const query = `ajs_aid=${aid}&ajs_event=Clicked%20Link`;
    const landed = async () => (await storedFor(aid)).some((r) => r.type === 'track' && r.event === 'Clicked Link');
    // The default: the chunk is fetched from Segment's CDN (unreachable here), so the link's event is lost.
    let context = await newContext();
    await openSegment(context, undefined, `?${query}`);
    await until(() => outside.some((u) => u.includes(`${SEGMENT_CHUNKS}queryString`)), 'the chunk request');
    await context.close();
    expect(await landed()).toBe(false);
    // Served by the site (window.analytics._cdn = its origin): nothing leaves it, and the event lands.
    outside.length = 0;
    context = await newContext();
    const { anonymousId } = await openSegment(context, undefined, `?selfhost&${query}`);
    await until(landed, 'the ajs_event track');
    expect(anonymousId).toBe(aid);
    expect(outside).toEqual([]);
    await context.close();
  });

  /** Opens the site with RudderStack v3 configured for Cairn; returns the visitor's anonymousId. */
  const openRudderStack = async (context: BrowserContext, options: Record<string, unknown>) => {
    const page = await context.newPage();
    await page.goto(`${siteUrl}/rudderstack.html`);
    const anonymousId = await page.evaluate(
      ({ writeKey, dataPlaneUrl, options }) =>
        new Promise<string>((resolve) => {
          const analytics = new window.rudderanalytics.RudderAnalytics();
          analytics.load(writeKey, dataPlaneUrl, {
            ...options,
            // The source settings RudderStack's control plane would serve, given inline: the SDK fetches nothing.
            getSourceConfig: () => ({
              source: { id: 'cairn', name: 'Cairn', workspaceId: 'cairn', enabled: true, config: {}, destinations: [] },
            }),
            onLoaded: () => resolve(analytics.getAnonymousId()),
          });
          window.sdk = analytics;
        }),
      { writeKey, dataPlaneUrl: cairn.url, options },
    );
    return { page, anonymousId };
  };

  const rudderCases: [string, Record<string, unknown>, RegExp, boolean][] = [
    [
      'one request per event (/v1/page, /v1/identify, ...)',
      {},
      /^POST \/v1\/(page|identify|track|group|alias) 200$/,
      true,
    ],
    [
      'batched (/v1/batch)',
      { queueOptions: { batch: { enabled: true, maxItems: 10, flushInterval: 300 } } },
      /^POST \/v1\/batch 200$/,
      true,
    ],
    [
      'sendBeacon (/beacon/v1/batch?writeKey=)',
      { useBeacon: true, beaconQueueOptions: { flushQueueInterval: 300 } },
      /^POST \/beacon\/v1\/batch 200$/,
      false,
    ],
  ];
  it.each(rudderCases)('RudderStack v3, %s: each call stored once', async (_name, options, posts, wire) => {
    answers.length = 0;
    const context = await newContext();
    const { page, anonymousId } = await openRudderStack(context, options);
    const userId = `rs-${randomUUID().slice(0, 8)}`;
    await sendCalls(page, userId);
    const rows = await expectEachOnce(anonymousId, userId, 'rudderstack', wire);
    expect(rows.find((r) => r.type === 'track')!.payload.context.library.name).toBe('RudderLabs JavaScript SDK');
    const postsSeen = answers.filter((a) => a.startsWith('POST'));
    expect(postsSeen.length).toBeGreaterThan(0);
    for (const a of postsSeen) expect(a).toMatch(posts);
    expect(outside).toEqual([]);
    await context.close();
  });
});
