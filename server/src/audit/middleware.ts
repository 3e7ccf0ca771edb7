import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { TrieRouter } from 'hono/router/trie-router';
import type { AuthVariables } from '../auth/middleware.ts';
import type { Sql } from '../db/index.ts';
import type { Logger } from '../log.ts';
import { type AuditEntry, insertAudit } from './queries.ts';
import { type AuditedRoute, redact } from './resources.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

// Only these outcomes are recorded: a change (2xx) and a write refused for lack of permission (403).
// 400/404/409 changed nothing and say nothing about who may do what; 401 has no actor to name.
const recorded = (status: number) => (status >= 200 && status < 300) || status === 403;

/**
 * Records every admin write in `audit_log`: who (the principal), what (action, resource, before/after),
 * when, and the outcome. Mounted once on the admin API after authentication; each write route is named
 * by a row of the per-resource table ({@link AuditedRoute}); a write route missing from it is still
 * recorded as `<first path segment>.<method>`. better-auth's own routes (`/api/auth/*`: sign-in,
 * sign-out, password changes) are not recorded; people are invited and re-roled through `/api/users`.
 *
 * The row is written after the change, outside its transaction. If that insert fails the change
 * stands and the answer keeps its status (failing it would invite a retry of a write that happened);
 * the error is logged with the whole entry and the answer carries `Cairn-Audit: failed`.
 *
 * @example
 * api.use('*', auditWrites({ sql, log, routes: auditedRoutes(loaders(destinationView)) }));
 */
export function auditWrites(deps: {
  sql: Sql;
  log: Logger;
  routes: AuditedRoute[];
}): MiddlewareHandler<{ Variables: AuthVariables }> {
  const router = new TrieRouter<AuditedRoute>();
  for (const r of deps.routes) router.add(r.method, `/api${r.path}`, r);

  return async function auditWrite(c, next) {
    if (SAFE_METHODS.has(c.req.method)) return next();
    const [match] = router.match(c.req.method, c.req.path)[0];
    const [route, params] = (match ?? [fallback(c), {}]) as [AuditedRoute, Record<string, string>];
    // A read sent as POST (previews), or a call without credentials that no row names (401 follows).
    if (route.action === null || (!c.get('principal') && !route.self)) return next();
    const paramId = route.idFrom === 'response' ? undefined : params[route.idFrom ?? (params.id ? 'id' : 'key')];
    const before = route.load && paramId ? await load(deps, route, paramId) : undefined;

    await next();

    const status = c.res.status;
    if (!recorded(status)) return;
    const ok = status < 300;
    const response = ok ? await bodyOf(c.res) : {};
    const self = ok ? route.self?.(response) : undefined;
    const principal = c.get('principal') ?? self?.principal;
    if (!principal) return;
    const id =
      paramId ??
      self?.id ??
      (ok ? (stringOr(response.id) ?? stringOr(response.key) ?? stringOr(response.profileId)) : undefined) ??
      null;
    let after: unknown = null;
    if (ok && route.load && id) after = await load(deps, route, id);
    else if (ok && route.summary) after = route.summary(response, await requestBody(c));
    const entry: AuditEntry = {
      actorKind: principal.kind,
      actorId: principal.id,
      actorRole: principal.role,
      actorUserId: principal.userId ?? null,
      action: route.action,
      resourceType: route.resourceType,
      resourceId: id,
      method: c.req.method,
      path: route.maskPath ? route.maskPath(c.req.path) : c.req.path,
      status,
      // A refusal changed nothing: the state it would have changed is not worth a copy.
      before: ok ? redact(before ?? null) : null,
      after: redact(after ?? null),
      // The id this server answered with (app.ts gives every request one, a valid incoming one kept).
      requestId: c.res.headers.get('x-request-id') ?? c.req.header('x-request-id') ?? null,
      ip: peer(c),
    };
    try {
      await insertAudit(deps.sql, entry);
    } catch (err) {
      deps.log.error(`audit: could not record ${JSON.stringify(entry)}`, err);
      c.res.headers.set('Cairn-Audit', 'failed');
    }
  };
}

// A write route nobody added to the table: recorded anyway, under a name derived from its path, without
// before/after (nobody said what in its answer is safe to keep).
function fallback(c: Context): AuditedRoute {
  const type = c.req.path.split('/')[2] ?? 'unknown';
  return { method: 'POST', path: c.req.path, action: `${type}.${c.req.method.toLowerCase()}`, resourceType: type };
}

async function load(deps: { sql: Sql; log: Logger }, route: AuditedRoute, id: string): Promise<unknown> {
  try {
    return await route.load!(deps.sql, id);
  } catch (err) {
    // A malformed id (the route answers 400/404 itself): nothing to show.
    deps.log.debug(`audit: could not load ${route.resourceType} ${id}: ${(err as Error).message}`);
    return undefined;
  }
}

async function bodyOf(res: Response): Promise<Record<string, unknown>> {
  if (!res.headers.get('content-type')?.includes('application/json')) return {};
  const body = await res
    .clone()
    .json()
    .catch(() => ({}));
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

async function requestBody(c: Context): Promise<Record<string, unknown>> {
  // Hono caches the parsed body: the validator read it already.
  const body = await c.req.json().catch(() => ({}));
  return body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
}

const stringOr = (v: unknown) => (typeof v === 'string' ? v : undefined);

function peer(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null; // app.request() in tests has no socket
  }
}
