/**
 * Rules decided in memory on one profile's facts, for the flow engine (branches, entry and exit
 * conditions), which runs one person at a time and must decide without a database: the runner loads
 * the facts, the simulation makes them up. Leaves read values exactly as the SQL compiler does (the
 * rules README, "Semantics"), through the same value forms (values.ts) and comparisons (evaluate.ts).
 */
import type { EventMatch, NumericComparison, Rule, Window } from '../rules/ast.ts';
import { describeRule, ruleDependencies } from '../rules/compile.ts';
import { compareValue, eventName, matchEvent } from '../rules/evaluate.ts';
import { describeComparison } from '../rules/ops/compare.ts';
import { normalizeDate } from '../rules/schema.ts';
import { compareDecimals, type Decimal, dateOf, numberOf, valueAt } from '../rules/values.ts';
import type { DataCondition, FlowDefinition, JsonValue } from './ast.ts';
import type { GovernanceFacts, SentMessage } from './governance-types.ts';

/** An event as stored: the Segment fields (`type`, `event`, `properties`, `context`, `timestamp`, ...). */
export type StoredEvent = Record<string, unknown>;

/** What the engine knows about the person a run is for. */
export interface ProfileFacts {
  id: string;
  traits: Record<string, JsonValue>;
  computed?: Record<string, JsonValue>;
  audiences: readonly string[];
  tags: readonly string[];
  /** The profile's events, when the flow's rules read events (`factsNeeded(def).events`). */
  events?: readonly StoredEvent[];
  /** The latest consent choice per purpose. */
  consent?: Record<string, 'granted' | 'denied'>;
  /** Per channel: whether the profile has a contact point, and the topics it opted out of ('' = all). */
  subscriptions?: Record<string, { contact: boolean; unsubscribed: readonly string[] }>;
  /** The traits of each account (group) the profile belongs to. */
  accounts?: readonly Record<string, JsonValue>[];
  /** Blind indexes of traits encrypted at rest (for `trait_index` leaves). */
  blind?: Record<string, string>;
  /** The time zone the latest events' context carried (`context.timezone`), if any. */
  eventZone?: string;
  /** Frequency caps and quiet hours with the destinations' channels; none: sends are not governed. */
  governance?: GovernanceFacts;
  /** The person's sends within the longest cap window (all flows), for caps to count. */
  sends?: readonly SentMessage[];
}

/** One leaf of a decision: what it says, the value it read, and its truth. */
export interface DecidedLeaf {
  says: string;
  value?: unknown;
  result: boolean;
}

/** A rule's truth on the facts, with every leaf read (the values that decided it). */
export interface Decision {
  result: boolean;
  leaves: DecidedLeaf[];
}

const UNIT_MS = { minutes: 60_000, hours: 3_600_000, days: 86_400_000 } as const;
const DAY_MS = UNIT_MS.days;

function eventMs(e: StoredEvent): number | undefined {
  const us = dateOf(e.timestamp);
  return us === undefined ? undefined : Number(us / 1000n);
}

function inWindow(ms: number, w: Window | undefined, nowMs: number): boolean {
  if (!w) return true;
  if ('last' in w) return nowMs - w.last * UNIT_MS[w.unit] < ms && ms <= nowMs;
  return Date.parse(normalizeDate(w.from)) <= ms && ms < Date.parse(normalizeDate(w.to));
}

// The profile's events of one name (and type), each kept when every property filter holds.
function kept(m: EventMatch, facts: ProfileFacts, nowMs: number): { e: StoredEvent; ms: number }[] {
  const out: { e: StoredEvent; ms: number }[] = [];
  for (const e of facts.events ?? []) {
    if (eventName(e) !== m.event || (m.type && e.type !== m.type)) continue;
    if (m.where && !matchEvent({ where: m.where }, e, nowMs)) continue;
    const ms = eventMs(e);
    if (ms !== undefined) out.push({ e, ms });
  }
  return out;
}

const ZERO: Decimal = { n: 0n, s: 0 };
const add = (a: Decimal, b: Decimal): Decimal => {
  const s = Math.max(a.s, b.s);
  return { n: a.n * 10n ** BigInt(s - a.s) + b.n * 10n ** BigInt(s - b.s), s };
};
const times = (a: Decimal, k: number): Decimal => ({ n: a.n * BigInt(k), s: a.s });

