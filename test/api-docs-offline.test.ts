import type { Cairn } from '@cairn/server';
import { createTestDatabase, POSTGRES_SKIP_REASON, startTestCairn, type TestDatabase } from '@cairn/server/testing';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from './support/browser.ts';

// The description is the same on both databases: Postgres when there is one (CI), else embedded.
const mode = POSTGRES_SKIP_REASON ? 'embedded' : 'postgres';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

describe(`the API reference at /api/docs with no way out (${mode})`, { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;

  beforeAll(async () => {
    db = await createTestDatabase(`api-docs-offline.test.ts:${mode}`, mode);
    [cairn, browser] = await Promise.all([
      startTestCairn(db.env),
      // Other hosts do not even resolve; the page's requests to them are also recorded below.
      launch(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1']),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('renders the operations from the server alone and asks no other host for anything', async () => {
    const context = await browser.newContext();
    const outside: string[] = [];
    const inside: string[] = [];
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === 'data:' || LOOPBACK.has(url.hostname)) {
        inside.push(url.pathname);
        return route.continue();
      }
      outside.push(route.request().url());
      return route.abort('internetdisconnected');
    });
    // Anything the page tried that never reached the router (a CSP refusal, say) shows as a console error.
    const problems: string[] = [];
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));

    const res = await page.goto(`${cairn.url}/api/docs`);
    expect(res?.status()).toBe(200);
    // Operation titles, from the description the page fetched: an admin path and a tracking path.
    await page.getByText('/api/sources/{id}/rotate-key', { exact: true }).waitFor({ timeout: 60_000 });
    // Past ~150 operations Swagger UI renders them virtually (only those near the viewport are in the page):
    // scroll through the whole list, collecting every operation path that was drawn.
    const drawn = new Set<string>();
    for (let i = 0; i < 400 && !drawn.has('/v1/batch'); i++) {
      for (const p of await page.locator('.opblock-summary-path').allInnerTexts())
        drawn.add(p.replace(/\u200b/g, '').trim());
      await page.mouse.wheel(0, 600);
      await page.waitForTimeout(20);
    }
    expect(drawn.has('/v1/batch')).toBe(true);
    expect(drawn.size).toBeGreaterThan(50);
    // The reference's own rendering of the rule language (a schema of the description).
    await page.locator('.models').getByRole('button', { name: 'Schemas' }).click();
    // The schemas are drawn virtually too: scroll until the rule language's is.
    const rule = page.locator('.models').getByText('Rule', { exact: true });
    for (let i = 0; i < 400 && !(await rule.count()); i++) {
      await page.mouse.wheel(0, 600);
      await page.waitForTimeout(20);
    }
    await rule.waitFor();

    expect(outside).toEqual([]);
    expect(problems).toEqual([]);
    expect(inside).toEqual(expect.arrayContaining(['/api/docs', '/api/openapi.json']));
    // The viewer came from this server, cacheable for a year.
    const bundle = inside.find((p) => p.endsWith('/swagger-ui-bundle.js'));
    expect(bundle).toMatch(/^\/api\/docs\/\d+\.\d+\.\d+\/swagger-ui-bundle\.js$/);
    const asset = await fetch(`${cairn.url}${bundle}`);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(asset.headers.get('content-type')).toMatch(/^text\/javascript/);
    await context.close();
  });

  it('serves the page with a policy that allows this server only', async () => {
    const res = await fetch(`${cairn.url}/api/docs`);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(await res.text()).not.toMatch(/https?:\/\//);
    expect((await fetch(`${cairn.url}/api/docs/0.0.0/swagger-ui-bundle.js`)).status).toBe(404);
  });
});
