// The first load of the console, as a browser fetches it: index.html, the stylesheet, the entry and every
// chunk it imports statically (gzip -9). Later pages are chunks loaded on demand and are listed apart.
// Exits non-zero over the 200 KB budget.
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export const BUDGET = 200 * 1024;
const dist = new URL('../dist/', import.meta.url);
const gz = (file) => gzipSync(readFileSync(new URL(file, dist)), { level: 9 }).length;

export function measure() {
  const html = readFileSync(new URL('index.html', dist), 'utf8');
  const first = new Set(['index.html']);
  for (const [, f] of html.matchAll(/\/console\/(assets\/[^"]+)"/g)) first.add(f);
  // Static imports of the entry chunks (rollup writes them as `from"./x.js"` / `import"./x.js"`).
  for (const f of [...first]) {
    if (!f.endsWith('.js')) continue;
    for (const [, dep] of readFileSync(new URL(f, dist), 'utf8').matchAll(/(?:from|import)\s*"\.\/([^"]+\.js)"/g))
      first.add(`assets/${dep}`);
  }
  const firstLoad = [...first].reduce((n, f) => n + gz(f), 0);
  const later = readdirSync(new URL('assets/', dist))
    .filter((f) => f.endsWith('.js') && !first.has(`assets/${f}`))
    .map((f) => ({ file: f, gzip: gz(`assets/${f}`) }));
  return { firstLoad, files: [...first], later };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { firstLoad, files, later } = measure();
  console.log(
    `console first load: ${(firstLoad / 1024).toFixed(1)} KB gzip -9 (${files.length} files; budget ${BUDGET / 1024} KB)`,
  );
  for (const l of later) console.log(`  on demand: ${l.file} ${(l.gzip / 1024).toFixed(1)} KB`);
  process.exit(firstLoad <= BUDGET ? 0 : 1);
}
