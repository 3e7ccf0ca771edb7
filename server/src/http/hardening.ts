import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import { apiError } from './errors.ts';

/**
 * Whether a path is the tracking API (`/v1/*`, and `/beacon/v1/*` for RudderStack's beacon), which
 * the middleware below leave alone: it reads its own bodies under its own limits
 * (pipeline/ingest/body.ts) and answers cross-origin writes.
 *
 * @example
 * isTrackingPath('/v1/batch'); // true
 */
export function isTrackingPath(path: string): boolean {
  return path === '/v1' || path.startsWith('/v1/') || path.startsWith('/beacon/v1/');
}

/**
 * Security headers (Hono's secureHeaders: HSTS, nosniff, frame and referrer policies, ...) on every
 * response but the tracking API's. The unsubscribe pages (`/u/*`) also get a Content-Security-Policy
 * that allows nothing but their inline style and their form posting to themselves; /api/docs sets its
 * own (api/docs.ts). The snippet (`/sdk/*`), the demo (`/demo/*`) and emails' open pixels (`/t/o/*`, shown
 * by webmail pages) may be loaded from other sites.
 *
 * @example
 * app.use('*', securityHeaders());
 */
export function securityHeaders(): MiddlewareHandler {
  const common = secureHeaders();
  const pages = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      styleSrc: ["'unsafe-inline'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
    },
  });
  // The snippet other sites embed (`<script src=…/sdk/…/cairn.min.js>`, also under /demo/: a cross-origin
  // no-cors load that CORP same-origin would block), and its shop pages keep the browser's usual
  // referrer policy so page views carry their referrer as on a real site.
  const demo = secureHeaders({
    crossOriginResourcePolicy: 'cross-origin',
    referrerPolicy: 'strict-origin-when-cross-origin',
  });
  const pixel = secureHeaders({ crossOriginResourcePolicy: 'cross-origin' });
  return async function securityHeadersOutsideTracking(c, next) {
    const path = c.req.path;
    if (isTrackingPath(path)) return next();
    if (path.startsWith('/u/')) return pages(c, next);
    // An email's open pixel is an image webmail pages load from another origin (deliver/tracking.ts).
    if (path.startsWith('/t/o/')) return pixel(c, next);
    if (path === '/demo' || path.startsWith('/demo/') || path.startsWith('/sdk/')) return demo(c, next);
    return common(c, next);
  };
}

/**
 * Refuses a request body larger than `maxBytes` with a JSON 413, on every route but the tracking API.
 *
 * @example
 * app.use('*', limitBodies(1024 * 1024));
 */
export function limitBodies(maxBytes: number): MiddlewareHandler {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw apiError(413, 'payload_too_large', `request body is larger than ${maxBytes} bytes`);
    },
  });
  return async function limitBodiesOutsideTracking(c, next) {
    // Bulk import uploads are streamed and parsed as they arrive (api/imports.ts): no whole-body limit.
    const importUpload = c.req.method !== 'GET' && /^\/api\/imports(\/\d+\/data)?$/.test(c.req.path);
    return isTrackingPath(c.req.path) || importUpload ? next() : limit(c, next);
  };
}
