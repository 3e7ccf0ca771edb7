// The published packages as a user gets them: `npm pack` each of @cairn/node, @cairn/plugin-api and @cairn/sdk-web,
// `npm install` the tarballs into a fresh project outside the monorepo, then use them there with the machine's own
// Node < 22 (users' backends are not on Node 24): import and require, definePlugin + runPlugin, the browser
// bundles, and `tsc --noEmit` on TypeScript consumers of both module formats. Nothing here may resolve to src/: the
// old Node runs without the monorepo's `@cairn/source` condition and could not run TypeScript anyway.
import { execFile as execFileCallback, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver } from '../packages/node/test/receiver.ts';
import { ensureBuilt } from '../sdk-web/test/helpers/build.ts';
import {
  CONSUMER_CJS,
  CONSUMER_ESM,
  CONSUMER_TS,
  CONSUMER_TSCONFIG,
  PLUGIN_SCRIPT,
  SDK_WEB_SCRIPT,
} from './support/pack-consumer.ts';

const execFile = promisify(execFileCallback);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['@cairn/node', '@cairn/plugin-api', '@cairn/sdk-web'] as const;

/** The environment of everything run here: no npm_* leftovers from `npm test`, no monorepo export condition. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('npm_') || key === 'NODE_OPTIONS') delete env[key];
  return env;
}

/** The oldest Node 20 or 21 on this machine (the system's /usr/bin/node, or any `node` on PATH), if there is one. */
function findOldNode(): { path: string; version: string } | undefined {
  const dirs = ['/usr/bin', '/usr/local/bin', ...(process.env.PATH ?? '').split(delimiter)].filter(Boolean);
  const found: { path: string; version: string; major: number; minor: number }[] = [];
  for (const path of new Set(dirs.map((d) => join(d, 'node')))) {
    if (!existsSync(path)) continue;
    try {
      const version = execFileSync(path, ['-p', 'process.versions.node'], { env: cleanEnv(), encoding: 'utf8' }).trim();
      const [major = 0, minor = 0] = version.split('.').map(Number);
      if (major >= 20 && major < 22) found.push({ path, version, major, minor });
    } catch {}
  }
  found.sort((a, b) => a.major - b.major || a.minor - b.minor);
  return found[0] && { path: found[0].path, version: found[0].version };
}

const oldNode = findOldNode();
const NO_OLD_NODE = 'SKIPPED: no Node 20/21 on this machine (looked at /usr/bin/node, /usr/local/bin/node and PATH)';
if (!oldNode) console.warn(`packages-pack.test.ts: ${NO_OLD_NODE}; the Node 20 runs of the tarballs are not tested`);

