// A third-party plugin as an operator installs one: written in its own package against the packed
// @cairn/plugin-api (a peer dependency), packed with `npm pack`, installed from the tarball into a directory of
// its own, named in CAIRN_PLUGINS (looked up from CAIRN_PLUGINS_DIR), loaded by a real server process at start
// and delivering an event sent through the tracking API to a real HTTP receiver. Malformed, missing and
// clashing plugins stop the start with one line naming the package and the problem.
import { execFile as execFileCallback } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Receiver, startReceiver } from '@cairn/plugin-api/testing';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  type ServerProcess,
  spawnServer,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const execFile = promisify(execFileCallback);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** npm's environment: no npm_* leftovers from `npm test`. */
function npmEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  return env;
}

const manifest = (name: string) =>
  JSON.stringify({
    name,
    version: '1.0.0',
    type: 'module',
    exports: { '.': './index.js' },
    files: ['index.js'],
    peerDependencies: { '@cairn/plugin-api': '^0.1.0', zod: '^4.0.0' },
  });

// The plugin under test: per-item form, ordered, a secret setting; it posts what it was given.
const ECHO_PLUGIN = `import { checkResponse, definePlugin } from '@cairn/plugin-api';
import { z } from 'zod';

export default definePlugin({
  name: 'acme-echo',
  version: '1.0.0',
  description: 'Posts each event to a URL (third-party test plugin)',
  settings: z.object({ url: z.string().url(), token: z.string().min(8) }),
  secrets: ['token'],
  purposes: [],
  accepts: ['track', 'identify'],
  batchSize: 10,
  ordering: 'profile',
  async sendOne(item, ctx) {
    const res = await ctx.fetch(ctx.settings.url, {
      method: 'POST',
      headers: { authorization: 'Bearer ' + ctx.settings.token, 'idempotency-key': item.idempotencyKey },
      body: JSON.stringify({ event: item.event.event, userId: item.event.userId, profileId: item.profile?.id ?? null }),
    });
    await checkResponse(res);
  },
});
`;

// Malformed: no send/sendOne.
const BROKEN_PLUGIN = `import { z } from 'zod';
export default { name: 'acme-broken', version: '1.0.0', description: 'x', settings: z.object({}), purposes: [],
  accepts: ['track'], apiVersion: 1 };
`;

// Well formed, but named like a built-in.
const CLASH_PLUGIN = `import { definePlugin } from '@cairn/plugin-api';
import { z } from 'zod';
export default definePlugin({ name: 'webhook', version: '9.9.9', description: 'x', settings: z.object({}),
  purposes: [], accepts: ['track'], async sendOne() {} });
`;

