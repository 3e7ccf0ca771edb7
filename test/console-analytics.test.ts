// The console's Analytics pages in Chromium against a real server on Postgres: a small shop's events sent
// through /v1/batch (10 people view, 6 add to cart, 3 order with revenue, some from UTM campaigns), counted by
// the measure stage, then for an analyst a trend chart whose table and caption equal the API's answer, a
// funnel's drop-off, the retention grid, attribution models side by side, campaign ROI, the KPI board with its
// target and alert history (no create button); an operator creates a KPI from the board. axe-core on each view.
import type { Cairn } from '@cairn/server';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  settle,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

const DAY = 86_400_000;
const REVENUE = [40, 60, 100];
const num = (s: string | null) => Number((s ?? '').replace(/[,\s]/g, '').replace(/%$/, ''));

// Ten people: each views a product (five from the winter-sale mail, three from a retargeting ad), six add it to
// the cart, three order; cohorts on three days, and some come back one and two days later.
function shopEvents(now: number): object[] {
  const base = Math.floor(now / DAY) * DAY - 5 * DAY + 10 * 3_600_000;
  const events: object[] = [];
  for (let i = 0; i < 10; i++) {
    const userId = `shopper-${i}`;
    const t0 = base + (i % 3) * DAY + i * 60_000;
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    const campaign =
      i < 5
        ? { name: 'winter-sale', source: 'mail', medium: 'email' }
        : i < 8
          ? { name: 'retarget', source: 'ads', medium: 'cpc' }
          : undefined;
    events.push({
      type: 'track',
      userId,
      event: 'Product Viewed',
      timestamp: at(0),
      properties: { sku: 'tent-2p', category: i % 2 ? 'camping' : 'hiking' },
      ...(campaign ? { context: { campaign } } : {}),
    });
    if (i < 6) events.push({ type: 'track', userId, event: 'Product Added', timestamp: at(5 * 60_000) });
    // The first shopper also comes through a retargeting ad before ordering: two touches the models share out.
    if (i === 0)
      events.push({
        type: 'page',
        userId,
        name: 'Cart',
        timestamp: at(7 * 60_000),
        context: { campaign: { name: 'retarget', source: 'ads', medium: 'cpc' } },
      });
    if (i < 3)
      events.push({
        type: 'track',
        userId,
        event: 'Order Completed',
        timestamp: at(10 * 60_000),
        properties: { revenue: REVENUE[i], currency: 'EUR' },
      });
    if (i % 2 === 0) events.push({ type: 'track', userId, event: 'Product Viewed', timestamp: at(DAY) });
    if (i % 4 === 0) events.push({ type: 'track', userId, event: 'Product Viewed', timestamp: at(2 * DAY) });
  }
  return events;
}

// The request the view shows under "As an API call", asked again with the admin key: what the page must show.
async function sameQuery(page: Page, cairn: Cairn) {
  const shown = JSON.parse((await page.getByLabel('API request').textContent())!) as { path: string; body: object };
  const res = await adminApi(cairn.url)(shown.path.replace(/^\/api/, ''), {
    method: 'POST',
    body: JSON.stringify(shown.body),
  });
  expect(res.status, res.text).toBe(200);
  // biome-ignore lint/suspicious/noExplicitAny: the analytics answers are checked field by field below
  return res.body as any;
}

