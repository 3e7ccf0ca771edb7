import { type EventType, isEventType, LIMITS, parseTimestamp, validateEvent } from '@cairn/core';
import type { HttpBindings } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono, type MiddlewareHandler } from 'hono';
import type { Config } from '../../config.ts';
import { apiError } from '../../http/errors.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { Pii } from '../../pii/index.ts';
import { originAllowed, type SourceDirectory } from '../../sources/directory.ts';
import type { Source } from '../../sources/queries.ts';
import { BodyError, readJsonBody } from './body.ts';
import { type EventRow, enrichEvent, type RequestFacts } from './enrich.ts';
import { type FailureRecorder, failedEvent, failedPayload, type RequestInfo } from './failures.ts';
import type { FailedEventRow } from './queries.ts';
import { createIngestLimiter, type IngestLimiter } from './rate-limit.ts';
import type { EventWriter } from './writer.ts';

/** What the tracking API needs from the rest of the server. */
export interface IngestDeps {
  config: Readonly<Config>;
  sources: SourceDirectory;
  writer: EventWriter;
  failures: FailureRecorder;
  metrics: Metrics;
  log: Logger;
  pii: Pii;
}

interface RoutesDeps extends IngestDeps {
  limiter: IngestLimiter | undefined;
}

interface Rejection {
  index: number;
  path: string;
  message: string;
  status: 400 | 413;
}

/**
 * The one-letter paths of analytics.js 2.0 (`@segment/analytics-next`): its plugin posts each event to
 * `<apiHost>/<first letter of the type>` and its batching strategy to `<apiHost>/b`.
 */
const SHORT_PATHS: Readonly<Record<string, EventType>> = {
  t: 'track',
  i: 'identify',
  p: 'page',
  s: 'screen',
  g: 'group',
  a: 'alias',
};

/** Where the key may come from besides the Basic username and the body's `writeKey`. */
interface KeySources {
  /** `?writeKey=`: RudderStack's beacon (`navigator.sendBeacon` can set no header). */
  query?: boolean;
}

/**
 * The Segment-compatible tracking API, mounted at the root: `POST /v1/batch` (aliases `/v1/import`
 * and analytics.js 2.0's `/v1/b`), `POST /v1/{track,identify,page,screen,group,alias}` (aliases
 * `/v1/{t,i,p,s,g,a}`), and RudderStack's beacon batch `POST /beacon/v1/batch?writeKey=`. Every path
 * goes through one handler: same key check, validation, limits, dedup, CORS and failed_events.
 * Answers 200 only after COMMIT.
 *
 * @example
 * app.route('/', trackingRoutes(deps));
 */
export function trackingRoutes(ingestDeps: IngestDeps): Hono {
  // One limiter per app, so per process (tests start several servers in one process).
  const deps: RoutesDeps = { ...ingestDeps, limiter: createIngestLimiter(ingestDeps.config.ingestRateLimit) };
  const app = new Hono();
  for (const base of ['/v1/*', '/beacon/v1/*']) {
    app.use(base, corsHeaders);
    app.options(base, (c) => preflight(c, deps.sources));
  }
  app.post('/v1/batch', (c) => ingest(c, deps, 'batch'));
  app.post('/v1/import', (c) => ingest(c, deps, 'batch'));
  app.post('/v1/b', (c) => ingest(c, deps, 'batch'));
  // analytics.js 2.0 posts its own usage counters (`{series:[...]}`, no write key) to `<apiHost>/m`
  // when its apiHost is set in the load options. They are not events and Cairn has no use for
  // them; 204 keeps the SDK quiet instead of logging a 404 every 30 s.
  app.post('/v1/m', (c) => c.body(null, 204));
  app.post('/v1/:type', (c) => {
    const name = c.req.param('type');
    const type = SHORT_PATHS[name] ?? name;
    if (!isEventType(type)) throw apiError(404, 'not_found', `no tracking endpoint /v1/${name}`);
    return ingest(c, deps, type);
  });
  app.post('/beacon/v1/batch', (c) => ingest(c, deps, 'batch', { query: true }));
  return app;
}