describe.skipIf(!!POSTGRES_SKIP_REASON)('a third-party plugin from npm pack (postgres)', () => {
  let dir = '';
  let pluginsDir = '';
  let db: TestDatabase;
  let receiver: Receiver;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-third-party-'));
    // The contract as npm would serve it: built, then packed.
    await execFile('npm', ['run', 'build', '--silent', '-w', '@cairn/plugin-api'], { cwd: ROOT, env: npmEnv() });
    const packed = await execFile(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', dir, '-w', '@cairn/plugin-api'],
      { cwd: ROOT, env: npmEnv() },
    );
    const apiTarball = join(dir, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
    // Three plugin packages, each its own project (outside the monorepo), packed.
    const packages: Record<string, string> = {
      'cairn-echo': ECHO_PLUGIN,
      'cairn-broken': BROKEN_PLUGIN,
      'cairn-clash': CLASH_PLUGIN,
    };
    const sources = Object.entries(packages).map(([name, code]) => {
      const at = join(dir, 'src', name);
      mkdirSync(at, { recursive: true });
      writeFileSync(join(at, 'package.json'), manifest(`@acme/${name}`));
      writeFileSync(join(at, 'index.js'), code);
      return at;
    });
    const pluginPack = await execFile('npm', ['pack', '--json', '--pack-destination', dir, ...sources], {
      cwd: dir,
      env: npmEnv(),
    });
    const pluginTarballs = (JSON.parse(pluginPack.stdout) as { filename: string }[]).map((t) => join(dir, t.filename));
    // Where the operator installs plugins: a directory of its own, the plugins with their peers (the contract's
    // tarball, zod from the registry or npm's cache).
    pluginsDir = join(dir, 'cairn-plugins');
    mkdirSync(pluginsDir);
    writeFileSync(join(pluginsDir, 'package.json'), JSON.stringify({ name: 'cairn-plugins', private: true }));
    await execFile(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--no-package-lock',
        '--ignore-scripts',
        apiTarball,
        ...pluginTarballs,
      ],
      { cwd: pluginsDir, env: npmEnv() },
    );
    [db, receiver] = await Promise.all([
      createTestDatabase('test/third-party-plugin.test.ts', 'postgres'),
      startReceiver(),
    ]);
  });

  afterAll(async () => {
    server?.proc.kill('SIGKILL');
    if (server) await server.exited;
    await receiver?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = (plugins: string) =>
    spawnServer({ ...db.env, CAIRN_PLUGINS: plugins, CAIRN_PLUGINS_DIR: pluginsDir, CAIRN_LOG: 'info' });

  it('is loaded at start, makes a destination through the admin API and delivers a tracked event', async () => {
    server = await start('@acme/cairn-echo');
    const api = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(`${server!.url}/api${path}`, {
        ...init,
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
      });
      return { status: res.status, body: (await res.json()) as Record<string, never> };
    };
    const plugins = await api('/destinations/plugins');
    expect(plugins.body.data).toContainEqual(
      expect.objectContaining({ name: 'acme-echo', version: '1.0.0', ordering: 'profile', batchSize: 10 }),
    );
    const created = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: 'Acme echo',
        plugin: 'acme-echo',
        settings: { url: `${receiver.origin}/in`, token: 'acme-token-123' },
      }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ plugin: 'acme-echo', settings: { token: '********' } });
    // Its settings are validated by the plugin's own schema.
    const refused = await api('/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: 'bad', plugin: 'acme-echo', settings: { url: 'not a url', token: 'x' } }),
    });
    expect(refused.status).toBe(400);

    const writeKey = /demo source write key: (\S+)/.exec(server.output())![1]!;
    const tracked = await fetch(`${server.url}/v1/track`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ userId: 'u-third-party', event: 'Plugin Installed', messageId: 'm-third-party-1' }),
    });
    expect(tracked.status).toBe(200);
    const [request] = await receiver.waitFor(1, { timeoutMs: 30_000 });
    expect(request!.path).toBe('/in');
    expect(request!.headers.authorization).toBe('Bearer acme-token-123');
    expect(request!.headers['idempotency-key']).toBe(`m-third-party-1:${created.body.id}`);
    expect(request!.body).toMatchObject({ event: 'Plugin Installed', userId: 'u-third-party' });
    expect((request!.body as { profileId: string | null }).profileId).toMatch(/^[0-9a-f-]{36}$/);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    server = undefined;
  });

  it('refuses at start a malformed, a clashing or a missing plugin, in one line naming it', async () => {
    const cases: [string, RegExp][] = [
      [
        '@acme/cairn-broken',
        /CAIRN_PLUGINS: @acme\/cairn-broken: plugin acme-broken: send or sendOne must be a function/,
      ],
      [
        '@acme/cairn-clash',
        /CAIRN_PLUGINS: @acme\/cairn-clash: a plugin named "webhook" is already installed \(built-in\); names must be unique/,
      ],
      ['@acme/cairn-nope', /CAIRN_PLUGINS: @acme\/cairn-nope: package not found in node_modules from /],
    ];
    await Promise.all(
      cases.map(async ([plugins, line]) => {
        const failed = await start(plugins).then(
          (s) => {
            s.proc.kill('SIGKILL');
            return new Error(`the server started with CAIRN_PLUGINS=${plugins}`);
          },
          (err: Error) => err,
        );
        // spawnServer's error: the exit code, then everything the process printed.
        expect(failed.message).toMatch(/^server exited with [1-9]\d* before listening/);
        expect(failed.message).toMatch(line);
        // One line (main.ts catches PluginLoadError), no stack trace after it.
        expect(failed.message).not.toMatch(/\n\s+at /);
      }),
    );
  });
});