describe(`npm tarballs of ${PACKAGES.join(', ')} in a fresh project`, () => {
  let dir = '';
  let app = '';
  const packed: Record<string, string[]> = {};
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  /** Runs a script of the temporary project with the old Node; its stdout is its JSON report. */
  async function runOld(script: string) {
    const { stdout } = await execFile(oldNode!.path, [script], {
      cwd: app,
      env: { ...cleanEnv(), RECEIVER: receiver.url },
      timeout: 30_000,
    });
    return JSON.parse(stdout);
  }

  beforeAll(async () => {
    // dist/ is build output (gitignored): build it now so the tarballs hold the current sources. sdk-web goes
    // through the same locked helper as the browser tests, which may be building it at this very moment.
    await ensureBuilt();
    await execFile('npx', ['tsc', '-p', 'sdk-web/tsconfig.build.json'], { cwd: ROOT, env: cleanEnv() });
    for (const name of ['@cairn/node', '@cairn/plugin-api']) {
      await execFile('npm', ['run', 'build', '--silent', '-w', name], { cwd: ROOT, env: cleanEnv() });
    }
    dir = mkdtempSync(join(tmpdir(), 'cairn-pack-'));
    app = join(dir, 'app');
    const workspaces = PACKAGES.flatMap((p) => ['-w', p]);
    const { stdout } = await execFile(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', dir, ...workspaces],
      { cwd: ROOT, env: cleanEnv() },
    );
    const tarballs: string[] = [];
    for (const t of JSON.parse(stdout) as { name: string; filename: string; files: { path: string }[] }[]) {
      packed[t.name] = t.files.map((f) => f.path).sort();
      tarballs.push(join(dir, t.filename));
    }
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pack-consumer', private: true, type: 'module' }));
    await execFile(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', ...tarballs],
      { cwd: app, env: cleanEnv() },
    );
    writeFileSync(join(app, 'esm.mjs'), CONSUMER_ESM);
    writeFileSync(join(app, 'cjs.cjs'), CONSUMER_CJS);
    writeFileSync(join(app, 'plugin.mjs'), PLUGIN_SCRIPT);
    writeFileSync(join(app, 'sdk-web.mjs'), SDK_WEB_SCRIPT);
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS.esm);
    writeFileSync(join(app, 'consumer-cjs.cts'), CONSUMER_TS.cjs);
    writeFileSync(join(app, 'tsconfig.json'), CONSUMER_TSCONFIG(join(ROOT, 'node_modules/@types')));
    receiver = await startReceiver();
  });

  afterAll(async () => {
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ship built JavaScript and declarations, no TypeScript sources', () => {
    const files = [
      'README.md',
      'dist/index.cjs',
      'dist/index.d.cts',
      'dist/index.d.ts',
      'dist/index.js',
      'package.json',
    ];
    expect(packed['@cairn/node']).toEqual(files);
    // @cairn/plugin-api/testing: the scripted receiver and profile builder for plugin authors' tests.
    const testing = ['dist/testing.cjs', 'dist/testing.d.cts', 'dist/testing.d.ts', 'dist/testing.js'];
    expect(packed['@cairn/plugin-api']).toEqual([...files, ...testing].sort());
    expect(packed['@cairn/sdk-web']).toEqual(
      expect.arrayContaining(['dist/cairn.esm.js', 'dist/cairn.min.js', 'dist/types/esm.d.ts', 'snippet.html']),
    );
    expect(packed['@cairn/sdk-web']!.filter((f) => f.startsWith('src/'))).toEqual([]);
    const engines = (name: string) =>
      JSON.parse(readFileSync(join(app, 'node_modules', name, 'package.json'), 'utf8')).engines?.node;
    expect(engines('@cairn/node')).toBe('>=20');
    expect(engines('@cairn/plugin-api')).toBe('>=20.18.1');
  });

  it.skipIf(!oldNode)(`@cairn/node by import on ${oldNode?.version ?? NO_OLD_NODE}: a track arrives`, async () => {
    const before = receiver.requests.length;
    const report = await runOld('esm.mjs');
    expect(report).toEqual({ node: `v${oldNode!.version}`, errors: [], resolved: 'node/dist/index.js' });
    const got = receiver.requests.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.headers.authorization).toBe(`Basic ${Buffer.from('wk_pack_esm:').toString('base64')}`);
    expect(got[0]!.headers['content-encoding']).toBe('gzip');
    expect(got[0]!.body.batch).toEqual([
      expect.objectContaining({
        type: 'track',
        event: 'Pack ESM',
        userId: 'u_esm',
        properties: { total: 42.5 },
        context: expect.objectContaining({ library: { name: '@cairn/node', version: '0.1.0' } }),
      }),
    ]);
  });

  it.skipIf(!oldNode)(
    `@cairn/node and @cairn/plugin-api by require on ${oldNode?.version ?? NO_OLD_NODE}`,
    async () => {
      const before = receiver.requests.length;
      const report = await runOld('cjs.cjs');
      expect(report).toEqual({
        node: `v${oldNode!.version}`,
        errors: [],
        errorClass: 'function',
        pluginApi: ['PermanentError', 'RetryableError', 'definePlugin', 'runPlugin'],
        resolved: ['node/dist/index.cjs', 'plugin-api/dist/index.cjs'],
      });
      const got = receiver.requests.slice(before);
      expect(got.map((r) => r.body.batch.map((m) => [m.type, m.userId, m.event]))).toEqual([
        [['track', 'u_cjs', 'Pack CJS']],
      ]);
    },
  );

  it.skipIf(!oldNode)(`@cairn/plugin-api on ${oldNode?.version ?? NO_OLD_NODE}: definePlugin + runPlugin`, async () => {
    const before = receiver.requests.length;
    receiver.reply({ status: 200 }, { status: 503, headers: { 'retry-after': '7' } });
    const report = await runOld('plugin.mjs');
    expect(report).toEqual({
      node: `v${oldNode!.version}`,
      outcomes: [{ status: 'delivered' }, { status: 'retry', error: 'receiver said 503', retryAfter: 7 }],
      badDefinition: expect.stringMatching(/name must be/),
      badSettings: expect.stringMatching(/^PluginSettingsError: invalid settings for pack-probe: url/),
    });
    // ctx.fetch (undici) on the old Node posted the first event; the second was answered 503 + Retry-After.
    const got = receiver.requests.slice(before);
    expect(got.map((r) => r.body as unknown)).toEqual([
      { event: 'Pack Plugin', key: expect.stringMatching(/:test$/) },
      { event: 'Pack Plugin 2', key: expect.stringMatching(/:test$/) },
    ]);
  });

  it.skipIf(!oldNode)(
    `@cairn/sdk-web on ${oldNode?.version ?? NO_OLD_NODE}: ESM import and the IIFE file`,
    async () => {
      const report = await runOld('sdk-web.mjs');
      expect(report).toEqual({ esm: ['init', 'track'], iife: ['init', 'track'], iifePath: expect.any(String) });
      expect(report.iifePath).toMatch(/node_modules\/@cairn\/sdk-web\/dist\/cairn\.min\.js$/);
    },
  );

  it('types resolve for ESM and CommonJS TypeScript consumers (tsc --noEmit)', async () => {
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const result = await execFile(process.execPath, [tsc, '-p', '.', '--explainFiles'], {
      cwd: app,
      env: cleanEnv(),
    }).catch((err: { stdout: string }) => ({ stdout: err.stdout, failed: true }));
    const errors = result.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
    expect(errors).toEqual([]);
    expect('failed' in result).toBe(false);
    // The import condition's declarations for consumer.ts, the require condition's for consumer-cjs.cts.
    for (const file of [
      '@cairn/node/dist/index.d.ts',
      '@cairn/node/dist/index.d.cts',
      '@cairn/plugin-api/dist/index.d.ts',
      '@cairn/plugin-api/dist/index.d.cts',
      '@cairn/sdk-web/dist/types/esm.d.ts',
    ]) {
      expect(result.stdout).toContain(`node_modules/${file}`);
    }
  });
});
