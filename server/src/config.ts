import { type IdentityOptions, identityOptionsSchema, LIMITS } from '@cairn/core';
import { z } from 'zod';
import { DEFAULT_PII_TRAITS } from './pii/index.ts';

/** Defaults, named once so docs, tests and code agree. */
export const DEFAULTS = Object.freeze({
  port: 8787,
  dataDir: '.cairn',
  poolMax: 10,
  analyticsTimeoutMs: 20_000,
  /** A replica further behind than this is not read: analytics and console reads go to the primary. */
  analyticsMaxLagSeconds: 30,
  /** Most rows one group commit writes; larger groups are split. */
  commitMaxRows: 2000,
  /** Group commits writing at the same time (each holds one pooled connection). */
  commitConcurrency: 4,
  /** Rows waiting that justify a group commit in parallel with one in flight (see batcher.ts). */
  commitParallelRows: 100,
  /** An event whose corrected timestamp is further in the future than this is refused. */
  maxFutureSkewMs: 24 * 60 * 60 * 1000,
  /** How often a process re-reads the sources table to see keys created or rotated elsewhere. */
  sourceRefreshMs: 2000,
  /**
   * First retry of a failed delivery after this many seconds, doubling (with jitter) up to the max. It is also
   * the wait before a killed worker's deliveries go out again (after their heartbeat lapses, ~10 s): at 5 s,
   * that took 15-22 s; the circuit breaker, not this delay, is what spares a destination that is down.
   */
  deliveryRetryDelaySeconds: 1,
  deliveryRetryMaxSeconds: 600,
  /** Circuit breaker: failed batches in a row that pause a destination, the first pause, the longest. */
  circuitThreshold: 5,
  circuitPauseSeconds: 30,
  circuitMaxPauseSeconds: 600,
  /** How often a worker promotes waiting deliveries nobody promoted (see pipeline/deliver/order.ts). */
  deliverySweepSeconds: 30,
  /**
   * Identify workers per process (each takes up to 50 ingest jobs at a time). Two given the same people
   * wait on each other's identity locks, but in one busy process (CAIRN_ROLE=all) their round trips
   * overlap: bench:deliver's stage 2 p50 was 70-100 ms with 2 and 140-1,900 ms with 1 there (with a
   * worker process of its own, 1 did better in one run of two). More pay off for backlogs of many
   * distinct people (bench:identify: 4,300 events/s with 4 against 3,580 with 2).
   */
  identifyConcurrency: 2,
  /** Seconds between stage 3's sweeps for time-window exits (the budget: < 60 s after the boundary). */
  computeSweepSeconds: 15,
  shutdownTimeoutMs: 15_000,
  /** How long a verified (or refused) API key is remembered: a revoked key stops working within this. */
  apiKeyCacheMs: 5000,
  /** Sign-in attempts per client IP per window (better-auth's in-memory rate limiter, per process). */
  signInMax: 5,
  signInWindowSeconds: 60,
  /**
   * Tracking API events per write key per second, per process (0 = no limit), and how many may come at
   * once. Above what one process stores (bench:ingest: ~24,000 events/s), so only a runaway client meets it.
   */
  ingestRatePerSecond: 50_000,
  ingestBurst: 100_000,
  /** Largest request body on every route but the tracking API (which has its own limits, LIMITS). */
  bodyLimitBytes: 1024 * 1024,
  // A request must have sent its headers within 10 s and all of it within 30 s (Node's defaults: 60 s and 300 s,
  // which let a slow client hold a socket for five minutes).
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  /** Retention (docs/retention.md): the shortest a ledger row or flow run can be kept, so retries never outlive it. */
  minDeliveryRetentionDays: 7,
  minFlowRunRetentionDays: 30,
});

/** Days to keep; unset or empty = forever (null). */
const retentionDays = (min: number) =>
  z
    .union([z.literal('').transform(() => undefined), z.coerce.number().int().min(min).max(36_500)])
    .optional()
    .transform((v) => v ?? null);

/** A yes/no variable; unset or empty gives `fallback` (undefined: decided from other settings). */
const flag = <F extends boolean | undefined>(fallback: F) =>
  z
    .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
    .optional()
    .transform((v): boolean | F => (v === undefined || v === '' ? fallback : v === '1' || v === 'true' || v === 'yes'));

