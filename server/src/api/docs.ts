import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Context } from 'hono';
import { apiError } from '../http/errors.ts';

// Swagger UI from the pinned swagger-ui-dist package (no dependencies of its own but an install-time
// counter the root package.json turns off): served from node_modules, never from a CDN, so the
// reference works offline and sends nothing anywhere but this server.
const require = createRequire(import.meta.url);
const DIST = dirname(require.resolve('swagger-ui-dist/package.json'));
const VERSION = (require('swagger-ui-dist/package.json') as { version: string }).version;
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
};
const ASSET_BASE = `/api/docs/${VERSION}`;

// Scripts only from this server, no inline script, requests only to this server: the reference
// cannot load or call anything outside even if a description asked it to. (Swagger UI sets style
// attributes, hence 'unsafe-inline' for styles only.)
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cairn API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${ASSET_BASE}/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="${ASSET_BASE}/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise show a badge fetched from its public validator.
const INIT = `window.ui = SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#reference',
  validatorUrl: null,
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
});
`;

interface Asset {
  body: Buffer;
  gzipped: Buffer;
  type: string;
}

/**
 * The interactive API reference at `/api/docs` (Swagger UI from the pinned `swagger-ui-dist`): the
 * page, its start script, and the viewer's files under `/api/docs/<viewer version>/`, cached for a
 * year (the version in the path changes with the package). Every route answers without
 * authentication. Files are read and gzipped once, on first use.
 *
 * @example
 * const docs = apiReference();
 * api.get('/docs', docs.page);
 * api.get('/docs/init.js', docs.init);
 * api.get('/docs/:version/:file', docs.asset);
 */
export function apiReference() {
  const cache = new Map<string, Asset>();
  const load = (file: string): Asset => {
    let asset = cache.get(file);
    if (!asset) {
      const body = readFileSync(join(DIST, file));
      asset = { body, gzipped: gzipSync(body), type: ASSETS[file]! };
      cache.set(file, asset);
    }
    return asset;
  };
  return {
    page(c: Context) {
      c.header('Content-Security-Policy', CSP);
      c.header('Cache-Control', 'no-cache');
      return c.html(PAGE);
    },
    init(c: Context) {
      c.header('Content-Type', 'text/javascript; charset=utf-8');
      c.header('Cache-Control', 'no-cache');
      return c.body(INIT);
    },
    asset(c: Context) {
      const file = c.req.param('file') ?? '';
      if (c.req.param('version') !== VERSION || !ASSETS[file])
        throw apiError(404, 'not_found', `no such file (the reference's files are under ${ASSET_BASE}/)`);
      const asset = load(file);
      const gzip = /\bgzip\b/.test(c.req.header('accept-encoding') ?? '');
      c.header('Content-Type', asset.type);
      c.header('Cache-Control', 'public, max-age=31536000, immutable');
      c.header('Vary', 'Accept-Encoding');
      if (gzip) c.header('Content-Encoding', 'gzip');
      return c.body(new Uint8Array(gzip ? asset.gzipped : asset.body));
    },
  };
}
