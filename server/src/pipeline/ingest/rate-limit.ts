import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** Events each source may send to this process: an average rate and the most at once. */
export interface IngestRateLimit {
  /** Events per second on average; 0 disables the limit. */
  ratePerSecond: number;
  /**
   * Events one source may send within one window of `burst / ratePerSecond` seconds; at least the
   * largest request (config.ts checks it), or a request larger would never pass.
   */
  burst: number;
}

/** Decides whether a request's events fit the source's budget in this process. */
export interface IngestLimiter {
  /**
   * Takes `events` from the budget of `key`; resolves to null when they fit, or to the whole seconds
   * to wait before retrying when they do not (and then takes nothing: a refused request costs nothing).
   */
  take(key: string, events: number): Promise<number | null>;
}

/**
 * Creates the per-process ingest limiter, or undefined when the rate is 0. It is
 * rate-limiter-flexible's in-memory limiter: a fixed window of `burst / ratePerSecond` seconds in
 * which a source may send `burst` events, so over time at most `ratePerSecond` events/s pass (right
 * at a window's end and the next one's start, up to twice `burst` can pass close together). Every
 * process counts on its own: N servers behind a load balancer let a source send N times the rate.
 * A request costs its events (at least 1).
 *
 * @example
 * const limiter = createIngestLimiter({ ratePerSecond: 50_000, burst: 100_000 });
 * const wait = await limiter?.take(source.id, events.length); // null: go on; a number: 429
 */
export function createIngestLimiter(limit: IngestRateLimit): IngestLimiter | undefined {
  if (limit.ratePerSecond <= 0) return undefined;
  const limiter = new RateLimiterMemory({ points: limit.burst, duration: limit.burst / limit.ratePerSecond });
  return {
    async take(key, events) {
      const cost = Math.max(events, 1);
      try {
        await limiter.consume(key, cost);
        return null;
      } catch (refused) {
        if (!(refused instanceof RateLimiterRes)) throw refused;
        // The in-memory limiter counts refused points too; give them back, so a client retrying
        // early does not push its own next acceptance further away.
        await limiter.reward(key, cost);
        return Math.max(1, Math.ceil(refused.msBeforeNext / 1000));
      }
    },
  };
}