const list = () =>
  z
    .string()
    .optional()
    .transform((v) =>
      v
        ? v
            .split(',')
            .map((p) => p.trim())
            .filter(Boolean)
        : null,
    );

const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(DEFAULTS.port),
  HOST: z.string().default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .url()
    .optional()
    .or(z.literal('').transform(() => undefined)),
  CAIRN_DATA_DIR: z.string().min(1).default(DEFAULTS.dataDir),
  CAIRN_ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  CAIRN_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  // Secrets used before CAIRN_SECRET (newest first, comma-separated): PII sealed under them still opens.
  CAIRN_PII_OLD_SECRETS: list(),
  // Traits encrypted at rest and masked without pii:read (comma-separated).
  CAIRN_PII_TRAITS: list(),
  CAIRN_ADMIN_EMAIL: z.string().email().optional(),
  CAIRN_ADMIN_PASSWORD: z.string().min(12, 'must be at least 12 characters').optional(),
  CAIRN_API_KEY_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(DEFAULTS.apiKeyCacheMs),
  CAIRN_SIGNIN_MAX: z.coerce.number().int().min(1).default(DEFAULTS.signInMax),
  CAIRN_SIGNIN_WINDOW_S: z.coerce.number().int().min(1).default(DEFAULTS.signInWindowSeconds),
  CAIRN_INGEST_RATE_PER_S: z.coerce.number().min(0).default(DEFAULTS.ingestRatePerSecond),
  // At least the largest batch: a batch is charged all its events, and one larger than the burst could never pass.
  CAIRN_INGEST_BURST: z.coerce
    .number()
    .int()
    .min(LIMITS.maxBatchEvents, `must be at least ${LIMITS.maxBatchEvents} (the largest batch)`)
    .default(DEFAULTS.ingestBurst),
  CAIRN_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(DEFAULTS.bodyLimitBytes),
  CAIRN_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(DEFAULTS.headersTimeoutMs),
  CAIRN_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(DEFAULTS.requestTimeoutMs),
  CAIRN_KEEPALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(DEFAULTS.keepAliveTimeoutMs),
  // Unset: /metrics is open (scrapers on a private network); set: it needs `Authorization: Bearer <token>`.
  CAIRN_METRICS_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  CAIRN_ROLE: z.enum(['all', 'ingest', 'worker']).default('all'),
  CAIRN_PIPELINE: z.enum(['process', 'inline']).default('process'),
  CAIRN_PIPELINE_NICE: z.coerce.number().int().min(0).max(19).default(10),
  // A group commit slower than this (ms) asks the pipeline process to hold back its next batches; off (the
  // default): never. Measured in docs/benchmarks.md (issue 16): it trades the pipeline's progress for the API's p99.
  CAIRN_PIPELINE_YIELD_AFTER_MS: z.union([z.literal('off'), z.coerce.number().int().min(0).max(60_000)]).default('off'),
  CAIRN_TRUST_PROXY: flag(false),
  // Off: nobody becomes admin by signing up first (the first admin comes from CAIRN_ADMIN_EMAIL or an admin key).
  CAIRN_OPEN_FIRST_SIGNUP: flag(true),
  // A role that approves flows besides admins (operators, in a team where admins do not review flows).
  CAIRN_FLOW_APPROVER_ROLE: z.enum(['admin', 'operator', 'analyst']).default('admin'),
  CAIRN_DB_POOL_MAX: z.coerce.number().int().min(2).max(200).default(DEFAULTS.poolMax),
  // Analytics queries (stage 6) on a database of their own, e.g. a streaming replica; unset: the main database.
  CAIRN_ANALYTICS_DATABASE_URL: z
    .string()
    .url()
    .optional()
    .or(z.literal('').transform(() => undefined)),
  // Replica lag above which analytics and lag-tolerant console reads go to the primary (docs/deploy.md).
  CAIRN_ANALYTICS_MAX_LAG_S: z.coerce.number().min(0).max(86_400).default(DEFAULTS.analyticsMaxLagSeconds),
  // An analytics query running longer than this is cancelled and answered 422 (too broad).
  CAIRN_ANALYTICS_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(DEFAULTS.analyticsTimeoutMs),
  // How often scheduled reports are checked for a due period (the runtime clock decides what is due).
  CAIRN_REPORTS_TICK_MS: z.coerce.number().int().min(50).max(3_600_000).default(30_000),
  CAIRN_COMMIT_MAX_ROWS: z.coerce.number().int().min(1).max(10_000).default(DEFAULTS.commitMaxRows),
  CAIRN_COMMIT_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(DEFAULTS.commitConcurrency),
  CAIRN_MAX_FUTURE_SKEW_MS: z.coerce.number().int().min(0).default(DEFAULTS.maxFutureSkewMs),
  CAIRN_SOURCE_REFRESH_MS: z.coerce.number().int().min(50).default(DEFAULTS.sourceRefreshMs),
  CAIRN_PUBLIC_URL: z
    .string()
    .url()
    .optional()
    .or(z.literal('').transform(() => undefined)),
  CAIRN_DELIVERY_RETRY_DELAY_S: z.coerce.number().int().min(1).max(3600).default(DEFAULTS.deliveryRetryDelaySeconds),
  CAIRN_DELIVERY_RETRY_MAX_S: z.coerce.number().int().min(1).max(86_400).default(DEFAULTS.deliveryRetryMaxSeconds),
  CAIRN_CIRCUIT_THRESHOLD: z.coerce.number().int().min(1).max(1000).default(DEFAULTS.circuitThreshold),
  CAIRN_CIRCUIT_PAUSE_S: z.coerce.number().min(0.1).max(86_400).default(DEFAULTS.circuitPauseSeconds),
  CAIRN_CIRCUIT_MAX_PAUSE_S: z.coerce.number().min(0.1).max(86_400).default(DEFAULTS.circuitMaxPauseSeconds),
  CAIRN_DELIVERY_SWEEP_S: z.coerce.number().min(0.1).max(3600).default(DEFAULTS.deliverySweepSeconds),
  CAIRN_IDENTIFY_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(DEFAULTS.identifyConcurrency),
  CAIRN_COMPUTE_SWEEP_S: z.coerce.number().min(0.1).max(3600).default(DEFAULTS.computeSweepSeconds),
  CAIRN_LOG: z.enum(['silent', 'info', 'debug']).default('info'),
  // text: a timestamped line per message (readable in a terminal); json: pino's JSON lines, for log shippers.
  CAIRN_LOG_FORMAT: z.enum(['text', 'json']).default('text'),
  // Unset: on with the embedded database (a first try), off on a real Postgres (production).
  CAIRN_DEMO: flag(undefined),
  // Identity guards as JSON, e.g. {"limits":{"email":3},"blocked":["test@example.com"],"defaultCallingCode":"44"}.
  CAIRN_IDENTITY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (!v) return {};
      try {
        const parsed = identityOptionsSchema.safeParse(JSON.parse(v));
        if (parsed.success) return parsed.data;
        ctx.addIssue({
          code: 'custom',
          message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
        });
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
      }
      return z.NEVER;
    }),
  // Plugins to load besides the built-ins (comma-separated package names or paths; see pipeline/deliver/plugins.ts).
  CAIRN_PLUGINS: list(),
  // Where CAIRN_PLUGINS package names are looked up (its node_modules, then its parents'); default the working directory.
  CAIRN_PLUGINS_DIR: z.string().min(1).optional(),
  // Consent purposes recorded from events (comma-separated, lower case); empty = any purpose name.
  // Retention (docs/retention.md): events by whole monthly partitions; finished ledger rows and runs in batches.
  CAIRN_EVENT_RETENTION_DAYS: retentionDays(1),
  CAIRN_DELIVERY_RETENTION_DAYS: retentionDays(DEFAULTS.minDeliveryRetentionDays),
  CAIRN_FLOW_RUN_RETENTION_DAYS: retentionDays(DEFAULTS.minFlowRunRetentionDays),
  CAIRN_CONSENT_PURPOSES: z
    .string()
    .optional()
    .transform((v) =>
      v
        ? v
            .split(',')
            .map((p) => p.trim().toLowerCase())
            .filter(Boolean)
        : null,
    ),
});

