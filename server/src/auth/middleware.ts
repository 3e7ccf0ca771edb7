import type { MiddlewareHandler } from 'hono';
import { apiError } from '../http/errors.ts';
import type { Authenticator, Principal } from './keys.ts';

/** What a caller may do. One table maps roles to permissions; routes ask for one permission each. */
export type Permission =
  | 'sources:read'
  | 'sources:write'
  | 'events:read'
  | 'events:replay'
  | 'profiles:read'
  | 'profiles:write'
  | 'profiles:erase'
  | 'destinations:read'
  | 'destinations:write'
  | 'audiences:read'
  | 'audiences:write';

const ROLE_PERMISSIONS: Record<Principal['role'], ReadonlySet<Permission>> = {
  admin: new Set<Permission>([
    'sources:read',
    'sources:write',
    'events:read',
    'events:replay',
    'profiles:read',
    'profiles:write',
    'profiles:erase',
    'destinations:read',
    'destinations:write',
    'audiences:read',
    'audiences:write',
  ]),
};

/** Hono variables set by {@link authenticate}. */
export interface AuthVariables {
  principal: Principal;
}

/**
 * Resolves the caller from `Authorization: Bearer <key>`; 401 when absent or unknown.
 *
 * @example
 * api.use('*', authenticate(authenticator));
 */
export function authenticate(authenticator: Authenticator): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async function authenticateRequest(c, next) {
    const header = c.req.header('authorization') ?? '';
    const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
    if (!token) throw apiError(401, 'unauthorized', 'send an API key as Authorization: Bearer <key>');
    const principal = authenticator.verifyBearer(token);
    if (!principal) throw apiError(401, 'unauthorized', 'unknown or revoked API key');
    c.set('principal', principal);
    await next();
  };
}

/**
 * Refuses (403) callers whose role lacks the permission.
 *
 * @example
 * app.use('/sources/*', requirePermission('sources:write'));
 */
export function requirePermission(permission: Permission): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async function checkPermission(c, next) {
    const principal = c.get('principal');
    if (!ROLE_PERMISSIONS[principal.role].has(permission)) {
      throw apiError(403, 'forbidden', `role ${principal.role} lacks ${permission}`);
    }
    await next();
  };
}