describe('console: analytics', { timeout: 240_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let api: ReturnType<typeof adminApi>;

  beforeAll(async () => {
    await ensureConsoleBuilt();
    db = await createTestDatabase('test/console-analytics.test.ts', 'postgres');
    // Seven people sign in within a minute here: above the default sign-in limit (5 a minute from one address).
    [cairn, browser] = await Promise.all([startTestCairn({ ...db.env, CAIRN_SIGNIN_MAX: '50' }), launch()]);
    api = adminApi(cairn.url);
    await sendEvents(cairn, cairn.demoSource!.writeKey, shopEvents(Date.now()));
    // As the analytics tests wait (server/src/testing/analytics-data.ts): every event attached, the measure
    // queue (the hourly rollup trends read) drained, statistics fresh.
    await settle(cairn.sql, { timeoutMs: 60_000, queues: ['measure'] });
    await cairn.sql`ANALYZE events`;

    const start = new Date(Date.now() - 14 * DAY).toISOString().slice(0, 10);
    const campaign = await api('/campaigns', {
      method: 'POST',
      body: JSON.stringify({ name: 'Winter sale', startDate: start, utm: ['winter-sale'], budget: 500 }),
    });
    expect(campaign.status, campaign.text).toBe(201);
    const cost = await api(`/campaigns/${campaign.body.id}/costs`, {
      method: 'POST',
      body: JSON.stringify({ amount: 50, note: 'mail tool' }),
    });
    expect(cost.status, cost.text).toBe(201);
    const kpi = await api('/kpis', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Orders this month',
        series: { events: { event: 'Order Completed' }, measure: 'count' },
        period: 'month',
        timezone: 'UTC',
        target: 10_000,
      }),
    });
    expect(kpi.status, kpi.text).toBe(201);
    const rule = await api('/alerts', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Orders behind pace',
        kind: 'pacing',
        kpiId: kpi.body.id,
        params: { belowPct: 80, minElapsedPct: 0 },
      }),
    });
    expect(rule.status, rule.text).toBe(201);
    expect((await api('/alerts/check', { method: 'POST', body: '{}' })).status).toBe(200);
  });
  afterAll(async () => {
    await browser?.close();
    await cairn?.close();
    await db?.drop();
  });

  it('draws a trend for an analyst whose table and caption equal the API answer', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst');
    await page.getByRole('link', { name: 'Analytics' }).click();
    await page.getByRole('heading', { level: 1, name: 'Analytics: Trends' }).waitFor();
    await page.getByRole('textbox', { name: /^Events/ }).fill('Product Viewed');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.locator('figcaption').filter({ hasText: 'Product Viewed per day' }).waitFor();
    expect(await page.locator('figure canvas').count()).toBeGreaterThan(0);
    const answer = await sameQuery(page, cairn);
    const series = answer.series[0];
    expect(series.total).toBe(18);
    const caption = await page.getByTestId('trend-summary').textContent();
    expect(caption).toContain(`Product Viewed: ${series.total} in total, previous period ${series.previous.total}`);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'analytics-trends');

    await page.getByText('Data table').click();
    const rows = page.locator('figure table tbody tr');
    expect(await rows.count()).toBe(answer.buckets.length);
    const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.querySelector('td')!.textContent));
    expect(shown.map(num)).toEqual(series.values);
    expect(num(await page.locator('figure table tfoot td').first().textContent())).toBe(series.total);
    expect(await a11y(page)).toEqual([]);

    // Broken down by a property: a line per group (views without a category are '(none)'), each total as the API's.
    await page.getByRole('textbox', { name: /^Breakdown by property/ }).fill('category');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByTestId('trend-summary').filter({ hasText: 'Product Viewed: hiking' }).waitFor();
    const split = await sameQuery(page, cairn);
    const groups = split.series[0].groups as { group: string | null; total: number }[];
    expect(groups.map((g) => g.group).sort()).toEqual(['camping', 'hiking', null].sort());
    const summary = await page.getByTestId('trend-summary').textContent();
    for (const g of groups) expect(summary).toContain(`Product Viewed: ${g.group ?? '(none)'}: ${g.total} in total`);
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('shows a funnel with its drop-off and who dropped, the retention grid and the paths', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst');
    await page.goto(`${cairn.url}/console/analytics/funnels`);
    const step2 = page.getByRole('row').filter({ hasText: '2. Product Added' });
    await step2.waitFor();
    const answer = await sameQuery(page, cairn);
    expect(answer.steps.map((s: { entered: number }) => s.entered)).toEqual([10, 6, 3]);
    expect(await page.locator('td[data-drop-off="2"]').textContent()).toBe('4 (40%)');
    expect(await page.locator('td[data-drop-off="3"]').textContent()).toBe('3 (50%)');
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'analytics-funnel');
    await page.getByRole('button', { name: 'Who dropped before step 3' }).click();
    const people = page.getByRole('region', { name: 'Dropped before step 3' }).getByRole('link');
    await expect.poll(() => people.count()).toBe(3);
    const href = await people.first().getAttribute('href');
    expect(href).toMatch(/^\/console\/people\/[0-9a-f-]{36}$/);
    expect(await a11y(page)).toEqual([]);
    // The steps editor: without the cart step, 7 of the 10 viewers never order.
    await page.getByRole('button', { name: 'Remove step 2' }).click();
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('row').filter({ hasText: '2. Order Completed' }).waitFor();
    expect(await page.locator('td[data-drop-off="2"]').textContent()).toBe('7 (70%)');
    expect(await page.getByRole('region', { name: /^Dropped before/ }).count()).toBe(0);

    await page.getByRole('link', { name: 'Retention' }).click();
    await page.getByRole('heading', { level: 1, name: 'Analytics: Retention' }).waitFor();
    const grid = page.getByRole('region', { name: 'Retention grid' });
    await grid.getByRole('row').nth(1).waitFor();
    const retention = await sameQuery(page, cairn);
    const filled = retention.cohorts.filter((c: { size: number }) => c.size > 0);
    expect(filled.map((c: { size: number }) => c.size)).toEqual([4, 3, 3]);
    // Empty cohorts are not drawn; each drawn cohort's size and cells as the API counted them.
    const cells = await grid
      .locator('tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(cells.map((row) => num(row[0]!))).toEqual([4, 3, 3]);
    for (const [k, c] of filled.entries())
      for (const p of c.periods as { period: number; people: number; percent: number }[])
        expect(cells[k]![p.period + 1]).toBe(
          `${p.percent === null ? '—' : `${Math.round(p.percent * 10) / 10}%`}${p.people}`,
        );
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'analytics-retention');

    await page.getByRole('link', { name: 'Paths' }).click();
    await page.getByRole('heading', { level: 2, name: 'Step 1' }).waitFor();
    const paths = await sameQuery(page, cairn);
    const node = paths.steps[1].nodes.find((n: { node: string }) => n.node === 'Product Added');
    const row = page.getByRole('table', { name: /Events at step 1/ }).getByRole('row', { name: /Product Added/ });
    expect(num(await row.locator('td').first().textContent())).toBe(node.paths);
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('puts the attribution models side by side and shows a campaign’s ROI', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst');
    await page.goto(`${cairn.url}/console/analytics/attribution`);
    const table = page.getByRole('table', { name: /each model side by side/ });
    await table.getByRole('row', { name: /winter-sale/ }).waitFor();
    const answer = await sameQuery(page, cairn);
    expect(answer.models).toHaveLength(6);
    expect(answer.totals.conversions).toBe(3);
    for (const m of answer.models)
      await table.getByRole('columnheader', { name: new RegExp(`^${m.replaceAll('_', '[ -]')}`, 'i') }).waitFor();
    const cells = await table
      .getByRole('row', { name: /winter-sale/ })
      .locator('td')
      .evaluateAll((tds) => tds.map((td) => td.textContent));
    const winter = answer.channels.find((c: { channel: string }) => c.channel === 'winter-sale');
    expect(cells.map(num)).toEqual(
      // Shown with at most two decimals (time decay shares fractions).
      answer.models.flatMap((m: string) =>
        [winter.models[m].conversions, winter.models[m].revenue].map((x: number) => Math.round(x * 100) / 100),
      ),
    );
    expect(winter.models.first_touch).toEqual({ conversions: 3, revenue: 200 });
    expect(winter.models.last_touch).toEqual({ conversions: 2, revenue: 160 });
    expect(winter.models.linear).toEqual({ conversions: 2.5, revenue: 180 });
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'analytics-attribution');

    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('button', { name: 'Winter sale' }).click();
    await page.getByText('ROI', { exact: true }).waitFor();
    const results = await sameQuery(page, cairn);
    expect(results.totals.revenue).toBe(200);
    expect(results.totals.roi).toBe(3);
    const roi = page.locator('.card').filter({ hasText: 'ROI' }).locator('dd');
    expect(await roi.textContent()).toBe('300%');
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('shows an analyst the KPI board with target, pacing and alert history, and no create button', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst');
    await page.goto(`${cairn.url}/console/analytics/kpis`);
    const card = page.getByRole('listitem', { name: 'Orders this month' });
    await card.getByText('Achievement').waitFor();
    const kpi = (await api('/kpis')).body.data[0];
    const status = (await api(`/kpis/${kpi.id}/status`)).body;
    expect(num(await card.locator('dt:text-is("Target") + dd').textContent())).toBe(10_000);
    expect(await card.locator('.big').textContent()).toContain(String(status.value));
    const history = page.getByRole('row', { name: /Orders behind pace/ });
    await history.getByText('fired').waitFor();
    await history.getByText('firing').waitFor();
    expect(await page.getByRole('button', { name: 'Create KPI' }).count()).toBe(0);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'analytics-kpis');
    expect(errors).toEqual([]);
  });

  it('reads on a phone width: no sideways scrolling of the page, axe clean', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'analyst', { width: 390, height: 800 });
    for (const view of ['trends', 'funnels', 'retention', 'attribution', 'kpis']) {
      await page.goto(`${cairn.url}/console/analytics/${view}`);
      await page.getByText('How these numbers are counted').or(page.getByText('Alert history')).first().waitFor();
      const wide = await page.evaluate(
        `[...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > 392 && !(e.parentElement && e.parentElement.closest('.table-scroll'))).slice(0, 5).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`,
      );
      expect(
        await page.evaluate('document.documentElement.scrollWidth'),
        `${view}: ${JSON.stringify(wide)}`,
      ).toBeLessThanOrEqual(390);
      expect(await a11y(page), view).toEqual([]);
    }
    await screenshot(page, 'analytics-kpis-phone');
    expect(errors).toEqual([]);
  });

  it('shows an admin the create form on the KPI board', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'admin');
    await page.goto(`${cairn.url}/console/analytics/kpis`);
    await page.getByRole('listitem', { name: 'Orders this month' }).getByText('Achievement').waitFor();
    await page.getByRole('button', { name: 'Create KPI' }).waitFor();
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('lets an operator create a KPI from the board', async () => {
    const { page, errors } = await signedIn(browser, cairn, 'operator');
    await page.goto(`${cairn.url}/console/analytics/kpis`);
    await page.getByRole('listitem', { name: 'Orders this month' }).waitFor();
    const form = page.getByRole('form', { name: 'New KPI' });
    await form.getByRole('textbox', { name: 'Name', exact: true }).fill('Revenue per week');
    await form.getByRole('textbox', { name: /^Events/ }).fill('Order Completed');
    await form.getByRole('combobox', { name: /^Measure/ }).selectOption('sum');
    await form.getByRole('textbox', { name: 'Property' }).fill('revenue');
    await form.getByRole('combobox', { name: /^Period/ }).selectOption('week');
    await form.getByRole('spinbutton', { name: 'Target' }).fill('1000');
    await form.getByRole('button', { name: 'Create KPI' }).click();
    const card = page.getByRole('listitem', { name: 'Revenue per week' });
    await card.getByText('Achievement').waitFor();
    const created = (await api('/kpis')).body.data.find((k: { name: string }) => k.name === 'Revenue per week');
    expect(created).toMatchObject({
      period: 'week',
      target: 1000,
      series: { measure: 'sum', property: 'revenue', events: { event: 'Order Completed' } },
    });
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });
});