/** The server's configuration: parsed once from the environment at start, frozen, passed down. */
export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  adminApiKey: string | undefined;
  secret: string | undefined;
  pii: {
    /** Sensitive traits (default email, phone, id_number, address). */
    traits: readonly string[];
    /** Older secrets whose sealed values still open (rotation). */
    oldSecrets: readonly string[];
  };
  /** The first admin, created at start when both are set. */
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  /** How long API key verifications are cached (revocation delay). */
  apiKeyCacheMs: number;
  signIn: { max: number; windowSeconds: number };
  /** Per write key per process; ratePerSecond 0 = off (see pipeline/ingest/rate-limit.ts). */
  ingestRateLimit: { ratePerSecond: number; burst: number };
  /** Largest request body outside the tracking API. */
  bodyLimitBytes: number;
  /** How long a client may take to send a request's headers, and the whole request (then 408 and closed). */
  timeouts: { headersMs: number; requestMs: number; keepAliveMs: number };
  /** Bearer token /metrics requires; undefined = open. */
  metricsToken: string | undefined;
  role: 'all' | 'ingest' | 'worker';
  /**
   * Where `npm start` (role all, on Postgres) runs the pipeline: `process` = a supervised child process
   * of its own at a lower CPU priority (`niceness` added), so the tracking API keeps its event loop;
   * `inline` = in the same process (always so on the embedded database, which one process owns).
   */
  pipeline: {
    mode: 'process' | 'inline';
    niceness: number;
    /**
     * A group commit slower than this (ms) makes the API process ask the pipeline process to hold back its
     * next queue batches (pipeline/yield.ts); undefined: never.
     */
    yieldAfterMs: number | undefined;
  };
  trustProxy: boolean;
  /** Whether the first sign-up on an empty database becomes admin (else sign-up is always closed). */
  openFirstSignUp: boolean;
  /** Approves flows under review besides admins (never the flow's last editor). */
  flowApproverRole: 'admin' | 'operator' | 'analyst';
  poolMax: number;
  analytics: {
    /** Where analytics queries run (a replica); undefined: the main database. */
    databaseUrl: string | undefined;
    /** A replica further behind than this many seconds is not read (the primary answers). */
    maxLagSeconds: number;
    /** The statement timeout of every analytics query. */
    timeoutMs: number;
    /** How often scheduled reports are checked for a due period. */
    reportsTickMs: number;
  };
  commitMaxRows: number;
  commitConcurrency: number;
  maxFutureSkewMs: number;
  sourceRefreshMs: number;
  log: 'silent' | 'info' | 'debug';
  /** `text` (default) or `json` lines on stderr (see log.ts). */
  logFormat: 'text' | 'json';
  /**
   * Create the demo source on first start and serve the demo shop: `CAIRN_DEMO`, by default only on
   * the embedded database, so a production Postgres never gets a source nobody asked for.
   */
  demo: boolean;
  /** Identify workers per process. */
  identifyConcurrency: number;
  computeSweepSeconds: number;
  /** The URL people reach this server at (unsubscribe links); default http://localhost:PORT. */
  publicUrl: string | undefined;
  delivery: {
    retryDelaySeconds: number;
    retryMaxSeconds: number;
    circuitThreshold: number;
    circuitPauseSeconds: number;
    circuitMaxPauseSeconds: number;
    sweepSeconds: number;
  };
  /** Identity guards: limits, blocked values, default calling code, alias typing. */
  identity: IdentityOptions;
  /** Consent purposes recorded from events; null = any. */
  consentPurposes: readonly string[] | null;
  /** Destination plugins loaded at start besides the built-ins: CAIRN_PLUGINS, looked up from CAIRN_PLUGINS_DIR. */
  plugins: { packages: readonly string[]; dir: string | undefined };
  /** Days kept (null = forever): events (whole partitions), finished delivery ledger rows, finished flow runs. */
  retention: { eventDays: number | null; deliveryDays: number | null; flowRunDays: number | null };
}

