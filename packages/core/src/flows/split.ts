import { createHash } from 'node:crypto';

/** Split percentages are honoured to the hundredth of a percent. */
export const SPLIT_BUCKETS = 10_000;

/**
 * A person's bucket (0 ... 9,999) at a split: a hash of (flow id, node id, profile id), so the same
 * person takes the same path in every run, in the runner and in simulation alike, and two splits of
 * one flow (or the same split in two flows) are independent.
 *
 * @example
 * splitBucket('flow-1', 'ab', 'profile-1'); // e.g. 4821, always the same
 */
export function splitBucket(flowId: string, nodeId: string, profileId: string): number {
  // NUL cannot occur in any of the three ids, so no two triples hash the same text.
  const digest = createHash('sha256').update(`${flowId}\0${nodeId}\0${profileId}`).digest();
  // 48 bits over 10,000 buckets: the modulo bias is below 1e-10.
  return digest.readUIntBE(0, 6) % SPLIT_BUCKETS;
}

/**
 * The path a bucket falls on, for percentages summing to 100 (each rounded to the hundredth).
 *
 * @example
 * splitPath(4821, [50, 50]); // 0
 */
export function splitPath(bucket: number, percents: readonly number[]): number {
  let upTo = 0;
  for (const [i, p] of percents.entries()) {
    upTo += Math.round(p * 100);
    if (bucket < upTo) return i;
  }
  return percents.length - 1;
}
