// The ingest rate limit end to end: @cairn/node sending more than a source's budget to the real server.
// Refused batches come back as 429 with Retry-After; the client waits that long and sends them again, so
// every event is stored exactly once and the client reports no error.
import { Cairn as CairnClient, type CairnError, type RetryEvent } from '@cairn/node';
import type { Cairn } from '@cairn/server';
import { createTestDatabase, POSTGRES_SKIP_REASON, startTestCairn, type TestDatabase } from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('ingest rate limit with @cairn/node', { timeout: 60_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;

  beforeAll(async () => {
    db = await createTestDatabase('test/ingest-rate-limit.test.ts', 'postgres');
    // 2,500 events/s in bursts of 2,500 (the least: the largest batch): windows of 1 s.
    cairn = await startTestCairn({ ...db.env, CAIRN_INGEST_RATE_PER_S: '2500', CAIRN_INGEST_BURST: '2500' });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('delivers every event once through 429s, waiting Retry-After between attempts', async () => {
    // Three windows' worth, sent at once.
    const N = 7000;
    const errors: CairnError[] = [];
    const retries: RetryEvent[] = [];
    // Backoff far longer than the window: only the server's Retry-After lets it finish in time.
    const client = new CairnClient({
      writeKey: cairn.demoSource!.writeKey,
      host: cairn.url,
      flushAt: 500,
      flushInterval: 50,
      maxRetries: 20,
      retryBaseDelay: 60_000,
      retryMaxDelay: 60_000,
      onError: (e) => errors.push(e),
    });
    client.on('retry', (r) => retries.push(r));
    for (let i = 0; i < N; i++) client.track({ userId: 'limited', event: 'Limited', properties: { i } });
    await client.close();

    expect(errors).toEqual([]);
    expect(retries.length).toBeGreaterThan(0);
    for (const r of retries) {
      expect(r.status).toBe(429);
      // Whole seconds from Retry-After, at most one window.
      expect(r.delayMs).toBe(1000);
    }
    const rows = await cairn.sql<{ i: number; n: number }[]>`
      SELECT (payload -> 'properties' ->> 'i')::int AS i, count(*)::int AS n
      FROM events
      WHERE event = 'Limited'
      GROUP BY 1
      ORDER BY 1`;
    expect(rows.map((r) => [r.i, r.n])).toEqual([...Array(N).keys()].map((i) => [i, 1]));
  });
});