/** A configuration error that names every bad variable. */
export class ConfigError extends Error {}

/**
 * Parses and freezes the configuration. Throws a {@link ConfigError} naming each bad variable.
 *
 * @example
 * const config = loadConfig(process.env);
 */
export function loadConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  if (e.CAIRN_ANALYTICS_DATABASE_URL && !e.DATABASE_URL)
    throw new ConfigError(
      'invalid configuration:\n  CAIRN_ANALYTICS_DATABASE_URL: needs DATABASE_URL (the embedded database, PGlite, has no replica)',
    );
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.CAIRN_DATA_DIR,
    adminApiKey: e.CAIRN_ADMIN_API_KEY,
    secret: e.CAIRN_SECRET,
    pii: Object.freeze({
      traits: Object.freeze(e.CAIRN_PII_TRAITS ?? [...DEFAULT_PII_TRAITS]),
      oldSecrets: Object.freeze(e.CAIRN_PII_OLD_SECRETS ?? []),
    }),
    adminEmail: e.CAIRN_ADMIN_EMAIL?.toLowerCase(),
    adminPassword: e.CAIRN_ADMIN_PASSWORD,
    apiKeyCacheMs: e.CAIRN_API_KEY_CACHE_MS,
    signIn: Object.freeze({ max: e.CAIRN_SIGNIN_MAX, windowSeconds: e.CAIRN_SIGNIN_WINDOW_S }),
    ingestRateLimit: Object.freeze({ ratePerSecond: e.CAIRN_INGEST_RATE_PER_S, burst: e.CAIRN_INGEST_BURST }),
    bodyLimitBytes: e.CAIRN_BODY_LIMIT_BYTES,
    timeouts: Object.freeze({
      // Node needs headersTimeout <= requestTimeout.
      headersMs: Math.min(e.CAIRN_HEADERS_TIMEOUT_MS, e.CAIRN_REQUEST_TIMEOUT_MS),
      requestMs: e.CAIRN_REQUEST_TIMEOUT_MS,
      keepAliveMs: e.CAIRN_KEEPALIVE_TIMEOUT_MS,
    }),
    metricsToken: e.CAIRN_METRICS_TOKEN,
    role: e.CAIRN_ROLE,
    pipeline: Object.freeze({
      mode: e.CAIRN_PIPELINE,
      niceness: e.CAIRN_PIPELINE_NICE,
      yieldAfterMs: e.CAIRN_PIPELINE_YIELD_AFTER_MS === 'off' ? undefined : e.CAIRN_PIPELINE_YIELD_AFTER_MS,
    }),
    trustProxy: e.CAIRN_TRUST_PROXY,
    openFirstSignUp: e.CAIRN_OPEN_FIRST_SIGNUP,
    flowApproverRole: e.CAIRN_FLOW_APPROVER_ROLE,
    poolMax: e.CAIRN_DB_POOL_MAX,
    analytics: {
      databaseUrl: e.CAIRN_ANALYTICS_DATABASE_URL,
      maxLagSeconds: e.CAIRN_ANALYTICS_MAX_LAG_S,
      timeoutMs: e.CAIRN_ANALYTICS_TIMEOUT_MS,
      reportsTickMs: e.CAIRN_REPORTS_TICK_MS,
    },
    commitMaxRows: e.CAIRN_COMMIT_MAX_ROWS,
    commitConcurrency: e.CAIRN_COMMIT_CONCURRENCY,
    maxFutureSkewMs: e.CAIRN_MAX_FUTURE_SKEW_MS,
    sourceRefreshMs: e.CAIRN_SOURCE_REFRESH_MS,
    log: e.CAIRN_LOG,
    logFormat: e.CAIRN_LOG_FORMAT,
    demo: e.CAIRN_DEMO ?? e.DATABASE_URL === undefined,
    identifyConcurrency: e.CAIRN_IDENTIFY_CONCURRENCY,
    computeSweepSeconds: e.CAIRN_COMPUTE_SWEEP_S,
    publicUrl: e.CAIRN_PUBLIC_URL?.replace(/\/+$/, ''),
    delivery: Object.freeze({
      retryDelaySeconds: e.CAIRN_DELIVERY_RETRY_DELAY_S,
      retryMaxSeconds: e.CAIRN_DELIVERY_RETRY_MAX_S,
      circuitThreshold: e.CAIRN_CIRCUIT_THRESHOLD,
      circuitPauseSeconds: e.CAIRN_CIRCUIT_PAUSE_S,
      circuitMaxPauseSeconds: e.CAIRN_CIRCUIT_MAX_PAUSE_S,
      sweepSeconds: e.CAIRN_DELIVERY_SWEEP_S,
    }),
    identity: e.CAIRN_IDENTITY as IdentityOptions,
    consentPurposes: e.CAIRN_CONSENT_PURPOSES,
    plugins: Object.freeze({ packages: Object.freeze(e.CAIRN_PLUGINS ?? []), dir: e.CAIRN_PLUGINS_DIR }),
    retention: Object.freeze({
      eventDays: e.CAIRN_EVENT_RETENTION_DAYS,
      deliveryDays: e.CAIRN_DELIVERY_RETENTION_DAYS,
      flowRunDays: e.CAIRN_FLOW_RUN_RETENTION_DAYS,
    }),
  });
}
