import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkResponse, definePlugin } from '@cairn/plugin-api';
import { type Receiver, startReceiver } from '@cairn/plugin-api/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Cairn } from '../../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../../testing/index.ts';
import { BUILTIN_PLUGINS, createPluginRegistry, loadPlugins, PluginLoadError, resolvePluginEntry } from './plugins.ts';

const probe = (name: string) =>
  definePlugin({
    name,
    version: '1.0.0',
    description: 'test',
    settings: z.object({}),
    purposes: [],
    accepts: ['track'],
    sendOne: async () => undefined,
  });

describe('the plugin registry', () => {
  it('holds the built-ins and injected plugins, by name, in order', async () => {
    const plugins = await loadPlugins({ packages: [], extra: [probe('extra-one')] });
    expect(plugins.names()).toEqual(['webhook', 'email-smtp', 'slack', 'sms-http', 'segment-forward', 'extra-one']);
    expect(plugins.get('extra-one')?.version).toBe('1.0.0');
    expect(plugins.get('nope')).toBeUndefined();
    expect(plugins.list()).toHaveLength(BUILTIN_PLUGINS.length + 1);
  });

  it('refuses a duplicate name and a malformed plugin, naming where it came from', () => {
    const builtins = BUILTIN_PLUGINS.map((plugin) => ({ plugin, from: 'built-in' }));
    expect(() => createPluginRegistry([...builtins, { plugin: probe('webhook'), from: '@acme/hook' }])).toThrow(
      new PluginLoadError(
        'CAIRN_PLUGINS: @acme/hook: a plugin named "webhook" is already installed (built-in); names must be unique',
      ),
    );
    const { sendOne: _, ...noSend } = probe('x');
    expect(() => createPluginRegistry([{ plugin: noSend, from: '@acme/x' }])).toThrow(
      /^CAIRN_PLUGINS: @acme\/x: plugin x: send or sendOne must be a function$/,
    );
    expect(() => createPluginRegistry([{ plugin: { ...probe('y'), apiVersion: 9 }, from: './y.js' }])).toThrow(
      /^CAIRN_PLUGINS: \.\/y\.js: plugin y: apiVersion 9 is not supported \(supported: 1\)$/,
    );
  });
});

