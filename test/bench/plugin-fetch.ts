// CPU per delivered event of the webhook plugin's `ctx.fetch`, without the database: the webhook plugin
// (through sendBatch, as the deliver worker calls it) sends N events to three destinations shaped like
// bench:deliver's (signed: single mode + HMAC, parallel 8; batch: 100 per request; wide: single mode,
// parallel 32), each destination its own receiver origin in a child process. `--impl undici` uses
// createPluginFetch (undici request() on the shared keep-alive agent); `--impl fetch` the wrapper around
// Node's global fetch it replaced. Prints one JSON line: CPU ms of this process per event (all three
// destinations), wall time, requests. Run both implementations interleaved, in separate processes:
//   for i in 1 2 3; do for impl in fetch undici; do npx tsx test/bench/plugin-fetch.ts --impl $impl; done; done
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import {
  createPluginFetch,
  type DeliveryItem,
  type PluginContext,
  type PluginFetch,
  RetryableError,
  sendBatch,
} from '@cairn/plugin-api';
import webhook from '@cairn/plugin-webhook';

const RECEIVER = `
const http = require('node:http');
let requests = 0;
let connections = 0;
const ports = [];
let pending = 3;
for (let i = 0; i < 3; i++) {
  const s = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { requests++; res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"ok":true}'); });
  });
  s.keepAliveTimeout = 5000;
  s.on('connection', () => connections++);
  s.listen(0, '127.0.0.1', () => { ports[i] = s.address().port; if (--pending === 0) process.stdout.write(JSON.stringify(ports) + '\\n'); });
}
process.stdin.on('data', () => process.stdout.write(JSON.stringify({ requests, connections }) + '\\n'));
`;

/** The implementation before `ctx.fetch` moved to undici (packages/plugin-api/src/run.ts at c0a6aba). */
function legacyPluginFetch(signal: AbortSignal, defaultTimeoutMs = 10_000): PluginFetch {
  return async function pluginFetch(input, init = {}) {
    const { timeoutMs = defaultTimeoutMs, signal: own, ...rest } = init;
    const signals = [signal, AbortSignal.timeout(timeoutMs), ...(own ? [own] : [])];
    try {
      return await fetch(input, { ...rest, signal: AbortSignal.any(signals) });
    } catch (err) {
      const reason =
        (err as Error)?.name === 'TimeoutError'
          ? `timed out after ${timeoutMs} ms`
          : String((err as Error)?.message ?? err);
      const cause = (err as { cause?: { code?: string } })?.cause?.code;
      throw new RetryableError(`request failed: ${reason}${cause ? ` (${cause})` : ''}`, { cause: err });
    }
  };
}

function items(from: number, n: number, people: number): DeliveryItem[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const person = i % people;
    const messageId = `m-${i.toString(16).padStart(12, '0')}`;
    return {
      idempotencyKey: `${messageId}:dest`,
      attempt: 1,
      event: {
        type: 'track',
        event: 'Order Completed',
        messageId,
        timestamp: new Date(1_767_225_600_000 + i * 1000).toISOString(),
        userId: `user-${person}`,
        properties: { orderId: `o-${i}`, total: 42.5 + (i % 17), currency: 'EUR', items: ['sku-1', 'sku-2'] },
        context: { ip: '203.0.113.9', library: { name: 'cairn-web', version: '0.1.0' }, locale: 'en-GB' },
      },
      profile: {
        id: `00000000-0000-4000-8000-${person.toString(16).padStart(12, '0')}`,
        userId: `user-${person}`,
        email: `person${person}@example.test`,
        phone: null,
        anonymousIds: [`anon-${person}`],
        traits: { name: `Person ${person}`, plan: person % 3 ? 'free' : 'pro', company: 'Example Ltd' },
      },
    };
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      impl: { type: 'string', default: 'undici' },
      events: { type: 'string', default: '6000' },
      warmup: { type: 'string', default: '1000' },
      people: { type: 'string', default: '500' },
      concurrency: { type: 'string', default: '2' },
    },
  });
  const impl = values.impl === 'fetch' ? 'fetch' : 'undici';
  const events = Number(values.events);
  const warmup = Number(values.warmup);
  const people = Number(values.people);
  const concurrency = Number(values.concurrency);

  const receiver = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = (async function* () {
    let buf = '';
    for await (const chunk of receiver.stdout!) {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        yield buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
    }
  })();
  const ports = JSON.parse((await lines.next()).value as string) as number[];

  const signal = new AbortController().signal;
  const fetch = impl === 'fetch' ? legacyPluginFetch(signal) : createPluginFetch(signal);
  const destinations = [
    { name: 'signed', settings: { secret: 'bench-deliver-secret-0123456789', parallel: 8 } },
    { name: 'batch', settings: { mode: 'batch' } },
    { name: 'wide', settings: { mode: 'single', parallel: 32 } },
  ].map((d, i) => {
    const settings = webhook.settings.parse({ url: `http://127.0.0.1:${ports[i]}/hook`, ...d.settings });
    const ctx: PluginContext<typeof settings> = {
      settings,
      destination: { id: d.name, name: d.name },
      fetch,
      log: { info() {}, warn() {}, error() {} },
      kv: { get: async () => undefined, set: async () => {}, delete: async () => {} },
      unsubscribeUrl: () => 'http://127.0.0.1/u',
      now: () => new Date(),
      signal,
    };
    return ctx;
  });

  let failed = 0;
  const deliver = async (from: number, n: number) => {
    const batches: DeliveryItem[][] = [];
    for (let at = 0; at < n; at += 100) batches.push(items(from + at, Math.min(100, n - at), people));
    await Promise.all(
      destinations.map(async (ctx) => {
        let next = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < batches.length) {
              const batch = batches[next++]!;
              const outcomes = await sendBatch(webhook, batch, ctx);
              failed += outcomes.filter((o) => o.status !== 'delivered').length;
            }
          }),
        );
      }),
    );
  };

  await deliver(0, warmup);
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  await deliver(warmup, events);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - wall0;
  receiver.stdin!.write('\n');
  const { requests, connections } = JSON.parse((await lines.next()).value as string) as {
    requests: number;
    connections: number;
  };
  receiver.kill();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    JSON.stringify({
      impl,
      events,
      cpuMsPerEvent: Number((cpuMs / events).toFixed(4)),
      userMs: Math.round(cpu.user / 1000),
      systemMs: Math.round(cpu.system / 1000),
      wallMs: Math.round(wallMs),
      eventsPerSecond: Math.round(events / (wallMs / 1000)),
      requestsIncludingWarmup: requests,
      connectionsIncludingWarmup: connections,
      failed,
    }),
  );
  process.exit(failed ? 1 : 0);
}

await main();
