/**
 * Rules that hold across all flows for one person: frequency caps per channel (optionally only for the
 * members of an audience) and quiet hours per channel in the person's zone. The send node asks
 * `governSend()` before every send; the person's recent sends come with the facts (`facts.sends`), so
 * the same decision is made by the runner and by a simulation. Priority is not decided here: runs of
 * one person that are due at the same moment are stepped in priority order (`byPriority`), so the
 * higher one takes a slot first.
 */
import { DateTime } from 'luxon';
import { z } from 'zod';
import type { FlowDefinition, LocalTime, SendNode } from './ast.ts';
import type { ProfileFacts } from './facts.ts';
import {
  ANY_CHANNEL,
  type FrequencyCap,
  type GovernanceSettings,
  type QuietHours,
  type SentMessage,
} from './governance-types.ts';
import type { StepResult } from './state.ts';
import { localIso, nextLocalTime, parseLocalTime } from './time.ts';

/** No caps, no quiet hours. */
export const NO_GOVERNANCE: GovernanceSettings = Object.freeze({ caps: [], quietHours: [] }) as never;

/** The governance decision for one send at one moment. */
export type SendVerdict =
  | { ok: true; channel?: string }
  | {
      ok: false;
      /** What holds the send now. */
      held: 'capped' | 'quiet';
      channel: string;
      /** The first moment every cap and the quiet hours allow the send (with no other sends meanwhile). */
      until: number;
      /** The end of the quiet hours (`held: 'quiet'`). */
      quietEnd?: number;
      reason: string;
      values: Record<string, unknown>;
    };

export {
  ANY_CHANNEL,
  type FrequencyCap,
  type GovernanceFacts,
  type GovernanceSettings,
  type QuietHours,
  type SentMessage,
} from './governance-types.ts';

const HOUR_MS = 3_600_000;

const minuteOfDay = (t: LocalTime) => {
  const p = parseLocalTime(t)!;
  return p.hour * 60 + p.minute;
};

/**
 * Whether `ms` falls inside quiet hours, read on the clock of `zone`.
 *
 * @example
 * inQuietHours({ channel: 'sms', start: '21:00', end: '09:00' }, Date.parse('2026-03-01T22:00:00Z'), 'UTC'); // true
 */
export function inQuietHours(q: QuietHours, ms: number, zone: string): boolean {
  const start = minuteOfDay(q.start);
  const end = minuteOfDay(q.end);
  if (start === end) return false;
  const local = DateTime.fromMillis(ms, { zone });
  const m = local.hour * 60 + local.minute;
  return start < end ? m >= start && m < end : m >= start || m < end;
}

const applies = (channel: string, ruleChannel: string) => ruleChannel === channel || ruleChannel === ANY_CHANNEL;

/**
 * The caps that apply to a send on `channel` for this person (their channel or `*`, and their audience).
 *
 * @example
 * capsFor(settings, 'sms', facts);
 */
export function capsFor(settings: GovernanceSettings, channel: string, facts: ProfileFacts): FrequencyCap[] {
  return settings.caps.filter(
    (c) => applies(channel, c.channel) && (c.audience === undefined || facts.audiences.includes(c.audience)),
  );
}

/**
 * The sends a cap counts at `ms`: on its channel (any for `*`), not transactional, in the window
 * `(ms - windowHours, ms]`, oldest first.
 *
 * @example
 * counted(cap, facts.sends ?? [], Date.now()).length;
 */
export function counted(cap: FrequencyCap, sends: readonly SentMessage[], ms: number): number[] {
  const from = ms - cap.windowHours * HOUR_MS;
  return sends
    .filter((s) => !s.transactional && applies(s.channel, cap.channel) && s.at > from && s.at <= ms)
    .map((s) => s.at)
    .sort((a, b) => a - b);
}

// When a full cap frees a slot: its (n - max + 1)-th oldest counted send leaves the window.
function capFreeAt(cap: FrequencyCap, sends: readonly SentMessage[], ms: number): number | undefined {
  const times = counted(cap, sends, ms);
  if (times.length < cap.max) return undefined;
  return times[times.length - cap.max]! + cap.windowHours * HOUR_MS;
}

function quietEndAt(quiet: readonly QuietHours[], ms: number, zone: string): number | undefined {
  let end: number | undefined;
  for (const q of quiet)
    if (inQuietHours(q, ms, zone)) {
      // An end in a DST gap moves forward, possibly to `ms` itself (quiet 03:00–02:00 on the night the clock
      // skips 02:00): then quiet hours end the next day — never at `ms`, which would never end them.
      let e = nextLocalTime(ms, zone, q.end);
      if (e <= ms) e = nextLocalTime(ms + 1, zone, q.end);
      end = end === undefined ? e : Math.max(end, e);
    }
  return end;
}

