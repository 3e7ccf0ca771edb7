import type { JsonObject, TrackingEvent } from '@cairn/core';
import { describe, expect, it } from 'vitest';
import { enrichEvent, type RequestFacts } from './enrich.ts';

const RECEIVED = Date.parse('2026-03-01T12:00:00.000Z');
const HOUR = 3_600_000;
const CHROME_ON_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const SAFARI_ON_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1';

const facts = (over: Partial<RequestFacts> = {}): RequestFacts => ({
  sourceId: 'src-1',
  receivedAt: RECEIVED,
  ip: '203.0.113.7',
  batchSentAt: undefined,
  maxFutureSkewMs: 24 * HOUR,
  pii: { sealPayload: (p) => p },
  ...over,
});

/** Enriches one event and returns its row and stored payload; fails the test if it was refused. */
function enriched(event: object, over: Partial<RequestFacts> = {}) {
  const r = enrichEvent(event as TrackingEvent, facts(over), 'batch[0]');
  if (!r.ok) throw new Error(`refused: ${JSON.stringify(r.issue)}`);
  return { row: r.row, payload: JSON.parse(r.row.payload) as JsonObject & { context: JsonObject } };
}

describe('enrichEvent', () => {
  it('fills the row from the event: name by type, ids, source, times', () => {
    const track = enriched({ type: 'track', event: 'Order Completed', userId: 'u1', messageId: 'm1' });
    expect(track.row).toMatchObject({
      sourceId: 'src-1',
      messageId: 'm1',
      type: 'track',
      event: 'Order Completed',
      userId: 'u1',
      anonymousId: null,
      receivedAt: '2026-03-01T12:00:00.000Z',
      timestamp: '2026-03-01T12:00:00.000Z', // no timestamp of its own: the time it arrived
    });
    expect(enriched({ type: 'page', name: 'Home', anonymousId: 'a1' }).row).toMatchObject({
      event: 'Home',
      userId: null,
      anonymousId: 'a1',
    });
    expect(enriched({ type: 'screen', name: 'Cart', userId: 'u1' }).row.event).toBe('Cart');
    expect(enriched({ type: 'identify', userId: 'u1', traits: { plan: 'pro' } }).row.event).toBeNull();
  });

  it('keeps a client messageId and makes one up when missing, a different one each time', () => {
    expect(enriched({ type: 'track', event: 'E', userId: 'u', messageId: 'client-1' }).payload.messageId).toBe(
      'client-1',
    );
    const a = enriched({ type: 'track', event: 'E', userId: 'u' });
    const b = enriched({ type: 'track', event: 'E', userId: 'u' });
    expect(a.row.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.payload.messageId).toBe(a.row.messageId);
    expect(b.row.messageId).not.toBe(a.row.messageId);
  });

  it('never stores the write key a client put in the body', () => {
    const { payload } = enriched({ type: 'track', event: 'E', userId: 'u', writeKey: 'wk_secret' });
    expect(payload).not.toHaveProperty('writeKey');
    expect(JSON.stringify(payload)).not.toContain('wk_secret');
  });

  it("corrects the device clock by the gap between its sentAt and the server's receipt", () => {
    // The device clock is an hour behind: it stamped the event 10 s before sending it.
    const { row, payload } = enriched({
      type: 'track',
      event: 'E',
      userId: 'u',
      timestamp: '2026-03-01T10:59:50.000Z',
      sentAt: '2026-03-01T11:00:00.000Z',
    });
    expect(row.timestamp).toBe('2026-03-01T11:59:50.000Z');
    expect(payload.originalTimestamp).toBe('2026-03-01T10:59:50.000Z');
    expect(payload.sentAt).toBe('2026-03-01T11:00:00.000Z');
  });

  it("uses the batch's sentAt when the event has none, and records it on the event", () => {
    const { row, payload } = enriched(
      { type: 'track', event: 'E', userId: 'u', timestamp: '2026-03-01T10:59:50.000Z' },
      { batchSentAt: '2026-03-01T11:00:00.000Z' },
    );
    expect(row.timestamp).toBe('2026-03-01T11:59:50.000Z');
    expect(payload.sentAt).toBe('2026-03-01T11:00:00.000Z');
    // An event's own sentAt wins over the batch's.
    const own = enriched(
      {
        type: 'track',
        event: 'E',
        userId: 'u',
        timestamp: '2026-03-01T11:59:00.000Z',
        sentAt: '2026-03-01T12:00:00.000Z',
      },
      { batchSentAt: '2026-03-01T11:00:00.000Z' },
    );
    expect(own.row.timestamp).toBe('2026-03-01T11:59:00.000Z');
    expect(own.payload.sentAt).toBe('2026-03-01T12:00:00.000Z');
  });

  it('keeps a timestamp without sentAt as the device gave it (no correction possible)', () => {
    const { row, payload } = enriched({ type: 'track', event: 'E', userId: 'u', timestamp: '2025-12-24T18:00:00Z' });
    expect(row.timestamp).toBe('2025-12-24T18:00:00.000Z');
    expect(payload.originalTimestamp).toBe('2025-12-24T18:00:00.000Z');
    expect(payload).not.toHaveProperty('sentAt');
  });

  it('refuses a time too far in the future after correction, or before 1970, naming the field', () => {
    const at = (timestamp: string, path: string) =>
      enrichEvent({ type: 'track', event: 'E', userId: 'u', timestamp } as TrackingEvent, facts(), path);
    expect(at('2026-03-03T12:00:00Z', 'batch[3]')).toEqual({
      ok: false,
      issue: { path: 'batch[3].timestamp', message: '48 h in the future after clock-skew correction' },
    });
    // Within the allowed skew: accepted.
    expect(at('2026-03-02T11:00:00Z', 'batch[3]')).toMatchObject({
      ok: true,
      row: { timestamp: '2026-03-02T11:00:00.000Z' },
    });
    expect(at('1969-12-31T23:59:59Z', '')).toEqual({
      ok: false,
      issue: { path: 'timestamp', message: 'before 1970-01-01 after clock-skew correction' },
    });
  });

  it("adds the request's IP to the context unless the client set one, as it is (no truncation)", () => {
    expect(enriched({ type: 'track', event: 'E', userId: 'u' }).payload.context).toEqual({ ip: '203.0.113.7' });
    expect(enriched({ type: 'track', event: 'E', userId: 'u' }, { ip: '2001:db8::1' }).payload.context.ip).toBe(
      '2001:db8::1',
    );
    const own = enriched({ type: 'track', event: 'E', userId: 'u', context: { ip: '198.51.100.1' } });
    expect(own.payload.context.ip).toBe('198.51.100.1');
    // No IP known (a proxy that hides it) and no context: an empty context, never a missing one.
    expect(enriched({ type: 'identify', userId: 'u' }, { ip: undefined }).payload.context).toEqual({});
  });

  it("reads the campaign from the page's search or URL, and keeps one the client set", () => {
    const fromSearch = enriched({
      type: 'page',
      userId: 'u',
      context: { page: { search: '?utm_source=news&utm_campaign=spring&other=1' } },
    });
    expect(fromSearch.payload.context.campaign).toEqual({ source: 'news', name: 'spring' });
    const fromUrl = enriched({
      type: 'page',
      userId: 'u',
      context: { page: { url: 'https://shop.test/?utm_medium=email#top' } },
    });
    expect(fromUrl.payload.context.campaign).toEqual({ medium: 'email' });
    const kept = enriched({
      type: 'page',
      userId: 'u',
      context: { campaign: { name: 'client' }, page: { search: '?utm_campaign=url' } },
    });
    expect(kept.payload.context.campaign).toEqual({ name: 'client' });
    expect(
      enriched({ type: 'page', userId: 'u', context: { page: { url: 'https://shop.test/' } } }).payload.context,
    ).not.toHaveProperty('campaign');
  });

  it('derives os, device and browser from the user agent, without overwriting what the client sent', () => {
    const desktop = enriched({ type: 'track', event: 'E', userId: 'u', context: { userAgent: CHROME_ON_WINDOWS } });
    expect(desktop.payload.context).toMatchObject({
      os: { name: 'Windows', version: '10' },
      device: { type: 'desktop' },
      browser: { name: 'Chrome', version: '120.0.0.0' },
    });
    const phone = enriched({ type: 'track', event: 'E', userId: 'u', context: { userAgent: SAFARI_ON_IPHONE } });
    expect(phone.payload.context).toMatchObject({
      os: { name: 'iOS', version: '17.2' },
      device: { type: 'mobile', manufacturer: 'Apple', model: 'iPhone' },
      browser: { name: 'Mobile Safari', version: '17.2' },
    });
    const app = enriched({
      type: 'track',
      event: 'E',
      userId: 'u',
      context: { userAgent: SAFARI_ON_IPHONE, device: { type: 'tablet', id: 'd1' }, os: { name: 'iPadOS' } },
    });
    expect(app.payload.context.device).toEqual({ type: 'tablet', id: 'd1' });
    expect(app.payload.context.os).toEqual({ name: 'iPadOS' });
    expect(app.payload.context.browser).toEqual({ name: 'Mobile Safari', version: '17.2' });
  });

  it('adds nothing for an agent it cannot read (a script, garbage, empty)', () => {
    for (const userAgent of ['curl/8.4.0', 'x', '']) {
      const { context } = enriched({ type: 'track', event: 'E', userId: 'u', context: { userAgent } }).payload;
      expect(context).toEqual({ userAgent, ip: '203.0.113.7' });
    }
  });

  it('stores the sealed payload (PII at rest), and the row carries its clear ids', () => {
    const seal = (p: JsonObject): JsonObject => ({ ...p, traits: 'sealed' });
    const r = enrichEvent(
      { type: 'identify', userId: 'u1', traits: { email: 'ada@example.test' } } as TrackingEvent,
      facts({ pii: { sealPayload: seal } }),
      '',
    );
    if (!r.ok) throw new Error('refused');
    expect(JSON.parse(r.row.payload).traits).toBe('sealed');
    expect(r.row.payload).not.toContain('ada@example.test');
    expect(r.row.userId).toBe('u1');
  });
});
