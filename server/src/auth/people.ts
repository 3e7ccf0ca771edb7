import { AsyncLocalStorage } from 'node:async_hooks';
import { createHmac, randomBytes } from 'node:crypto';
import { apiKey } from '@better-auth/api-key';
import { betterAuth } from 'better-auth';
import { APIError } from 'better-auth/api';
import { getMigrations } from 'better-auth/db/migration';
import { PostgresJSDialect } from 'kysely-postgres-js';
import type { Config } from '../config.ts';
import type { Sql } from '../db/index.ts';
import type { Role } from './keys.ts';

/** The prefix of every API key better-auth makes for us (the bootstrap and generated admin keys differ). */
export const API_KEY_PREFIX = 'cairn_';

// better-auth creates users through its adapter; the role they get is decided by whoever started the
// creation (first sign-up, invite, CAIRN_ADMIN_EMAIL), carried here rather than through request input.
const creatingRole = new AsyncLocalStorage<Role>();

/** The better-auth options Cairn runs with (also what its migrations are computed from). */
export function authOptions(sql: Sql, config: Readonly<Config>, secret: string) {
  const secureCookies = config.publicUrl?.startsWith('https://') ?? false;
  return {
    appName: 'Cairn',
    basePath: '/api/auth',
    // Unset: better-auth takes the origin of each request (and trusts only that origin for cookies).
    baseURL: config.publicUrl,
    // better-auth signs cookies with its own secret; derive it so CAIRN_SECRET stays the one secret.
    secret: createHmac('sha256', secret).update('better-auth').digest('base64url'),
    // Every better-auth query runs on our postgres.js client; on embedded PGlite that is one connection,
    // which kysely-postgres-js reserves per query or per transaction, so nothing of ours may query while
    // better-auth holds it: the hooks below never touch the database.
    database: { dialect: new PostgresJSDialect({ postgres: sql }), type: 'postgres' as const },
    telemetry: { enabled: false },
    // Wrong passwords and the unset base URL are expected, not news; errors still show.
    logger: {
      disabled: config.log === 'silent',
      level: config.log === 'debug' ? ('debug' as const) : ('error' as const),
    },
    emailAndPassword: { enabled: true, minPasswordLength: 12, autoSignIn: true },
    // Prefixed table names: better-auth's tables sit beside ours and `user`/`session` are too generic.
    user: {
      modelName: 'auth_user',
      additionalFields: {
        role: { type: 'string' as const, required: false, defaultValue: 'analyst', input: false },
      },
    },
    session: { modelName: 'auth_session' },
    account: { modelName: 'auth_account' },
    verification: { modelName: 'auth_verification' },
    databaseHooks: {
      user: {
        create: {
          async before(user: Record<string, unknown>) {
            const role = creatingRole.getStore();
            if (!role)
              throw new APIError('FORBIDDEN', { message: 'sign-up is closed: ask an admin for an invitation' });
            return { data: { ...user, role } };
          },
        },
      },
    },
    // An unexpected error (not better-auth's own APIError) reaches our error handler, which logs its
    // stack and answers a JSON 500 with the request id; better-auth would answer an empty 500 and
    // print the error to the console, past our log.
    onAPIError: { throw: true },
    rateLimit: {
      enabled: true,
      // Our own store: better-auth's 'memory' store is one module-wide map shared by every instance in
      // the process; this one belongs to the server (per process, as documented).
      customStorage: rateLimitStore(),
      window: 60,
      max: 300,
      customRules: {
        '/sign-in/email': { window: config.signIn.windowSeconds, max: config.signIn.max },
        '/sign-up/email': { window: config.signIn.windowSeconds, max: config.signIn.max },
      },
    },
    advanced: {
      // better-auth turns its origin check off when NODE_ENV=test; tests must see what production does.
      disableOriginCheck: false,
      disableCSRFCheck: false,
      useSecureCookies: secureCookies,
      // better-auth's defaults today, stated so an upgrade cannot loosen them: no script reads the
      // session (HttpOnly), other sites' requests do not carry it except top-level GETs (Lax), and
      // over https it never travels in clear (Secure, with the __Secure- name prefix).
      defaultCookieAttributes: { httpOnly: true, sameSite: 'lax' as const, secure: secureCookies },
      // Behind a proxy the client is the first X-Forwarded-For hop; otherwise the socket peer (see app.ts).
      ipAddress: { ipAddressHeaders: config.trustProxy ? ['x-forwarded-for'] : ['x-cairn-peer-ip'] },
    },
    plugins: [
      apiKey({
        schema: { apikey: { modelName: 'auth_apikey' } },
        defaultPrefix: API_KEY_PREFIX,
        enableMetadata: true,
        // Verification is ours (auth/api-keys.ts): no per-request counters or writes.
        rateLimit: { enabled: false },
        keyExpiration: { minExpiresIn: 0, maxExpiresIn: 3650 },
      }),
    ],
  };
}

// Fixed-window counters per key (better-auth's key is client IP + path), pruned when large.
function rateLimitStore() {
  const windows = new Map<string, { count: number; resetAt: number }>();
  return {
    async consume(key: string, rule: { window: number; max: number }) {
      const now = Date.now();
      let w = windows.get(key);
      if (!w || now >= w.resetAt) {
        if (windows.size >= 10_000) for (const [k, v] of windows) if (now >= v.resetAt) windows.delete(k);
        w = { count: 0, resetAt: now + rule.window * 1000 };
        windows.set(key, w);
      }
      if (w.count >= rule.max) return { allowed: false, retryAfter: Math.max(1, Math.ceil((w.resetAt - now) / 1000)) };
      w.count++;
      return { allowed: true, retryAfter: null };
    },
  };
}

