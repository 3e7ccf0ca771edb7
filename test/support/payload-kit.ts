// Shared pieces of the fuzz payload generators: the request shape, byte helpers, valid events.
import fc from 'fast-check';

/** One request to send. `valid`/`invalid` list messageIds the server must / must not store. */
export interface FuzzRequest {
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
  /** Send without Content-Length (chunked), so the server must count while reading. */
  chunked: boolean;
  valid: string[];
  invalid: string[];
  /** For mixed batches: the answer is known exactly. */
  expect?: { status: number; accepted?: number };
}

/** A generated case: its kind (for the histogram) and how to build it for a given case number. */
export interface FuzzCase {
  kind: string;
  make(id: string): FuzzRequest;
}

const enc = new TextEncoder();
export const bytes = (s: string): Uint8Array => enc.encode(s);
export const cat = (...parts: Array<Uint8Array | string>): Uint8Array =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

export const TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export const ENDPOINTS = ['/v1/batch', '/v1/import', ...TYPES.map((t) => `/v1/${t}`)];

/** A valid event of `type` with messageId `id`. */
export function validEvent(type: (typeof TYPES)[number], id: string, extra: object = {}): Record<string, unknown> {
  const e: Record<string, unknown> = { type, messageId: id, userId: `u-${id}`, ...extra };
  if (type === 'track') e.event = 'Fuzzed';
  if (type === 'group') e.groupId = 'g-1';
  if (type === 'alias') e.previousId = `p-${id}`;
  if (type === 'page' || type === 'screen') e.name = 'Screen';
  return e;
}

export const req = (path: string, body: Uint8Array | string, more: Partial<FuzzRequest> = {}): FuzzRequest => ({
  path,
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? bytes(body) : body,
  chunked: false,
  valid: [],
  invalid: [],
  ...more,
});

export const jsonish = fc.string({
  unit: fc.constantFrom(...'{}[]":,0123456789.eE+- \\ntrufalsbatchypewrKk\u0000\t'.split('')),
  maxLength: 200,
});
export const properties = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
export const eventType = fc.constantFrom(...TYPES);
