import {
  type ComputedTraitDefinition,
  PREFERENCE_DEFAULTS,
  RFM_DEFAULTS,
  type Rule,
  SCORE_DEFAULTS,
  type Window,
} from '@cairn/core';
import { z } from '@hono/zod-openapi';
import type { Config } from '../config.ts';
import type { Tx } from '../db/index.ts';
import { apiError } from '../http/errors.ts';
import type { Logger } from '../log.ts';
import { allRules, listComputedTraits } from '../pipeline/compute/index.ts';

// Issue 22: with CAIRN_EVENT_RETENTION_DAYS set, events older than that go with their partitions, so a
// rule or computed trait reading events over a longer window would quietly count only the kept ones.
// A definition saved with such a window is refused (422 window_beyond_retention, naming both numbers);
// one reading events over all time ("performed ever", an aggregate without `within`, a first event) is
// accepted, and carries a warning that "all time" now means "within retention". A definition saved
// before the setting (or before it was shortened) is left alone: the server names it at start.

const DAY_MS = 86_400_000;
const UNIT_MS = { minutes: 60_000, hours: 3_600_000, days: DAY_MS } as const;

/** Where a definition reads events, and over how many days back (null: all time). */
export interface EventWindow {
  /** The field, as a 400 names it (`rule.rules[1].within`, `definition.windowDays`). */
  path: string;
  days: number | null;
}

// A fixed window reads from its start: it is as long as the time from that start to now.
const daysOf = (w: Window, nowMs: number): number =>
  'last' in w ? (w.last * UNIT_MS[w.unit]) / DAY_MS : (nowMs - Date.parse(w.from)) / DAY_MS;

const timeRefDays = (t: { daysAgo: number } | { date: string }, nowMs: number): number =>
  'daysAgo' in t ? t.daysAgo : (nowMs - Date.parse(t.date)) / DAY_MS;

/**
 * The event windows of a rule, leaf by leaf: `performed` and `aggregate` over `within` (none: all time);
 * `occurrence` of the last event after a time reads back to that time, any other occurrence (the first
 * event ever, the last before a time) all time.
 *
 * @example
 * ruleEventWindows({ op: 'performed', event: 'Order Completed', within: { last: 90, unit: 'days' } }, Date.now());
 * // [{ path: 'rule.within', days: 90 }]
 */
export function ruleEventWindows(rule: Rule, nowMs: number): EventWindow[] {
  const out: EventWindow[] = [];
  const walk = (r: Rule, path: string) => {
    if (r.op === 'and' || r.op === 'or') {
      for (const [i, x] of r.rules.entries()) walk(x, `${path}.rules[${i}]`);
    } else if (r.op === 'not') walk(r.rule, `${path}.rule`);
    else if (r.op === 'performed' || r.op === 'aggregate')
      out.push(r.within ? { path: `${path}.within`, days: daysOf(r.within, nowMs) } : { path, days: null });
    else if (r.op === 'occurrence')
      out.push(
        r.which === 'last' && r.after && !r.before
          ? { path: `${path}.after`, days: timeRefDays(r.after, nowMs) }
          : { path, days: null },
      );
  };
  walk(rule, 'rule');
  return out;
}

type Of<K extends ComputedTraitDefinition['kind']> = Extract<ComputedTraitDefinition, { kind: K }>;
type WindowOf<D> = (def: D, nowMs: number) => EventWindow[];
const at = (path: string, days: number | null): EventWindow[] => [{ path: `definition${path}`, days }];