// Write-only API: reflecting the origin exposes nothing, and lets the snippet read a refusal (403,
// 400, 413) and stop retrying it. Which origins may write is enforced per source (403 below).
const corsHeaders: MiddlewareHandler = async function corsHeaders(c, next) {
  await next();
  const origin = c.req.header('origin');
  if (!origin || c.req.method === 'OPTIONS') return;
  c.res.headers.set('Access-Control-Allow-Origin', origin);
  c.res.headers.set('Access-Control-Expose-Headers', 'Retry-After');
  c.res.headers.append('Vary', 'Origin');
};

// The headers asked for are allowed as asked: SDKs add their own (analytics.js X-Retry-Count on a
// retry, RudderStack AnonymousId, SentAt, Rsa-*, and whatever a site configures), none of them can
// read anything from a write-only API, and a header missing here fails the request in the browser.
function preflight(c: Context, sources: SourceDirectory): Response {
  const origin = c.req.header('origin');
  if (origin && sources.anyAllowsOrigin(origin)) {
    c.header('Access-Control-Allow-Origin', origin);
    c.header('Access-Control-Allow-Methods', 'POST, OPTIONS');
    c.header(
      'Access-Control-Allow-Headers',
      c.req.header('access-control-request-headers') || 'Content-Type, Authorization, Content-Encoding',
    );
    c.header('Access-Control-Max-Age', '86400');
  }
  c.header('Vary', 'Origin');
  return c.body(null, 204);
}

function requestInfo(c: Context, trustProxy: boolean): RequestInfo {
  return {
    method: c.req.method,
    path: c.req.path,
    ip: clientIp(c, trustProxy),
    userAgent: c.req.header('user-agent'),
    contentType: c.req.header('content-type'),
    origin: c.req.header('origin'),
  };
}

function clientIp(c: Context, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // app.request() in tests has no socket
  }
}

// A site sends the same few Authorization headers over and over: decoding each costs more than a lookup.
const BASIC_CACHE_MAX = 1000;
const basicUsers = new Map<string, string | undefined>();

function basicUser(header: string | undefined): string | undefined {
  if (!header) return undefined;
  if (basicUsers.has(header)) return basicUsers.get(header);
  let user: string | undefined;
  if (header.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    user = (colon >= 0 ? decoded.slice(0, colon) : decoded) || undefined;
  }
  if (basicUsers.size >= BASIC_CACHE_MAX) basicUsers.clear();
  basicUsers.set(header, user);
  return user;
}

