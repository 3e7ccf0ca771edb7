// Generated historical event files for the events import tests: 1% bad rows of four kinds (bad
// timestamp, no userId nor anonymousId, unknown type, oversized properties), with the lines that must
// be refused and a word of their reason.

const DAY = 86_400_000;
/** Every generated event happened before this (a year before the tests run, and older). */
export const HISTORY_END = Date.UTC(2025, 0, 1);

const BAD_KINDS = ['timestamp', 'userId or an anonymousId', 'unknown type', 'too large'] as const;
const big = 'x'.repeat(33 * 1024);

/**
 * An NDJSON file of `rows` events of `people` people (`<prefix><n>`): orders, page views, and identify
 * calls setting `plan`. Each person's newest identify (plan `pro`) comes in the first half of the file
 * and an older one (plan `basic`) in the second half: stored later, it must not win.
 */
export function ndjsonHistory(rows: number, people: number, prefix: string) {
  const bad = new Map<number, string>();
  /** Each person's plan as it must end: from their newest good identify. */
  const plans = new Map<string, string>();
  const lines: string[] = [];
  for (let i = 0; i < rows; i++) {
    const line = i + 1;
    const n = i % people;
    const userId = `${prefix}${n}`;
    const at = HISTORY_END - (i % 300) * DAY - i * 1000;
    let e: Record<string, unknown>;
    if (i < people) {
      e = { type: 'identify', userId, traits: { plan: 'pro' }, timestamp: new Date(HISTORY_END - DAY).toISOString() };
    } else if (i >= rows - people) {
      e = {
        type: 'identify',
        userId,
        traits: { plan: 'basic' },
        timestamp: new Date(HISTORY_END - 400 * DAY).toISOString(),
      };
    } else if (i % 3 === 0) {
      e = { type: 'page', anonymousId: `a-${userId}`, userId, name: 'Home', timestamp: new Date(at).toISOString() };
    } else {
      e = {
        type: 'track',
        event: 'Order Completed',
        userId,
        properties: { revenue: (i % 90) + 10, order: `o-${prefix}${i}` },
        timestamp: new Date(at).toISOString(),
      };
    }
    if (i % 100 === 51) {
      const kind = BAD_KINDS[Math.floor(i / 100) % 4]!;
      bad.set(line, kind);
      if (kind === 'timestamp') e.timestamp = '2024-13-45T10:00:00Z';
      else if (kind === 'userId or an anonymousId') {
        delete e.userId;
        delete e.anonymousId;
      } else if (kind === 'unknown type') e.type = 'purchase';
      else e.properties = { blob: big };
    }
    lines.push(JSON.stringify(e));
    if (e.type === 'identify' && !bad.has(line)) {
      const plan = (e.traits as { plan: string }).plan;
      // The newest identify wins, whatever the order in the file: pro is the newer one.
      if (plan === 'pro' || !plans.has(userId)) plans.set(userId, plan);
    }
  }
  return { text: `${lines.join('\n')}\n`, bad, good: rows - bad.size, plans };
}

/** A CSV file of `rows` orders (header = line 1) with typed revenue; 1% bad rows as above. */
export function csvHistory(rows: number, prefix: string) {
  const bad = new Map<number, string>();
  const lines = ['kind,what,user,anon,when,revenue,note'];
  for (let i = 0; i < rows; i++) {
    const line = i + 2;
    let kind = 'track';
    let user = `${prefix}${i % 50}`;
    let when = new Date(HISTORY_END - i * 3_600_000).toISOString();
    let note = `"order ${i}, paid"`;
    if (i % 100 === 13) {
      const k = BAD_KINDS[Math.floor(i / 100) % 4]!;
      bad.set(line, k);
      if (k === 'timestamp') when = 'yesterday';
      else if (k === 'userId or an anonymousId') user = '';
      else if (k === 'unknown type') kind = 'purchase';
      else note = big;
    }
    lines.push(`${kind},Order Completed,${user},,${when},${(i % 40) + 1}.5,${note}`);
  }
  return { text: `${lines.join('\n')}\n`, bad, good: rows - bad.size };
}

/** The CSV's mapping: typed revenue, the note as a property. */
export const CSV_MAP =
  'kind=type,what=event,user=userId,anon=anonymousId,when=timestamp,revenue=properties.revenue:number,note=properties.note';
