import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn as Tracker } from '../sdk-web/src/types.ts';
import { ensureBuilt } from '../sdk-web/test/helpers/build.ts';
import { launch, until } from './support/browser.ts';

/** Page functions run in Chromium; this project compiles with Node's types only, so the globals they use are declared. */
declare const window: { cairn?: Tracker };

const mode = POSTGRES_SKIP_REASON ? 'embedded' : 'postgres';
const require = createRequire(import.meta.url);
const sha384 = (bytes: Uint8Array) => `sha384-${createHash('sha384').update(bytes).digest('base64')}`;

interface SnippetInfo {
  version: string;
  src: string;
  integrity: string;
  tag: string;
  esm: { src: string; integrity: string };
  aliases: { major: string; latest: string };
}

describe(`the snippet served at /sdk/ for other sites (${mode})`, { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let site: Receiver;
  /** The other site's origin (localhost) — Cairn is on 127.0.0.1, another origin. */
  let siteOrigin: string;
  let pages: Record<string, string>;
  let info: SnippetInfo;

  beforeAll(async () => {
    await ensureBuilt();
    db = await createTestDatabase(`snippet-serving.test.ts:${mode}`, mode);
    [cairn, browser] = await Promise.all([
      startTestCairn(db.env),
      launch(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1']),
    ]);
    pages = {};
    site = await startReceiver({
      answer: (req) => {
        const html = pages[req.path];
        return {
          status: html ? 200 : 404,
          headers: { 'content-type': 'text/html; charset=utf-8' },
          body: html ?? 'not found',
        };
      },
    });
    siteOrigin = `http://localhost:${site.port}`;
    info = (await (await fetch(`${cairn.url}/sdk/snippet`)).json()) as SnippetInfo;
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('serves the built file at a versioned address, cacheable for a year, readable by any origin', async () => {
    const built = readFileSync(require.resolve('@cairn/sdk-web/cairn.min.js'));
    const { version } = require('@cairn/sdk-web/package.json') as { version: string };
    expect(info.version).toBe(version);
    expect(info.src).toBe(`${cairn.url}/sdk/${version}/cairn.min.js`);
    expect(info.integrity).toBe(sha384(built));
    expect(info.tag).toBe(
      `<script async src="${info.src}" integrity="${info.integrity}" crossorigin="anonymous" data-write-key="YOUR_WRITE_KEY"></script>`,
    );

    const res = await fetch(info.src, { headers: { origin: siteOrigin } });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(sha384(bytes)).toBe(info.integrity);
    expect(Buffer.from(bytes).equals(built)).toBe(true);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');

    const etag = res.headers.get('etag')!;
    expect((await fetch(info.src, { headers: { 'if-none-match': etag } })).status).toBe(304);

    // The aliases: the same bytes, shorter caches (they move when the server is upgraded).
    for (const [url, cache] of [
      [info.aliases.major, 'public, max-age=3600'],
      [info.aliases.latest, 'public, max-age=300'],
    ] as const) {
      const alias = await fetch(url);
      expect(alias.headers.get('cache-control'), url).toBe(cache);
      expect(Buffer.from(await alias.arrayBuffer()).equals(built), url).toBe(true);
    }
    expect(info.aliases.major).toBe(`${cairn.url}/sdk/v${version.split('.')[0]}/cairn.min.js`);

    const esm = await fetch(info.esm.src);
    expect(esm.status).toBe(200);
    expect(sha384(new Uint8Array(await esm.arrayBuffer()))).toBe(info.esm.integrity);
    expect(esm.headers.get('access-control-allow-origin')).toBe('*');

    expect((await fetch(`${cairn.url}/sdk/0.0.0-nope/cairn.min.js`)).status).toBe(404);
    expect((await fetch(`${cairn.url}/sdk/${version}/other.js`)).status).toBe(404);
  });

  /** Opens a page of the other site holding `body` and collects its console errors. */
  const openSite = async (name: string, body: string) => {
    pages[`/${name}`] =
      `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${name}</title></head><body>${body}</body></html>`;
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${siteOrigin}/${name}`);
    return { page, errors };
  };
  const stored = async (event: string) => (await cairn.sql`SELECT 1 FROM events WHERE event = ${event}`).length > 0;
  const started = (page: Page) => page.waitForFunction(() => window.cairn && !Array.isArray(window.cairn));

  it('loads on another origin through <script integrity crossorigin>, and its events land', async () => {
    const api = adminApi(cairn.url);
    const source = (
      await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'site', allowedOrigins: [siteOrigin] }) })
    ).body;
    const tag = info.tag
      .replace('YOUR_WRITE_KEY', source.writeKey)
      .replace('<script async', '<script async data-auto-page="false"');
    const { page, errors } = await openSite('plain', tag);
    await started(page);
    await page.evaluate(() => window.cairn!.track('Snippet From Sdk Path'));
    await until(() => stored('Snippet From Sdk Path'), 'the event from the other origin stored');
    expect(errors).toEqual([]);
    await page.close();

    // The copy-paste stub of sdk-web/README.md copies integrity and crossorigin onto the script it adds.
    const stub = readFileSync(require.resolve('@cairn/sdk-web/snippet.html'), 'utf8')
      .replace('YOUR_WRITE_KEY', source.writeKey)
      .replace('data-host="https://YOUR_CAIRN_HOST"', `data-host="${cairn.url}"`)
      .replace(
        'data-src="https://YOUR_CAIRN_HOST/sdk/v0/cairn.min.js"',
        `data-src="${info.src}" integrity="${info.integrity}" crossorigin="anonymous"`,
      );
    expect(stub).toContain(info.integrity);
    const stubbed = await openSite('stub', `${stub}<script>cairn.track('Snippet Through Stub')</script>`);
    await started(stubbed.page);
    await until(() => stored('Snippet Through Stub'), 'the event made before the snippet arrived stored');
    expect(stubbed.errors).toEqual([]);
    await stubbed.page.close();
  });

  it.skipIf(POSTGRES_SKIP_REASON)(
    `is served by every role that takes tracking requests (${POSTGRES_SKIP_REASON ?? 'ingest and worker servers on one Postgres'})`,
    async () => {
      for (const [role, status] of [
        ['ingest', 200],
        ['worker', 404],
      ] as const) {
        const server = await startTestCairn({ ...db.env, CAIRN_ROLE: role });
        try {
          const res = await fetch(`${server.url}/sdk/${info.version}/cairn.min.js`);
          expect(res.status, role).toBe(status);
          if (status === 200) expect(sha384(new Uint8Array(await res.arrayBuffer()))).toBe(info.integrity);
        } finally {
          await server.close();
        }
      }
    },
  );

  it('is refused by the browser when the bytes do not match the hash', async () => {
    const wrong = `sha384-${Buffer.alloc(48).toString('base64')}`;
    const tag = info.tag.replace(info.integrity, wrong);
    const { page, errors } = await openSite('tampered', `${tag}<script>window.loaded = true</script>`);
    await until(() => errors.some((e) => /integrity/i.test(e)), 'the integrity refusal');
    expect(await page.evaluate(() => window.cairn === undefined)).toBe(true);
    await page.close();
  });
});