// The first moment all rules allow: each rule's own moment, again from there, until none moves it.
function firstAllowed(
  caps: readonly FrequencyCap[],
  quiet: readonly QuietHours[],
  sends: readonly SentMessage[],
  now: number,
  zone: string,
): number {
  let until = now;
  for (let i = 0; i < 100; i++) {
    let next = Math.max(until, quietEndAt(quiet, until, zone) ?? until);
    for (const c of caps) next = Math.max(next, capFreeAt(c, sends, next) ?? next);
    if (next === until) break;
    until = next;
  }
  return until;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const describeCap = (c: FrequencyCap) =>
  `at most ${plural(c.max, c.channel === ANY_CHANNEL ? 'message' : `${c.channel} message`)} in ${plural(c.windowHours, 'hour')}${c.audience ? ` for audience ${c.audience}` : ''}`;

/**
 * Whether a send node may send now for this person: always for a transactional node, a destination
 * without a channel, or facts without governance; otherwise it is held when quiet hours hold on its
 * channel in the person's zone, or when a cap that applies is full. A held send gets the first moment
 * every rule allows it (the end of quiet hours, the moment a counted send leaves a cap's window),
 * assuming no other sends meanwhile — the send node checks again then.
 *
 * @example
 * const v = governSend(node, facts, Date.now(), 'Europe/Berlin');
 * if (!v.ok) v.until; // defer until then, or skip
 */
export function governSend(node: SendNode, facts: ProfileFacts, now: number, zone: string): SendVerdict {
  const g = facts.governance;
  const channel = g?.channels[node.destination];
  if (!g || channel === undefined) return { ok: true };
  if (node.transactional) return { ok: true, channel };
  const quiet = g.settings.quietHours.filter((q) => applies(channel, q.channel));
  const caps = capsFor(g.settings, channel, facts);
  const sends = facts.sends ?? [];
  const quietEnd = quietEndAt(quiet, now, zone);
  const full = caps.filter((c) => capFreeAt(c, sends, now) !== undefined);
  if (quietEnd === undefined && !full.length) return { ok: true, channel };
  const until = firstAllowed(caps, quiet, sends, now, zone);
  const at = `until ${localIso(until, zone)} (${zone})`;
  if (quietEnd !== undefined) {
    const q = quiet.find((x) => inQuietHours(x, now, zone))!;
    return {
      ok: false,
      held: 'quiet',
      channel,
      until,
      quietEnd,
      reason: `quiet hours for ${q.channel === ANY_CHANNEL ? 'every channel' : q.channel} ${q.start}–${q.end} in ${zone}: ${at}`,
      values: { held: 'quiet', channel, until, quietEnd },
    };
  }
  const words = full.map((c) => `${describeCap(c)} (${counted(c, sends, now).length} sent)`).join('; ');
  return {
    ok: false,
    held: 'capped',
    channel,
    until,
    reason: `capped on ${channel}: ${words}; free ${at}`,
    values: {
      held: 'capped',
      channel,
      until,
      capsFree: firstAllowed(caps, [], sends, now, zone),
      caps: full.map((c) => ({ ...c })),
    },
  };
}

/**
 * Adds a step's sends to the person's facts, so later steps of the same batch (other runs of the same
 * person) count them: what the runner does between runs stepped together, and the simulation after
 * every step.
 *
 * @example
 * const result = advance(def, state, input, { now, profile });
 * noteSends(profile, def, result, now, flowId);
 */
export function noteSends(
  facts: ProfileFacts,
  def: FlowDefinition,
  result: Pick<StepResult, 'effects'>,
  now: number,
  flowId?: string,
): void {
  const channels = facts.governance?.channels;
  if (!channels) return;
  const added: SentMessage[] = [];
  for (const e of result.effects) {
    if (e.type !== 'send') continue;
    const channel = channels[e.destination];
    if (channel === undefined) continue;
    const node = def.nodes.find((n) => n.id === e.node);
    const transactional = node?.type === 'send' && node.transactional === true;
    added.push({
      at: now,
      channel,
      key: e.key,
      priority: def.priority ?? 0,
      ...(transactional ? { transactional } : {}),
      ...(flowId ? { flowId } : {}),
    });
  }
  if (added.length) facts.sends = [...(facts.sends ?? []), ...added];
}

/**
 * Orders runs of one person that are stepped at the same moment: higher flow priority first, the rest
 * as given (a stable sort). Runs due at different moments keep their order of due time.
 *
 * @example
 * rows.sort(byPriority((r) => r.due, (r) => versions.get(r.key)?.def.priority));
 */
export function byPriority<T>(
  due: (x: T) => number | null | undefined,
  priority: (x: T) => number | undefined,
): (a: T, b: T) => number {
  return (a, b) => (due(a) ?? 0) - (due(b) ?? 0) || (priority(b) ?? 0) - (priority(a) ?? 0);
}

const localTime = z.string().refine((t) => parseLocalTime(t) !== undefined, 'not a time HH:MM');

/**
 * Governance settings as the API takes them: caps with a channel (or `*`), `max` >= 1 and a window of at
 * most a year; quiet hours with `HH:MM` start and end that differ.
 *
 * @example
 * governanceSchema.safeParse({ caps: [{ channel: 'sms', max: 1, windowHours: 24 }], quietHours: [] }).success; // true
 */
export const governanceSchema = z.strictObject({
  caps: z
    .array(
      z.strictObject({
        channel: z.string().min(1).max(50),
        max: z.number().int().min(1).max(10_000),
        windowHours: z
          .number()
          .positive()
          .max(24 * 366),
        audience: z.string().min(1).max(200).optional(),
      }),
    )
    .max(100),
  quietHours: z
    .array(
      z
        .strictObject({ channel: z.string().min(1).max(50), start: localTime, end: localTime })
        .refine((q) => q.start !== q.end, 'start and end are the same'),
    )
    .max(100),
}) as unknown as z.ZodType<GovernanceSettings>;
