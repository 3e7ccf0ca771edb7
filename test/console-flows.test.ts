// The console's flow pages in Chromium against a real server on Postgres: a flow made and published through
// the API, people entering it through the tracking API; the list with status and counts; the diagram with
// every node and the stats API's counts on nodes and edges; an invalid edit marked on its node; a simulated
// person's path drawn; an operator's change submitted and approved by an admin who reads its diff; an
// analyst who sees it all but no write buttons; axe-core on every page for both roles.
import { describeOnPostgres, type FlowHarness, flowHarness, until } from '@cairn/server/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the assertions
type Any = any;

const definition = (destination: string, settleDays = 1) => ({
  version: 1,
  name: 'Console welcome',
  trigger: { type: 'event', event: 'Console Signed Up' },
  entry: { reentry: 'once' },
  nodes: [
    {
      id: 'plan',
      type: 'branch',
      name: 'VIP?',
      cases: [{ rule: { op: 'trait', trait: 'vip', cmp: '=', value: true } }],
    },
    { id: 'thanks', type: 'send', destination, message: { body: 'Thanks for joining, VIP' } },
    { id: 'settle', type: 'wait', duration: { days: settleDays } },
    { id: 'nudge', type: 'send', destination, message: { body: 'Have a look around' } },
  ],
  edges: [
    { from: 'plan', to: 'thanks', on: 'case:0' },
    { from: 'plan', to: 'settle', on: 'else' },
    { from: 'settle', to: 'nudge', on: 'next' },
  ],
});

