import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { describeTrackingApi } from './tracking-doc.ts';

type Registry = OpenAPIHono['openAPIRegistry'];

/**
 * The server's OpenAPI 3.1 description, as the server mounts it: admin routes under `/api` (they are
 * registered relative to the sub-app), the tracking API under `/v1`, every path resolving against
 * the one `servers` entry — the configured public URL, else `/` (the origin the description was
 * read from). Built once, on first use: nothing in it changes while the server runs.
 *
 * @example
 * const describe = apiDescription(api.openAPIRegistry, { publicUrl: config.publicUrl });
 * api.get('/openapi.json', (c) => c.json(describe()));
 */
export function apiDescription(admin: Registry, options: { publicUrl: string | undefined }) {
  let document: ReturnType<OpenApiGeneratorV31['generateDocument']> | undefined;
  return function describe() {
    if (document) return document;
    const tracking = new OpenAPIRegistry();
    describeTrackingApi(tracking);
    const definitions = admin.definitions.map((d) =>
      d.type === 'route' ? { ...d, route: { ...d.route, path: `/api${d.route.path}` } } : d,
    );
    document = new OpenApiGeneratorV31([...definitions, ...tracking.definitions]).generateDocument({
      openapi: '3.1.0',
      info: {
        title: 'Cairn API',
        version: '0.1.0',
        description:
          'The tracking API (Segment-compatible, `/v1/*`, authenticated by a source write key) and the admin API (`/api/*`, a bearer API key or a session). Every path resolves against `servers`.',
      },
      servers: [
        options.publicUrl
          ? { url: options.publicUrl, description: 'This Cairn server (CAIRN_PUBLIC_URL)' }
          : { url: '/', description: 'The server this description was read from' },
      ],
      security: [{ apiKey: [] }, { session: [] }],
    });
    return document;
  };
}
