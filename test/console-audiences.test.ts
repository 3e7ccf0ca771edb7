// The console's audiences and tags pages in Chromium against a real server on Postgres, with people made
// through the tracking API: an admin builds an audience in the form, sees the preview count equal the
// true number, creates it and finds it in the list with its members; a broken condition shows its
// message beside it; an analyst reads everything but has no write buttons; axe-core on every page.
import type { Cairn } from '@cairn/server';
import {
  basicAuth,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  settle,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

// Who is who: a plan trait and a number of orders, each sent as it would be by a shop.
const PEOPLE = [
  { userId: 'ada', email: 'ada.lovelace@example.com', plan: 'pro', orders: 3 },
  { userId: 'grace', email: 'grace.hopper@example.com', plan: 'pro', orders: 1 },
  { userId: 'alan', email: 'alan.turing@example.com', plan: 'free', orders: 4 },
  { userId: 'edsger', email: 'edsger@example.com', plan: 'pro', orders: 2 },
  { userId: 'barbara', email: 'barbara@example.com', plan: 'pro', orders: 0 },
  { userId: 'ken', email: 'ken@example.com', plan: 'free', orders: 0 },
];
// The audience the admin builds: plan = pro and at least 2 orders in the last 30 days.
const PRO_BUYERS = PEOPLE.filter((p) => p.plan === 'pro' && p.orders >= 2).map((p) => p.userId);

describe('console: audiences and tags', { timeout: 180_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;

  const send = async (path: 'identify' | 'track', body: object) => {
    const res = await fetch(`${cairn.url}/v1/${path}`, {
      method: 'POST',
      headers: { authorization: basicAuth(cairn.demoSource!.writeKey), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
  };
  const admin = async (path: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    return { status: res.status, body: await res.json() };
  };
  // The page again until `check` holds (membership is computed in the background).
  const reloadUntil = async (page: Page, check: () => Promise<boolean>) => {
    await expect
      .poll(
        async () => {
          await page.reload();
          await page.getByRole('heading', { level: 1 }).waitFor();
          return check();
        },
        { timeout: 60_000, interval: 500 },
      )
      .toBe(true);
  };

  beforeAll(async () => {
    await ensureConsoleBuilt();
    db = await createTestDatabase('test/console-audiences.test.ts', 'postgres');
    [cairn, browser] = await Promise.all([startTestCairn(db.env), launch()]);
    for (const p of PEOPLE) {
      await send('identify', { userId: p.userId, traits: { email: p.email, plan: p.plan } });
      for (let i = 0; i < p.orders; i++)
        await send('track', { userId: p.userId, event: 'Order Completed', properties: { total: 10 + i } });
    }
    await settle(cairn.sql, { timeoutMs: 60_000 });
    // A dynamic tag made through the API, which the list shows beside the audiences.
    const tag = await admin('/tags', {
      method: 'POST',
      body: { key: 'free_plan', name: 'Free plan', rule: { op: 'trait', trait: 'plan', cmp: '=', value: 'free' } },
    });
    expect(tag.status).toBe(201);
  });
  afterAll(async () => {
    await browser?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('lets an admin build an audience in the form, preview its true count, create it and find it listed', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audiences' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audiences and tags' }).waitFor();
    await page.getByRole('link', { name: 'New audience' }).click();
    await page.getByRole('heading', { level: 1, name: 'New audience' }).waitFor();

    await page.getByLabel('Name').fill('Pro buyers');
    expect(await page.getByLabel('Key').inputValue()).toBe('pro_buyers');
    const first = page.getByRole('group', { name: /^Condition 1/ });
    await first.getByLabel('Trait').fill('plan');
    await first.getByLabel('Value').fill('pro');
    await page.getByLabel('New condition').selectOption({ label: 'Event count in a window' });
    await page.getByRole('button', { name: 'Add condition' }).click();
    const second = page.getByRole('group', { name: /^Condition 2/ });
    await second.getByLabel('Event').fill('Order Completed');
    await second.getByLabel('At least (times)').fill('2');
    // The form wrote the JSON.
    const json = JSON.parse(await page.getByLabel('Rule (JSON)').inputValue());
    expect(json).toEqual({
      op: 'and',
      rules: [
        { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
        { op: 'performed', event: 'Order Completed', min: 2, within: { last: 30, unit: 'days' } },
      ],
    });
    // The live preview counts what the rule selects now: the true number.
    await expect.poll(() => page.getByTestId('preview-count').textContent()).toBe(String(PRO_BUYERS.length));
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'audience-editor');

    await page.getByRole('button', { name: 'Create audience' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audience: Pro buyers' }).waitFor();
    expect(page.url()).toContain('/console/audiences/pro_buyers');
    await reloadUntil(page, async () => (await page.getByRole('heading', { name: 'Members (2)' }).count()) === 1);
    await page.getByRole('button', { name: 'Why ada?' }).waitFor();
    const members = page.getByRole('table').getByRole('link');
    expect((await members.allTextContents()).sort()).toEqual([...PRO_BUYERS].sort());
    // Why is Ada in? Each condition with its truth.
    await page.getByRole('button', { name: 'Why ada?' }).click();
    await page.getByText('The rule holds for this person now').waitFor();
    expect(await page.locator('.why-tree li').count()).toBe(3);
    expect(await a11y(page)).toEqual([]);

    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audiences' }).click();
    const row = page.getByRole('row').filter({ hasText: 'Pro buyers' });
    await row.waitFor();
    expect(await row.getByRole('cell').nth(2).textContent()).toBe(String(PRO_BUYERS.length));
    const tagRow = page.getByRole('row').filter({ hasText: 'Free plan' });
    expect(await tagRow.getByRole('cell').nth(2).textContent()).toBe('2');
    // The sparklines: members per day, drawn by uPlot, told in words.
    await row.getByRole('img', { name: /today$/ }).waitFor();
    expect(await row.getByRole('img').getAttribute('aria-label')).toMatch(/, 2 today$/);
    await row.locator('canvas').waitFor();
    await tagRow.locator('canvas').waitFor();
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'audiences');
    expect(errors).toEqual([]);
  });

  it('shows a broken condition’s message beside it in the form and at its line in the JSON', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.goto(`${cairn.url}/console/audiences/new`);
    await page.getByRole('heading', { level: 1, name: 'New audience' }).waitFor();
    await page.getByLabel('Name').fill('Broken');
    const first = page.getByRole('group', { name: /^Condition 1/ });
    await first.getByLabel('Trait').fill('plan');
    await first.getByLabel('Value').fill('pro');
    await page.getByLabel('New condition').selectOption({ label: 'Event count in a window' });
    await page.getByRole('button', { name: 'Add condition' }).click();
    const second = page.getByRole('group', { name: /^Condition 2/ });
    await second.getByLabel('Event').fill('Order Completed');
    await second.getByLabel('At least (times)').fill('-1');
    // The preview's answer (400, rule.rules.1.min) lands beside condition 2, and nowhere near condition 1.
    await second.getByText('rule.rules.1.min').waitFor();
    expect(await second.textContent()).toContain('Too small');
    expect(await first.locator('.leaf-error').count()).toBe(0);
    const text = await page.getByLabel('Rule (JSON)').inputValue();
    const line = text.split('\n').findIndex((l) => l.includes('"min"')) + 1;
    await page.locator('#rule-json-errors').getByText(`Line ${line}:`).waitFor();
    // Saving says the same, in the same places.
    await page.getByRole('button', { name: 'Create audience' }).click();
    await second.getByText('rule.rules.1.min').waitFor();
    expect(page.url()).toContain('/console/audiences/new');

    // JSON that does not parse: its line is shown, the form waits.
    await page.getByLabel('Rule (JSON)').fill('{\n  "op": "and",\n  "rules": [\n}');
    await page.getByText('The JSON does not parse').waitFor();
    await page
      .locator('#rule-json-errors')
      .getByText(/^Line 4:/)
      .waitFor();
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('shows an analyst on a phone the list, an audience and a tag with masked emails, and no write buttons', async () => {
    // At a phone's width: the tables scroll sideways, the editor's two halves stack.
    const { page, errors } = await signedIn(browser, cairn, 'analyst', { width: 390, height: 800 });
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audiences' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audiences and tags' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'Pro buyers' }).waitFor();
    expect(await page.getByRole('link', { name: /^New/ }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^New/ }).count()).toBe(0);
    expect(await a11y(page)).toEqual([]);

    await page.getByRole('link', { name: 'Pro buyers' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audience: Pro buyers' }).waitFor();
    await page.getByRole('heading', { name: 'Members (2)' }).waitFor();
    await page.getByRole('link', { name: 'ada', exact: true }).waitFor();
    // The preview works for a reader (it saves nothing); the buttons that would fail are not there.
    await expect.poll(() => page.getByTestId('preview-count').textContent()).toBe(String(PRO_BUYERS.length));
    for (const name of [/^Save/, /^Delete/, /^Create/, /^New/])
      expect(await page.getByRole('button', { name }).count()).toBe(0);
    const emails = await page.getByRole('table').getByRole('cell').allTextContents();
    expect(emails.join(' ')).toContain('a***@example.com');
    expect(emails.join(' ')).not.toContain('ada.lovelace@example.com');
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'audience-analyst-phone');

    await page.goto(`${cairn.url}/console/tags/free_plan`);
    await page.getByRole('heading', { level: 1, name: 'Tag: Free plan' }).waitFor();
    await page.getByRole('heading', { name: 'Members (2)' }).waitFor();
    expect(await page.getByRole('button', { name: /^(Save|Delete)/ }).count()).toBe(0);
    // Why Alan carries the tag: the rule now, with the value that decided it.
    await page.getByRole('button', { name: 'Why alan?' }).click();
    await page.getByText('The rule holds for this person now').waitFor();
    expect(await page.locator('.why-tree').textContent()).toContain('plan is "free"');
    expect(await a11y(page)).toEqual([]);
    // The editor of a new audience is not among an analyst's pages.
    await page.goto(`${cairn.url}/console/audiences/new`);
    await page.getByText('Your role cannot create audiences.').waitFor();
    expect(await page.getByLabel('Name').count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('lets an admin change an audience and delete it after confirming', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.goto(`${cairn.url}/console/audiences/pro_buyers`);
    await page.getByRole('heading', { level: 1, name: 'Audience: Pro buyers' }).waitFor();
    await page
      .getByRole('group', { name: /^Condition 2/ })
      .getByLabel('At least (times)')
      .fill('3');
    await expect.poll(() => page.getByTestId('preview-count').textContent()).toBe('1');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved: members are being recomputed.').waitFor();
    await reloadUntil(page, async () => (await page.getByRole('heading', { name: 'Members (1)' }).count()) === 1);
    expect(await a11y(page)).toEqual([]);

    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Delete for good' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audiences and tags' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'Free plan' }).waitFor();
    expect(await page.getByRole('row').filter({ hasText: 'Pro buyers' }).count()).toBe(0);
    expect((await admin('/audiences/pro_buyers')).status).toBe(404);
    expect(errors).toEqual([]);
  });
});
