// Fuzz cases that attack the event fields and the protocol: mixed valid/invalid batches, wrong types,
// prototype keys, content types and encodings, odd timestamps, endpoints and write keys.
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { ENDPOINTS, eventType, type FuzzCase, properties, req, validEvent } from './payload-kit.ts';

// Mutations that make an event certainly invalid (each is refused by a documented rule).
const INVALID: Array<(id: string) => unknown> = [
  (id) => ({ ...validEvent('track', id), timestamp: 'yesterday' }),
  (id) => ({ ...validEvent('track', id), type: 'bogus' }),
  (id) => ({ ...validEvent('track', id), event: undefined }),
  (id) => ({ ...validEvent('identify', id), userId: { nested: true } }),
  (id) => ({ ...validEvent('page', id), properties: 'not an object' }),
  (id) => ({ ...validEvent('track', id), properties: { text: 'nul\u0000byte' } }),
  (id) => ({ ...validEvent('track', id), traits: { '\ud800lone': 1 } }),
  (id) => ({ ...validEvent('track', id), context: nest(40) }),
  (id) => ({ ...validEvent('track', id), properties: { blob: 'x'.repeat(33 * 1024) } }),
  (id) => ({ ...validEvent('alias', id), previousId: undefined }),
  (id) => ({ type: 'track', event: 'NoIdentity', messageId: id }),
  (id) => ({ ...validEvent('track', id), timestamp: '2999-01-01T00:00:00Z' }),
  () => 42,
  () => null,
  () => ['array', 'event'],
];

function nest(depth: number): object {
  let v: object = { leaf: true };
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

export const mixedBatch = fc
  .tuple(
    fc.array(fc.tuple(fc.boolean(), eventType, fc.nat(INVALID.length - 1), properties), {
      minLength: 1,
      maxLength: 20,
    }),
    fc.constantFrom('/v1/batch', '/v1/import'),
  )
  .map(
    ([items, path]): FuzzCase => ({
      kind: 'mixed-batch',
      make(id) {
        const valid: string[] = [];
        const invalid: string[] = [];
        const batch = items.map(([ok, type, bad, props], j) => {
          const mid = `fz-${id}-${j}`;
          if (ok) {
            valid.push(mid);
            return validEvent(type, mid, { properties: props });
          }
          invalid.push(mid);
          return INVALID[bad]!(mid);
        });
        const text = JSON.stringify({ batch });
        // Over the request limit the whole body is refused: nothing of it may be stored.
        if (Buffer.byteLength(text) > 500 * 1024) {
          return req(path, text, { invalid: [...valid, ...invalid], expect: { status: 413 } });
        }
        // A batch whose only rejections are events over 32 KB is a 413; any other rejection makes it a 400.
        const allLarge = invalid.length > 0 && items.every(([ok, , bad]) => ok || bad === 8);
        const status = invalid.length === 0 ? 200 : allLarge ? 413 : 400;
        return req(path, text, { valid, invalid, expect: { status, accepted: valid.length } });
      },
    }),
  );

const FIELDS = [
  'type',
  'event',
  'userId',
  'anonymousId',
  'messageId',
  'groupId',
  'previousId',
  'name',
  'category',
  'properties',
  'traits',
  'context',
  'integrations',
  'timestamp',
  'originalTimestamp',
  'sentAt',
  'writeKey',
] as const;
// Values written as JSON text, so numbers JSON cannot round-trip (1e400) reach the server as sent.
const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '-0',
    '0.1e999999',
    'true',
    'false',
    'null',
    '[]',
    '{}',
    '""',
    '" "',
    '[null]',
    '{"$date":"2024-01-01"}',
    '"\\u0000"',
    '-1',
    '1.5',
    '9007199254740993',
  ),
);
export const wrongTypes = fc
  .tuple(
    eventType,
    fc.constantFrom(...FIELDS),
    oddValue,
    fc.boolean(),
    fc.constantFrom('batch', 'sentAt', 'none'),
    oddValue,
  )
  .map(
    ([type, field, value, inBatch, topField, topValue]): FuzzCase => ({
      kind: 'wrong-types',
      make(id) {
        const e = JSON.stringify(validEvent(type, `fzwt-${id}`));
        // Appended last, so it overrides the valid value (JSON.parse keeps the last duplicate key).
        const event = `${e.slice(0, -1)},${JSON.stringify(field)}:${value}}`;
        if (!inBatch) return req(`/v1/${type}`, event);
        const top = {
          batch: `{"batch":${topValue}}`,
          sentAt: `{"sentAt":${topValue},"batch":[${event}]}`,
          none: `{"batch":[${event}]}`,
        }[topField];
        return req('/v1/batch', top);
      },
    }),
  );

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf'];
export const protoKeys = fc
  .tuple(
    fc.constantFrom(...PROTO_KEYS),
    fc.constantFrom('top', 'event', 'properties', 'context', 'traits', 'batch-item'),
  )
  .map(
    ([key, where]): FuzzCase => ({
      kind: 'prototype-keys',
      make(id) {
        const k = JSON.stringify(key);
        const poison = `{"polluted":"yes","prototype":{"polluted":"yes"},"isAdmin":true}`;
        const e = (extra: string) => `{"type":"identify","userId":"u","messageId":"fzproto-${id}"${extra}}`;
        const body = {
          top: `{${k}:${poison},"batch":[${e('')}]}`,
          event: `{"batch":[${e(`,${k}:${poison}`)}]}`,
          properties: `{"batch":[${e(`,"properties":{${k}:${poison}}`)}]}`,
          context: `{"batch":[${e(`,"context":{${k}:${poison},"userAgent":{}}`)}]}`,
          traits: `{"batch":[${e(`,"traits":{${k}:${poison}}`)}]}`,
          'batch-item': `{"batch":{${k}:[${e('')}],"length":1,"0":${e('')}}}`,
        }[where];
        return req('/v1/batch', body);
      },
    }),
  );