async function ingest(
  c: Context,
  deps: RoutesDeps,
  kind: EventType | 'batch',
  keys: KeySources = {},
): Promise<Response> {
  const { config, failures, metrics } = deps;
  const receivedAt = Date.now();
  const info = requestInfo(c, config.trustProxy);
  const refuse = async (row: FailedEventRow, err: Error): Promise<never> => {
    await failures.record([row]).catch((e) => unavailable(deps, e));
    throw err;
  };

  const headerKey = basicUser(c.req.header('authorization'));
  let source = headerKey ? await sourceOf(deps, headerKey) : undefined;
  let body: { json: unknown; raw: { bytes: Uint8Array; size: number } };
  try {
    body = await readJsonBody(c.req.raw, (c.env as Partial<HttpBindings> | undefined)?.incoming);
  } catch (err) {
    if (!(err instanceof BodyError)) throw err;
    return refuse(failedPayload(info, source?.id ?? null, err.status, err.code, err.message, err.raw), err);
  }
  const json = body.json as Record<string, unknown>;
  const isObject = typeof json === 'object' && json !== null && !Array.isArray(json);
  const bodyKey = isObject && typeof json.writeKey === 'string' ? json.writeKey : undefined;
  const queryKey = keys.query ? c.req.query('writeKey') || undefined : undefined;
  const otherKey = bodyKey ?? queryKey;
  if (!headerKey && otherKey) source = await sourceOf(deps, otherKey);
  if (!source) {
    const message =
      headerKey || otherKey
        ? 'unknown write key'
        : `missing write key: send it as the HTTP Basic username or as writeKey in the body${keys.query ? ' or the query' : ''}`;
    return refuse(
      failedPayload(info, null, 401, 'unauthorized', message, body.raw),
      apiError(401, 'unauthorized', message),
    );
  }
  const denied = checkSource(source, info);
  if (denied) {
    return refuse(
      failedPayload(info, source.id, 403, denied.code, denied.message, body.raw),
      apiError(403, denied.code, denied.message),
    );
  }
  if (!isObject) {
    const err = apiError(400, 'invalid_body', 'request body must be a JSON object');
    return refuse(failedPayload(info, source.id, 400, 'invalid_body', err.message, body.raw), err);
  }
  let events: unknown[];
  let prefix: (i: number) => string;
  if (kind === 'batch') {
    if (!Array.isArray(json.batch)) {
      const err = apiError(400, 'invalid_body', 'batch: must be an array of events');
      return refuse(failedPayload(info, source.id, 400, 'invalid_body', err.message, body.raw), err);
    }
    if (json.batch.length > LIMITS.maxBatchEvents) {
      const err = apiError(413, 'too_many_events', `batch: more than ${LIMITS.maxBatchEvents} events`);
      return refuse(failedPayload(info, source.id, 413, 'too_many_events', err.message, body.raw), err);
    }
    events = json.batch.map(withoutWriteKey);
    prefix = (i) => `batch[${i}]`;
  } else {
    const { writeKey: _k, ...event } = json;
    events = [event];
    prefix = () => '';
  }
  if (
    kind === 'batch' &&
    json.sentAt !== undefined &&
    (typeof json.sentAt !== 'string' || Number.isNaN(parseTimestamp(json.sentAt)))
  ) {
    const err = apiError(400, 'invalid_body', 'sentAt: not an ISO-8601 date');
    return refuse(failedPayload(info, source.id, 400, 'invalid_body', err.message, body.raw), err);
  }
  await limitRate(deps, source, events.length);
  metrics.requestBatchSize.observe(events.length);
  const impliedType = kind === 'batch' ? undefined : kind;
  return store(c, deps, source, info, events, prefix, impliedType, receivedAt, json.sentAt, body.raw.size);
}

// Refused whole, before anything is stored, and not recorded in failed_events: a flood would write
// every refused event to the database it is kept away from; the client retries it (the SDKs honour
// Retry-After). Keyed by source, so a rotated source's two write keys share one budget.
async function limitRate(deps: RoutesDeps, source: Source, events: number): Promise<void> {
  const wait = await deps.limiter?.take(source.id, events);
  if (wait == null) return;
  deps.metrics.eventsRejected.inc({ reason: 'rate_limited' }, events);
  const { ratePerSecond, burst } = deps.config.ingestRateLimit;
  throw apiError(
    429,
    'rate_limited',
    `source ${source.id} is over its rate limit on this server (${ratePerSecond} events/s, ${burst} at once); nothing of this request was stored: retry after ${wait} s`,
    { retryAfterSeconds: wait },
    { 'Retry-After': String(wait) },
  );
}

// analytics.js 2.0 repeats the write key in every event of a batch: it says who sent the batch, it
// is not the event's data, and stored in the payload it would travel on to every destination.
function withoutWriteKey(event: unknown): unknown {
  if (typeof event !== 'object' || event === null || Array.isArray(event) || !('writeKey' in event)) return event;
  const { writeKey: _key, ...rest } = event as Record<string, unknown>;
  return rest;
}

function checkSource(source: Source, info: RequestInfo): { code: string; message: string } | null {
  if (!source.enabled) return { code: 'source_disabled', message: `source ${source.id} is disabled` };
  if (info.origin && !originAllowed(source.allowedOrigins, info.origin)) {
    return { code: 'origin_not_allowed', message: `origin ${info.origin} is not allowed for this source` };
  }
  return null;
}

