import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { harness, ofType, ready, until } from './helpers/browser.ts';

describe('consent', { timeout: 60_000 }, () => {
  const h = harness();
  const named = (name: string) => ofType(h.rec.delivered(), 'track', name);
  const storage = (page: Page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('cairn')));
  const cookies = async () => (await h.context.cookies()).filter((c) => c.name.startsWith('cairn'));
  /** Absence can only be observed by waiting: several flush intervals pass (flushAt 1 would send at once). */
  const settle = (page: Page) => page.evaluate(() => new Promise((r) => setTimeout(r, 300)));

  it('consent mode: no request, cookie or storage before the grant; the waiting events flow after it', async () => {
    const { page } = await h.open('/', { requireConsent: true, flushInterval: 50 });
    await page.evaluate(() => window.cairn.track('Before consent'));
    await settle(page);
    expect(h.rec.requests).toEqual([]);
    expect(await cookies()).toEqual([]);
    expect(await storage(page)).toEqual([]);

    await page.evaluate(() => window.cairn.consent({ analytics: true, marketing: false }));
    await until(() => named('Consent Updated').length, 'the Consent Updated event');
    await until(() => h.rec.delivered().length === 3, 'the events that waited for consent');
    const events = h.rec.delivered();
    expect(events.map((e) => e.event ?? e.type)).toEqual(['page', 'Before consent', 'Consent Updated']);
    for (const e of events)
      expect(e.context.consent).toEqual({ categoryPreferences: { analytics: true, marketing: false } });
    expect(named('Consent Updated')[0]!.properties).toEqual({ analytics: true, marketing: false });
    expect(new Set(events.map((e) => e.anonymousId)).size).toBe(1);
    expect((await cookies()).map((c) => c.name)).toEqual(['cairn_aid']);
    expect(await storage(page)).toEqual(expect.arrayContaining(['cairn_aid', 'cairn_consent']));

    // The grant is remembered: the next page load sends without asking again.
    await page.reload();
    await ready(page);
    await until(() => ofType(h.rec.delivered(), 'page').length === 2, 'the page view after reload');
  });

  it('consent mode: a refusal sends and stores nothing; a withdrawal is sent, then storage is cleared', async () => {
    const { page } = await h.open('/', { requireConsent: true, flushInterval: 50 });
    await page.evaluate(() => window.cairn.consent({ analytics: false }).track('Refused'));
    await settle(page);
    expect(h.rec.requests).toEqual([]);
    expect(await storage(page)).toEqual([]);

    await page.evaluate(() => window.cairn.consent({ analytics: true }).track('Granted'));
    await until(() => named('Granted').length, 'the event after the grant');
    expect(h.rec.delivered().map((e) => e.event)).toEqual(['Consent Updated', 'Granted']);

    await page.evaluate(() => window.cairn.consent({ analytics: false }).track('After withdrawal'));
    await until(() => named('Consent Updated').length === 2, 'the withdrawal');
    expect(named('Consent Updated')[1]!.context.consent).toEqual({ categoryPreferences: { analytics: false } });
    expect(await cookies()).toEqual([]);
    expect(await storage(page)).toEqual([]);
    await settle(page);
    expect(named('After withdrawal')).toEqual([]);
  });

  it('without consent mode, consent() sends Consent Updated on a change and every event carries it', async () => {
    const { page } = await h.open('/', { autoPage: false });
    await page.evaluate(() => window.cairn.consent({ analytics: true, marketing: false }).track('X'));
    await page.evaluate(() => window.cairn.consent({ marketing: false }).track('Y'));
    await until(() => named('Y').length, 'the second event');
    expect(h.rec.delivered().map((e) => e.event)).toEqual(['Consent Updated', 'X', 'Y']);
    for (const e of h.rec.delivered())
      expect(e.context.consent).toEqual({ categoryPreferences: { analytics: true, marketing: false } });
  });
});