const CONTENT_TYPES = [
  undefined,
  '',
  'application/json',
  'APPLICATION/JSON; charset=UTF-8',
  'application/json; charset=latin1',
  'application/vnd.cairn+json',
  'text/plain',
  'text/plain;charset=UTF-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'text/html',
  'application/xml',
  'a/b/c',
  ';;;',
  'json',
  '*/*',
  'application/',
];
const ENCODINGS = [
  'gzip-valid',
  'gzip-garbage',
  'gzip-truncated',
  'deflate-valid',
  'deflate-garbage',
  'br',
  'gzip, deflate',
  'x-gzip',
  'GZIP',
  'identity',
  'compress',
  'double-gzip',
  'gzip-bomb',
  'none',
  'zstd',
];
export const headersAndEncodings = fc
  .tuple(
    fc.constantFrom(...CONTENT_TYPES),
    fc.constantFrom(...ENCODINGS),
    fc.uint8Array({ minLength: 1, maxLength: 200 }),
  )
  .map(
    ([type, encoding, garbage]): FuzzCase => ({
      kind: 'content-type-encoding',
      make(id) {
        const plain = Buffer.from(JSON.stringify({ batch: [validEvent('track', `fzenc-${id}`)] }));
        const gz = gzipSync(plain);
        const [header, body]: [string | undefined, Uint8Array] = {
          'gzip-valid': ['gzip', gz],
          'gzip-garbage': ['gzip', garbage],
          'gzip-truncated': ['gzip', gz.subarray(0, Math.max(1, gz.length - 8))],
          'deflate-valid': ['deflate', deflateSync(plain)],
          'deflate-garbage': ['deflate', garbage],
          br: ['br', plain],
          'gzip, deflate': ['gzip, deflate', gz],
          'x-gzip': ['x-gzip', gz],
          GZIP: ['GZIP', gz],
          identity: ['identity', plain],
          compress: ['compress', plain],
          'double-gzip': ['gzip', gzipSync(gz)],
          'gzip-bomb': ['gzip', gzipSync(Buffer.alloc(3 * 1024 * 1024, 0x20))],
          none: [undefined, plain],
          zstd: ['zstd', plain],
        }[encoding] as [string | undefined, Uint8Array];
        const headers: Record<string, string> = {};
        if (type !== undefined) headers['content-type'] = type;
        if (header !== undefined) headers['content-encoding'] = header;
        return { ...req('/v1/batch', body), headers };
      },
    }),
  );