/** The better-auth instance. */
export type PeopleAuth = ReturnType<typeof betterAuth<ReturnType<typeof authOptions>>>;

/** A person as the admin API shows them. */
export interface Person {
  id: string;
  email: string;
  name: string;
  role: Role;
  createdAt: Date;
}

/**
 * Creates better-auth on the shared client and applies its migrations (idempotent; call under the
 * startup lock so servers starting together do not race on CREATE TABLE).
 *
 * @example
 * const auth = await setupPeople(sql, config, secret);
 */
export async function setupPeople(sql: Sql, config: Readonly<Config>, secret: string): Promise<PeopleAuth> {
  const options = authOptions(sql, config, secret);
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
  return betterAuth(options);
}

/**
 * Claims the "first user" slot: true exactly once per database (an atomic insert), so two
 * simultaneous first sign-ups cannot both become admin.
 */
async function claimFirstUser(sql: Sql): Promise<boolean> {
  const rows = await sql`
    INSERT INTO settings (key, value)
    VALUES ('first_user_claimed', 'true')
    ON CONFLICT (key) DO NOTHING
    RETURNING key`;
  return rows.length > 0;
}

/**
 * Handles POST /api/auth/sign-up/email: the first sign-up on a database becomes admin; after that
 * sign-up is closed (403) and admins invite people. With `openFirst: false` (CAIRN_OPEN_FIRST_SIGNUP=0)
 * sign-up is closed from the start: a server reachable before its operator signs up cannot be claimed
 * by whoever finds it first.
 *
 * @example
 * app.post('/api/auth/sign-up/email', (c) => signUp(sql, auth, c.req.raw, { openFirst: true }));
 */
export async function signUp(
  sql: Sql,
  auth: PeopleAuth,
  request: Request,
  options: { openFirst: boolean },
): Promise<Response> {
  // Closed: better-auth's create hook refuses a person created without a role (403).
  if (!options.openFirst || !(await claimFirstUser(sql))) return auth.handler(request);
  // A refused or failed first sign-up (bad password, rate limit, a database error) must not close
  // sign-up for good.
  const reopen = () => sql`DELETE FROM settings WHERE key = 'first_user_claimed'`;
  let res: Response;
  try {
    res = await creatingRole.run('admin', () => auth.handler(request));
  } catch (err) {
    await reopen().catch(() => {});
    throw err;
  }
  if (!res.ok) await reopen();
  return res;
}

/**
 * Creates a person with a role and an initial random password, returned once: the person signs in
 * with it and changes it (better-auth's /api/auth/change-password). Throws 409 when the email exists.
 *
 * @example
 * const { person, initialPassword } = await invite(auth, { email: 'a@example.com', role: 'analyst' });
 */
export async function invite(
  auth: PeopleAuth,
  input: { email: string; name?: string; role: Role; password?: string },
): Promise<{ person: Person; initialPassword: string }> {
  const ctx = await auth.$context;
  const email = input.email.toLowerCase();
  if (await ctx.internalAdapter.findUserByEmail(email)) throw new APIError('CONFLICT', { message: `${email} exists` });
  const initialPassword = input.password ?? randomBytes(18).toString('base64url');
  const hash = await ctx.password.hash(initialPassword);
  const user = await creatingRole.run(input.role, () =>
    ctx.internalAdapter.createUser(
      { email, name: input.name ?? email.split('@')[0]!, emailVerified: false },
      { method: 'admin' },
    ),
  );
  await ctx.internalAdapter.linkAccount({
    userId: user.id,
    providerId: 'credential',
    accountId: user.id,
    password: hash,
  });
  return { person: toPerson(user as unknown as Record<string, unknown>), initialPassword };
}

/**
 * Creates the admin from `CAIRN_ADMIN_EMAIL` / `CAIRN_ADMIN_PASSWORD` when no person has that email
 * (an existing person is left alone: the environment never resets a password).
 *
 * @example
 * await ensureAdminFromEnv(sql, auth, config);
 */
export async function ensureAdminFromEnv(sql: Sql, auth: PeopleAuth, config: Readonly<Config>): Promise<void> {
  if (!config.adminEmail || !config.adminPassword) return;
  const ctx = await auth.$context;
  if (await ctx.internalAdapter.findUserByEmail(config.adminEmail)) return;
  await claimFirstUser(sql);
  try {
    await invite(auth, { email: config.adminEmail, role: 'admin', password: config.adminPassword });
  } catch (err) {
    // Another server starting at the same time created it.
    if (!(err instanceof APIError && err.status === 'CONFLICT')) throw err;
  }
}

/** Maps a better-auth user row to the API's view. */
export function toPerson(u: Record<string, unknown>): Person {
  return {
    id: String(u.id),
    email: String(u.email),
    name: String(u.name ?? ''),
    role: (u.role as Role) ?? 'analyst',
    createdAt: new Date(u.createdAt as string | Date),
  };
}

/**
 * Whether nobody has signed up yet (the next sign-up becomes admin).
 *
 * @example
 * if (await signUpOpen(sql)) log.info('sign up the first admin at /api/auth/sign-up/email');
 */
export async function signUpOpen(sql: Sql): Promise<boolean> {
  const rows = await sql`SELECT 1 FROM settings WHERE key = 'first_user_claimed'`;
  return rows.length === 0;
}
