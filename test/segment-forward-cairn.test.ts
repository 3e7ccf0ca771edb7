// Another Cairn as the target: the forwarded events are stored under their own messageIds with their
// corrected timestamps (not corrected a second time), a resend is deduplicated, and a partly refused
// batch fails only the refused events.
import { runPlugin } from '@cairn/plugin-api';
import forward from '@cairn/plugin-segment-forward';
import type { Cairn } from '@cairn/server';
import { createTestDatabase, startTestCairn, TEST_ADMIN_KEY, type TestDatabase } from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('segment-forward into a real Cairn (embedded database)', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let writeKey: string;

  beforeAll(async () => {
    db = await createTestDatabase('segment-forward/cairn-target.test.ts', 'embedded');
    cairn = await startTestCairn(db.env);
    writeKey = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  const stored = (messageId: string, extra: Record<string, unknown> = {}) => ({
    type: 'track',
    event: 'Order Completed',
    messageId,
    userId: 'fwd-user-1',
    // As the first Cairn stored it: corrected timestamp, and the device clock fields it was sent with.
    timestamp: '2026-11-01T09:59:58.000Z',
    originalTimestamp: '2026-11-01T10:04:58.000Z',
    sentAt: '2026-11-01T10:05:00.000Z',
    receivedAt: '2026-11-01T10:00:00.000Z',
    properties: { total: 42 },
    ...extra,
  });

  const storedInTarget = async (messageId: string) => {
    const res = await fetch(`${cairn.url}/api/events?messageId=${messageId}`, {
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { data: Array<{ payload: Record<string, unknown> }> }).data;
  };

  it('stores the events with their messageIds and timestamps, once however often they are sent', async () => {
    const settings = { endpoint: cairn.url, writeKey };
    const events = [stored('fwd-1'), stored('fwd-2')];
    expect((await runPlugin(forward, settings, events)).outcomes.map((o) => o.status)).toEqual([
      'delivered',
      'delivered',
    ]);
    expect((await runPlugin(forward, settings, events)).outcomes.map((o) => o.status)).toEqual([
      'delivered',
      'delivered',
    ]);
    const rows = await storedInTarget('fwd-1');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.payload).toMatchObject({
      messageId: 'fwd-1',
      event: 'Order Completed',
      userId: 'fwd-user-1',
      timestamp: '2026-11-01T09:59:58.000Z',
      properties: { total: 42 },
    });
    expect(await storedInTarget('fwd-2')).toHaveLength(1);
  });

  it('fails only the events the target refuses', async () => {
    const { outcomes } = await runPlugin(forward, { endpoint: cairn.url, writeKey }, [
      stored('fwd-3'),
      stored('fwd-4', { userId: 'u'.repeat(300) }),
      stored('fwd-5'),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['delivered', 'failed', 'delivered']);
    expect(outcomes[1]).toMatchObject({ error: expect.stringContaining('batch[1].userId') });
    expect(await storedInTarget('fwd-5')).toHaveLength(1);
    expect(await storedInTarget('fwd-4')).toHaveLength(0);
  });

  it('dead-letters everything when the write key is unknown', async () => {
    const { outcomes } = await runPlugin(forward, { endpoint: cairn.url, writeKey: 'nope' }, [stored('fwd-6')]);
    expect(outcomes).toEqual([{ status: 'failed', statusCode: 401, error: expect.stringContaining('HTTP 401') }]);
  });
});
