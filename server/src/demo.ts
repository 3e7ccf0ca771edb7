import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';
import { apiError } from './http/errors.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOP_DIR = join(REPO, 'examples', 'shop');
const SNIPPET = join(REPO, 'sdk-web', 'dist', 'cairn.min.js');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/**
 * Serves the demo shop (`examples/shop`) at `/demo/`, wired to the demo source: HTML pages get the
 * write key and this server's origin substituted for `__CAIRN_WRITE_KEY__` and `__CAIRN_HOST__`,
 * and `/demo/cairn.min.js` is the built snippet (`npm run build -w @cairn/sdk-web`).
 *
 * @example
 * demoRoutes(app, () => demoSource.writeKey);
 */
export function demoRoutes(app: Hono, writeKey: () => string | undefined): void {
  app.get('/demo', (c) => c.redirect('/demo/'));
  app.get('/demo/*', async (c) => {
    const rel = decodeURIComponent(c.req.path.slice('/demo/'.length)) || 'index.html';
    const file = rel === 'cairn.min.js' ? SNIPPET : normalize(join(SHOP_DIR, rel));
    if (file !== SNIPPET && !file.startsWith(SHOP_DIR + sep)) throw apiError(404, 'not_found', 'no such file');
    const data = await readFile(file).catch(() => null);
    if (!data) {
      const hint = file === SNIPPET ? ' (build it: npm run build -w @cairn/sdk-web)' : '';
      throw apiError(404, 'not_found', `no such file${hint}`);
    }
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    c.header('Content-Type', type);
    c.header('Cache-Control', 'no-cache');
    if (!type.startsWith('text/html')) return c.body(new Uint8Array(data));
    const origin = new URL(c.req.url).origin;
    return c.body(
      data
        .toString('utf8')
        .replaceAll('__CAIRN_WRITE_KEY__', writeKey() ?? '')
        .replaceAll('__CAIRN_HOST__', origin),
    );
  });
}