const ODD_TIMES = [
  '2024-02-30T00:00:00Z',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59Z',
  '2024-01-01T25:00:00Z',
  '2024-01-01',
  '1700000000',
  '2024-01-01T00:00:00+99:99',
  ' 2024-01-01T00:00:00Z',
  '2024-01-01T00:00:00.1234567890Z',
  '+275760-09-13T00:00:00Z',
  '2024-01-01t00:00:00z',
  '2024-01-01 00:00',
  '2024-13-01T00:00:00Z',
  '1969-12-31T23:59:59Z',
  '1970-01-01T00:00:00Z',
  'Mon, 01 Jan 2024 00:00:00 GMT',
  '2024-W01-1',
  '',
  'now',
  '2024-01-01T00:00:00-00:00',
  '2024-01-01T00:00:60Z',
  '2024-06-01T12:00:00+14:00',
  '2024-06-01T12:00:00-12',
  '99999-01-01T00:00:00Z',
];
const oddTime = fc.oneof(
  fc.constantFrom(...ODD_TIMES).map((t) => JSON.stringify(t)),
  fc.date({ noInvalidDate: true }).map((d) => JSON.stringify(d.toISOString())),
  fc.integer().map(String),
  fc.string({ maxLength: 30 }).map((s) => JSON.stringify(s)),
  fc.constantFrom('null', '{}', '[]', 'true', '1e400'),
);
export const timestamps = fc
  .tuple(eventType, fc.constantFrom('timestamp', 'originalTimestamp', 'sentAt'), oddTime, fc.option(oddTime))
  .map(
    ([type, field, value, batchSentAt]): FuzzCase => ({
      kind: 'timestamps',
      make(id) {
        const e = JSON.stringify(validEvent(type, `fzts-${id}`));
        const event = `${e.slice(0, -1)},${JSON.stringify(field)}:${value}}`;
        return req(
          '/v1/batch',
          batchSentAt === null ? `{"batch":[${event}]}` : `{"sentAt":${batchSentAt},"batch":[${event}]}`,
        );
      },
    }),
  );

const PATHS = [
  ...ENDPOINTS,
  '/v1/unknown',
  '/v1/Track',
  '/v1/track/',
  '/v1/%74rack',
  '/v1/',
  '/v1/batch?x=1',
  '/v1//batch',
];
const AUTH = [
  'valid',
  'none',
  'wrong',
  'malformed',
  'bearer',
  'empty-user',
  'body-number',
  'body-object',
  'body-valid',
];
export const endpointsAndAuth = fc.tuple(fc.constantFrom(...PATHS), fc.constantFrom(...AUTH), eventType).map(
  ([path, auth, type]): FuzzCase => ({
    kind: 'endpoints-auth',
    make(id) {
      const e = validEvent(type, `fzauth-${id}`);
      const batchy = path.includes('batch') || path.includes('import');
      const bodyKey = { 'body-number': 42, 'body-object': { k: 1 }, 'body-valid': '$KEY' }[auth];
      const body = batchy ? { writeKey: bodyKey, batch: [e] } : { ...e, writeKey: bodyKey };
      const r = req(path, JSON.stringify(body));
      // '' = no Authorization header; $KEY and $BASIC are filled in by the sender.
      r.headers.authorization =
        {
          valid: '$BASIC',
          wrong: 'Basic d2tfbm9wZTo=',
          malformed: 'Basic !!!not-base64',
          bearer: 'Bearer $KEY',
          'empty-user': 'Basic Og==',
        }[auth as string] ?? '';
      return r;
    },
  }),
);

/**
 * Every hostile case, weighted so the cheap ones dominate and the large ones stay a few percent.
 *
 * @example
 * const cases = fc.sample(fuzzCases, { numRuns: 10_000, seed: 42 });
 */
