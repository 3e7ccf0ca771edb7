import { describe, expect, it } from 'vitest';
import { campaignFromUrl } from './campaign.ts';
import { correctTime } from './clock.ts';
import { parseTimestamp, validateEvent } from './event.ts';
import { scanJson } from './scan.ts';

describe('validateEvent', () => {
  it('accepts a minimal track event and converts numeric ids to strings', () => {
    const r = validateEvent({ type: 'track', event: 'Order Completed', userId: 42 }, 'batch[0]');
    expect(r).toEqual({ ok: true, event: { type: 'track', event: 'Order Completed', userId: '42' } });
  });

  it('takes the type from the endpoint and refuses a contradicting one', () => {
    expect(validateEvent({ userId: 'u' }, '', 'identify')).toMatchObject({ ok: true, event: { type: 'identify' } });
    expect(validateEvent({ type: 'track', userId: 'u' }, '', 'identify')).toEqual({
      ok: false,
      issue: { path: 'type', message: 'must be "identify" on this endpoint' },
    });
  });

  it.each([
    [{ type: 'track', userId: 'u' }, 'batch[3].event: is required'],
    [{ type: 'track', event: 'x' }, 'batch[3]: needs a userId or an anonymousId'],
    [{ type: 'track', event: 'x', userId: '', anonymousId: null }, 'batch[3]: needs a userId or an anonymousId'],
    [{ type: 'click', userId: 'u' }, 'batch[3].type: must be one of track, identify, page, screen, group, alias'],
    [{ type: 'track', event: 'x', userId: 'u', timestamp: 'yesterday' }, 'batch[3].timestamp: not an ISO-8601 date'],
    [{ type: 'track', event: 'x', userId: 'u', timestamp: 1700000000 }, 'batch[3].timestamp: not an ISO-8601 date'],
    [{ type: 'track', event: 'x', userId: { id: 1 } }, 'batch[3].userId: must be a string or a number'],
    [{ type: 'track', event: 7, userId: 'u' }, 'batch[3].event: must be a string'],
    [{ type: 'track', event: 'x', userId: 'u', properties: [1] }, 'batch[3].properties: must be a JSON object'],
    [{ type: 'group', userId: 'u' }, 'batch[3].groupId: is required'],
    [{ type: 'alias', anonymousId: 'a', previousId: 'p' }, 'batch[3].userId: is required'],
    [{ type: 'track', event: 'x', userId: 'u'.repeat(256) }, 'batch[3].userId: longer than 255 characters'],
    [
      { type: 'track', event: 'x', userId: 'u', properties: { 'bad key': 'a\u0000b' } },
      'batch[3].properties["bad key"]: contains a NUL character (U+0000), which cannot be stored',
    ],
    [
      { type: 'track', event: 'x', userId: 'u', properties: { s: 'a\uD800' } },
      'batch[3].properties.s: contains an unpaired UTF-16 surrogate (invalid Unicode)',
    ],
    ['not an object', 'batch[3]: must be a JSON object'],
  ])('refuses %j with a precise reason', (input, expected) => {
    const r = validateEvent(input, 'batch[3]');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(`${r.issue.path}: ${r.issue.message}`).toBe(expected);
  });

  it('keeps unknown top-level fields', () => {
    const r = validateEvent({ type: 'page', anonymousId: 'a', custom: { x: 1 } }, '');
    expect(r.ok && r.event.custom).toEqual({ x: 1 });
  });
});

describe('scanJson', () => {
  it('refuses nesting deeper than the limit without recursion', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(scanJson(deep, 'x', 32)?.message).toBe('nested deeper than 32 levels');
  });
  it('accepts paired surrogates (emoji)', () => {
    expect(scanJson({ e: '🙂' }, '')).toBeNull();
  });
});

describe('parseTimestamp', () => {
  it('reads an offset-less time as UTC, not local time', () => {
    expect(parseTimestamp('2026-01-02T03:04:05')).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(parseTimestamp('2026-01-02T03:04:05.123+02:00')).toBe(Date.UTC(2026, 0, 2, 1, 4, 5, 123));
    expect(parseTimestamp('2026-13-02T03:04:05Z')).toBeNaN();
  });
});

describe('correctTime', () => {
  const received = Date.parse('2026-01-01T12:00:10Z');
  it('corrects a device clock one hour behind', () => {
    const t = correctTime({ timestamp: '2026-01-01T11:00:00Z', sentAt: '2026-01-01T11:00:10Z' }, received);
    expect(new Date(t.timestamp).toISOString()).toBe('2026-01-01T12:00:00.000Z');
    expect(t.skewMs).toBe(-3_600_000);
  });
  it('uses the batch sentAt when the event has none, and receivedAt when nothing is sent', () => {
    const t = correctTime({ timestamp: '2026-01-01T11:00:00Z' }, received, '2026-01-01T11:00:05Z');
    expect(new Date(t.timestamp).toISOString()).toBe('2026-01-01T12:00:05.000Z');
    expect(correctTime({}, received)).toEqual({ timestamp: received });
  });
});

describe('campaignFromUrl', () => {
  it('maps utm_campaign to name and keeps other utm keys', () => {
    expect(campaignFromUrl('https://x.test/p?utm_source=news&utm_campaign=spring&utm_foo=bar&q=1#h')).toEqual({
      source: 'news',
      name: 'spring',
      foo: 'bar',
    });
    expect(campaignFromUrl('?q=1')).toBeUndefined();
  });
});

describe('storableText', () => {
  it('replaces NUL and unpaired surrogates, keeps paired ones', async () => {
    const { storableText } = await import('./scan.ts');
    expect(storableText('a\u0000b\uD800c🙂')).toBe('a\uFFFDb\uFFFDc🙂');
  });
});