// An aggregate compared: `avg` is compared as sum against value × count, exactly (no division).
function compareAggregate(value: Decimal, c: NumericComparison, count = 1): boolean {
  const cmp = (x: number) => compareDecimals(value, times(numberOf(x)!, count));
  switch (c.cmp) {
    case '=':
      return cmp(c.value) === 0;
    case '!=':
      return cmp(c.value) !== 0;
    case '<':
      return cmp(c.value) < 0;
    case '<=':
      return cmp(c.value) <= 0;
    case '>':
      return cmp(c.value) > 0;
    case '>=':
      return cmp(c.value) >= 0;
    case 'between':
      return cmp(c.value[0]) >= 0 && cmp(c.value[1]) <= 0;
  }
}

const decimalNumber = (d: Decimal) => Number(d.n) / 10 ** d.s;

type Leaf = Exclude<Rule, { op: 'and' | 'or' | 'not' }>;

// Each leaf: its truth and the value it read, as the SQL operator of the same name decides it.
const LEAVES: { [K in Leaf['op']]: (r: Extract<Leaf, { op: K }>, f: ProfileFacts, now: number) => [boolean, unknown] } =
  {
    trait: (r, f, now) => [compareValue(f.traits[r.trait], r, now), f.traits[r.trait]],
    trait_index: (r, f) => [f.blind?.[r.trait] !== undefined && r.in.includes(f.blind[r.trait]!), undefined],
    computed: (r, f, now) => {
      const [k, ...path] = r.trait.split('.');
      const v = valueAt(f.computed?.[k!], path);
      return [compareValue(v, r, now), v];
    },
    account: (r, f, now) => {
      const vals = (f.accounts ?? []).map((a) => a[r.trait]);
      return [vals.some((v) => compareValue(v, r, now)), vals];
    },
    performed: (r, f, now) => {
      const n = kept(r, f, now).filter((k) => inWindow(k.ms, r.within, now)).length;
      const min = r.min ?? (r.max === undefined ? 1 : 0);
      return [n >= min && (r.max === undefined || n <= r.max), n];
    },
    aggregate: (r, f, now) => {
      const events = kept(r, f, now).filter((k) => inWindow(k.ms, r.within, now));
      if (r.fn === 'count') return [compareAggregate(numberOf(events.length)!, r), events.length];
      const nums = events.flatMap((k) => {
        const d = numberOf(valueAt(k.e, ['properties', ...r.property!.split('.')]));
        return d ? [d] : [];
      });
      if (r.fn === 'sum') {
        const sum = nums.reduce(add, ZERO);
        return [compareAggregate(sum, r), decimalNumber(sum)];
      }
      if (!nums.length) return [false, null];
      if (r.fn === 'avg') {
        const sum = nums.reduce(add, ZERO);
        return [compareAggregate(sum, r, nums.length), decimalNumber(sum) / nums.length];
      }
      const pick = nums.reduce((a, b) => (compareDecimals(a, b) * (r.fn === 'min' ? 1 : -1) <= 0 ? a : b));
      return [compareAggregate(pick, r), decimalNumber(pick)];
    },
    occurrence: (r, f, now) => {
      const ms = kept(r, f, now).map((k) => k.ms);
      if (!ms.length) return [false, null];
      const t = r.which === 'first' ? Math.min(...ms) : Math.max(...ms);
      const ref = (x: { daysAgo: number } | { date: string }) =>
        'daysAgo' in x ? now - x.daysAgo * DAY_MS : Date.parse(normalizeDate(x.date));
      const holds = (!r.before || t < ref(r.before)) && (!r.after || t >= ref(r.after));
      return [holds, new Date(t).toISOString()];
    },
    has_tag: (r, f) => [f.tags.includes(r.tag), undefined],
    in_audience: (r, f) => [f.audiences.includes(r.audience), undefined],
    consent: (r, f) => {
      const state = f.consent?.[r.purpose] ?? 'unknown';
      return [state === r.state, state];
    },
    subscription: (r, f) => {
      const s = f.subscriptions?.[r.channel];
      if (!s?.contact) return [false, 'no contact point'];
      const out = s.unsubscribed.includes('') || (r.topic !== undefined && s.unsubscribed.includes(r.topic));
      return [out === (r.state === 'unsubscribed'), out ? 'unsubscribed' : 'subscribed'];
    },
  };

