import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const bundle = join(root, 'dist/cairn.min.js');

const newest = (paths: string[]): number =>
  Math.max(
    ...paths.map((p) =>
      statSync(p).isDirectory() ? newest(readdirSync(p).map((f) => join(p, f))) : statSync(p).mtimeMs,
    ),
  );

const stale = () =>
  !existsSync(bundle) ||
  statSync(bundle).mtimeMs < newest(['src', 'rollup.config.mjs', 'package.json'].map((p) => join(root, p)));

/**
 * Builds dist/ with rollup when it is missing or older than the sources. Test files run in parallel, so the
 * build runs under a lock (mkdir is atomic) and the others wait for it.
 */
export async function ensureBuilt() {
  const lock = join(root, 'dist/.build-lock');
  for (;;) {
    if (!stale()) return;
    try {
      mkdirSync(join(root, 'dist'), { recursive: true });
      mkdirSync(lock);
    } catch {
      // A build older than two minutes died with its test run; take it over.
      if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    try {
      if (stale()) execFileSync(join(root, '../node_modules/.bin/rollup'), ['-c'], { cwd: root, stdio: 'pipe' });
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}