// Per kind, as each one's SQL reads events (packages/core/src/rules/{computed,preferences,scores}.ts).
const COMPUTED_WINDOWS: { [K in ComputedTraitDefinition['kind']]: WindowOf<Of<K>> } = {
  aggregate: (d, now) => (d.within ? at('.within', daysOf(d.within, now)) : at('', null)),
  active_hour: (d, now) => (d.within ? at('.within', daysOf(d.within, now)) : at('', null)),
  // Frequency and monetary over windowDays; recency tiers only tell apart the last order within r2 days.
  rfm: (d) =>
    at(
      '.windowDays',
      Math.max(d.windowDays ?? RFM_DEFAULTS.windowDays, (d.recencyDays ?? RFM_DEFAULTS.recencyDays)[1]),
    ),
  // new / won back need the first event ever and the whole history.
  lifecycle: () => at('', null),
  active_time: (d) => at('.withinDays', d.withinDays ?? PREFERENCE_DEFAULTS.activeWithinDays),
  // Recency-weighted over every event: old ones weigh little, but all time is read.
  preferred: () => at('', null),
  preferred_channel: () => at('', null),
  coupons: (d) => at('.windowDays', d.windowDays ?? PREFERENCE_DEFAULTS.coupons.windowDays),
  price_sensitivity: (d) => at(d.windowDays ? '.windowDays' : '', d.windowDays ?? null),
  repurchase_cycle: () => at('', null),
  activity: (d) => at('.windowDays', d.windowDays ?? SCORE_DEFAULTS.activity.windowDays),
  virality: (d) => at(d.windowDays ? '.windowDays' : '', d.windowDays ?? null),
  // Reads other computed traits, no event.
  weighted: () => [],
};

/**
 * The event windows of a computed trait (defaults applied: the RFM preset reads 90 days).
 *
 * @example
 * computedEventWindows({ kind: 'aggregate', fn: 'count', event: 'Order Completed' }, Date.now());
 * // [{ path: 'definition', days: null }]
 */
export function computedEventWindows(def: ComputedTraitDefinition, nowMs: number): EventWindow[] {
  const of = COMPUTED_WINDOWS[def.kind] as WindowOf<ComputedTraitDefinition> | undefined;
  return of ? of(def, nowMs) : at('', null);
}

const shown = (days: number) => (Number.isInteger(days) ? `${days}` : days.toFixed(2));

/**
 * Refuses a definition reading events further back than the event retention (422
 * `window_beyond_retention`, naming the field and both numbers). A window of exactly the retention is
 * accepted. Without retention (null) nothing is refused.
 *
 * @example
 * refuseBeyondRetention(ruleEventWindows(rule, Date.now()), config.retention.eventDays);
 */
export function refuseBeyondRetention(windows: readonly EventWindow[], eventDays: number | null): void {
  if (eventDays === null) return;
  const over = windows.filter((w) => w.days !== null && w.days > eventDays);
  if (!over.length) return;
  const first = over[0]!;
  throw apiError(
    422,
    'window_beyond_retention',
    `${first.path}: reads events ${shown(first.days!)} days back, but CAIRN_EVENT_RETENTION_DAYS=${eventDays} ` +
      `keeps them ${eventDays} days: the answer would count only the kept ones. Use a window of at most ${eventDays} days`,
    over.map((w) => ({ path: w.path, days: w.days, retentionDays: eventDays })),
  );
}

/**
 * What an answer about a definition says when it reads events over all time while events are kept
 * only `eventDays`: one warning per such field (none without retention).
 *
 * @example
 * const warnings = retentionWarnings(ruleEventWindows(rule, Date.now()), 30);
 * // ['rule.rules[0]: reads events over all time, but CAIRN_EVENT_RETENTION_DAYS=30: ...']
 */
export function retentionWarnings(windows: readonly EventWindow[], eventDays: number | null): string[] {
  if (eventDays === null) return [];
  return windows
    .filter((w) => w.days === null)
    .map(
      (w) =>
        `${w.path}: reads events over all time, but CAIRN_EVENT_RETENTION_DAYS=${eventDays}: ` +
        `"all time" means the last ${eventDays} days (at least) once older partitions are dropped`,
    );
}

/**
 * The stored definitions whose event windows are longer than the retention (saved before it was set or
 * shortened): they keep working on the kept events, and the server names them at start.
 *
 * @example
 * const over = await definitionsBeyondRetention(sql, 30, new Date());
 * // ['audience big_spenders (rule.within: 90 days)']
 */
