import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Context, Hono } from 'hono';
import { apiError } from './errors.ts';

/** The two builds of the browser snippet: the IIFE for a `<script>` tag and the ES module. */
const FILES = { 'cairn.min.js': '@cairn/sdk-web/cairn.min.js', 'cairn.esm.js': '@cairn/sdk-web' } as const;
type FileName = keyof typeof FILES;

// The exact version never changes its bytes (the SRI hash pins them): a year, immutable. The major
// alias moves with upgrades within the major, the unversioned alias with any upgrade: shorter.
const CACHE = {
  exact: 'public, max-age=31536000, immutable',
  major: 'public, max-age=3600',
  latest: 'public, max-age=300',
} as const;

/** One built file of the snippet, as served. */
export interface SnippetFile {
  bytes: Uint8Array;
  /** Subresource Integrity value: `sha384-<base64>`. */
  integrity: string;
}

/** The built browser snippet (`@cairn/sdk-web`), read once. */
export interface Snippet {
  version: string;
  files: Record<FileName, SnippetFile>;
}

/**
 * Reads the built snippet of `@cairn/sdk-web` (`npm run build -w @cairn/sdk-web`) and hashes it for
 * Subresource Integrity. Undefined when it was not built: the routes then answer 404 with the command.
 *
 * @example
 * const snippet = loadSnippet();
 * if (snippet) console.log(snippet.version, snippet.files['cairn.min.js'].integrity);
 */
export function loadSnippet(): Snippet | undefined {
  const require = createRequire(import.meta.url);
  try {
    const { version } = require('@cairn/sdk-web/package.json') as { version: string };
    const read = (name: FileName): SnippetFile => {
      const bytes = new Uint8Array(readFileSync(require.resolve(FILES[name])));
      return { bytes, integrity: `sha384-${createHash('sha384').update(bytes).digest('base64')}` };
    };
    return { version, files: { 'cairn.min.js': read('cairn.min.js'), 'cairn.esm.js': read('cairn.esm.js') } };
  } catch (err) {
    // Not built: the file is missing (ENOENT), or the package's export resolves to nothing (MODULE_NOT_FOUND).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

/**
 * The snippet's stable addresses on a server at `base`, its SRI hash and a ready `<script>` tag
 * (pinned to the exact version, so the hash keeps matching across server upgrades).
 *
 * @example
 * snippetTag(snippet, 'https://cairn.example.com').tag;
 * // <script async src="https://cairn.example.com/sdk/0.1.0/cairn.min.js" integrity="sha384-…" crossorigin="anonymous" data-write-key="YOUR_WRITE_KEY"></script>
 */
export function snippetTag(snippet: Snippet, base: string) {
  const root = `${base.replace(/\/+$/, '')}/sdk`;
  const min = snippet.files['cairn.min.js'];
  const esm = snippet.files['cairn.esm.js'];
  const src = `${root}/${snippet.version}/cairn.min.js`;
  return {
    version: snippet.version,
    src,
    integrity: min.integrity,
    tag: `<script async src="${src}" integrity="${min.integrity}" crossorigin="anonymous" data-write-key="YOUR_WRITE_KEY"></script>`,
    esm: { src: `${root}/${snippet.version}/cairn.esm.js`, integrity: esm.integrity },
    aliases: {
      major: `${root}/v${major(snippet.version)}/cairn.min.js`,
      latest: `${root}/cairn.min.js`,
    },
  };
}

/**
 * The browser snippet for websites, on every server that takes tracking requests:
 * `/sdk/<version>/cairn.min.js` (and `cairn.esm.js`) cached for a year as immutable,
 * `/sdk/v<major>/…` for an hour, `/sdk/cairn.min.js` for five minutes; all with an ETag, readable by
 * any origin (`Access-Control-Allow-Origin: *`, so `<script integrity crossorigin>` works; the
 * Cross-Origin-Resource-Policy is set by securityHeaders). `GET /sdk/snippet` answers the tag with
 * its SRI hash, for `publicUrl` (else the origin asked).
 *
 * @example
 * app.route('/sdk', sdkRoutes(loadSnippet(), config.publicUrl));
 */
export function sdkRoutes(snippet: Snippet | undefined, publicUrl: string | undefined): Hono {
  const app = new Hono();
  const missing = () =>
    apiError(404, 'not_found', 'the browser snippet is not built (npm run build -w @cairn/sdk-web)');
  const serve = (c: Context, name: string, cache: string) => {
    if (!snippet) throw missing();
    const file = snippet.files[name as FileName];
    if (!file) throw apiError(404, 'not_found', `no such file; the snippet is ${Object.keys(FILES).join(' or ')}`);
    c.header('Access-Control-Allow-Origin', '*');
    c.header('Cache-Control', cache);
    c.header('ETag', `"${file.integrity}"`);
    if (c.req.header('if-none-match')?.includes(`"${file.integrity}"`)) return c.body(null, 304);
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    return c.body(new Uint8Array(file.bytes));
  };
  app.get('/snippet', (c) => {
    if (!snippet) throw missing();
    c.header('Access-Control-Allow-Origin', '*');
    c.header('Cache-Control', 'no-cache');
    return c.json(snippetTag(snippet, publicUrl ?? new URL(c.req.url).origin));
  });
  app.get('/:name', (c) => serve(c, c.req.param('name'), CACHE.latest));
  app.get('/:version/:name', (c) => {
    const version = c.req.param('version');
    if (snippet && version === snippet.version) return serve(c, c.req.param('name'), CACHE.exact);
    if (snippet && version === `v${major(snippet.version)}`) return serve(c, c.req.param('name'), CACHE.major);
    if (!snippet) throw missing();
    throw apiError(
      404,
      'not_found',
      `this server has the snippet ${snippet.version}: /sdk/${snippet.version}/… or /sdk/v${major(snippet.version)}/…`,
    );
  });
  return app;
}

function major(version: string): string {
  return version.split('.')[0]!;
}
