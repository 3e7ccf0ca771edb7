// Measures the built artefact, not the intention: gzip -9 size of dist/cairn.min.js against the 5 KB budget,
// and a check that the minifier really ran. Exits non-zero when either fails.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export const BUDGET = 5120;
const file = new URL('../dist/cairn.min.js', import.meta.url);

export function measure() {
  const raw = readFileSync(file);
  const text = raw.toString('utf8');
  return {
    bytes: raw.length,
    gzip: gzipSync(raw, { level: 9 }).length,
    // Minified output has no comments and no indented lines.
    minified: !/\n\s|\/\*|\/\/ /.test(text),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { bytes, gzip, minified } = measure();
  console.log(`cairn.min.js: ${bytes} B minified, ${gzip} B gzip -9 (budget ${BUDGET} B)`);
  if (!minified) console.error('cairn.min.js does not look minified: did terser run?');
  if (gzip > BUDGET) console.error(`over budget by ${gzip - BUDGET} B`);
  process.exit(minified && gzip <= BUDGET ? 0 : 1);
}
