/**
 * Conflict detection between two flows, statically: can they message the same people on the same
 * channel close in time? Three questions, each answered with typed reasons a reviewer can read:
 * 1. **Who and when they enter**: the same trigger (same event with `where` conditions that can both
 *    hold, same audience, tag or trait change, the same date trait or calendar, schedules that fire
 *    within a window of each other) ties both entries to one moment, give or take an offset. Triggers of
 *    different kinds (an event and an audience) are not tied to one moment but may share people: only
 *    a measurement says how many (the server counts them). Entry rules that exclude each other (plan =
 *    pro against plan = free; in an audience against not in it) keep the flows apart.
 * 2. **Where they send**: send nodes to the same destination, or to destinations of the same channel.
 * 3. **How close in time**: the earliest moment each send can happen after entry (the waits on the
 *    shortest path to it); with entries tied to one moment, sends more than the window apart do not
 *    compete for the same capped slots.
 */
import { CronExpressionParser } from 'cron-parser';
import type { FlowDefinition, FlowNode, SendNode, Trigger } from './ast.ts';
import { exclusiveKey, requiredLeaves, whereGroups } from './conflicts-satisfy.ts';
import { durationMs, parseLocalTime } from './time.ts';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/** Two sends (and two schedule firings) this close count as close in time, unless told otherwise. */
export const DEFAULT_CONFLICT_WINDOW_MS = DAY_MS;
/** How far ahead schedule firings are compared: a month covers monthly crons. */
const SCHEDULE_HORIZON_MS = 35 * DAY_MS;
/** Firings compared per schedule at most (a cron every minute would have 50,000 in a month). */
const MAX_FIRINGS = 2_000;

/** What {@link flowOverlap} takes besides the two flows. */
export interface ConflictOptions {
  /** A destination's channel (`email`, `sms`…); null or undefined: unknown (then only the same destination matches). */
  channelOf?: (destination: string) => string | null | undefined;
  /** Sends this close (ms) are close in time (default 24 h). */
  windowMs?: number;
  /** Schedule firings this close (ms) are one moment (default `windowMs`). */
  scheduleWindowMs?: number;
  /** Schedules are compared from this instant (ms; default now). */
  nowMs?: number;
}

/** Why two flows may message the same people on the same channel close in time. `text` says it in words. */
export type ConflictReason =
  | { kind: 'same_event'; event: string; text: string }
  | { kind: 'same_audience'; audience: string; text: string }
  | { kind: 'same_tag'; tag: string; text: string }
  | { kind: 'same_trait_change'; trait: string; text: string }
  | { kind: 'same_date'; trait: string; offsetMs: number; text: string }
  | { kind: 'same_calendar'; offsetMs: number; text: string }
  | { kind: 'schedules_close'; gapMs: number; text: string }
  | { kind: 'shared_people'; text: string }
  | { kind: 'same_destination'; destination: string; text: string }
  | { kind: 'same_channel'; channel: string; text: string }
  | { kind: 'close_in_time'; gapMs: number | null; sends: [SendTiming, SendTiming]; text: string };

/** Why two flows cannot conflict. */
export type ApartReason =
  | { kind: 'different_triggers'; text: string }
  | { kind: 'exclusive_conditions'; path: string; text: string }
  | { kind: 'no_sends'; text: string }
  | { kind: 'no_shared_channel'; text: string }
  | { kind: 'far_apart'; gapMs: number; text: string };

/** A send node and the earliest it can send after entry. */
export interface SendTiming {
  node: string;
  destination: string;
  channel: string | null;
  afterMs: number;
}

/** The verdict for one pair: `apart` says what rules the conflict out when `overlap` is false. */
export type FlowOverlap =
  | { overlap: true; reasons: ConflictReason[] }
  | { overlap: false; reasons: ConflictReason[]; apart: ApartReason };

/** How the entries of two flows relate: tied to one moment (b enters `lo`..`hi` ms after a), or only through people. */
type Entries =
  | { tied: true; lo: number; hi: number; reasons: ConflictReason[] }
  | { tied: false; reasons: ConflictReason[] }
  | { apart: ApartReason };

/** Milliseconds in words: `90 min`, `3 h`, `2 days`. */
export function spanWords(ms: number): string {
  const a = Math.abs(ms);
  if (a >= 2 * DAY_MS && a % DAY_MS === 0) return `${a / DAY_MS} days`;
  if (a >= HOUR_MS && a % HOUR_MS === 0) return `${a / HOUR_MS} h`;
  if (a >= MINUTE_MS) return `${Math.round(a / MINUTE_MS)} min`;
  return `${Math.round(a / 1000)} s`;
}

