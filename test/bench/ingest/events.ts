import { randomUUID } from 'node:crypto';

// Realistic shop events (~500-800 bytes): a track call with product properties, the browser's user
// agent and page, as sdk-web or analytics.js send them. Bodies are assembled from pre-serialized
// templates with fresh messageIds, so the load generator spends microseconds, not the server's CPU.

const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68',
];
const EVENTS = ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed', 'Product List Filtered'];
const CATEGORIES = ['Outdoor / Tents', 'Outdoor / Backpacks', 'Footwear / Hiking', 'Apparel / Jackets', 'Kitchen'];
const REFERRERS = ['https://www.google.com/', 'https://duckduckgo.com/', '', 'https://news.example/spring-gear'];
const CAMPAIGNS = [
  '',
  '?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale',
  '?utm_source=ads&utm_medium=cpc',
];
const TEMPLATE_COUNT = 64;
const ANONYMOUS_IDS = 5000;

// A fixed-seed generator: every run sends the same mix of events.
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MID = '@@MID@@';
const TS = '@@TS@@';
const ANON = '@@ANON@@';

/** One event serialized with holes for messageId, timestamp and anonymousId. */
type Template = [string, string, string, string];

function makeTemplate(rand: () => number, i: number): Template {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const sku = `SKU-${1000 + Math.floor(rand() * 9000)}`;
  const slug = `${pick(['alpine', 'summit', 'ridge', 'trail', 'basecamp'])}-${pick(['2p', 'pro', 'lite', 'xl'])}`;
  const query = pick(CAMPAIGNS);
  const url = `https://shop.example/products/${slug}${query}`;
  const event = {
    messageId: MID,
    timestamp: TS,
    anonymousId: ANON,
    ...(i % 3 === 0 ? { userId: `user_${100000 + Math.floor(rand() * 900000)}` } : {}),
    event: pick(EVENTS),
    properties: {
      product_id: sku,
      category: pick(CATEGORIES),
      name: `${slug.replace('-', ' ')} ${pick(['tent', 'pack', 'boot', 'shell'])}`,
      price: Math.round(rand() * 40000) / 100,
      quantity: 1 + Math.floor(rand() * 3),
      currency: 'EUR',
    },
    context: {
      library: { name: '@cairn/sdk-web', version: '0.1.0' },
      locale: pick(['en-GB', 'de-DE', 'fr-FR']),
      userAgent: pick(USER_AGENTS),
      page: {
        path: `/products/${slug}`,
        referrer: pick(REFERRERS),
        search: query,
        title: `${slug} | Cairn Gear shop`,
        url,
      },
    },
  };
  const json = JSON.stringify(event);
  const [a, rest1] = json.split(`"${MID}"`) as [string, string];
  const [b, rest2] = rest1.split(`"${TS}"`) as [string, string];
  const [c, d] = rest2.split(`"${ANON}"`) as [string, string];
  return [a, b, c, d];
}

/** Builds request bodies for the tracking API. */
export interface EventFactory {
  /** A `/v1/batch` body of `n` track events (each with a fresh messageId). */
  batch(n: number): string;
  /** A `/v1/track` body of one event. */
  single(): string;
  /** Average serialized size of one event, in bytes. */
  averageEventBytes(): number;
}

/**
 * Creates the event factory (fixed seed: every run sends the same mix).
 *
 * @example
 * const events = createEventFactory();
 * const body = events.batch(100);
 */
export function createEventFactory(seed = 42): EventFactory {
  const rand = mulberry32(seed);
  const templates = Array.from({ length: TEMPLATE_COUNT }, (_, i) => makeTemplate(rand, i));
  const anonymous = Array.from({ length: ANONYMOUS_IDS }, () => `"${randomUUID()}"`);
  let n = 0;

  function event(ts: string, typed: boolean): string {
    const [a, b, c, d] = templates[n % TEMPLATE_COUNT]!;
    const anon = anonymous[(n * 7919) % ANONYMOUS_IDS]!;
    n++;
    const head = typed ? `{"type":"track",${a.slice(1)}` : a;
    return `${head}"${randomUUID()}"${b}${ts}${c}${anon}${d}`;
  }

  return {
    batch(count) {
      const ts = `"${new Date().toISOString()}"`;
      const parts = new Array<string>(count);
      for (let i = 0; i < count; i++) parts[i] = event(ts, true);
      return `{"batch":[${parts.join(',')}],"sentAt":${ts}}`;
    },
    single() {
      return event(`"${new Date().toISOString()}"`, false);
    },
    averageEventBytes() {
      const ts = `"${new Date().toISOString()}"`;
      let total = 0;
      for (let i = 0; i < TEMPLATE_COUNT; i++) total += Buffer.byteLength(event(ts, true));
      return Math.round(total / TEMPLATE_COUNT);
    },
  };
}
