import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundle, ensureBuilt, root } from './helpers/build.ts';

describe('size budget', () => {
  beforeAll(ensureBuilt, 120_000);

  it('the built IIFE is minified and at most 5,120 bytes with gzip -9', () => {
    const raw = readFileSync(bundle);
    expect(raw.toString('utf8')).not.toMatch(/\n\s|\/\*/);
    expect(gzipSync(raw, { level: 9 }).length).toBeLessThanOrEqual(5_120);
  });

  it('scripts/size.mjs reports the size and passes', () => {
    const out = execFileSync(process.execPath, [join(root, 'scripts/size.mjs')], { encoding: 'utf8' });
    expect(out).toMatch(/cairn\.min\.js: \d+ B minified, \d+ B gzip -9 \(budget 5120 B\)/);
  });
});
