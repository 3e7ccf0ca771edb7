// Hostile and malformed tracking requests for the fuzz test, generated with fast-check. Large bodies
// are built lazily (`make()`), so 10,000 cases never sit in memory at once.
import fc from 'fast-check';
import type { FuzzCase } from './payload-kit.ts';
import {
  badChars,
  deepNesting,
  garbageJson,
  hugeStrings,
  invalidUtf8,
  randomBytes,
  truncatedJson,
} from './payloads-body.ts';
import {
  endpointsAndAuth,
  headersAndEncodings,
  mixedBatch,
  protoKeys,
  timestamps,
  wrongTypes,
} from './payloads-fields.ts';

export type { FuzzCase, FuzzRequest } from './payload-kit.ts';

/**
 * Every hostile case, weighted so the cheap ones dominate and the large ones stay a few percent.
 *
 * @example
 * const cases = fc.sample(fuzzCases, { numRuns: 10_000, seed: 42 });
 */
export const fuzzCases: fc.Arbitrary<FuzzCase> = fc.oneof(
  { arbitrary: mixedBatch, weight: 20 },
  { arbitrary: randomBytes, weight: 8 },
  { arbitrary: truncatedJson, weight: 8 },
  { arbitrary: garbageJson, weight: 8 },
  { arbitrary: deepNesting, weight: 3 },
  { arbitrary: hugeStrings, weight: 1 },
  { arbitrary: badChars, weight: 10 },
  { arbitrary: wrongTypes, weight: 15 },
  { arbitrary: protoKeys, weight: 6 },
  { arbitrary: invalidUtf8, weight: 5 },
  { arbitrary: headersAndEncodings, weight: 7 },
  { arbitrary: timestamps, weight: 8 },
  { arbitrary: endpointsAndAuth, weight: 6 },
);
