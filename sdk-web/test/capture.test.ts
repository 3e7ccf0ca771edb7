import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { harness, ofType, ready, until } from './helpers/browser.ts';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('capture', { timeout: 60_000 }, () => {
  const h = harness();
  const delivered = (type: string, name?: string) => ofType(h.rec.delivered(), type, name);
  /** Sends a marker and waits for it: everything the tab queued before has been delivered by then. */
  const barrier = async (page: import('playwright-core').Page) => {
    await page.evaluate(() => window.cairn.track('Marker'));
    await until(() => delivered('track', 'Marker').length, 'the marker event');
  };

  it('sends one Segment-shaped page view on load, with page context, campaign and library', async () => {
    const { page } = await h.open('/landing?utm_source=news&utm_campaign=spring&x=1');
    await until(() => delivered('page').length, 'the first page view');
    const [req] = h.rec.requests;
    expect(req!.headers['content-type']).toMatch(/^text\/plain/);
    expect(req!.body.writeKey).toBe('wk_test');
    expect(Date.parse(req!.body.sentAt)).not.toBeNaN();
    const url = `${h.rec.origin}/landing?utm_source=news&utm_campaign=spring&x=1`;
    expect(req!.body.batch[0]).toMatchObject({
      type: 'page',
      messageId: expect.stringMatching(UUID),
      anonymousId: expect.stringMatching(UUID),
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      properties: { path: '/landing', search: '?utm_source=news&utm_campaign=spring&x=1', title: 'Test page', url },
      context: {
        library: { name: 'cairn-web', version },
        campaign: { source: 'news', name: 'spring' },
        page: { path: '/landing', title: 'Test page', url },
        locale: expect.any(String),
        timezone: expect.any(String),
        userAgent: expect.any(String),
        screen: { width: expect.any(Number), height: expect.any(Number), density: expect.any(Number) },
      },
    });
    await barrier(page);
    expect(delivered('page')).toHaveLength(1);
  });

  it('switches auto capture off: no page view, no campaign, no page context', async () => {
    const { page } = await h.open('/?utm_source=news', { autoPage: false, campaign: false, pageContext: false });
    await barrier(page);
    expect(delivered('page')).toHaveLength(0);
    expect(Object.keys(delivered('track')[0]!.context)).toEqual(['library']);
  });

  it('tracks and identifies: userId on later events, traits merged for the same user and reset for another', async () => {
    const { page } = await h.open('/', { autoPage: false });
    await page.evaluate(() => {
      window.cairn.identify('u1', { email: 'a@example.com', plan: 'pro' });
      window.cairn.track('Signed Up', { method: 'email' });
      window.cairn.identify({ plan: 'team' });
    });
    await until(() => delivered('identify').length === 2, 'two identify calls');
    const [first, second] = delivered('identify');
    const track = delivered('track', 'Signed Up')[0];
    expect(first).toMatchObject({ userId: 'u1', traits: { email: 'a@example.com', plan: 'pro' } });
    expect(track).toMatchObject({ userId: 'u1', anonymousId: first!.anonymousId, properties: { method: 'email' } });
    expect(second).toMatchObject({ userId: 'u1', traits: { email: 'a@example.com', plan: 'team' } });
    expect(await page.evaluate(() => window.cairn.user())).toEqual({
      anonymousId: first!.anonymousId,
      userId: 'u1',
      traits: { email: 'a@example.com', plan: 'team' },
    });
    await page.evaluate(() => window.cairn.identify('u2', { plan: 'free' }));
    await until(() => delivered('identify').length === 3, 'the identify of another user');
    expect(delivered('identify')[2]!.traits).toEqual({ plan: 'free' });
  });

  it('keeps the anonymousId in a 1-year SameSite=Lax cookie mirrored in localStorage, across reloads', async () => {
    const { page } = await h.open('/', { autoPage: false });
    const { anonymousId } = await page.evaluate(() => window.cairn.identify('u9').user());
    const cookie = (await h.context.cookies()).find((c) => c.name === 'cairn_aid');
    expect(cookie).toMatchObject({ value: anonymousId, sameSite: 'Lax', path: '/' });
    expect(cookie!.expires * 1000 - Date.now()).toBeGreaterThan(364 * 86_400_000);
    expect(await page.evaluate(() => localStorage.getItem('cairn_aid'))).toBe(anonymousId);
    await page.reload();
    await ready(page);
    expect(await page.evaluate(() => window.cairn.user())).toMatchObject({ anonymousId, userId: 'u9' });
    // A cleared cookie (e.g. Safari's cap on script-set cookies) is restored from the localStorage mirror.
    await h.context.clearCookies();
    await page.reload();
    await ready(page);
    expect(await page.evaluate(() => window.cairn.user().anonymousId)).toBe(anonymousId);
    expect((await h.context.cookies()).find((c) => c.name === 'cairn_aid')?.value).toBe(anonymousId);
  });

  it('reset() forgets the user and starts a new anonymousId', async () => {
    const { page } = await h.open('/', { autoPage: false });
    const before = await page.evaluate(() => window.cairn.identify('u1', { a: 1 }).user());
    const after = await page.evaluate(() => window.cairn.reset().track('After reset').user());
    expect(after).toEqual({ anonymousId: expect.any(String), userId: null, traits: {} });
    expect(after.anonymousId).not.toBe(before.anonymousId);
    await until(() => delivered('track', 'After reset').length, 'the event after reset');
    const e = delivered('track', 'After reset')[0]!;
    expect(e.anonymousId).toBe(after.anonymousId);
    expect(e).not.toHaveProperty('userId');
    expect(await page.evaluate(() => [localStorage.getItem('cairn_uid'), localStorage.getItem('cairn_aid')])).toEqual([
      null,
      after.anonymousId,
    ]);
  });

  it('batches: one request at flushAt events', async () => {
    const { page } = await h.open('/', { autoPage: false, flushAt: 3, flushInterval: 60_000 });
    await page.evaluate(() => {
      for (const e of ['A', 'B', 'C']) window.cairn.track(e);
    });
    await until(() => h.rec.delivered().length === 3, 'three events');
    expect(h.rec.requests.map((r) => r.body.batch.map((e) => e.event))).toEqual([['A', 'B', 'C']]);
  });

  it('batches: one request after flushInterval when fewer than flushAt events wait', async () => {
    const { page } = await h.open('/', { autoPage: false, flushAt: 100, flushInterval: 200 });
    await page.evaluate(() => {
      for (const e of ['A', 'B']) window.cairn.track(e);
    });
    await until(() => h.rec.delivered().length === 2, 'two events');
    expect(h.rec.requests.map((r) => r.body.batch.map((e) => e.event))).toEqual([['A', 'B']]);
  });

  it('SPA: a page view per route change, none for a replaceState that keeps the path', async () => {
    const { page } = await h.open('/spa');
    await page.evaluate(() => history.pushState({}, '', '/spa/a'));
    await page.evaluate(() => history.replaceState({}, '', '/spa/a?tab=2'));
    await page.evaluate(() => history.pushState({}, '', '/spa/b'));
    await page.evaluate(
      () =>
        new Promise((r) => {
          addEventListener('popstate', r, { once: true });
          history.back();
        }),
    );
    await until(() => delivered('page').length >= 4, 'four page views');
    await barrier(page);
    const pages = delivered('page');
    expect(pages.map((e) => e.properties!.path + (e.properties!.search as string))).toEqual([
      '/spa',
      '/spa/a',
      '/spa/b',
      '/spa/a?tab=2',
    ]);
    expect(pages[2]!.properties!.referrer).toBe(`${h.rec.origin}/spa/a?tab=2`);
  });

  it('middleware can change or drop events; a throwing one drops its event and stays inside', async () => {
    const { page, errors } = await h.open('/', { autoPage: false });
    await page.evaluate(() => {
      window.cairn
        .use((e) => (e.event === 'Secret' ? null : e))
        .use((e) => {
          if (e.event === 'Boom') throw new Error('middleware bug');
          return { ...e, properties: { ...e.properties, scrubbed: true } };
        })
        .track('Secret')
        .track('Boom')
        .track('Public', { a: 1 });
    });
    await barrier(page);
    expect(h.rec.delivered().map((e) => e.event)).toEqual(['Public', 'Marker']);
    expect(delivered('track', 'Public')[0]!.properties).toEqual({ a: 1, scrubbed: true });
    expect(errors).toEqual([]);
  });
});
