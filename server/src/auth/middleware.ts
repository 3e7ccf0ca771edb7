import type { MiddlewareHandler } from 'hono';
import { apiError } from '../http/errors.ts';
import type { ApiKeyVerifier } from './api-keys.ts';
import type { Authenticator, Principal, Role } from './keys.ts';
import type { PeopleAuth } from './people.ts';

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
  | 'audiences:write'
  /** Automation flows: reading them, their runs and simulations; writing, publishing, pausing. */
  | 'flows:read'
  | 'flows:write'
  /** Sending a flow's working copy for review. */
  | 'flows:submit'
  /** Approving or rejecting a flow under review (never one's own edit); also CAIRN_FLOW_APPROVER_ROLE's. */
  | 'flows:approve'
  /** The employee directory and people's links to employees (owners). */
  | 'employees:read'
  | 'employees:write'
  /** Analytics queries (stage 6): trends, funnels, paths, retention, attribution; answers are counts, never PII. */
  | 'analytics:read'
  /** Rolling event properties up per hour (stage 6): each adds to every recount of its event's hours. Admin only. */
  | 'analytics:write'
  /** Who the caller is (GET /api/me): every role. */
  | 'self:read'
  /** Campaigns (stage 6): their budget, dates, flows, UTM values and cost entries. */
  | 'campaigns:write'
  /** KPIs and alert rules (stage 6): creating, changing, deleting them, and running a check now. */
  | 'kpis:write'
  /** Scheduled reports (stage 6): creating, changing, deleting them, and sending one now. */
  | 'reports:write'
  /** Data-quality rules per trait (normalisation, fills): they change how every trait is stored. Admin only. */
  | 'quality:write'
  | 'users:read'
  | 'users:write'
  | 'keys:read'
  | 'keys:write'
  /** The audit log of admin writes (GET /api/audit). */
  | 'audit:read'
  /** Clear-text PII in responses; without it sensitive traits are masked (see server/src/api/pii-view.ts). */
  | 'pii:read';

const READS: Permission[] = [
  'events:read',
  'profiles:read',
  'destinations:read',
  'audiences:read',
  'flows:read',
  'employees:read',
  'analytics:read',
  'self:read',
];

/**
 * The permission table. admin: everything. operator: every write except people, keys (and settings);
 * submits flows for review but does not approve them; PII masked. analyst: reads profiles, events,
 * audiences, members, flows and deliveries; changes nothing.
 */
export const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set<Permission>([
    ...READS,
    'sources:read',
    'sources:write',
    'events:replay',
    'profiles:write',
    'profiles:erase',
    'destinations:write',
    'audiences:write',
    'flows:write',
    'flows:submit',
    'flows:approve',
    'employees:write',
    'campaigns:write',
    'users:read',
    'users:write',
    'keys:read',
    'keys:write',
    'audit:read',
    'pii:read',
    'kpis:write',
    'reports:write',
    'quality:write',
    'analytics:write',
  ]),
  operator: new Set<Permission>([
    ...READS,
    'sources:read',
    'sources:write',
    'events:replay',
    'profiles:write',
    'profiles:erase',
    'destinations:write',
    'audiences:write',
    'flows:write',
    'flows:submit',
    'employees:write',
    'campaigns:write',
    'kpis:write',
    'reports:write',
  ]),
  analyst: new Set<Permission>(READS),
};

/**
 * Whether a role holds a permission.
 *
 * @example
 * can('analyst', 'audiences:write'); // false
 */
export function can(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].has(permission);
}

