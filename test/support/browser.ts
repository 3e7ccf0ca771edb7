// Chromium for the end-to-end browser tests: Debian's chromium driven by playwright-core.
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { Cairn as Tracker } from '../../sdk-web/src/types.ts';

/** Page functions run in Chromium; this project compiles with Node's types only, so the globals they use are declared. */
declare const window: { cairn: Tracker };
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/**
 * Fails, never skips, without Chromium: a browser test that cannot run must not look green (as in sdk-web).
 * `extraArgs` are added to the usual switches (e.g. `--host-resolver-rules=...` to cut off other hosts).
 */
export function launch(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'];
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [...args, '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/** Waits until the real snippet has replaced the copy-paste stub. */
export const ready = (page: Page) => page.waitForFunction(() => window.cairn && !Array.isArray(window.cairn));

/** Polls `cond` until it holds; fails naming `what` after `timeout` ms. */
export async function until(cond: () => unknown, what: string, timeout = 30_000) {
  for (const end = Date.now() + timeout; !(await cond()); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}