describe('CAIRN_PLUGINS entries', () => {
  let dir = '';
  const write = (path: string, text: string) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-plugins-'));
    // A package with conditional exports, one with only main, one with nothing built.
    write(
      'node_modules/@acme/cairn-x/package.json',
      JSON.stringify({
        name: '@acme/cairn-x',
        exports: {
          '.': { types: './x.d.ts', import: './esm/x.js', require: './x.cjs' },
          './package.json': './package.json',
        },
      }),
    );
    write('node_modules/@acme/cairn-x/esm/x.js', 'export default 1;');
    write('node_modules/cairn-main/package.json', JSON.stringify({ name: 'cairn-main', main: 'lib/main.js' }));
    write('node_modules/cairn-main/lib/main.js', 'module.exports = 1;');
    write('node_modules/cairn-unbuilt/package.json', JSON.stringify({ name: 'cairn-unbuilt', exports: './dist/i.js' }));
    write('app/deep/.keep', '');
    write('local/plugin.mjs', `export default ${JSON.stringify({ name: 'local' })};`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('resolve package names from node_modules up the tree, and paths from the directory', () => {
    expect(resolvePluginEntry('@acme/cairn-x', join(dir, 'app', 'deep'))).toBe(
      join(dir, 'node_modules/@acme/cairn-x/esm/x.js'),
    );
    expect(resolvePluginEntry('cairn-main', dir)).toBe(join(dir, 'node_modules/cairn-main/lib/main.js'));
    expect(resolvePluginEntry('./local/plugin.mjs', dir)).toBe(join(dir, 'local/plugin.mjs'));
    expect(resolvePluginEntry(join(dir, 'node_modules/cairn-main'), '/')).toBe(
      join(dir, 'node_modules/cairn-main/lib/main.js'),
    );
    expect(() => resolvePluginEntry('@acme/missing', dir)).toThrow(/package not found in node_modules from/);
    expect(() => resolvePluginEntry('cairn-unbuilt', dir)).toThrow(/does not exist \(is the package built\?\)/);
    expect(() => resolvePluginEntry('not a name!', dir)).toThrow(/not a package name or a path/);
  });

  it('stop the start with one line naming the entry and the problem', async () => {
    await expect(loadPlugins({ packages: ['@acme/missing'], dir })).rejects.toThrow(
      /^CAIRN_PLUGINS: @acme\/missing: package not found in node_modules from /,
    );
    await expect(loadPlugins({ packages: ['./local/plugin.mjs'], dir })).rejects.toThrow(
      /^CAIRN_PLUGINS: \.\/local\/plugin\.mjs: plugin local: version is required; send or sendOne must be a function/,
    );
  });
});

describe.skipIf(!!POSTGRES_SKIP_REASON)('an injected third-party plugin on a server (postgres)', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  let receiver: Receiver;

  // Per-item form and ordered, as a third-party author would write it: no loop, no hold-back of its own.
  const ordered = definePlugin({
    name: 'acme-ordered',
    version: '1.0.0',
    description: 'test',
    settings: z.object({ url: z.string() }),
    purposes: [],
    accepts: ['track'],
    batchSize: 10,
    ordering: 'profile',
    parallel: 4,
    // No failure stops the batch: what keeps a3 back below is the per-person hold-back alone.
    systemic: () => false,
    async sendOne(item, ctx) {
      const body = JSON.stringify({ id: item.event.messageId, user: item.event.userId });
      await checkResponse(await ctx.fetch(ctx.settings.url, { method: 'POST', body }));
    },
  });

  beforeAll(async () => {
    [db, receiver] = await Promise.all([createTestDatabase('deliver/plugins.test.ts', 'postgres'), startReceiver()]);
    cairn = await startTestCairn(
      { ...db.env, CAIRN_DELIVERY_RETRY_DELAY_S: '1', CAIRN_DELIVERY_RETRY_MAX_S: '1' },
      { plugins: [ordered] },
    );
  });
  afterAll(async () => {
    await cairn?.close();
    await receiver?.close();
    await db?.drop();
  });

  it("gets the framework's per-person hold-back: a person's later events wait behind their failed one", async () => {
    const failedOnce = new Set<string>();
    receiver.answer((r) => {
      const { id } = r.body as { id: string };
      if (id !== 'a2' || failedOnce.has(id)) return { status: 200 };
      failedOnce.add(id);
      return { status: 503 };
    });
    const headers = { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' };
    const created = await fetch(`${cairn.url}/api/destinations`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'ordered', plugin: 'acme-ordered', settings: { url: receiver.url } }),
    });
    expect(created.status).toBe(201);
    const batch = [
      ['a1', 'a'],
      ['a2', 'a'],
      ['b1', 'b'],
      ['a3', 'a'],
      ['b2', 'b'],
    ].map(([messageId, userId], i) => ({
      type: 'track',
      event: 'Step',
      messageId,
      userId,
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    }));
    const writeKey = cairn.demoSource!.writeKey;
    const sent = await fetch(`${cairn.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ writeKey, batch }),
    });
    expect(sent.status).toBe(200);
    const requests = await receiver.waitFor(6, { timeoutMs: 30_000, among: 'all' });
    const seen = (user: string) =>
      requests
        .map((r) => r.body as { id: string; user: string })
        .filter((j) => j.user === user)
        .map((j) => j.id);
    // a1 goes alone (a2 and a3 wait in the ledger behind it), then a2 and a3 are promoted into one job and
    // one plugin batch: a2 fails there, and the framework holds a3 back until a2 is through.
    expect(seen('a')).toEqual(['a1', 'a2', 'a2', 'a3']);
    expect(seen('b')).toEqual(['b1', 'b2']);
    expect(requests.map((r) => r.status)).toContain(503);
  });
});
