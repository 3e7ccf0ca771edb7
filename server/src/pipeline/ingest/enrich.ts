import { randomUUID } from 'node:crypto';
import { campaignFromUrl, correctTime, type Issue, type JsonObject, type TrackingEvent } from '@cairn/core';
import UAParser from 'ua-parser-js';
import type { Pii } from '../../pii/index.ts';

/** What the server knows about the request an event came in. */
export interface RequestFacts {
  sourceId: string;
  receivedAt: number;
  ip: string | undefined;
  /** `sentAt` of a batch body, used when an event has none of its own. */
  batchSentAt: string | undefined;
  maxFutureSkewMs: number;
  /** Seals the sensitive fields of the stored payload (PII at rest). */
  pii: Pick<Pii, 'sealPayload'>;
}

/** One event ready for the events table; `payload` is the stored JSON text. */
export interface EventRow {
  sourceId: string;
  messageId: string;
  type: string;
  event: string | null;
  userId: string | null;
  anonymousId: string | null;
  timestamp: string;
  receivedAt: string;
  payload: string;
}

// Events before this are almost certainly a zero or garbage clock, not history.
const MIN_TIMESTAMP = Date.UTC(1970, 0, 1);

/**
 * Stamps and enriches a validated event: messageId when missing, clock-skew-corrected timestamp,
 * receivedAt, client IP, campaign from the page URL, and OS/device/browser from the user agent.
 * Fields the client already set are never overwritten. Sensitive traits are sealed in the stored payload.
 *
 * @example
 * const r = enrichEvent(event, facts, 'batch[0]');
 * if (r.ok) rows.push(r.row);
 */
export function enrichEvent(
  e: TrackingEvent,
  facts: RequestFacts,
  path: string,
): { ok: true; row: EventRow } | { ok: false; issue: Issue } {
  const time = correctTime(e, facts.receivedAt, facts.batchSentAt);
  const at = (field: string) => (path ? `${path}.${field}` : field);
  if (time.timestamp > facts.receivedAt + facts.maxFutureSkewMs) {
    const hours = Math.round((time.timestamp - facts.receivedAt) / 3_600_000);
    return {
      ok: false,
      issue: { path: at('timestamp'), message: `${hours} h in the future after clock-skew correction` },
    };
  }
  if (time.timestamp < MIN_TIMESTAMP) {
    return { ok: false, issue: { path: at('timestamp'), message: 'before 1970-01-01 after clock-skew correction' } };
  }
  const { writeKey: _secretish, ...rest } = e;
  const payload: JsonObject = {
    ...rest,
    messageId: e.messageId ?? randomUUID(),
    timestamp: new Date(time.timestamp).toISOString(),
    receivedAt: new Date(facts.receivedAt).toISOString(),
    context: enrichContext(e.context ?? {}, facts.ip),
  };
  if (time.originalTimestamp !== undefined) payload.originalTimestamp = new Date(time.originalTimestamp).toISOString();
  if (!e.sentAt && facts.batchSentAt) payload.sentAt = facts.batchSentAt;
  const name = e.type === 'track' ? e.event : e.type === 'page' || e.type === 'screen' ? e.name : undefined;
  return {
    ok: true,
    row: {
      sourceId: facts.sourceId,
      messageId: payload.messageId as string,
      type: e.type,
      event: name ?? null,
      userId: e.userId ?? null,
      anonymousId: e.anonymousId ?? null,
      timestamp: payload.timestamp as string,
      receivedAt: payload.receivedAt as string,
      payload: JSON.stringify(facts.pii.sealPayload(payload)),
    },
  };
}

function enrichContext(context: JsonObject, ip: string | undefined): JsonObject {
  const out: JsonObject = { ...context };
  if (ip && out.ip === undefined) out.ip = ip;
  if (out.campaign === undefined) {
    const page = (typeof out.page === 'object' && out.page) || {};
    const { search, url } = page as { search?: unknown; url?: unknown };
    const campaign = campaignFromUrl(
      typeof search === 'string' && search ? search : typeof url === 'string' ? url : '',
    );
    if (campaign) out.campaign = campaign;
  }
  if (typeof out.userAgent === 'string' && out.userAgent) {
    const ua = parseUserAgent(out.userAgent);
    if (out.os === undefined && ua.os) out.os = ua.os;
    if (out.device === undefined && ua.device) out.device = ua.device;
    if (out.browser === undefined && ua.browser) out.browser = ua.browser;
  }
  return out;
}

interface ParsedAgent {
  os?: JsonObject;
  device?: JsonObject;
  browser?: JsonObject;
}

// Parsing a user agent costs tens of microseconds; a site sends few distinct ones, so cache them.
const UA_CACHE_MAX = 2000;
const uaCache = new Map<string, ParsedAgent>();

function parseUserAgent(ua: string): ParsedAgent {
  const hit = uaCache.get(ua);
  if (hit) return hit;
  const r = new UAParser(ua.slice(0, 1000)).getResult();
  const parsed: ParsedAgent = {};
  if (r.os.name) parsed.os = compact({ name: r.os.name, version: r.os.version });
  if (r.browser.name) parsed.browser = compact({ name: r.browser.name, version: r.browser.version });
  const type = r.device.type ?? (r.os.name ? 'desktop' : undefined);
  if (type) parsed.device = compact({ type, manufacturer: r.device.vendor, model: r.device.model });
  if (uaCache.size >= UA_CACHE_MAX) uaCache.delete(uaCache.keys().next().value!);
  uaCache.set(ua, parsed);
  return parsed;
}

function compact(o: Record<string, string | undefined>): JsonObject {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
