import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Context, Hono } from 'hono';

/** The built console (packages/console/dist), read once into memory with a gzip copy of each file. */
export interface ConsoleFiles {
  index: Uint8Array<ArrayBuffer>;
  assets: Map<string, { bytes: Uint8Array<ArrayBuffer>; gzip: Uint8Array<ArrayBuffer>; type: string }>;
}

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
};

/**
 * Reads the built console, or undefined when it is not built (`npm run build`).
 *
 * @example
 * const files = loadConsole();
 */
export function loadConsole(): ConsoleFiles | undefined {
  const require = createRequire(import.meta.url);
  try {
    const dist = join(dirname(require.resolve('@cairn/console/package.json')), 'dist');
    const assets = new Map<string, { bytes: Uint8Array<ArrayBuffer>; gzip: Uint8Array<ArrayBuffer>; type: string }>();
    for (const name of readdirSync(join(dist, 'assets'))) {
      const bytes = new Uint8Array(readFileSync(join(dist, 'assets', name)));
      const type = TYPES[name.split('.').pop() ?? ''] ?? 'application/octet-stream';
      assets.set(name, { bytes, gzip: new Uint8Array(gzipSync(bytes, { level: 9 })), type });
    }
    return { index: new Uint8Array(readFileSync(join(dist, 'index.html'))), assets };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

// The console loads only its own files and talks only to this server; nothing else may frame or feed it.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // uPlot and the flow diagram set inline style attributes.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

function secure(c: Context) {
  c.header('Content-Security-Policy', CSP);
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'same-origin');
  c.header('X-Frame-Options', 'DENY');
}

/**
 * `/console/`: the console's page for every path under it (it routes in the browser), and its hashed
 * assets, cached for a year. Sign-in and every action go through the admin API.
 *
 * @example
 * app.route('/console', consoleRoutes(loadConsole()));
 */
export function consoleRoutes(files: ConsoleFiles | undefined): Hono {
  const app = new Hono();
  app.get('/assets/:file', (c) => {
    const file = files?.assets.get(c.req.param('file'));
    if (!file) return c.json({ error: { code: 'not_found', message: 'no such console file' } }, 404);
    secure(c);
    c.header('Content-Type', file.type);
    c.header('Cache-Control', 'public, max-age=31536000, immutable');
    c.header('Vary', 'Accept-Encoding');
    if (/\bgzip\b/.test(c.req.header('accept-encoding') ?? '')) {
      c.header('Content-Encoding', 'gzip');
      return c.body(file.gzip);
    }
    return c.body(file.bytes);
  });
  const page = (c: Context) => {
    secure(c);
    c.header('Cache-Control', 'no-cache');
    if (!files)
      return c.html(
        '<!doctype html><title>Cairn console</title><p>The console is not built: run <code>npm run build</code> and restart.</p>',
        503,
      );
    c.header('Content-Type', 'text/html; charset=utf-8');
    return c.body(files.index);
  };
  app.get('/', page);
  app.get('/*', page);
  return app;
}
