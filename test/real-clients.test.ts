// The official Segment and RudderStack Node clients, unmodified, pointed at a running Cairn:
// every call they make must land in `events` exactly once, with Segment's field names.
import { randomUUID } from 'node:crypto';
import type { Cairn } from '@cairn/server';
import { createTestDatabase, POSTGRES_SKIP_REASON, startTestCairn, type TestDatabase } from '@cairn/server/testing';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { Analytics as SegmentAnalytics } from '@segment/analytics-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// biome-ignore lint/suspicious/noExplicitAny: stored payloads are checked by the assertions
type Payload = Record<string, any>;
interface StoredRow {
  type: string;
  message_id: string;
  event: string | null;
  user_id: string | null;
  anonymous_id: string | null;
  payload: Payload;
}

/** An axios error as the server answered it: status and body, so a refusal says why. */
function explain(err: unknown): string {
  const e = err as { message?: string; response?: { status: number; data: unknown } };
  return e.response ? `HTTP ${e.response.status} ${JSON.stringify(e.response.data)}` : String(e.message ?? err);
}

describe('official Node clients against Cairn on postgres', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let cairn: Cairn;
  let writeKey: string;

  beforeAll(async () => {
    db = await createTestDatabase('test/real-clients.test.ts', 'postgres');
    cairn = await startTestCairn(db.env);
    writeKey = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  /**
   * Every stored event whose userId, anonymousId or previousId belongs to this run, with its payload
   * opened (sensitive traits are stored encrypted: docs/design/pii.md).
   */
  const storedFor = async (run: string) =>
    (
      await cairn.sql<StoredRow[]>`
      SELECT type, message_id, event, user_id, anonymous_id, payload
      FROM events
      WHERE user_id LIKE ${`${run}%`}
        OR anonymous_id LIKE ${`${run}%`}
      ORDER BY id`
    ).map((r) => ({ ...r, payload: cairn.pii.openPayload(r.payload) }));

  /** The one stored row of a type, failing clearly when there are none or several. */
  const only = (rows: StoredRow[], type: string): StoredRow => {
    const ofType = rows.filter((r) => r.type === type);
    expect(ofType, `${type} rows`).toHaveLength(1);
    return ofType[0]!;
  };

  it('@segment/analytics-node: identify, track, page, screen, group and alias each land once', async () => {
    const run = `seg-${randomUUID().slice(0, 8)}-`;
    const user = `${run}user`;
    const statuses: number[] = [];
    const callbackErrors: unknown[] = [];
    const messageIds = new Map<string, string>();
    const analytics = new SegmentAnalytics({
      writeKey,
      host: cairn.url,
      flushAt: 4, // two requests: 4 events, then the remaining 2 on closeAndFlush
      flushInterval: 60_000,
      maxRetries: 3,
    });
    analytics.on('http_response', (r) => statuses.push(r.status));
    analytics.on('error', (err) => callbackErrors.push(err));
    const done = (type: string) => (err: unknown, ctx: { event: { messageId?: string } } | undefined) => {
      if (err) callbackErrors.push(err);
      if (ctx?.event.messageId) messageIds.set(type, ctx.event.messageId);
    };

    analytics.identify({ userId: user, traits: { email: 'seg@shop.test', plan: 'pro' } }, done('identify'));
    analytics.track(
      { userId: user, event: 'Order Completed', properties: { total: 42.5, items: ['a', 'b'] } },
      done('track'),
    );
    analytics.page(
      { anonymousId: `${run}anon`, category: 'Docs', name: 'Install', properties: { path: '/docs' } },
      done('page'),
    );
    analytics.screen({ userId: user, name: 'Settings', properties: { tab: 'billing' } }, done('screen'));
    analytics.group({ userId: user, groupId: `${run}acme`, traits: { employees: 12 } }, done('group'));
    analytics.alias({ userId: user, previousId: `${run}anon` }, done('alias'));
    await analytics.closeAndFlush({ timeout: 30_000 });

    expect(callbackErrors).toEqual([]);
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    expect(statuses.every((s) => s === 200)).toBe(true);

    const rows = await storedFor(run);
    expect(rows.map((r) => r.type).sort()).toEqual(['alias', 'group', 'identify', 'page', 'screen', 'track']);
    for (const [type, id] of messageIds) expect(only(rows, type).message_id, type).toBe(id);
    expect(messageIds.size).toBe(6);

    const identify = only(rows, 'identify');
    expect(identify.user_id).toBe(user);
    expect(identify.payload.traits).toEqual({ email: 'seg@shop.test', plan: 'pro' });

    const track = only(rows, 'track');
    expect(track.event).toBe('Order Completed');
    expect(track.payload).toMatchObject({ userId: user, event: 'Order Completed' });
    expect(track.payload.properties).toEqual({ total: 42.5, items: ['a', 'b'] });
    expect(track.payload.context.library.name).toBe('@segment/analytics-node');

    const page = only(rows, 'page');
    expect(page.anonymous_id).toBe(`${run}anon`);
    expect(page.event).toBe('Install');
    expect(page.payload).toMatchObject({ name: 'Install', category: 'Docs' });
    expect(page.payload.properties).toMatchObject({ path: '/docs' });

    const screen = only(rows, 'screen');
    expect(screen.event).toBe('Settings');
    expect(screen.payload.properties).toMatchObject({ tab: 'billing' });

    const group = only(rows, 'group');
    expect(group.payload).toMatchObject({ userId: user, groupId: `${run}acme`, traits: { employees: 12 } });

    const alias = only(rows, 'alias');
    expect(alias.payload).toMatchObject({ userId: user, previousId: `${run}anon` });

    // The client's writeKey-in-body copy must never be stored.
    for (const r of rows) expect(r.payload.writeKey, r.type).toBeUndefined();
  });

  // The default (gzip) is how every RudderStack user sends: axios labels the gzipped JSON
  // `application/x-www-form-urlencoded`, which RudderStack's own data plane ignores.
  it.each([
    ['gzip (the default)', true],
    ['gzip: false', false],
  ])('@rudderstack/rudder-sdk-node, %s: the same calls to /v1/batch each land once', async (_name, gzip) => {
    const run = `rud-${gzip ? 'z' : 'p'}-${randomUUID().slice(0, 8)}-`;
    const user = `${run}user`;
    const errors: unknown[] = [];
    const client = new RudderAnalytics(writeKey, {
      dataPlaneUrl: cairn.url,
      flushAt: 100,
      flushInterval: 60_000,
      retryCount: 0, // a refusal must surface here, not be retried away
      gzip,
      logLevel: 'error',
      errorHandler: (err) => errors.push(explain(err)),
    });
    const flush = () =>
      new Promise<void>((resolve, reject) => {
        client.flush((err) => (err ? reject(new Error(explain(err))) : resolve())).catch(reject);
      });

    client.identify({ userId: user, traits: { email: 'rud@shop.test', plan: 'team' } });
    client.track({ userId: user, event: 'Product Viewed', properties: { sku: 'X-1', price: 9.99 } });
    client.page({ anonymousId: `${run}anon`, name: 'Pricing', category: 'Marketing', properties: { path: '/p' } });
    client.screen({ userId: user, name: 'Home', properties: { variant: 'b' } });
    client.group({ userId: user, groupId: `${run}org`, traits: { name: 'Org' } });
    client.alias({ userId: user, previousId: `${run}anon` });
    // The first call flushes at once by design; these two flush the rest and wait for both requests.
    await flush();
    await flush();
    expect(errors).toEqual([]);

    const rows = await storedFor(run);
    expect(rows.map((r) => r.type).sort()).toEqual(['alias', 'group', 'identify', 'page', 'screen', 'track']);
    expect(new Set(rows.map((r) => r.message_id)).size).toBe(6);

    const identify = only(rows, 'identify');
    expect(identify.payload.traits).toEqual({ email: 'rud@shop.test', plan: 'team' });
    expect(identify.payload.context.library.name).toBe('analytics-node');
    expect(identify.payload.channel).toBe('server');

    const track = only(rows, 'track');
    expect(track.event).toBe('Product Viewed');
    expect(track.payload.properties).toEqual({ sku: 'X-1', price: 9.99 });
    // Rudder stamps originalTimestamp on the device: it must survive as an ISO date.
    expect(Number.isNaN(Date.parse(track.payload.originalTimestamp))).toBe(false);

    const page = only(rows, 'page');
    expect(page.event).toBe('Pricing');
    expect(page.payload).toMatchObject({ anonymousId: `${run}anon`, name: 'Pricing', category: 'Marketing' });

    const screen = only(rows, 'screen');
    expect(screen.payload).toMatchObject({ name: 'Home', properties: { variant: 'b' } });

    const group = only(rows, 'group');
    expect(group.payload).toMatchObject({ groupId: `${run}org`, traits: { name: 'Org' } });

    const alias = only(rows, 'alias');
    expect(alias.payload).toMatchObject({ userId: user, previousId: `${run}anon` });
  });

  it('a Segment client retrying the same batch (same messageIds) stores each event once', async () => {
    const run = `dup-${randomUUID().slice(0, 8)}-`;
    const send = async () => {
      const analytics = new SegmentAnalytics({ writeKey, host: cairn.url, flushAt: 50, flushInterval: 60_000 });
      for (let i = 0; i < 10; i++) {
        analytics.track({ userId: `${run}u`, event: 'Retry', messageId: `${run}${i}`, properties: { i } });
      }
      await analytics.closeAndFlush({ timeout: 30_000 });
    };
    await Promise.all([send(), send(), send()]);
    const rows = await storedFor(run);
    expect(rows.map((r) => r.message_id).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `${run}${i}`).sort());
  });
});