/**
 * The earliest moment after entry each reachable send node can send: the sum of the waits on the
 * shortest path to it (`wait` its duration, `wait_for_event` its timeout on the timeout edge and none on
 * the matched one, `wait_until` none: its time of day may be now).
 *
 * @example
 * earliestSends(def, () => 'email'); // [{ node: 'hello', destination: 'dst_1', channel: 'email', afterMs: 3_600_000 }]
 */
export function earliestSends(def: FlowDefinition, channelOf: ConflictOptions['channelOf'] = () => null): SendTiming[] {
  const byId = new Map(def.nodes.map((n) => [n.id, n]));
  const cost = (n: FlowNode, on: string) =>
    n.type === 'wait'
      ? durationMs(n.duration)
      : n.type === 'wait_for_event' && on === 'timeout'
        ? durationMs(n.timeout)
        : 0;
  // Dijkstra over at most FLOW_LIMITS nodes: the quadratic pick is plenty.
  const dist = new Map<string, number>();
  const done = new Set<string>();
  if (def.nodes[0]) dist.set(def.nodes[0].id, 0);
  for (;;) {
    let at: string | undefined;
    for (const [id, d] of dist) if (!done.has(id) && (at === undefined || d < dist.get(at)!)) at = id;
    if (at === undefined) break;
    done.add(at);
    const node = byId.get(at)!;
    for (const e of def.edges) {
      if (e.from !== at || !byId.has(e.to)) continue;
      const d = dist.get(at)! + cost(node, e.on);
      if (d < (dist.get(e.to) ?? Number.POSITIVE_INFINITY)) dist.set(e.to, d);
    }
  }
  return def.nodes
    .filter((n): n is SendNode => n.type === 'send' && dist.has(n.id))
    .map((n) => ({
      node: n.id,
      destination: n.destination,
      channel: channelOf(n.destination) ?? null,
      afterMs: dist.get(n.id)!,
    }));
}

/** The audience a trigger enters the members of, if any. */
function triggerAudience(t: Trigger): string | undefined {
  if (t.type === 'audience_entered' || t.type === 'audience_exited' || t.type === 'schedule') return t.audience;
  return t.type === 'calendar' ? t.audience : undefined;
}

const minuteOf = (time: string) => {
  const p = parseLocalTime(time);
  return p ? p.hour * 60 + p.minute : 0;
};

/** Firings of a cron in the horizon, at most MAX_FIRINGS. */
function firings(t: Extract<Trigger, { type: 'schedule' }>, fromMs: number): number[] {
  // One parser walked forward (nextCron parses the expression at every call: 2,000 times is seconds).
  const it = CronExpressionParser.parse(t.cron, { currentDate: new Date(fromMs), tz: t.timezone });
  const out: number[] = [];
  while (out.length < MAX_FIRINGS) {
    const at = it.next().getTime();
    if (at > fromMs + SCHEDULE_HORIZON_MS) break;
    out.push(at);
  }
  return out;
}

/**
 * The least and greatest signed offsets (b − a) of firings within `window` of each other, and the smallest
 * gap, by a two-pointer walk (no list of pairs: two crons every minute would make millions); undefined
 * when none are that close.
 */
function closeFirings(a: number[], b: number[], window: number): { lo: number; hi: number; gap: number } | undefined {
  let found: { lo: number; hi: number; gap: number } | undefined;
  let j = 0;
  for (const fa of a) {
    while (j < b.length && b[j]! < fa - window) j++;
    for (let k = j; k < b.length && b[k]! <= fa + window; k++) {
      const d = b[k]! - fa;
      found = found
        ? { lo: Math.min(found.lo, d), hi: Math.max(found.hi, d), gap: Math.min(found.gap, Math.abs(d)) }
        : { lo: d, hi: d, gap: Math.abs(d) };
    }
  }
  return found;
}

const tied = (lo: number, hi: number, ...reasons: ConflictReason[]): Entries => ({ tied: true, lo, hi, reasons });
const apart = (text: string): Entries => ({ apart: { kind: 'different_triggers', text } });

