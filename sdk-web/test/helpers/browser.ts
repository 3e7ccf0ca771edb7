import { existsSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { Cairn, CairnEvent, Options } from '../../src/types.ts';
import { ensureBuilt } from './build.ts';
import { type Recorder, startRecorder } from './recorder.ts';

declare global {
  interface Window {
    cairn: Cairn;
  }
}

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Fails (never skips) without Chromium: a browser test that cannot run must not look green. */
export function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Polls until `cond` holds; fails with `what` after `timeout` ms. */
export async function until(cond: () => unknown | Promise<unknown>, what: string, timeout = 30_000) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const ofType = (events: CairnEvent[], type: string, name?: string) =>
  events.filter((e) => e.type === type && (name == null || e.event === name));

export interface Tab {
  page: Page;
  /** Uncaught errors of the page (`pageerror`). */
  errors: Error[];
}

/**
 * One browser and one recorder per test file, a fresh browser context per test. `open()` loads a test page that
 * embeds the copy-paste snippet with `cairn.init(options)` and waits until the real SDK replaced the stub.
 */
export function harness() {
  let browser: Browser;
  let context: BrowserContext;
  const h = {
    rec: undefined as unknown as Recorder,
    get context() {
      return context;
    },
    async open(path = '/', options: Partial<Options> = {}, ctx = context): Promise<Tab> {
      h.rec.options = { flushAt: 1, ...options };
      const page = await ctx.newPage();
      const errors: Error[] = [];
      page.on('pageerror', (e) => errors.push(e));
      await page.goto(h.rec.origin + path);
      await ready(page);
      return { page, errors };
    },
  };
  beforeAll(async () => {
    await ensureBuilt();
    [browser, h.rec] = await Promise.all([launch(), startRecorder()]);
  }, 120_000);
  beforeEach(async () => {
    await context?.close();
    h.rec.reset();
    context = await browser.newContext();
  });
  afterAll(async () => {
    await browser?.close();
    await h.rec?.stop();
  });
  return h;
}

export const ready = (page: Page) => page.waitForFunction(() => window.cairn && !Array.isArray(window.cairn));