export async function definitionsBeyondRetention(sql: Tx, eventDays: number, now: Date): Promise<string[]> {
  const named: string[] = [];
  const check = (what: string, windows: EventWindow[]) => {
    const over = windows.filter((w) => w.days !== null && w.days > eventDays);
    if (over.length) named.push(`${what} (${over.map((w) => `${w.path}: ${shown(w.days!)} days`).join(', ')})`);
  };
  for (const d of await allRules(sql)) if (d.rule) check(`${d.kind} ${d.key}`, ruleEventWindows(d.rule, now.getTime()));
  for (const t of await listComputedTraits(sql))
    check(`computed trait ${t.key}`, computedEventWindows(t.definition, now.getTime()));
  return named;
}

/**
 * At start, with event retention set: logs the definitions reading further back than it (once, one line).
 *
 * @example
 * await warnDefinitionsBeyondRetention(sql, config.retention.eventDays, log, new Date());
 */
export async function warnDefinitionsBeyondRetention(
  sql: Tx,
  eventDays: number | null,
  log: Pick<Logger, 'info'>,
  now: Date,
): Promise<string[]> {
  if (eventDays === null) return [];
  const over = await definitionsBeyondRetention(sql, eventDays, now);
  if (over.length)
    log.info(
      `warning: ${over.length} definition(s) read events further back than CAIRN_EVENT_RETENTION_DAYS=${eventDays} ` +
        `and count only the kept ones: ${over.join('; ')}. Shorten their windows (saving one again as it is would be refused)`,
    );
  return over;
}

/** What the definition routes need to check windows: the retention and the clock fixed windows are read against. */
export interface RetentionDeps {
  config: { retention: Pick<Config['retention'], 'eventDays'> };
  now: () => Date;
}

/** The 422 a definition route answers for a window beyond retention, as the OpenAPI description says it. */
export const WINDOW_BEYOND_RETENTION =
  'window_beyond_retention: it reads events further back than CAIRN_EVENT_RETENTION_DAYS keeps them (the message names both numbers)';

/** The `warnings` of a definition answer (absent when there is none). */
export const RetentionWarningsSchema = z.array(z.string()).optional().openapi({
  description:
    'Present when the definition reads events over all time while CAIRN_EVENT_RETENTION_DAYS is set: "all time" then means within retention',
});

/**
 * Checks a rule about to be saved against the retention (422 `window_beyond_retention`), and returns it.
 *
 * @example
 * rule: guardRule(deps, await checkRule(sql, body.rule, self, pii)),
 */
export function guardRule<R extends Rule>(deps: RetentionDeps, rule: R): R {
  refuseBeyondRetention(ruleEventWindows(rule, deps.now().getTime()), deps.config.retention.eventDays);
  return rule;
}

/**
 * {@link guardRule} for a computed trait's definition.
 *
 * @example
 * definition: guardDefinition(deps, parseDefinition(body.definition, sensitive)),
 */
export function guardDefinition<D extends ComputedTraitDefinition>(deps: RetentionDeps, def: D): D {
  refuseBeyondRetention(computedEventWindows(def, deps.now().getTime()), deps.config.retention.eventDays);
  return def;
}

/**
 * A definition's view with its retention warnings (a rule, or a computed trait's definition).
 *
 * @example
 * view: (a) => withWarnings(deps, view(a), { rule: a.rule }),
 */
export function withWarnings<V extends object>(
  deps: RetentionDeps,
  view: V,
  of: { rule: Rule | null } | { definition: ComputedTraitDefinition },
): V & { warnings?: string[] } {
  const now = deps.now().getTime();
  const windows =
    'rule' in of ? (of.rule ? ruleEventWindows(of.rule, now) : []) : computedEventWindows(of.definition, now);
  const warnings = retentionWarnings(windows, deps.config.retention.eventDays);
  return warnings.length ? { ...view, warnings } : view;
}
