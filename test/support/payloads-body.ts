// Fuzz cases that attack the body as bytes and as JSON text: random bytes, broken and garbage JSON,
// nesting bombs, huge strings, NUL and lone surrogates, invalid UTF-8.
import fc from 'fast-check';
import { bytes, cat, ENDPOINTS, eventType, type FuzzCase, jsonish, req, validEvent } from './payload-kit.ts';

export const randomBytes = fc
  .tuple(fc.uint8Array({ maxLength: 3000 }), fc.constantFrom(...ENDPOINTS))
  .map(([b, path]): FuzzCase => ({ kind: 'random-bytes', make: () => req(path, b) }));

export const truncatedJson = fc
  .tuple(fc.array(eventType, { minLength: 1, maxLength: 5 }), fc.double({ min: 0, max: 1, noNaN: true }))
  .map(
    ([types, at]): FuzzCase => ({
      kind: 'truncated-json',
      make(id) {
        const text = JSON.stringify({ batch: types.map((t, j) => validEvent(t, `fzcut-${id}-${j}`)) });
        return req('/v1/batch', text.slice(0, Math.max(1, Math.floor(text.length * at)) - 1 || 1));
      },
    }),
  );

export const garbageJson = fc
  .tuple(jsonish, fc.constantFrom(...ENDPOINTS))
  .map(([text, path]): FuzzCase => ({ kind: 'json-garbage', make: () => req(path, text) }));

export const deepNesting = fc
  .tuple(
    fc.constantFrom(33, 100, 1000, 10_000, 100_000),
    fc.constantFrom('open-arrays', 'closed-arrays', 'batch-arrays', 'property-objects', 'event-arrays'),
    fc.constantFrom('/v1/batch', '/v1/track'),
  )
  .map(
    ([depth, shape, path]): FuzzCase => ({
      kind: `deep-nesting`,
      make(id) {
        const arrays = '['.repeat(depth) + ']'.repeat(depth);
        const objects = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
        const event = (props: string) =>
          `{"type":"track","event":"Deep","userId":"u","messageId":"fzdeep-${id}","properties":${props}}`;
        const body = {
          'open-arrays': '['.repeat(depth),
          'closed-arrays': arrays,
          'batch-arrays': `{"batch":${arrays}}`,
          'property-objects': path === '/v1/batch' ? `{"batch":[${event(objects)}]}` : event(objects),
          'event-arrays': path === '/v1/batch' ? `{"batch":[${event(`{"x":${arrays}}`)}]}` : event(`{"x":${arrays}}`),
        }[shape];
        return req(path, body, { invalid: [`fzdeep-${id}`] });
      },
    }),
  );

export const hugeStrings = fc
  .tuple(
    fc.constantFrom('event-near-32k', 'batch-near-500k', 'over-500k', 'name-long'),
    fc.integer({ min: -300, max: 300 }),
    fc.boolean(),
  )
  .map(
    ([shape, delta, chunked]): FuzzCase => ({
      kind: 'huge-strings',
      make(id) {
        const one = (j: number, size: number) =>
          validEvent('track', `fzbig-${id}-${j}`, { properties: { s: 'x'.repeat(size) } });
        let body: string;
        if (shape === 'event-near-32k') body = JSON.stringify({ batch: [one(0, 32 * 1024 - 150 + delta)] });
        else if (shape === 'batch-near-500k') {
          body = JSON.stringify({ batch: Array.from({ length: 16 }, (_, j) => one(j, 31_900 + delta)) });
        } else if (shape === 'over-500k') body = JSON.stringify({ batch: [one(0, 600 * 1024 + delta)] });
        else body = JSON.stringify(validEvent('track', `fzbig-${id}-0`, { event: 'e'.repeat(200 + Math.abs(delta)) }));
        return req('/v1/batch', body, { chunked });
      },
    }),
  );

// NUL and lone surrogates, raw and escaped, in keys and values of every part of an event.
const BAD_TEXT: Array<{ name: string; raw: Uint8Array }> = [
  { name: 'escaped-nul', raw: bytes('\\u0000') },
  { name: 'escaped-lone-high', raw: bytes('\\ud800') },
  { name: 'escaped-lone-low', raw: bytes('x\\udc00y') },
  { name: 'escaped-reversed-pair', raw: bytes('\\udc00\\ud800') },
  { name: 'escaped-valid-pair', raw: bytes('\\ud83d\\ude00') },
  { name: 'raw-nul', raw: Uint8Array.of(0) },
  { name: 'raw-cesu-surrogate', raw: Uint8Array.of(0xed, 0xa0, 0x80) },
  { name: 'raw-overlong-nul', raw: Uint8Array.of(0xc0, 0x80) },
  { name: 'raw-control', raw: Uint8Array.of(0x01, 0x1f) },
];
export const badChars = fc
  .tuple(
    fc.constantFrom(...BAD_TEXT),
    fc.constantFrom(
      'userId',
      'event',
      'messageId',
      'properties-key',
      'properties-value',
      'context-key',
      'traits-value',
    ),
    fc.constantFrom('/v1/batch', '/v1/track'),
  )
  .map(
    ([bad, where, path]): FuzzCase => ({
      kind: 'bad-chars',
      make(id) {
        const s = (prefix: string) => cat('"', prefix, bad.raw, '"');
        const field = (name: string, value: Uint8Array | string) => cat(`"${name}":`, value);
        const parts: Uint8Array[] = [
          field('type', '"track"'),
          where === 'event' ? field('event', s('e')) : field('event', '"E"'),
          where === 'userId' ? field('userId', s('u')) : field('userId', '"u"'),
          where === 'messageId' ? field('messageId', s(`fzbad-${id}`)) : field('messageId', `"fzbad-${id}"`),
        ];
        if (where === 'properties-key') parts.push(field('properties', cat('{', s('k'), ':1}')));
        if (where === 'properties-value') parts.push(field('properties', cat('{"k":', s('v'), '}')));
        if (where === 'context-key') parts.push(field('context', cat('{', s('c'), ':"v"}')));
        if (where === 'traits-value') parts.push(field('traits', cat('{"t":', s('v'), '}')));
        const event = cat('{', ...parts.flatMap((p, i) => (i === 0 ? [p] : [bytes(','), p])), '}');
        return req(path, path === '/v1/batch' ? cat('{"batch":[', event, ']}') : event);
      },
    }),
  );

const INVALID_UTF8 = [
  [0xff],
  [0xc3],
  [0xe2, 0x82],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xfe, 0xff],
];
export const invalidUtf8 = fc
  .tuple(fc.constantFrom(...INVALID_UTF8), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean())
  .map(
    ([seq, at, bom]): FuzzCase => ({
      kind: 'invalid-utf8',
      make(id) {
        const text = bytes(
          JSON.stringify({ batch: [validEvent('track', `fzutf-${id}`, { properties: { s: 'héllo' } })] }),
        );
        const i = Math.floor(text.length * at);
        const body = cat(
          bom ? Uint8Array.of(0xef, 0xbb, 0xbf) : '',
          text.subarray(0, i),
          Uint8Array.from(seq),
          text.subarray(i),
        );
        return req('/v1/batch', body);
      },
    }),
  );
