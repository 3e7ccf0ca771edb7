// The console in Chromium: build it when stale, sign a person of a role in, check a page with axe-core,
// and keep a screenshot of it for docs/console.md.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cairn } from '@cairn/server';
import { TEST_ADMIN_KEY } from '@cairn/server/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';

const root = fileURLToPath(new URL('../../packages/console/', import.meta.url));
const index = join(root, 'dist/index.html');
const SHOTS = fileURLToPath(new URL('../../docs/console/', import.meta.url));

const newest = (p: string): number =>
  statSync(p).isDirectory() ? Math.max(0, ...readdirSync(p).map((f) => newest(join(p, f)))) : statSync(p).mtimeMs;

const stale = () =>
  !existsSync(index) ||
  statSync(index).mtimeMs < Math.max(newest(join(root, 'src')), newest(join(root, 'rollup.config.mjs')));

/**
 * Builds packages/console when its dist is missing or older than its sources, under a lock (test files run in
 * parallel). Call it before starting the server: the server reads the built files when it starts.
 *
 * @example
 * await ensureConsoleBuilt();
 */
export async function ensureConsoleBuilt() {
  const lock = join(root, '.build-lock');
  for (;;) {
    if (!stale()) return;
    try {
      mkdirSync(lock);
    } catch {
      // Someone else builds (or a crashed build left the lock: it is old then).
      if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      if (stale()) execFileSync('npx', ['rollup', '-c', '--silent'], { cwd: root, stdio: 'pipe' });
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

/** A person of `role`, invited through the admin API: their email and initial password. */
export async function invitePerson(
  cairn: Cairn,
  role: 'admin' | 'operator' | 'analyst',
  email = `${role}-${Date.now()}@example.com`,
) {
  const res = await fetch(`${cairn.url}/api/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ email, role, name: `${role[0]!.toUpperCase()}${role.slice(1)} Person` }),
  });
  if (res.status !== 201) throw new Error(`invite ${role}: ${res.status} ${await res.text()}`);
  const { initialPassword } = (await res.json()) as { initialPassword: string };
  return { email, password: initialPassword };
}

/**
 * A browser context signed in as a new person of `role`, through the console's own sign-in form.
 *
 * @example
 * const { page } = await signedIn(browser, cairn, 'analyst');
 */
export async function signedIn(
  browser: Browser,
  cairn: Cairn,
  role: 'admin' | 'operator' | 'analyst',
  viewport = { width: 1280, height: 800 },
): Promise<{ context: BrowserContext; page: Page; email: string; errors: Error[] }> {
  const who = await invitePerson(cairn, role);
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: Error[] = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${cairn.url}/console/`);
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Console' }).waitFor();
  return { context, page, email: who.email, errors };
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** One axe-core finding, reduced to what a failure message needs. */
export interface A11yViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * Runs axe-core (WCAG 2 A/AA rules) on the page as it is; returns the serious and critical violations.
 *
 * @example
 * expect(await a11y(page)).toEqual([]);
 */
export async function a11y(page: Page): Promise<A11yViolation[]> {
  // Through the DevTools protocol: the console's CSP (script-src 'self') refuses an inline <script>.
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    // biome-ignore lint/suspicious/noExplicitAny: axe is injected into the page above; the page's globals
    const g = globalThis as any;
    const r = await g.axe.run(g.document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    // biome-ignore lint/suspicious/noExplicitAny: axe's result shape
    return r.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      // biome-ignore lint/suspicious/noExplicitAny: axe's result shape
      targets: v.nodes.slice(0, 5).map((n: any) => String(n.target)),
    }));
  });
  return (found as A11yViolation[]).filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/**
 * Saves a screenshot of the page as docs/console/<name>.png (the pictures docs/console.md shows).
 *
 * @example
 * await screenshot(page, 'live-events');
 */
export async function screenshot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}