/** Triggers of the same type: one moment (with an offset), or apart. */
function sameKind(a: Trigger, b: Trigger, o: Required<ConflictOptions>): Entries {
  switch (a.type) {
    case 'event': {
      const bt = b as typeof a;
      if (a.event !== bt.event) return apart(`different events ("${a.event}", "${bt.event}")`);
      const path = exclusiveKey(whereGroups(a.where), whereGroups(bt.where), o.nowMs);
      if (path)
        return {
          apart: {
            kind: 'exclusive_conditions',
            path,
            text: `both start on "${a.event}" but their conditions on ${path} cannot both hold`,
          },
        };
      return tied(0, 0, { kind: 'same_event', event: a.event, text: `both start when a person sends "${a.event}"` });
    }
    case 'audience_entered':
    case 'audience_exited':
    case 'tag_added':
    case 'tag_removed': {
      const key = 'audience' in a ? a.audience : a.tag;
      const other = 'audience' in b ? b.audience : (b as typeof a & { tag: string }).tag;
      const what = 'audience' in a ? 'audience' : 'tag';
      if (key !== other) return apart(`different ${what}s (${key}, ${other})`);
      if ('audience' in a) {
        const text = `both start when a person ${a.type === 'audience_entered' ? 'enters' : 'leaves'} ${key}`;
        return tied(0, 0, { kind: 'same_audience', audience: key, text });
      }
      const text = `both start when a person's tag ${key} is ${a.type === 'tag_added' ? 'added' : 'removed'}`;
      return tied(0, 0, { kind: 'same_tag', tag: key, text });
    }
    case 'trait_changed': {
      const bt = b as typeof a;
      if (a.trait !== bt.trait || !!a.computed !== !!bt.computed)
        return apart(`changes of different traits (${a.trait}, ${bt.trait})`);
      const to = (t: typeof a) => whereGroups(t.to ? [{ field: 'value', ...t.to }] : []);
      if (exclusiveKey(to(a), to(bt), o.nowMs))
        return apart(`both watch ${a.trait}, but for values that cannot both hold`);
      return tied(0, 0, { kind: 'same_trait_change', trait: a.trait, text: `both start when ${a.trait} changes` });
    }
    case 'date_trait': {
      const bt = b as typeof a;
      if (a.trait !== bt.trait) return apart(`different date traits (${a.trait}, ${bt.trait})`);
      // The same person, the same zone: the offset is the days and the time of day between them.
      const offset = (bt.offsetDays - a.offsetDays) * DAY_MS + (minuteOf(bt.time) - minuteOf(a.time)) * MINUTE_MS;
      const when = offset === 0 ? 'at the same moment' : `${spanWords(offset)} ${offset > 0 ? 'later' : 'earlier'}`;
      return tied(offset, offset, {
        kind: 'same_date',
        trait: a.trait,
        offsetMs: offset,
        text: `both start on ${a.trait}; this one ${when}`,
      });
    }
    case 'calendar': {
      const bt = b as typeof a;
      if (JSON.stringify(a.calendar) !== JSON.stringify(bt.calendar) || a.timezone !== bt.timezone)
        return { tied: false, reasons: [] };
      const offset = (bt.offsetDays - a.offsetDays) * DAY_MS + (minuteOf(bt.time) - minuteOf(a.time)) * MINUTE_MS;
      return tied(offset, offset, {
        kind: 'same_calendar',
        offsetMs: offset,
        text: `both start on the days of the same calendar${offset ? `, ${spanWords(offset)} apart` : ''}`,
      });
    }
    case 'schedule': {
      const bt = b as typeof a;
      const close = closeFirings(firings(a, o.nowMs), firings(bt, o.nowMs), o.scheduleWindowMs);
      if (!close) return apart(`their schedules never fire within ${spanWords(o.scheduleWindowMs)} of each other`);
      const { lo, hi, gap } = close;
      return tied(lo, hi, {
        kind: 'schedules_close',
        gapMs: gap,
        text: gap === 0 ? 'their schedules fire at the same moment' : `their schedules fire ${spanWords(gap)} apart`,
      });
    }
    default:
      return { tied: false, reasons: [] };
  }
}

/** How the two flows' entries relate (trigger, then entry rules). */
function entries(a: FlowDefinition, b: FlowDefinition, o: Required<ConflictOptions>): Entries {
  const found: Entries =
    a.trigger.type === b.trigger.type ? sameKind(a.trigger, b.trigger, o) : { tied: false, reasons: [] };
  if ('apart' in found) return found;
  const ruleLeaves = (d: FlowDefinition) => {
    const groups = requiredLeaves(d.entry.rule);
    const audience = triggerAudience(d.trigger);
    // Entering on an audience (or at a schedule of one) means being in it.
    if (audience && d.trigger.type !== 'audience_exited')
      groups.set(`audience:${audience}`, [...(groups.get(`audience:${audience}`) ?? []), { cmp: 'exists' }]);
    return groups;
  };
  const la = ruleLeaves(a);
  const lb = ruleLeaves(b);
  const path = exclusiveKey(la, lb, o.nowMs);
  if (path)
    return {
      apart: { kind: 'exclusive_conditions', path, text: `nobody can meet both entry conditions on ${path}` },
    };
  const reasons = [...found.reasons];
  const named = new Set(reasons.flatMap((r) => (r.kind === 'same_audience' ? [r.audience] : [])));
  for (const [key, leaves] of la) {
    const audience = key.startsWith('audience:') ? key.slice('audience:'.length) : undefined;
    const required = (ls: typeof leaves) => ls.some((l) => !l.negated);
    if (audience && !named.has(audience) && required(leaves) && required(lb.get(key) ?? []))
      reasons.push({ kind: 'same_audience', audience, text: `both enter members of ${audience}` });
  }
  if (!found.tied)
    reasons.push({
      kind: 'shared_people',
      text:
        a.trigger.type === b.trigger.type
          ? `both start on ${a.trigger.type} triggers at moments of their own: they share the people they have in common`
          : `one starts on ${a.trigger.type}, the other on ${b.trigger.type}: they share the people they have in common`,
    });
  return found.tied ? { ...found, reasons } : { tied: false, reasons };
}

