// The console's Setup pages in Chromium against a real server on Postgres: sources with the snippet tag ready
// to paste (the tag GET /sdk/snippet answers, with the source's write key) and Copy; a source created; an
// admin invites an analyst (who signs in with the password shown once and changes it) and creates an API key
// (which works, then is revoked); the audit log lists those writes; each role sees only the sections its
// permissions open; axe-core on every page.
import type { Cairn } from '@cairn/server';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../sdk-web/test/helpers/build.ts';
import { launch } from './support/browser.ts';
import { a11y, ensureConsoleBuilt, screenshot, signedIn } from './support/console.ts';

const SECTIONS = ['Your account', 'Sources', 'People and roles', 'API keys', 'Audit log'];
const ANA = 'ana.lyst@example.com';

describe('console: setup', { timeout: 180_000 }, () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  let browser: Browser;
  let admin: Page;
  let adminEmail: string;
  let anaPassword: string;
  let adminErrors: Error[] = [];
  let apiKey: string;

  const sections = (page: Page) =>
    page.getByRole('navigation', { name: 'Setup sections' }).getByRole('link').allTextContents();
  const open = async (page: Page, section: string) => {
    await page.getByRole('navigation', { name: 'Setup sections' }).getByRole('link', { name: section }).click();
    await page.getByRole('heading', { level: 1, name: section === 'Your account' ? 'Setup' : section }).waitFor();
  };

  beforeAll(async () => {
    await Promise.all([ensureConsoleBuilt(), ensureBuilt()]);
    db = await createTestDatabase('test/console-setup.test.ts', 'postgres');
    // Several people sign in from one address within a minute (the default allows 5).
    [cairn, browser] = await Promise.all([startTestCairn({ ...db.env, CAIRN_SIGNIN_MAX: '50' }), launch()]);
    const signed = await signedIn(browser, cairn, 'admin');
    admin = signed.page;
    adminEmail = signed.email;
    adminErrors = signed.errors;
    await signed.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cairn.url });
  });
  afterAll(async () => {
    await browser?.close();
    await cairn?.close();
    await db?.drop();
  });

  it("shows an admin every section, and each source's snippet tag ready to paste, with Copy", async () => {
    const page = admin;
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Setup' }).click();
    await page.getByRole('heading', { level: 1, name: 'Setup' }).waitFor();
    expect(await sections(page)).toEqual(SECTIONS);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'setup');

    await open(page, 'Sources');
    const general = (await (await fetch(`${cairn.url}/sdk/snippet`)).json()) as { tag: string };
    const demo = cairn.demoSource!;
    const tag = page.getByLabel(new RegExp(`^Snippet tag for ${demo.name}`));
    await expect.poll(() => tag.inputValue()).toBe(general.tag.replace('YOUR_WRITE_KEY', demo.writeKey));
    expect(await tag.inputValue()).toContain(`data-write-key="${demo.writeKey}"`);
    await page.getByRole('button', { name: `Copy the snippet tag for ${demo.name}` }).click();
    await page.getByText('Copied.').waitFor();
    const clipboard = () =>
      (
        globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }
      ).navigator.clipboard.readText();
    expect(await page.evaluate(clipboard)).toBe(await tag.inputValue());

    // A new source, with its own key in its tag.
    await page.getByLabel('Source name').fill('Console Shop');
    await page.getByLabel('Allowed origins').fill('https://shop.example');
    await page.getByRole('button', { name: 'Create source' }).click();
    const shopTag = page.getByLabel(/^Snippet tag for Console Shop/);
    await shopTag.waitFor();
    const listed = (await adminApi(cairn.url)('/sources')).body.data as { name: string; writeKey: string }[];
    const shop = listed.find((s) => s.name === 'Console Shop')!;
    expect(await shopTag.inputValue()).toBe(general.tag.replace('YOUR_WRITE_KEY', shop.writeKey));
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'setup-sources');
  });

  it('lets an admin invite a person with a role (password shown once), change a role and remove a person', async () => {
    const page = admin;
    await open(page, 'People and roles');
    const invite = async (email: string, name: string, role: string) => {
      const form = page.getByRole('form', { name: 'Invite a person' });
      await form.getByLabel('Email').fill(email);
      await form.getByLabel('Name', { exact: true }).fill(name);
      await form.getByLabel(/^Role/).selectOption(role);
      await page.getByRole('button', { name: 'Invite' }).click();
      const shown = page.getByRole('status').filter({ hasText: 'Initial password' });
      await shown.filter({ hasText: email }).waitFor();
      return (await shown.locator('code').textContent())!;
    };
    anaPassword = await invite(ANA, 'Ana Lyst', 'analyst');
    expect(anaPassword.length).toBeGreaterThanOrEqual(12);
    const anaRole = page.getByLabel(`Role of ${ANA}`);
    await expect.poll(() => anaRole.inputValue()).toBe('analyst');
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'setup-people');

    const users = async () => (await adminApi(cairn.url)('/users')).body.data as { email: string; role: string }[];
    await anaRole.selectOption('operator');
    await expect.poll(async () => (await users()).find((u) => u.email === ANA)?.role).toBe('operator');
    await anaRole.selectOption('analyst');
    await expect.poll(async () => (await users()).find((u) => u.email === ANA)?.role).toBe('analyst');

    await invite('temp.person@example.com', 'Temp Person', 'operator');
    await page.getByRole('button', { name: 'Remove temp.person@example.com' }).click();
    await page.getByRole('button', { name: 'Remove temp.person@example.com' }).click(); // the confirmation
    await expect.poll(() => page.getByRole('row').filter({ hasText: 'temp.person@example.com' }).count()).toBe(0);
    expect((await users()).some((u) => u.email === 'temp.person@example.com')).toBe(false);
    // No one removes themselves from here.
    expect(await page.getByRole('button', { name: `Remove ${adminEmail}` }).count()).toBe(0);
  });

  it('lets an admin create an API key (shown once, and it works) and revoke it', async () => {
    const page = admin;
    await open(page, 'API keys');
    await page.getByLabel('Key name').fill('ci-reader');
    await page.getByLabel('Key role').selectOption('analyst');
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByRole('status').filter({ hasText: 'API key' });
    await shown.locator('code').waitFor();
    apiKey = (await shown.locator('code').textContent())!;
    const me = await fetch(`${cairn.url}/api/me`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(((await me.json()) as { role: string }).role).toBe('analyst');
    const row = page.getByRole('row').filter({ hasText: 'ci-reader' });
    await row.getByText('active').waitFor();
    expect(await row.textContent()).toContain(adminEmail);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'setup-keys');

    await row.getByRole('button', { name: 'Revoke the key ci-reader' }).click();
    await row.getByRole('button', { name: 'Revoke the key ci-reader' }).click();
    await row.getByText('revoked').waitFor();
    const keys = (await adminApi(cairn.url)('/keys')).body.data as { name: string; enabled: boolean }[];
    expect(keys.find((k) => k.name === 'ci-reader')?.enabled).toBe(false);
  });

  it("lists the admin's writes in the audit log, filtered by actor and resource type", async () => {
    const page = admin;
    await open(page, 'Audit log');
    await page.getByLabel('Actor').fill(adminEmail);
    await page.getByRole('button', { name: 'Filter' }).click();
    const column = (n: number) => page.getByRole('table').locator(`tbody tr td:nth-child(${n})`).allTextContents();
    await expect
      .poll(() => column(3))
      .toEqual([
        'api_key.revoke',
        'api_key.create',
        'user.remove',
        'user.invite',
        'user.role_change',
        'user.role_change',
        'user.invite',
        'source.create',
      ]);
    expect((await column(2)).every((actor) => actor.startsWith(`${adminEmail} (session, admin)`))).toBe(true);
    await page.getByLabel('Resource type').fill('api_key');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => column(3)).toEqual(['api_key.revoke', 'api_key.create']);
    await page.getByRole('row').filter({ hasText: 'api_key.create' }).getByText('Show').click();
    // Secrets never reach the log: the key is not in it.
    expect(
      await page
        .getByLabel(/^Before and after/)
        .first()
        .textContent(),
    ).toContain('ci-reader');
    expect(await page.content()).not.toContain(apiKey);
    expect(await a11y(page)).toEqual([]);
    await screenshot(page, 'setup-audit');
    expect(adminErrors).toEqual([]);
  });

  it('lets the invited analyst in with the password shown once: Setup has only her account, where she changes it', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const errors: Error[] = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${cairn.url}/console/`);
    await page.getByLabel('Email').fill(ANA);
    await page.getByLabel('Password').fill(anaPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Setup' }).click();
    await page.getByRole('heading', { level: 1, name: 'Setup' }).waitFor();
    expect(await sections(page)).toEqual(['Your account']);
    await page.getByText('Your role manages none of the settings').waitFor();
    expect(await a11y(page)).toEqual([]);

    for (const path of ['sources', 'people', 'keys', 'audit']) {
      await page.goto(`${cairn.url}/console/setup/${path}`);
      await page.getByText('No such page, or your role cannot open it.').waitFor();
    }
    await page.goto(`${cairn.url}/console/setup`);
    await page.getByLabel('Current password').fill(anaPassword);
    await page.getByLabel('New password').fill('a-new-password-of-ana');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText('Password changed').waitFor();
    const signIn = (password: string) =>
      fetch(`${cairn.url}/api/auth/sign-in/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: cairn.url },
        body: JSON.stringify({ email: ANA, password }),
      }).then((r) => r.status);
    expect(await signIn('a-new-password-of-ana')).toBe(200);
    expect(await signIn(anaPassword)).toBe(401);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('shows an operator Sources (with create) but not people, keys or the audit log', async () => {
    const { page, errors, context } = await signedIn(browser, cairn, 'operator');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Setup' }).click();
    await page.getByRole('heading', { level: 1, name: 'Setup' }).waitFor();
    expect(await sections(page)).toEqual(['Your account', 'Sources']);
    await open(page, 'Sources');
    await page.getByLabel(new RegExp(`^Snippet tag for ${cairn.demoSource!.name}`)).waitFor();
    await page.getByRole('button', { name: 'Create source' }).waitFor();
    expect(await a11y(page)).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });
});
