// Validator cost on the ingest hot path. DESIGN.md allows a hand-written validator only if zod costs
// more than 10% of ingest throughput; this measured ~1.6%, so validateEvent is built on a zod schema
// (plus an iterative walk for NUL, broken surrogates and nesting depth). Prints both costs per event
// and their share of the CPU budget per event at the 20,000 events/s target.
//   npm run bench:validate            (BENCH_EVENTS=... to change the sample size)
import { validateEvent } from '@cairn/core';
import { z } from 'zod';

const N = Number(process.env.BENCH_EVENTS ?? 200_000);
const Id = z.union([z.string().max(255), z.number()]);
const Iso = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not an ISO-8601 date');
const Obj = z.record(z.string(), z.unknown());
const ZodEvent = z
  .looseObject({
    type: z.enum(['track', 'identify', 'page', 'screen', 'group', 'alias']),
    messageId: Id.optional(),
    userId: Id.nullish(),
    anonymousId: Id.nullish(),
    event: z.string().max(255).optional(),
    name: z.string().max(255).optional(),
    category: z.string().max(255).optional(),
    groupId: Id.optional(),
    previousId: Id.optional(),
    properties: Obj.optional(),
    traits: Obj.optional(),
    context: Obj.optional(),
    integrations: Obj.optional(),
    timestamp: Iso.optional(),
    originalTimestamp: Iso.optional(),
    sentAt: Iso.optional(),
  })
  .refine((e) => e.userId || e.anonymousId, 'needs a userId or an anonymousId')
  .refine((e) => e.type !== 'track' || e.event, { message: 'is required', path: ['event'] });

function sample(i: number): Record<string, unknown> {
  return {
    type: 'track',
    event: 'Product Added',
    messageId: `m-${i}`,
    anonymousId: `a-${i % 5000}`,
    timestamp: new Date(1_760_000_000_000 + i).toISOString(),
    properties: { product_id: `p${i % 300}`, price: 19.99, quantity: 1 + (i % 3), category: 'Outdoor / Tents' },
    context: {
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36',
      page: { url: `https://shop.example/p/${i % 300}`, path: `/p/${i % 300}`, title: 'Tent', referrer: '' },
      library: { name: '@cairn/sdk-web', version: '0.1.0' },
      locale: 'en-GB',
    },
  };
}

function time(label: string, fn: (e: Record<string, unknown>, i: number) => unknown): number {
  const events = Array.from({ length: N }, (_, i) => sample(i));
  for (let i = 0; i < 20_000; i++) fn(events[i % N]!, i); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(events[i]!, i);
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`${label.padEnd(28)} ${(ns / 1000).toFixed(2)} µs/event`);
  return ns;
}

const full = time('validateEvent (zod + walk)', (e, i) => validateEvent(e, `batch[${i % 100}]`));
const zod = time('a bare zod 4 schema', (e) => ZodEvent.safeParse(e));
// Ingest budget: 20,000 events/s on a 2-core machine leaves ~100 µs of CPU per event for everything.
const budgetNs = (2 * 1e9) / 20_000;
const share = (ns: number) => `${((ns / budgetNs) * 100).toFixed(1)}%`;
console.log(
  `share of the per-event CPU budget at 20,000 events/s on 2 cores: validateEvent ${share(full)}, bare zod ${share(zod)}`,
);