/**
 * Whether flow `a` (say, the one submitted) and flow `b` (a live one) can message the same people on the
 * same channel close in time, with the reasons; when not, `apart` says what rules it out.
 *
 * @example
 * flowOverlap(submitted, live, { channelOf: (d) => channels.get(d), nowMs: Date.now() });
 * // { overlap: true, reasons: [{ kind: 'same_event', … }, { kind: 'same_channel', channel: 'email', … }, { kind: 'close_in_time', … }] }
 */
export function flowOverlap(a: FlowDefinition, b: FlowDefinition, options: ConflictOptions = {}): FlowOverlap {
  const windowMs = options.windowMs ?? DEFAULT_CONFLICT_WINDOW_MS;
  const o: Required<ConflictOptions> = {
    channelOf: options.channelOf ?? (() => null),
    windowMs,
    scheduleWindowMs: options.scheduleWindowMs ?? windowMs,
    nowMs: options.nowMs ?? Date.now(),
  };
  const who = entries(a, b, o);
  if ('apart' in who) return { overlap: false, reasons: [], apart: who.apart };
  const reasons = [...who.reasons];
  const sa = earliestSends(a, o.channelOf);
  const sb = earliestSends(b, o.channelOf);
  if (!sa.length || !sb.length) {
    const text = `${!sa.length ? 'this flow' : 'the other flow'} sends no message`;
    return { overlap: false, reasons, apart: { kind: 'no_sends', text } };
  }
  // Pairs of sends that reach the person the same way, and the closest they can come in time.
  let best: { gap: number; x: SendTiming; y: SendTiming } | undefined;
  const shared = new Map<string, ConflictReason>();
  for (const x of sa)
    for (const y of sb) {
      const sameDestination = x.destination === y.destination;
      if (!sameDestination && (x.channel === null || x.channel !== y.channel)) continue;
      const key = sameDestination ? `d:${x.destination}` : `c:${x.channel}`;
      if (!shared.has(key))
        shared.set(
          key,
          sameDestination
            ? {
                kind: 'same_destination',
                destination: x.destination,
                text: `both send to destination ${x.destination}${x.channel ? ` (${x.channel})` : ''}`,
              }
            : { kind: 'same_channel', channel: x.channel!, text: `both send by ${x.channel}` },
        );
      // y sends at (b's entry − a's entry) + y.afterMs after a's entry, the offset anywhere in lo..hi.
      const gap =
        'lo' in who ? Math.max(0, who.lo + y.afterMs - x.afterMs, x.afterMs - y.afterMs - who.hi) : Number.NaN;
      if (!best || gap < best.gap) best = { gap, x, y };
    }
  if (!best) {
    const list = (s: SendTiming[]) => [...new Set(s.map((t) => t.channel ?? t.destination))].join(', ');
    const text = `no shared destination or channel (this flow: ${list(sa)}; the other: ${list(sb)})`;
    return { overlap: false, reasons, apart: { kind: 'no_shared_channel', text } };
  }
  reasons.push(...shared.values());
  const sends: [SendTiming, SendTiming] = [best.x, best.y];
  if (!('lo' in who)) {
    const text = 'their entries are not tied to one moment: any of their sends may come close to the other’s';
    reasons.push({ kind: 'close_in_time', gapMs: null, sends, text });
    return { overlap: true, reasons };
  }
  if (best.gap > o.windowMs) {
    const text = `their sends come at least ${spanWords(best.gap)} apart (window ${spanWords(o.windowMs)})`;
    return { overlap: false, reasons, apart: { kind: 'far_apart', gapMs: best.gap, text } };
  }
  const at = (t: SendTiming) => (t.afterMs ? `${spanWords(t.afterMs)} after entry` : 'at entry');
  const text = `their sends can come ${best.gap ? `${spanWords(best.gap)} apart` : 'at the same moment'} (${best.x.node} ${at(best.x)}, ${best.y.node} ${at(best.y)})`;
  reasons.push({ kind: 'close_in_time', gapMs: best.gap, sends, text });
  return { overlap: true, reasons };
}
