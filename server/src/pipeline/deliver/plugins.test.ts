import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definePlugin } from '@cairn/plugin-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
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