describeOnPostgres('console: flows on %s', () => {
  let h: FlowHarness;
  let browser: Browser;
  let flowId: string;
  let destination: string;
  let stats: Any;
  let tagged: string;

  beforeAll(async () => {
    await ensureConsoleBuilt();
    [h, browser] = await Promise.all([flowHarness('test/console-flows.test.ts', 'postgres'), launch()]);
    destination = (await h.webhook()).destinationId;
    flowId = await h.publish(definition(destination));
    const draft = await h.post('/flows', { definition: { ...definition(destination), name: 'Console draft' } });
    expect(draft.status).toBe(201);
    // A draft entered by gaining a tag: simulated from the working copy, the person tagged at the start.
    expect((await h.post('/tags', { key: 'console_fan', name: 'Console fan' })).status).toBe(201);
    const byTag = await h.post('/flows', {
      definition: {
        version: 1,
        name: 'Console tagged',
        trigger: { type: 'tag_added', tag: 'console_fan' },
        entry: { reentry: 'once' },
        nodes: [{ id: 'hello', type: 'send', destination, message: { body: 'Hello, fan' } }],
        edges: [],
      },
    });
    expect(byTag.status).toBe(201);
    tagged = byTag.body.id;
    // Two VIPs take the message; three others wait a day at `settle`.
    for (const [i, vip] of [true, true, false, false, false].entries()) {
      const userId = `console-flow-${i}`;
      await h.send({ type: 'identify', userId, traits: { vip } });
      await h.send({ type: 'track', userId, event: 'Console Signed Up' });
    }
    stats = await until('five runs placed', async () => {
      const s = (await h.api(`/flows/${flowId}/stats`)).body;
      const at = (id: string) => s.nodes?.find((n: Any) => n.node === id);
      return at('settle')?.waiting === 3 && at('thanks')?.ended.completed === 2 ? s : undefined;
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  const open = async (page: Page) => {
    await page.goto(`${h.cairn.url}/console/flows/${flowId}`);
    await page.getByRole('heading', { level: 1, name: 'Flow: Console welcome' }).waitFor();
    await page.getByRole('img', { name: /^Trigger event: Console Signed Up: 5 entered/ }).waitFor();
  };
  // A node's box as a button: named by its visible text ("wait settle: …", "branch · plan VIP?: …").
  const node = (page: Page, type: string, id: string) =>
    page.getByRole('button', { name: new RegExp(`^${type}( · ${id} | ${id}: )`) });

  it('lists flows with status, version and counts, and draws the diagram with the stats API’s counts', {
    timeout: 90_000,
  }, async () => {
    const { page, errors } = await signedIn(browser, h.cairn, 'admin');
    await page.getByRole('link', { name: 'Flows' }).click();
    await page.getByRole('heading', { level: 1, name: 'Flows' }).waitFor();
    const row = page.getByRole('row').filter({ hasText: 'Console welcome' });
    await expect
      .poll(() => row.getByRole('cell').allTextContents())
      .toEqual(['Console welcome', 'live', '1', 'event: Console Signed Up', '5', '3', expect.any(String)]);
    const draft = page.getByRole('row').filter({ hasText: 'Console draft' });
    expect((await draft.getByRole('cell').allTextContents()).slice(1, 6)).toEqual([
      'draft',
      '—',
      'event: Console Signed Up',
      '0',
      '0',
    ]);
    const counts = (await h.api('/flows/counts')).body.data;
    expect(counts).toEqual([{ flowId, entered: 5, active: 3 }]);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'flows');

    await row.getByRole('link', { name: 'Console welcome' }).click();
    await open(page);
    // Every node of the definition, each with its counts as the stats API gives them.
    for (const n of definition(destination).nodes) {
      const s = stats.nodes.find((x: Any) => x.node === n.id);
      const words = [`${s?.arrived ?? 0} arrived`, ...(s?.waiting ? [`${s.waiting} waiting`] : [])].join(' · ');
      await expect.poll(() => node(page, n.type, n.id).getAttribute('aria-label')).toContain(`: ${words}`);
    }
    for (const e of definition(destination).edges) {
      const count = stats.nodes
        .find((x: Any) => x.node === e.from)
        .advanced.filter((a: Any) => a.outcome === e.on && a.to === e.to)
        .reduce((sum: number, a: Any) => sum + a.count, 0);
      await page.getByRole('img', { name: `${e.on}: from ${e.from} to ${e.to}, ${count} runs` }).waitFor();
    }
    expect(stats.nodes.find((x: Any) => x.node === 'plan').advanced).toEqual([
      { outcome: 'case:0', to: 'thanks', count: 2 },
      { outcome: 'else', to: 'settle', count: 3 },
    ]);
    // A node's details on the keyboard: Tab to it, Enter.
    await node(page, 'wait', 'settle').focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 3, name: /wait settle/ }).waitFor();
    await page.getByLabel('Definition of node settle').waitFor();

    // A simulated VIP goes plan → thanks, drawn on the diagram.
    await page.getByLabel('Traits (JSON)').fill('{"vip": true}');
    await page.getByRole('button', { name: 'Simulate', exact: true }).click();
    await page.getByRole('list', { name: 'Simulated path' }).waitFor();
    expect(await page.getByRole('list', { name: 'Simulated path' }).getByRole('listitem').allTextContents()).toEqual([
      'plan',
      'thanks',
    ]);
    expect(await node(page, 'branch', 'plan').getAttribute('aria-label')).toContain('on the simulated path');
    expect(await node(page, 'send', 'thanks').getAttribute('aria-label')).toContain('on the simulated path');
    expect(await node(page, 'wait', 'settle').getAttribute('aria-label')).not.toContain('on the simulated path');
    await page.getByRole('img', { name: /^case:0: from plan to thanks, 2 runs, on the simulated path$/ }).waitFor();
    expect(await a11y(page)).toEqual([]);
    await page.getByRole('heading', { name: /^Diagram/ }).scrollIntoViewIfNeeded();
    await screenshot(page, 'flow-diagram');

    // An invalid edit: a wait of no time is refused, and the error is on that node.
    await page.getByRole('button', { name: 'Edit definition' }).click();
    await page.getByLabel('Definition (JSON)').fill(JSON.stringify(definition(destination, 0), null, 2));
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const problems = page.getByRole('list', { name: 'Validation errors' });
    await problems.waitFor();
    expect(await problems.textContent()).toContain('settle');
    expect(await node(page, 'wait', 'settle').getAttribute('aria-label')).toMatch(/invalid: nodes\.2\.duration/);
    for (const [type, id] of [
      ['branch', 'plan'],
      ['send', 'thanks'],
      ['send', 'nudge'],
    ])
      expect(await node(page, type!, id!).getAttribute('aria-label')).not.toContain('invalid');
    expect(await a11y(page)).toEqual([]);
    // A trigger with no event name: the trigger's box is the one marked.
    await page
      .getByLabel('Definition (JSON)')
      .fill(JSON.stringify({ ...definition(destination), trigger: { type: 'event', event: '' } }));
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('img', { name: /^Trigger event: 5 entered, invalid: trigger\.event: / }).waitFor();
    expect(await problems.textContent()).toContain('trigger.event');
    expect(await node(page, 'wait', 'settle').getAttribute('aria-label')).not.toContain('invalid');
    // Nothing was saved.
    expect((await h.api(`/flows/${flowId}`)).body.definition.nodes[2].duration).toEqual({ days: 1 });
    expect(errors).toEqual([]);
  });

  it('an operator submits a change; an admin reads its diff and approves it; then it is published', {
    timeout: 90_000,
  }, async () => {
    const op = await signedIn(browser, h.cairn, 'operator');
    await open(op.page);
    await op.page.getByRole('button', { name: 'Edit definition' }).click();
    await op.page.getByLabel('Definition (JSON)').fill(JSON.stringify(definition(destination, 2)));
    await op.page.getByRole('button', { name: 'Save', exact: true }).click();
    await op.page.getByRole('button', { name: 'Submit for review' }).click();
    await op.page.getByText('in review', { exact: true }).first().waitFor();
    // Operators submit; they do not approve.
    expect(await op.page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    expect(await a11y(op.page)).toEqual([]);
    expect(op.errors).toEqual([]);

    const admin = await signedIn(browser, h.cairn, 'admin');
    await open(admin.page);
    const diff = admin.page.getByRole('list', { name: 'Diff' });
    await diff.waitFor();
    expect(await diff.textContent()).toContain('node settle duration.days: 1 → 2');
    // The diagram tags what the change touches; it draws the working copy, or the live version it would replace.
    await expect
      .poll(() => node(admin.page, 'wait', 'settle').getAttribute('aria-label'))
      .toContain('changed in this working copy');
    expect(await node(admin.page, 'send', 'nudge').getAttribute('aria-label')).not.toContain('changed');
    const settleJson = admin.page.getByLabel('Definition of node settle');
    await node(admin.page, 'wait', 'settle').click();
    expect(JSON.parse((await settleJson.textContent())!).duration).toEqual({ days: 2 });
    await admin.page.getByLabel('Draw').selectOption('live');
    await admin.page.getByRole('heading', { name: /^Diagram \(live version 1\)/ }).waitFor();
    await expect.poll(async () => JSON.parse((await settleJson.textContent())!).duration).toEqual({ days: 1 });
    await admin.page.getByLabel('Draw').selectOption('working');
    const approve = admin.page.getByRole('button', { name: 'Approve' });
    // The picture: the diagram with the changed node tagged, and below it the review with the diff.
    await admin.page.getByLabel('Draw').evaluate((e) => e.scrollIntoView({ block: 'start' }));
    expect(await a11y(admin.page)).toEqual([]);
    await screenshot(admin.page, 'flow-review');
    await approve.click();
    await admin.page.getByRole('button', { name: 'Publish' }).click();
    await admin.page.getByRole('definition').filter({ hasText: 'live version 2' }).waitFor();
    const flow = (await h.api(`/flows/${flowId}`)).body;
    expect(flow).toMatchObject({ status: 'live', version: 2, review: { state: 'published' } });
    expect(flow.review.submittedBy).not.toBe(flow.review.approvedBy);
    expect(admin.errors).toEqual([]);
  });

  it('shows an analyst (at a phone’s width) the list, the diagram and live counts, and no edit, submit or approve buttons', {
    timeout: 60_000,
  }, async () => {
    const { page, errors } = await signedIn(browser, h.cairn, 'analyst', { width: 390, height: 800 });
    await page.goto(`${h.cairn.url}/console/flows`);
    await page.getByRole('row').filter({ hasText: 'Console welcome' }).waitFor();
    expect(await a11y(page)).toEqual([]);
    await open(page);
    await expect.poll(() => node(page, 'wait', 'settle').getAttribute('aria-label')).toContain('3 arrived · 3 waiting');
    await page.getByRole('img', { name: 'else: from plan to settle, 3 runs' }).waitFor();
    await page.getByRole('heading', { name: 'Review' }).waitFor();
    for (const name of ['Edit definition', 'Submit for review', 'Approve', 'Reject', 'Publish', 'Pause'])
      expect(await page.getByRole('button', { name, exact: true }).count()).toBe(0);
    expect(await a11y(page)).toEqual([]);
    await page.getByRole('heading', { name: /^Diagram/ }).scrollIntoViewIfNeeded();
    await screenshot(page, 'flow-analyst-phone');
    // The counts are live: one more person enters while the page is open, and it says so without a reload.
    await h.send({ type: 'track', userId: 'console-flow-late', event: 'Console Signed Up' });
    await page.getByRole('img', { name: /^Trigger event: Console Signed Up: 6 entered/ }).waitFor({ timeout: 30_000 });
    await expect
      .poll(() => node(page, 'wait', 'settle').getAttribute('aria-label'), { timeout: 30_000 })
      .toContain('4 arrived · 4 waiting');
    await page.getByRole('img', { name: 'else: from plan to settle, 4 runs' }).waitFor();

    // Simulating a flow a tag starts: the person is tagged at the start and takes its path.
    await page.goto(`${h.cairn.url}/console/flows/${tagged}`);
    await page.getByText('Without one, the person is tagged console_fan at the start').waitFor();
    await page.getByRole('button', { name: 'Simulate', exact: true }).click();
    const path = page.getByRole('list', { name: 'Simulated path' });
    await path.waitFor();
    expect(await path.getByRole('listitem').allTextContents()).toEqual(['hello']);
    expect(await node(page, 'send', 'hello').getAttribute('aria-label')).toContain('on the simulated path');
    await page.getByText('Hello, fan').waitFor();
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
  });
});
