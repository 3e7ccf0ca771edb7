// The files of the throwaway project test/packages-pack.test.ts installs the tarballs into. Plain JavaScript run by
// the machine's old Node (each prints one JSON line for the test to check), and TypeScript for tsc only. Kept as
// text so that nothing in the monorepo type-checks or lints them against src/.

/** ESM import of @cairn/node: one track to the test's receiver, then close(). */
export const CONSUMER_ESM = `
import { Cairn } from '@cairn/node';
const errors = [];
const cairn = new Cairn({ writeKey: 'wk_pack_esm', host: process.env.RECEIVER, maxRetries: 0 });
cairn.on('error', (e) => errors.push(e.code + ': ' + e.message));
cairn.track({ userId: 'u_esm', event: 'Pack ESM', properties: { total: 42.5 } });
await cairn.close();
const resolved = import.meta.resolve('@cairn/node').split('/').slice(-3).join('/');
console.log(JSON.stringify({ node: process.version, errors, resolved }));
`;

/** CommonJS require of both Node packages. */
export const CONSUMER_CJS = `
const { Cairn, CairnError } = require('@cairn/node');
const pluginApi = require('@cairn/plugin-api');
const errors = [];
const cairn = new Cairn({
  writeKey: 'wk_pack_cjs',
  host: process.env.RECEIVER,
  maxRetries: 0,
  onError: (e) => errors.push(e.code + ': ' + e.message),
});
cairn.track({ userId: 'u_cjs', event: 'Pack CJS' });
cairn.close().then(() => {
  const names = ['PermanentError', 'RetryableError', 'definePlugin', 'runPlugin'];
  const pluginApiNames = names.filter((n) => typeof pluginApi[n] === 'function');
  // Node >= 20.19 could require() the ESM files too: check that the CommonJS build is what require gets.
  const resolved = ['@cairn/node', '@cairn/plugin-api'].map((p) => require.resolve(p).split('/').slice(-3).join('/'));
  console.log(JSON.stringify({ node: process.version, errors, errorClass: typeof CairnError, pluginApi: pluginApiNames, resolved }));
});
`;

/**
 * A plugin written against the installed @cairn/plugin-api and zod, run through the local harness: the receiver
 * accepts the first post and answers the second with 503 + Retry-After (the test scripts it).
 */
export const PLUGIN_SCRIPT = `
import { checkResponse, closePluginAgent, definePlugin, PluginSettingsError, RetryableError, runPlugin } from '@cairn/plugin-api';
import { z } from 'zod';

const definition = {
  name: 'pack-probe',
  version: '1.0.0',
  description: 'posts each event to a URL',
  settings: z.object({ url: z.string().url() }),
  purposes: ['analytics'],
  accepts: ['track'],
  async send(items, ctx) {
    for (const item of items) {
      const res = await ctx.fetch(ctx.settings.url + '/hook', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event: item.event.event, key: item.idempotencyKey }),
        timeoutMs: 5000,
      });
      if (res.status === 503) {
        throw new RetryableError('receiver said 503', { retryAfter: Number(res.headers.get('retry-after')) });
      }
      await checkResponse(res);
    }
  },
};
const plugin = definePlugin(definition);
const { outcomes } = await runPlugin(plugin, { url: process.env.RECEIVER }, [
  { type: 'track', event: 'Pack Plugin' },
  { type: 'track', event: 'Pack Plugin 2' },
]);
let badDefinition = '';
try {
  definePlugin({ ...definition, name: 'Bad Name' });
} catch (e) {
  badDefinition = e.message;
}
let badSettings = '';
try {
  await runPlugin(plugin, { url: 'not a url' }, []);
} catch (e) {
  badSettings = (e instanceof PluginSettingsError ? 'PluginSettingsError: ' : 'other: ') + e.message;
}
await closePluginAgent();
console.log(JSON.stringify({ node: process.version, outcomes, badDefinition, badSettings }));
`;

/** @cairn/sdk-web: the ESM entry by import, and the IIFE file (by its export path) evaluated as a page would. */
export const SDK_WEB_SCRIPT = `
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import { cairn } from '@cairn/sdk-web';

const iifePath = createRequire(import.meta.url).resolve('@cairn/sdk-web/cairn.min.js');
const page = { document: { currentScript: null } };
page.window = page;
vm.runInNewContext(readFileSync(iifePath, 'utf8'), page);
const methods = (o) => ['init', 'track'].filter((m) => typeof o?.[m] === 'function');
console.log(JSON.stringify({ esm: methods(cairn), iife: methods(page.cairn), iifePath }));
`;

/**
 * TypeScript consumers: an ESM file (the `import` condition's .d.ts) and a CommonJS one (.cts, the `require`
 * condition's .d.cts). Each @ts-expect-error fails the compile if the types it tests came out as `any`.
 */
export const CONSUMER_TS = {
  esm: `
import { Cairn, type CairnError, type CairnOptions } from '@cairn/node';
import { checkResponse, definePlugin, RetryableError, runPlugin } from '@cairn/plugin-api';
import { cairn } from '@cairn/sdk-web';
import { z } from 'zod';

const options: CairnOptions = { writeKey: 'wk', host: 'http://localhost:8787', flushAt: 5 };
const client = new Cairn(options);
client.on('error', (err: CairnError) => console.warn(err.code, err.messages.length));
client.track({ userId: 'u1', event: 'Order Completed', properties: { total: 1 } });
// @ts-expect-error flushAt is a number
new Cairn({ writeKey: 'wk', flushAt: 'soon' });

export const plugin = definePlugin({
  name: 'typed',
  version: '1.0.0',
  description: 'types only',
  settings: z.object({ url: z.string() }),
  purposes: ['analytics'],
  accepts: ['track'],
  async send(items, ctx) {
    const url: string = ctx.settings.url;
    // @ts-expect-error not one of the settings
    ctx.settings.token;
    const res = await ctx.fetch(url, { method: 'POST', body: JSON.stringify(items.map((i) => i.event.event)) });
    await checkResponse(res);
    if (items.length > 10) throw new RetryableError('later', { retryAfter: 5 });
    return undefined;
  },
});
export const run = runPlugin(plugin, { url: 'http://localhost' }, [{ type: 'track', event: 'E' }]);

cairn.track('Viewed', { sku: 'a' });
// @ts-expect-error an event name is a string
cairn.track(42);
`,
  cjs: `
import { Cairn } from '@cairn/node';
import { type DeliveryItem, PermanentError } from '@cairn/plugin-api';

const client = new Cairn({ writeKey: 'wk' });
client.identify({ userId: 'u1', traits: { plan: 'pro' } });
// @ts-expect-error writeKey is required
new Cairn({});
export const isPermanent = (e: unknown): boolean => e instanceof PermanentError;
export const keyOf = (item: DeliveryItem): string => item.idempotencyKey;
`,
};

/** Strict NodeNext, checking the shipped declarations too (skipLibCheck off); @types/node from the monorepo. */
export const CONSUMER_TSCONFIG = (typeRoot: string) =>
  JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      lib: ['es2023', 'dom'],
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ['node'],
      typeRoots: [typeRoot],
    },
    files: ['consumer.ts', 'consumer-cjs.cts'],
  });
