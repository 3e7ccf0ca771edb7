// The population of bench:identify and the events its people send, as a browser SDK would send them
// (page/track/identify with anonymousId, userId once logged in, traits on identify). Everything comes
// from a fixed-seed generator, so two runs build the same profiles and send the same mix.

/** A fixed-seed generator of numbers in [0, 1). */
export type Rand = () => number;

/**
 * mulberry32: small, fast, good enough to pick people and shapes of events.
 *
 * @example
 * const rand = seeded(42);
 */
export function seeded(seed: number): Rand {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/** A UUID-shaped anonymousId drawn from the generator (what sdk-web stores in its cookie). */
export function anonymousId(rand: Rand): string {
  let hex = '';
  for (let i = 0; i < 4; i++)
    hex += Math.floor(rand() * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** An identified person: one userId, one email, one or two devices (anonymousIds). */
export interface Person {
  index: number;
  userId: string;
  email: string;
  name: string;
  /** anonymousIds, the first one seen before sign-up. */
  anon: string[];
}

/** An anonymous visitor: one anonymousId, never identified (yet). */
export interface Visitor {
  anon: string;
}

/** One event as a client sends it (messageId and timestamp included). */
export type ClientEvent = Record<string, unknown> & { type: string; messageId: string; timestamp: string };

const FIRST = ['Ann', 'Bea', 'Carl', 'Dana', 'Emil', 'Fay', 'Gus', 'Hana', 'Ivo', 'Jana', 'Kai', 'Lea', 'Mo', 'Nia'];
const LAST = ['Adler', 'Berg', 'Costa', 'Dahl', 'Egger', 'Fischer', 'Gomez', 'Huber', 'Ito', 'Jensen', 'Keller'];
const PLANS = ['free', 'starter', 'pro', 'team'];
const EVENTS = ['Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed', 'Product List Filtered'];
const PAGES = ['/', '/products/alpine-2p', '/products/summit-pack', '/cart', '/account', '/blog/spring-gear'];
const REFERRERS = ['https://www.google.com/', 'https://duckduckgo.com/', '', 'https://news.example/spring-gear'];
const CAMPAIGNS = [
  '',
  '',
  '?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale',
  '?utm_source=ads&utm_medium=cpc&utm_campaign=brand',
];
const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36',
];

/**
 * The identified people of the setup: person i has userId `usr_<i>`, an email, and a second device
 * for every other person.
 *
 * @example
 * const people = makePeople(100_000, 1);
 */
export function makePeople(count: number, seed: number): Person[] {
  const rand = seeded(seed);
  const people: Person[] = [];
  for (let i = 0; i < count; i++) {
    const first = pick(rand, FIRST);
    const last = pick(rand, LAST);
    people.push({
      index: i,
      userId: `usr_${String(i).padStart(7, '0')}`,
      email: `${first}.${last}.${i}@example.com`.toLowerCase(),
      name: `${first} ${last}`,
      anon: i % 2 === 0 ? [anonymousId(rand)] : [anonymousId(rand), anonymousId(rand)],
    });
  }
  return people;
}

/**
 * Anonymous visitors of the setup (the profiles that merging events later join to a userId).
 *
 * @example
 * const visitors = makeVisitors(10_000, 2);
 */
export function makeVisitors(count: number, seed: number): Visitor[] {
  const rand = seeded(seed);
  return Array.from({ length: count }, () => ({ anon: anonymousId(rand) }));
}

/** Builds client events with browser-like context; `rand` decides pages, products and campaigns. */
export class EventShapes {
  constructor(private readonly rand: Rand) {}

  private context(withCampaign: boolean, ua: string): Record<string, unknown> {
    const path = pick(this.rand, PAGES);
    const search = withCampaign ? pick(this.rand, CAMPAIGNS) : '';
    return {
      library: { name: '@cairn/sdk-web', version: '0.1.0' },
      locale: pick(this.rand, ['en-GB', 'de-DE', 'fr-FR']),
      userAgent: ua,
      page: {
        path,
        referrer: withCampaign ? pick(this.rand, REFERRERS) : '',
        search,
        title: 'Cairn Gear shop',
        url: `https://shop.example${path}${search}`,
      },
    };
  }

  /** A user agent per anonymousId (a device keeps its browser). */
  userAgent(anon: string): string {
    return USER_AGENTS[anon.charCodeAt(0) % USER_AGENTS.length]!;
  }

  page(messageId: string, ts: number, ids: { anonymousId: string; userId?: string }, landing = false): ClientEvent {
    const context = this.context(landing, this.userAgent(ids.anonymousId));
    const page = context.page as { path: string; url: string; title: string };
    return {
      type: 'page',
      messageId,
      timestamp: new Date(ts).toISOString(),
      ...ids,
      name: page.path === '/' ? 'Home' : 'Page',
      properties: { path: page.path, url: page.url, title: page.title },
      context,
    };
  }

  track(messageId: string, ts: number, ids: { anonymousId: string; userId?: string }): ClientEvent {
    const sku = `SKU-${1000 + Math.floor(this.rand() * 9000)}`;
    return {
      type: 'track',
      messageId,
      timestamp: new Date(ts).toISOString(),
      ...ids,
      event: pick(this.rand, EVENTS),
      properties: {
        product_id: sku,
        price: Math.round(this.rand() * 40000) / 100,
        quantity: 1 + Math.floor(this.rand() * 3),
        currency: 'EUR',
      },
      context: this.context(false, this.userAgent(ids.anonymousId)),
    };
  }

  /** An identify as sdk-web sends it at sign-up or log-in: userId, the device's anonymousId, traits. */
  identify(
    messageId: string,
    ts: number,
    ids: { anonymousId: string; userId: string },
    traits: Record<string, unknown>,
  ): ClientEvent {
    return {
      type: 'identify',
      messageId,
      timestamp: new Date(ts).toISOString(),
      ...ids,
      traits,
      context: this.context(false, this.userAgent(ids.anonymousId)),
    };
  }

  plan(): string {
    return pick(this.rand, PLANS);
  }
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/**
 * The history of one person before the benchmark, in time order: an anonymous landing page on the
 * first device, sign-up (identify with email and traits), a product view; people with a second
 * device log in there (track with userId) and later browse it logged out (page with the anonymousId
 * only). Each identity set is first seen together with the person's userId or on its own before any
 * link joins it, so processing this history in order never merges two profiles: one profile results.
 *
 * @example
 * const events = personHistory(shapes, person, Date.now() - 60 * DAY, 'p1-');
 */
export function personHistory(shapes: EventShapes, p: Person, start: number, prefix: string): ClientEvent[] {
  const [a1, a2] = p.anon as [string, string | undefined];
  const m = (n: number) => `${prefix}${p.index}-${n}`;
  const events = [
    shapes.page(m(1), start, { anonymousId: a1 }, true),
    shapes.identify(
      m(2),
      start + 2 * MINUTE,
      { userId: p.userId, anonymousId: a1 },
      {
        email: p.email,
        name: p.name,
        plan: shapes.plan(),
        createdAt: new Date(start + 2 * MINUTE).toISOString(),
      },
    ),
    shapes.track(m(3), start + 5 * MINUTE, { userId: p.userId, anonymousId: a1 }),
  ];
  if (a2) {
    events.push(
      shapes.track(m(4), start + 3 * DAY, { userId: p.userId, anonymousId: a2 }),
      shapes.page(m(5), start + 4 * DAY, { anonymousId: a2 }),
    );
  }
  return events;
}

/**
 * The history of an anonymous visitor: a landing page and a product view.
 *
 * @example
 * const events = visitorHistory(shapes, visitor, 7, start, 'v1-');
 */
export function visitorHistory(
  shapes: EventShapes,
  v: Visitor,
  index: number,
  start: number,
  prefix: string,
): ClientEvent[] {
  return [
    shapes.page(`${prefix}${index}-1`, start, { anonymousId: v.anon }, true),
    shapes.track(`${prefix}${index}-2`, start + MINUTE, { anonymousId: v.anon }),
  ];
}

export { DAY, MINUTE };
