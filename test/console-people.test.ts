// The console's people pages in Chromium against a real server on Postgres, with people made through the
// tracking API: a person on two devices (anonymous browsing on each, then identified on both, which merges
// them) found by email in the search box; their page with identities, traits, consent, subscriptions, tags,
// audiences (and why) and the timeline; an analyst who sees masked email and phone and no write buttons; an
// admin who unmerges the merge and erases another person after confirming; axe-core on every page.
import type { Cairn } from '@cairn/server';
import {
  adminApi,
  approveAndPublish,
  basicAuth,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type Receiver,
  settle,
  startReceiver,
  startTestCairn,
  type TestDatabase,
  until,
} from '@cairn/server/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

const EMAIL = 'ada.lovelace@example.com';
const PHONE = '+14155550123';

describe('console: people', { timeout: 180_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let hook: Receiver;
  let api: ReturnType<typeof adminApi>;
  let ada: string;
  let grace: string;
  const t0 = Date.now() - 3_600_000;
  const at = (minutes: number) => new Date(t0 + minutes * 60_000).toISOString();

  const send = async (path: 'identify' | 'track' | 'page', body: object) => {
    const res = await fetch(`${cairn.url}/v1/${path}`, {
      method: 'POST',
      headers: { authorization: basicAuth(cairn.demoSource!.writeKey), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.text()).toBe(200);
  };
  const post = async (path: string, body: object, method = 'POST') => {
    const res = await api(path, { method, body: JSON.stringify(body) });
    expect(res.status, res.text).toBeLessThan(300);
    return res.body;
  };

  beforeAll(async () => {
    await ensureConsoleBuilt();
    db = await createTestDatabase('test/console-people.test.ts', 'postgres');
    [cairn, browser, hook] = await Promise.all([startTestCairn(db.env), launch(), startReceiver()]);
    api = adminApi(cairn.url);
    const { id: hookId } = await post('/destinations', {
      name: 'Hook',
      plugin: 'webhook',
      settings: { url: hook.url },
    });
    // A flow that thanks a buyer: the person's timeline shows the run and the message it sent.
    const flow = await post('/flows', {
      definition: {
        version: 1,
        name: 'Thank you',
        trigger: { type: 'event', event: 'Order Completed' },
        entry: { reentry: 'once' },
        nodes: [{ id: 'thanks', type: 'send', destination: hookId, message: { body: 'Thank you' } }],
        edges: [],
      },
    });
    expect((await approveAndPublish(cairn.url, flow.id)).status).toBe(200);
    const pro = { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' };
    await post('/audiences', { key: 'pro_plan', name: 'Pro plan', rule: pro });
    await post('/tags', { key: 'paying', name: 'Paying', rule: pro });

    // Ada browses anonymously on her laptop and her phone, then signs in on both: one person, one merge.
    await send('page', { anonymousId: 'laptop-1', name: 'Home', timestamp: at(0) });
    await send('track', { anonymousId: 'laptop-1', event: 'Product Viewed', timestamp: at(1) });
    await send('track', { anonymousId: 'phone-1', event: 'Cart Viewed', timestamp: at(2) });
    // Each device is its own profile first (processed before the sign-ins), so signing in merges them.
    await settle(cairn.sql);
    await send('identify', {
      anonymousId: 'laptop-1',
      userId: 'ada-1',
      traits: { email: EMAIL, phone: PHONE, name: 'Ada Lovelace', plan: 'pro' },
      context: { consent: { categoryPreferences: { marketing: true } } },
      timestamp: at(3),
    });
    await settle(cairn.sql);
    await send('identify', { anonymousId: 'phone-1', userId: 'ada-1', timestamp: at(4) });
    await send('track', { userId: 'ada-1', event: 'Order Completed', properties: { total: 42 }, timestamp: at(5) });
    await send('identify', { userId: 'grace-1', traits: { email: 'grace@example.com', name: 'Grace Hopper' } });
    await settle(cairn.sql);
    ada = (await api(`/profiles?userId=ada-1`)).body.data[0].id;
    grace = (await api(`/profiles?userId=grace-1`)).body.data[0].id;
    expect((await api(`/profiles/${ada}/merges`)).body.data).toHaveLength(1);
    await post(`/profiles/${ada}/subscriptions`, { channel: 'email', subscribed: false }, 'PUT');
    await until('Ada in the audience, tagged, and thanked by the flow', async () => {
      const [aud, tags, timeline] = await Promise.all([
        api(`/profiles/${ada}/audiences`),
        api(`/profiles/${ada}/tags`),
        api(`/profiles/${ada}/timeline`),
      ]);
      const kinds = new Set(timeline.body.data?.map((i: { kind: string }) => i.kind));
      return (
        aud.body.data?.[0]?.member && tags.body.current?.includes('paying') && kinds.has('run') && kinds.has('delivery')
      );
    });
  });
  afterAll(async () => {
    await browser?.close();
    await hook?.close();
    await cairn?.close();
    await db?.drop();
  });

  /** The person's page, open and loaded (its timeline drawn). */
  const openPerson = async (page: Page, id: string) => {
    await page.goto(`${cairn.url}/console/people/${id}`);
    await page.getByRole('heading', { name: 'Timeline' }).waitFor();
    await page.getByRole('table', { name: /newest first/ }).waitFor();
  };

  it('finds a person by email in the search box and shows their page', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'People' }).click();
    await page.getByRole('heading', { level: 1, name: 'People' }).waitFor();
    // Before a search: the people seen recently.
    await page.getByRole('link', { name: 'grace@example.com' }).waitFor();
    expect(await a11y(page)).toEqual([]);

    await page.getByRole('searchbox', { name: /^Find a person/ }).fill(EMAIL);
    await page.getByRole('button', { name: 'Search' }).click();
    const found = page.getByRole('table', { name: '1 person found' });
    await found.waitFor();
    expect(await found.getByRole('row').filter({ hasText: 'Email' }).count()).toBe(1);
    expect(await found.textContent()).toContain(EMAIL);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'people-search');

    await found.getByRole('link', { name: 'Ada Lovelace' }).click();
    await page.getByRole('heading', { level: 1, name: 'Ada Lovelace' }).waitFor();
    await page.getByRole('table', { name: /newest first/ }).waitFor();
    const text = async (heading: string) => (await page.getByRole('region', { name: heading }).textContent()) ?? '';
    expect(await text('Identities')).toContain(EMAIL);
    expect(await text('Identities')).toContain(PHONE);
    expect(await text('Identities')).toContain('laptop-1');
    expect(await text('Identities')).toContain('phone-1');
    const plan = page.getByRole('region', { name: 'Traits' }).getByRole('row').filter({ hasText: 'plan' });
    expect(await plan.textContent()).toContain('pro');
    await plan.getByRole('link', { name: /^Event \d+ that set plan$/ }).waitFor();
    expect(await text('Consent')).toMatch(/marketing\s*granted/);
    expect(await text('Subscriptions')).toContain('unsubscribed');
    expect(await text('Tags')).toContain('paying');
    const audiences = page.getByRole('region', { name: 'Audiences' });
    await audiences.getByRole('button', { name: 'Why in Pro plan' }).click();
    await audiences.getByText('The rule matches this person now').waitFor();
    const timeline = page.getByRole('table', { name: /newest first/ });
    for (const what of ['Home', 'Product Viewed', 'Cart Viewed', 'Order Completed']) {
      await timeline.getByRole('link', { name: what }).waitFor();
    }
    await timeline.getByRole('link', { name: 'Thank you' }).waitFor();
    await timeline.getByRole('row').filter({ hasText: 'flow step thanks to Hook' }).waitFor();
    // Each event's deliveries are on its line once the webhook took them.
    await expect
      .poll(
        async () => {
          await page.reload();
          const row = page.getByRole('row').filter({ hasText: 'Order Completed' });
          await row.waitFor();
          return row.textContent();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toContain('delivered');
    await page.getByRole('button', { name: /^Unmerge profile / }).waitFor();
    expect(await page.getByRole('button', { name: 'Erase…' }).count()).toBe(1);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'person');
    // Further down: the merge log with Unmerge, and the timeline.
    await page.getByRole('heading', { name: 'Merges' }).scrollIntoViewIfNeeded();
    await page.mouse.wheel(0, -8);
    await screenshot(page, 'person-timeline');
    expect(errors).toEqual([]);
  });

  it('shows an analyst masked email and phone, and no Unmerge or Erase buttons', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst');
    await page.goto(`${cairn.url}/console/people`);
    // The lookup is by blind index: the analyst finds her by the clear address, and sees it masked.
    await page.getByRole('searchbox', { name: /^Find a person/ }).fill(EMAIL);
    await page.getByRole('searchbox', { name: /^Find a person/ }).press('Enter');
    const found = page.getByRole('table', { name: '1 person found' });
    await found.waitFor();
    expect(await found.textContent()).not.toContain(EMAIL);
    expect(await a11y(page)).toEqual([]);

    await openPerson(page, ada);
    const identities = (await page.getByRole('region', { name: 'Identities' }).textContent()) ?? '';
    expect(identities).not.toContain(EMAIL);
    expect(identities).not.toContain(PHONE);
    expect(identities).toContain('@example.com');
    const traits = (await page.getByRole('region', { name: 'Traits' }).textContent()) ?? '';
    expect(traits).not.toContain(EMAIL);
    expect(traits).toContain('Ada Lovelace');
    await page.getByRole('region', { name: 'Merges' }).getByText('merged', { exact: true }).waitFor();
    expect(await page.getByRole('button', { name: /^Unmerge/ }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Erase/ }).count()).toBe(0);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'person-analyst');
    expect(errors).toEqual([]);
  });

  it('reads on a phone: no sideways scroll of the page, tables scroll in their own box', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst', { width: 390, height: 800 });
    await openPerson(page, ada);
    const width = () =>
      page.evaluate(
        () =>
          (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement
            .scrollWidth,
      );
    expect(await width()).toBeLessThanOrEqual(390);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'person-analyst-phone');
    await page.goto(`${cairn.url}/console/people`);
    await page.getByRole('heading', { level: 1, name: 'People' }).waitFor();
    await page.getByRole('table', { name: /most recently seen first/ }).waitFor();
    expect(await width()).toBeLessThanOrEqual(390);
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('lets an admin unmerge a merge: the other device is its own person again', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await openPerson(page, ada);
    await page.getByRole('button', { name: /^Unmerge profile / }).click();
    const merges = page.getByRole('region', { name: 'Merges' });
    await merges.getByText('undone').waitFor();
    const restored = (await api(`/profiles?anonymousId=phone-1`)).body.data[0];
    expect(restored.id).not.toBe(ada);
    await expect.poll(() => page.getByRole('region', { name: 'Identities' }).textContent()).not.toContain('phone-1');
    await openPerson(page, restored.id);
    await page
      .getByRole('table', { name: /newest first/ })
      .getByRole('link', { name: 'Cart Viewed' })
      .waitFor();
    expect(errors).toEqual([]);
  });

  it('erases a person only after the word is typed, and says so; Escape cancels', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await openPerson(page, grace);
    await page.getByRole('heading', { level: 1, name: 'Grace Hopper' }).waitFor();
    const open = page.getByRole('button', { name: 'Erase…' });
    await open.click();
    const dialog = page.getByRole('dialog', { name: 'Erase Grace Hopper?' });
    await dialog.waitFor();
    expect(await a11y(page)).toEqual([]);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect((await api(`/profiles/${grace}`)).status).toBe(200);

    await open.focus();
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: 'Erase permanently' });
    expect(await confirm.isDisabled()).toBe(true);
    // The field has focus when the dialog opens: type the word and press Enter.
    await page.keyboard.type('ERASE');
    expect(await confirm.isDisabled()).toBe(false);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Person erased' }).waitFor();
    expect(await page.getByRole('status').textContent()).toContain('This person was erased.');
    expect((await api(`/profiles/${grace}`)).status).toBe(410);
    // Opened again later, the page still says so.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Person erased' }).waitFor();
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });
});