async function store(
  c: Context,
  deps: IngestDeps,
  source: Source,
  info: RequestInfo,
  events: unknown[],
  prefix: (i: number) => string,
  impliedType: EventType | undefined,
  receivedAt: number,
  batchSentAt: unknown,
  bodyBytes: number,
): Promise<Response> {
  const facts = {
    sourceId: source.id,
    receivedAt,
    ip: info.ip,
    batchSentAt: typeof batchSentAt === 'string' ? batchSentAt : undefined,
    maxFutureSkewMs: deps.config.maxFutureSkewMs,
    pii: deps.pii,
  };
  const rows: EventRow[] = [];
  const rejected: Rejection[] = [];
  const failed: FailedEventRow[] = [];
  events.forEach((raw, index) => {
    const path = prefix(index);
    const rejection = prepare(raw, path, impliedType, facts, rows, bodyBytes);
    if (rejection) {
      rejected.push({ index, ...rejection });
      const code = rejection.status === 413 ? 'event_too_large' : 'invalid_event';
      failed.push(failedEvent(info, source.id, rejection.status, code, `${rejection.path}: ${rejection.message}`, raw));
    }
  });

  const [written] = await Promise.all([
    deps.writer.write(rows).catch((err) => unavailable(deps, err)),
    failures(deps, failed),
  ]);
  for (const r of rows) deps.metrics.eventsAccepted.inc({ type: r.type });
  deps.metrics.eventsDuplicate.inc(written.duplicates);
  if (rejected.length === 0) return c.json({ success: true });
  const status = rejected.every((r) => r.status === 413) ? 413 : 400;
  const first = rejected[0]!;
  const message =
    events.length === 1
      ? `${first.path}: ${first.message}`
      : `${rejected.length} of ${events.length} events rejected (first: ${first.path}: ${first.message}); the other ${rows.length} were stored`;
  throw apiError(status, status === 413 ? 'event_too_large' : 'invalid_events', message, {
    accepted: rows.length,
    rejected: rejected.map(({ index, path, message }) => ({ index, path, message })),
  });
}

// How much longer than its source text an event can get through JSON.parse and JSON.stringify: only a
// number grows ("1e20", 4 bytes, prints as 21 digits); strings, literals and structure never do.
const MAX_JSON_GROWTH = 6;

// Validation comes first: its walk is iterative and bounds nesting, so the JSON.stringify of the size
// check (which recurses) never sees an event nested thousands deep. A body too small to hold an
// oversized event skips that JSON.stringify.
function prepare(
  raw: unknown,
  path: string,
  impliedType: EventType | undefined,
  facts: RequestFacts,
  rows: EventRow[],
  bodyBytes: number,
): Omit<Rejection, 'index'> | null {
  const v = validateEvent(raw, path, impliedType);
  if (!v.ok) return { ...v.issue, status: 400 };
  const size = bodyBytes * MAX_JSON_GROWTH > LIMITS.maxEventBytes ? Buffer.byteLength(JSON.stringify(raw)) : 0;
  if (size > LIMITS.maxEventBytes) {
    return {
      path: path || 'body',
      message: `event is ${size} bytes; the limit is ${LIMITS.maxEventBytes}`,
      status: 413,
    };
  }
  const e = enrichEvent(v.event, facts, path);
  if (!e.ok) return { ...e.issue, status: 400 };
  rows.push(e.row);
  return null;
}

async function failures(deps: IngestDeps, rows: FailedEventRow[]): Promise<void> {
  await deps.failures.record(rows).catch((err) => unavailable(deps, err));
}

// A key the cached directory does not know makes it reload: with the database unreachable, that is a 503 the
// client retries, not a 500.
// A fault of the server itself (a missing table, a bad query) stays a 500.
function sourceOf(deps: IngestDeps, writeKey: string): Promise<Source | undefined> {
  return deps.sources.byWriteKey(writeKey).catch((err: unknown) => {
    if (!unreachable(err)) throw err;
    return unavailable(deps, err, 'looking up a write key failed');
  });
}

// The database cannot be reached or is not taking work: an error of the driver or the network (no SQLSTATE), or
// Postgres's connection exception (08), operator intervention such as a shutdown in progress (57P), insufficient
// resources (53).
function unreachable(err: unknown): boolean {
  const e = err as { severity?: unknown; code?: unknown };
  if (typeof e?.severity !== 'string') return true;
  return typeof e.code === 'string' && /^(08|57P|53)/.test(e.code);
}

// The database could not take the write: nothing was acknowledged, so the client must retry.
function unavailable(deps: IngestDeps, err: unknown, what = 'storing events failed'): never {
  deps.log.error(what, err);
  throw apiError(503, 'unavailable', 'events could not be stored right now; retry', undefined, { 'Retry-After': '1' });
}