/** Hono variables set by {@link authenticate}. */
export interface AuthVariables {
  principal: Principal;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Resolves the caller from `Authorization: Bearer <key>` (the bootstrap or generated admin key, or a
 * role-bound API key) or else a better-auth session cookie; 401 when neither. A cookie session writing
 * (POST, PATCH, DELETE) must come with an Origin of this server (CSRF); bearer keys need none.
 *
 * @example
 * api.use('*', authenticate({ authenticator, apiKeys, people, publicUrl }));
 */
export function authenticate(deps: {
  authenticator: Authenticator;
  apiKeys?: ApiKeyVerifier;
  people?: PeopleAuth;
  publicUrl?: string;
}): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async function authenticateRequest(c, next) {
    const header = c.req.header('authorization') ?? '';
    const token = header.toLowerCase().startsWith('bearer ') ? header.slice(7).trim() : '';
    if (token) {
      const principal = deps.authenticator.verifyBearer(token) ?? (await deps.apiKeys?.verify(token)) ?? null;
      if (!principal) throw apiError(401, 'unauthorized', 'unknown, expired or revoked API key');
      c.set('principal', principal);
      return next();
    }
    // No cookie, no session: skip better-auth's lookup for plain unauthenticated calls.
    const hasCookie = Boolean(c.req.header('cookie'));
    const session = deps.people && hasCookie ? await deps.people.api.getSession({ headers: c.req.raw.headers }) : null;
    if (!session) {
      throw apiError(401, 'unauthorized', 'send an API key as Authorization: Bearer <key>, or sign in');
    }
    if (!SAFE_METHODS.has(c.req.method)) {
      const expected = deps.publicUrl ? new URL(deps.publicUrl).origin : new URL(c.req.url).origin;
      const origin = c.req.header('origin');
      if (origin !== expected) {
        throw apiError(403, 'csrf', `a signed-in write needs Origin: ${expected} (send a bearer key for scripts)`);
      }
    }
    const user = session.user as { id: string; role?: string };
    const role = (user.role ?? 'analyst') as Role;
    c.set('principal', { kind: 'session', id: user.id, userId: user.id, role });
    await next();
  };
}

/**
 * Refuses (403) callers whose role lacks the permission. `alsoRoles` grant it to more roles than the
 * table does (a setting such as CAIRN_FLOW_APPROVER_ROLE); the OpenAPI description shows the table's.
 *
 * @example
 * app.use('/sources/*', requirePermission('sources:write'));
 */
export function requirePermission(
  permission: Permission,
  alsoRoles: readonly Role[] = [],
): MiddlewareHandler<{ Variables: AuthVariables }> {
  const check: MiddlewareHandler<{ Variables: AuthVariables }> = async function checkPermission(c, next) {
    const principal = c.get('principal');
    if (!can(principal.role, permission) && !alsoRoles.includes(principal.role)) {
      throw apiError(403, 'forbidden', `role ${principal.role} lacks ${permission}`);
    }
    await next();
  };
  // Read back by the OpenAPI description (x-cairn-permission), so the table is visible and testable.
  return Object.assign(check, { permission });
}

// The owner keys created by an admin key get (api/keys.ts): nobody in particular.
const SYSTEM_OWNER = 'system';

/**
 * Who a principal is as a person, for rules about people (the approver of a flow is not its last
 * editor): `user:<id>` for a signed-in person and for the keys they created, else the key itself
 * (`<kind>:<key id>`: the bootstrap or generated admin key, or a key an admin key created).
 *
 * @example
 * actorOf({ kind: 'api-key', id: 'k1', role: 'operator', userId: 'u7' }); // 'user:u7'
 */
export function actorOf(principal: Principal): string {
  const person = principal.userId && principal.userId !== SYSTEM_OWNER ? principal.userId : undefined;
  return person ? `user:${person}` : `${principal.kind}:${principal.id}`;
}

/**
 * The permission a route's middleware list asks for, if any.
 *
 * @example
 * permissionOf(route.middleware); // 'sources:read'
 */
export function permissionOf(middleware: unknown): Permission | undefined {
  const list = Array.isArray(middleware) ? middleware : [middleware];
  for (const m of list) {
    const p = (m as { permission?: Permission } | undefined)?.permission;
    if (p) return p;
  }
  return undefined;
}
