/**
 * Who enters a flow and when: whether a change or an event is the flow's trigger, when time-based
 * triggers come due, and whether a person may enter (entry rule, re-entry policy, one run at a time).
 */
import { compareValue, matchEvent } from '../rules/evaluate.ts';
import type { FlowDefinition, JsonValue, Trigger } from './ast.ts';
import { decideRule, decisionWords, type ProfileFacts, type StoredEvent } from './facts.ts';
import { localDateTime, nextAnniversary, nextCalendarDay, nextCron, publicHolidays } from './time.ts';

const DAY_MS = 86_400_000;

/** A change of a profile's memberships or traits that a trigger may be waiting for. */
export type ProfileChange =
  | { type: 'audience_entered' | 'audience_exited'; audience: string }
  | { type: 'tag_added' | 'tag_removed'; tag: string }
  | { type: 'trait_changed'; trait: string; computed?: boolean; from?: unknown; to?: unknown };

/**
 * Whether an event starts the flow (an `event` trigger whose name and conditions match).
 *
 * @example
 * triggeredByEvent(def.trigger, { type: 'track', event: 'Added To Cart', properties: {} }, Date.now()); // true
 */
export function triggeredByEvent(trigger: Trigger, event: StoredEvent, nowMs: number): boolean {
  if (trigger.type !== 'event') return false;
  return matchEvent({ event: trigger.event, ...(trigger.where ? { where: trigger.where } : {}) }, event, nowMs);
}

/**
 * Whether a profile change starts the flow (audience, tag and trait triggers).
 *
 * @example
 * triggeredByChange({ type: 'tag_added', tag: 'vip' }, { type: 'tag_added', tag: 'vip' }, Date.now()); // true
 */
export function triggeredByChange(trigger: Trigger, change: ProfileChange, nowMs: number): boolean {
  switch (trigger.type) {
    case 'audience_entered':
    case 'audience_exited':
      return change.type === trigger.type && change.audience === trigger.audience;
    case 'tag_added':
    case 'tag_removed':
      return change.type === trigger.type && change.tag === trigger.tag;
    case 'trait_changed':
      return (
        change.type === 'trait_changed' &&
        change.trait === trigger.trait &&
        Boolean(change.computed) === Boolean(trigger.computed) &&
        JSON.stringify(change.from ?? null) !== JSON.stringify(change.to ?? null) &&
        (!trigger.to || compareValue(change.to, trigger.to, nowMs))
      );
    default:
      return false;
  }
}

/**
 * When a time-based trigger next enters someone, strictly after `afterMs`: a `date_trait` trigger
 * for one person (their trait, in their zone), a `schedule` or `calendar` trigger for the flow
 * (in its zone). `calendars` holds the days of custom calendars by name. Undefined when it never
 * will (no date, a `once` date passed) or the trigger is not time-based.
 *
 * @example
 * nextEntry(def, { afterMs: Date.now(), zone: 'Europe/Berlin', traits: { birthday: '1990-06-15' } });
 */
export function nextEntry(
  def: FlowDefinition,
  at: { afterMs: number; zone: string; traits?: Record<string, JsonValue>; calendars?: Record<string, string[]> },
): { at: number; why: string } | undefined {
  const t = def.trigger;
  const after = at.afterMs + 1;
  if (t.type === 'date_trait') {
    const value = at.traits?.[t.trait];
    if (t.repeat === 'yearly') {
      const next = nextAnniversary(value, t.offsetDays, t.time, at.zone, after);
      return next === undefined
        ? undefined
        : { at: next, why: `${t.trait} ${JSON.stringify(value)} ${offset(t.offsetDays)}at ${t.time} ${at.zone}` };
    }
    if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(value)) return undefined;
    const once = localDateTime(value.slice(0, 10), t.offsetDays, t.time, at.zone);
    return once >= after
      ? { at: once, why: `${t.trait} ${JSON.stringify(value)} ${offset(t.offsetDays)}at ${t.time} ${at.zone}` }
      : undefined;
  }
  if (t.type === 'schedule') {
    const next = nextCron(t.cron, t.timezone, at.afterMs);
    return { at: next, why: `${t.cron} in ${t.timezone}` };
  }
  if (t.type === 'calendar') {
    const zone = t.timezone ?? def.timezone ?? at.zone;
    let days: { date: string; name: string }[];
    if ('custom' in t.calendar) {
      const name = t.calendar.custom;
      days = (at.calendars?.[name] ?? []).map((date) => ({ date, name }));
    } else {
      const year = new Date(at.afterMs).getUTCFullYear();
      const { country, region } = t.calendar;
      days = [year - 1, year, year + 1, year + 2].flatMap((y) => publicHolidays(country, y, region));
    }
    const next = nextCalendarDay(
      days.map((d) => d.date),
      t.offsetDays,
      t.time,
      zone,
      after,
    );
    if (!next) return undefined;
    const name = days.find((d) => d.date === next.day)?.name;
    return { at: next.at, why: `${name} ${next.day} ${offset(t.offsetDays)}at ${t.time} ${zone}` };
  }
  return undefined;
}

const offset = (days: number) => (days ? `${days > 0 ? '+' : ''}${days} days ` : '');

/** The runs a person already had in the flow (for the re-entry policy). */
export interface PastRun {
  enteredAt: number;
  /** Still waiting or awaiting an effect. */
  active: boolean;
}

/**
 * Whether a person may enter now: no active run unless the flow allows several, the re-entry
 * policy (`once` ever, `every_time`, or `{ afterDays }` since the last entry), and the entry rule
 * on their facts. The reason says which decided.
 *
 * @example
 * admit(def, { facts, nowMs: Date.now(), runs: [] }); // { ok: true, reason: 'entry rule holds: ...' }
 */
export function admit(
  def: FlowDefinition,
  who: { facts: ProfileFacts; nowMs: number; runs: readonly PastRun[] },
): { ok: boolean; reason: string } {
  if (!def.entry.concurrent && who.runs.some((r) => r.active)) return { ok: false, reason: 'already in the flow' };
  const last = Math.max(...who.runs.map((r) => r.enteredAt));
  const re = def.entry.reentry;
  if (who.runs.length && re === 'once') return { ok: false, reason: 'entered before (re-entry: once)' };
  if (who.runs.length && typeof re === 'object' && who.nowMs < last + re.afterDays * DAY_MS)
    return { ok: false, reason: `entered ${new Date(last).toISOString()}, re-entry after ${re.afterDays} days` };
  if (!def.entry.rule) return { ok: true, reason: 'no entry rule' };
  const d = decideRule(def.entry.rule, who.facts, who.nowMs);
  return d.result
    ? { ok: true, reason: `entry rule holds: ${decisionWords(d)}` }
    : { ok: false, reason: `entry rule does not hold: ${decisionWords(d)}` };
}
