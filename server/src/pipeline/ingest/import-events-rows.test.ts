import { describe, expect, it } from 'vitest';
import { createPii } from '../../pii/index.ts';
import {
  csvEvent,
  derivedMessageId,
  headerMapping,
  importedEventRow,
  parseEventMapping,
} from './import-events-rows.ts';

// One row of a historical events file -> the stored row or the reason (pure: no database).

const pii = createPii({ secret: 's'.repeat(40) });
const NOW = Date.UTC(2026, 0, 15, 12);
const facts = { sourceId: 'import', receivedAt: NOW, maxFutureSkewMs: 86_400_000, pii };
const order = { type: 'track', event: 'Order Completed', userId: 'u1', timestamp: '2025-03-04T05:06:07+02:00' };

describe('importedEventRow', () => {
  it('keeps the original time (in UTC) apart from when it was received, and seals the payload', () => {
    const r = importedEventRow({ ...order, properties: { revenue: 12 } }, facts);
    if (!r.ok) throw new Error(r.reason);
    expect(r.row).toMatchObject({
      sourceId: 'import',
      type: 'track',
      event: 'Order Completed',
      userId: 'u1',
      timestamp: '2025-03-04T03:06:07.000Z',
      receivedAt: new Date(NOW).toISOString(),
    });
    expect(JSON.parse(r.row.payload)).toMatchObject({ properties: { revenue: 12 }, messageId: r.row.messageId });
  });

  it('derives the same messageId for the same event whatever its field order or time notation, another for another', () => {
    const a = importedEventRow(order, facts);
    const b = importedEventRow(
      { timestamp: '2025-03-04T03:06:07Z', userId: 'u1', event: 'Order Completed', type: 'track' },
      facts,
    );
    const c = importedEventRow({ ...order, properties: { revenue: 1 } }, facts);
    if (!a.ok || !b.ok || !c.ok) throw new Error('refused');
    expect(a.row.messageId).toMatch(/^import-[\w-]{43}$/);
    expect(b.row.messageId).toBe(a.row.messageId);
    expect(c.row.messageId).not.toBe(a.row.messageId);
    // The file's own messageId is kept.
    const own = importedEventRow({ ...order, messageId: 'm-1' }, facts);
    expect(own.ok && own.row.messageId).toBe('m-1');
    expect(derivedMessageId(pii, { ...order, messageId: 'x' })).toBe(derivedMessageId(pii, order));
  });

  it('refuses with a reason naming the field, never the value', () => {
    const reason = (raw: Record<string, unknown>) => {
      const r = importedEventRow(raw, facts);
      return r.ok ? null : r.reason;
    };
    expect(reason({ ...order, timestamp: '04/03/2025' })).toBe('timestamp: not an ISO-8601 date');
    expect(reason({ ...order, timestamp: undefined })).toBe('timestamp: missing (an imported event needs its time)');
    expect(reason({ ...order, timestamp: '2026-01-17T12:00:00Z' })).toBe('timestamp: 48 h in the future');
    expect(reason({ ...order, userId: undefined })).toBe('needs a userId or an anonymousId');
    expect(reason({ ...order, type: 'purchase' })).toMatch(/^unknown type: must be one of track, identify/);
    expect(reason({ ...order, event: undefined })).toBe('event: is required');
    expect(reason({ ...order, properties: { blob: 'x'.repeat(40_000) } })).toMatch(
      /^too large: the event is \d+ bytes, the limit is 32768$/,
    );
  });
});

describe('CSV mappings', () => {
  it('reads typed columns into their places; a header names them when no map is given', () => {
    const map = parseEventMapping(
      't=type,u=userId,when=timestamp,amt=properties.revenue:number,vip=traits.vip:boolean,x=skip',
    );
    expect(csvEvent({ t: 'track', u: 'u1', when: '2025-01-01', amt: '9.5', vip: 'true', x: 'y' }, map)).toEqual({
      type: 'track',
      userId: 'u1',
      timestamp: '2025-01-01',
      properties: { revenue: 9.5 },
      traits: { vip: true },
    });
    expect(csvEvent({ amt: 'ten' }, map)).toBe('column amt: not a number');
    const byHeader = headerMapping(['type', 'userId', 'properties', 'context.ip']);
    expect(
      typeof byHeader === 'object' && csvEvent({ properties: '{"a":[1]}', 'context.ip': '::1' }, byHeader),
    ).toEqual({
      properties: { a: [1] },
      context: { ip: '::1' },
    });
    expect(headerMapping(['type', 'when'])).toMatch(/^column when: /);
  });

  it('refuses a bad map entry by name', () => {
    expect(() => parseEventMapping('a=properties.x:date')).toThrow('type must be one of');
    expect(() => parseEventMapping('a=nowhere')).toThrow('"nowhere" is not a place in an event');
    expect(() => parseEventMapping('a=properties:number')).toThrow('properties is a whole object');
    expect(() => parseEventMapping('a=userId,a=anonymousId')).toThrow('column mapped twice');
  });
});