/**
 * Decides a (validated) rule on one profile's facts at `nowMs`, with each leaf and the value it read.
 * Leaves that read events, consent, subscriptions, accounts or encrypted traits need those facts
 * (`factsNeeded`); without them they read nothing, which is false, as a missing fact is everywhere.
 *
 * @example
 * decideRule({ op: 'trait', trait: 'tier', cmp: '=', value: 'gold' }, facts, Date.now());
 * // { result: true, leaves: [{ says: 'tier is "gold"', value: 'gold', result: true }] }
 */
export function decideRule(rule: Rule, facts: ProfileFacts, nowMs: number): Decision {
  const leaves: DecidedLeaf[] = [];
  const walk = (r: Rule): boolean => {
    if (r.op === 'and') return r.rules.map(walk).every(Boolean);
    if (r.op === 'or') return r.rules.map(walk).some(Boolean);
    if (r.op === 'not') return !walk(r.rule);
    const [result, value] = (LEAVES[r.op] as (r: Rule, f: ProfileFacts, n: number) => [boolean, unknown])(
      r,
      facts,
      nowMs,
    );
    const says = describeRule(r);
    leaves.push(value === undefined ? { says, result } : { says, value, result });
    return result;
  };
  return { result: walk(rule), leaves };
}

/**
 * Decides run-data conditions (fields `run.<name>`, `event.<path>` of the trigger event), all of
 * which must hold, with the value each read.
 *
 * @example
 * decideData([{ field: 'run.coupon', cmp: 'exists' }], { run: { coupon: 'X' } }, Date.now()).result; // true
 */
export function decideData(
  conditions: readonly DataCondition[],
  scope: { run: Record<string, JsonValue>; event?: Record<string, unknown> },
  nowMs: number,
): Decision {
  const leaves = conditions.map((c) => {
    const plain = 'not' in c ? c.not : c;
    const f = 'field' in plain ? plain.field : `event.properties.${plain.property}`;
    const value = valueAt(scope, f.split('.'));
    const result = matchEvent({ where: [c] }, scope, nowMs);
    const says = `${'not' in c ? 'not ' : ''}${f} ${describeComparison(plain)}`;
    return value === undefined ? { says, result } : { says, value, result };
  });
  return { result: leaves.every((l) => l.result), leaves };
}

/**
 * A decision in words: each leaf with the value it read.
 *
 * @example
 * decisionWords(decideRule(rule, facts, now)); // 'tier is "gold": yes ("gold")'
 */
export function decisionWords(d: Decision): string {
  return d.leaves
    .map((l) => `${l.says}: ${l.result ? 'yes' : 'no'}${'value' in l ? ` (${JSON.stringify(l.value)})` : ''}`)
    .join('; ');
}

/** Which facts beyond traits, computed traits, audiences and tags a flow's rules read. */
export interface FactsNeeded {
  /** Event names rules count or look at: load the profile's events of these names. */
  events: string[];
  consent: boolean;
  subscriptions: boolean;
  accounts: boolean;
}

/**
 * Every rule of a flow (entry, exit, branch cases).
 *
 * @example
 * flowRules(def).length;
 */
export function flowRules(def: FlowDefinition): Rule[] {
  const rules: Rule[] = [];
  if (def.entry.rule) rules.push(def.entry.rule);
  if (def.exit) rules.push(def.exit.rule);
  for (const n of def.nodes) if (n.type === 'branch') for (const c of n.cases) if (c.rule) rules.push(c.rule);
  for (const n of def.nodes)
    if (n.type === 'assign_owner' && n.mode === 'rule') for (const c of n.cases) rules.push(c.rule);
  return rules;
}

/**
 * What the runner must load for `advance()` beyond traits, audiences and tags.
 *
 * @example
 * factsNeeded(def); // { events: ['Order Completed'], consent: false, subscriptions: false, accounts: false }
 */
export function factsNeeded(def: FlowDefinition): FactsNeeded {
  const out: FactsNeeded = { events: [], consent: false, subscriptions: false, accounts: false };
  const events = new Set<string>();
  for (const rule of flowRules(def)) {
    const d = ruleDependencies(rule);
    for (const e of d.events) events.add(e);
    out.consent ||= d.consent;
    out.subscriptions ||= d.subscriptions;
    out.accounts ||= d.accountTraits.size > 0;
  }
  out.events = [...events].sort();
  return out;
}
