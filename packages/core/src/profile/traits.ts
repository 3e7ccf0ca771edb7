import type { JsonObject } from '../event.ts';
import { normalizePhone } from '../identity/extract.ts';
import { compareStrings } from '../identity/types.ts';
import { applyFills } from '../quality/fill.ts';
import type { TraitQualityRules } from '../quality/rules.ts';

/**
 * What the trait fold needs of one stored event. `ts` is the corrected timestamp (epoch ms);
 * events are folded in (ts, id) order, ids compared as decimal numbers.
 */
export interface TraitEvent {
  readonly id: string;
  readonly ts: number;
  readonly type: string;
  readonly payload: JsonObject;
}

/** One trait's current value and where it came from. */
export interface TraitValue {
  readonly value: unknown;
  /** Event timestamp (epoch ms) of the operation that last changed it. */
  readonly ts: number;
  readonly eventId: string;
  /**
   * `identify` (the call's traits), `context.traits` (any event), `computed` (first/last touch), or
   * `derived` (filled by a data-quality fill rule: no event set it).
   */
  readonly source: TraitSource;
}

export type TraitSource = 'identify' | 'context.traits' | 'computed' | 'derived';

/** A profile's membership of one account (B2B `group` calls). */
export interface GroupMembership {
  readonly firstTs: number;
  readonly lastTs: number;
  readonly eventId: string;
}

/** Everything the fold derives from a profile's events. */
export interface ProfileState {
  readonly traits: Map<string, TraitValue>;
  readonly groups: Map<string, GroupMembership>;
  /** The last event folded in, or null: later events may be folded incrementally, earlier ones need a refold. */
  through: { ts: number; id: string } | null;
}

/** Options of the fold (a server's configuration). */
export interface TraitOptions {
  /** Calling code for phone traits written without `+` (see `normalizePhone`). */
  readonly defaultCallingCode?: string;
  /**
   * Data-quality rules per trait (packages/core/src/quality): normalisation applied to each value set
   * before the built-in one (a value a rule fails on is kept as received), fills applied after each
   * event.
   */
  readonly rules?: TraitQualityRules;
}

/** The four operations, in the order they apply within one traits object. */
export type TraitOp =
  | { op: 'set'; key: string; value: unknown }
  | { op: 'set_once'; key: string; value: unknown }
  | { op: 'unset'; key: string }
  | { op: 'add'; key: string; by: number };

const OPERATORS = new Set(['$set', '$set_once', '$unset', '$add']);
const TRAIT_KEY_MAX = 200;

// Well-known traits: normalised so lookups, rules and destinations see one spelling.
const TRIMMED = new Set(['name', 'firstName', 'lastName', 'first_name', 'last_name', 'username', 'title', 'company']);
const DATES = new Set(['createdAt', 'created_at', 'birthday', 'birthdate', 'date_of_birth']);
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const CAMPAIGN_FIELDS = ['source', 'medium', 'name', 'term', 'content'] as const;

/**
 * An empty profile state.
 *
 * @example
 * const state = foldEvents(emptyProfileState(), events);
 */
export function emptyProfileState(): ProfileState {
  return { traits: new Map(), groups: new Map(), through: null };
}

/**
 * Order of events for the fold: timestamp, then id as a decimal number.
 *
 * @example
 * events.sort(compareTraitEvents);
 */
export function compareTraitEvents(a: { ts: number; id: string }, b: { ts: number; id: string }): number {
  return a.ts - b.ts || a.id.length - b.id.length || compareStrings(a.id, b.id);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Normalises a well-known trait: trims names; lower-cases and trims `email`; `phone` to E.164 where
 * the country is known (`+` given or a default calling code configured), otherwise trimmed; dates
 * (`createdAt`, `birthday`, ...) to ISO-8601 (date-only values stay `YYYY-MM-DD`). Other traits are
 * returned unchanged.
 *
 * @example
 * normalizeTrait('email', ' Ann@Example.COM '); // 'ann@example.com'
 * normalizeTrait('phone', '020 7946 0018', { defaultCallingCode: '44' }); // '+442079460018'
 * normalizeTrait('birthday', '1990-04-01'); // '1990-04-01'
 */
export function normalizeTrait(key: string, value: unknown, options: TraitOptions = {}): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  if (key === 'email') return text.toLowerCase();
  if (key === 'phone') return normalizePhone(text, options.defaultCallingCode) ?? text;
  if (TRIMMED.has(key)) return text;
  if (DATES.has(key)) {
    if (DATE_ONLY.test(text)) return text;
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? text : new Date(ms).toISOString();
  }
  return value;
}

// A trait's rule reads the value as sent (the built-in normalisation would turn a date it cannot read
// into another shape first), then the built-in one runs on its output. A value the rule fails on is
// kept exactly as received (never lost): the quality report applies the rule again to what is stored
// and finds it failing, so its count is exact.
function normalizeWithRules(key: string, value: unknown, options: TraitOptions): unknown {
  const r = options.rules?.normalize(key, value, options.defaultCallingCode);
  if (!r) return normalizeTrait(key, value, options);
  return r.ok ? normalizeTrait(key, r.value, options) : value;
}

function usableKey(key: string): boolean {
  return key.length > 0 && key.length <= TRAIT_KEY_MAX && !key.startsWith('$');
}

/**
 * The operations one traits object asks for. Plain keys are `$set`; `$set` / `$set_once` / `$add`
 * take objects, `$unset` an array of keys (or an object whose keys are unset). Within one object the
 * order is: plain keys, `$set`, `$set_once`, `$unset`, `$add`. `$add` ignores non-numeric amounts.
 *
 * @example
 * traitOps({ plan: 'pro', $add: { logins: 1 }, $unset: ['trial'] });
 * // [{ op: 'set', key: 'plan', value: 'pro' }, { op: 'unset', key: 'trial' }, { op: 'add', key: 'logins', by: 1 }]
 */
export function traitOps(traits: JsonObject): TraitOp[] {
  const ops: TraitOp[] = [];
  for (const [key, value] of Object.entries(traits)) {
    if (!OPERATORS.has(key) && usableKey(key)) ops.push({ op: 'set', key, value });
  }
  const group = (name: string) => (isObject(traits[name]) ? Object.entries(traits[name] as JsonObject) : []);
  for (const [key, value] of group('$set')) if (usableKey(key)) ops.push({ op: 'set', key, value });
  for (const [key, value] of group('$set_once')) if (usableKey(key)) ops.push({ op: 'set_once', key, value });
  const unset = traits.$unset;
  const unsetKeys = Array.isArray(unset) ? unset : isObject(unset) ? Object.keys(unset) : [];
  for (const key of unsetKeys) if (typeof key === 'string' && usableKey(key)) ops.push({ op: 'unset', key });
  for (const [key, by] of group('$add')) {
    if (usableKey(key) && typeof by === 'number' && Number.isFinite(by)) ops.push({ op: 'add', key, by });
  }
  return ops;
}

function apply(
  state: ProfileState,
  op: TraitOp,
  at: { ts: number; eventId: string; source: TraitSource },
  options: TraitOptions,
): void {
  const current = state.traits.get(op.key);
  const write = (value: unknown) => state.traits.set(op.key, { value, ...at });
  switch (op.op) {
    case 'set':
      if (op.value === null || op.value === undefined) state.traits.delete(op.key);
      else write(normalizeWithRules(op.key, op.value, options));
      return;
    case 'set_once':
      // A derived value only stands in for a missing one: the first real value replaces it.
      if ((!current || current.source === 'derived') && op.value !== null && op.value !== undefined)
        write(normalizeWithRules(op.key, op.value, options));
      return;
    case 'unset':
      state.traits.delete(op.key);
      return;
    case 'add': {
      const base = typeof current?.value === 'number' ? current.value : 0;
      write(base + op.by);
      return;
    }
  }
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() ? v.trim() : undefined;
}

function computedOps(event: TraitEvent): TraitOp[] {
  const context = isObject(event.payload.context) ? event.payload.context : {};
  const ops: TraitOp[] = [
    { op: 'set_once', key: 'first_seen_at', value: new Date(event.ts).toISOString() },
    { op: 'set', key: 'last_seen_at', value: new Date(event.ts).toISOString() },
  ];
  const campaign = isObject(context.campaign) ? context.campaign : undefined;
  if (campaign) {
    for (const field of CAMPAIGN_FIELDS) {
      const value = text(campaign[field]);
      const key = `utm_${field === 'name' ? 'campaign' : field}`;
      if (value) ops.push({ op: 'set_once', key: `initial_${key}`, value }, { op: 'set', key: `last_${key}`, value });
    }
  }
  if (isObject(context.page)) ops.push(...referrerOps(context.page));
  return ops;
}

/**
 * The value of `initial_referrer` and `initial_referring_domain` when the first touch was a direct
 * visit (typed address, bookmark, app link): Mixpanel's spelling, unlike an empty string never
 * mistaken for "not set".
 *
 * @example
 * r.trait('initial_referrer').eq(DIRECT_REFERRER); // people whose first visit was direct
 */
export const DIRECT_REFERRER = '$direct';

/**
 * Referrer touches of a browser page context. A page with a URL and no referrer is a direct visit:
 * a first touch like any other, so a later internal page never becomes it. A referrer on the page's
 * own host is a navigation inside the site (document.referrer after a link, the previous URL after
 * an SPA route change): not a touch at all.
 */
function referrerOps(page: JsonObject): TraitOp[] {
  const referrer = text(page.referrer);
  if (!referrer) {
    if (!text(page.url)) return [];
    return [
      { op: 'set_once', key: 'initial_referrer', value: DIRECT_REFERRER },
      { op: 'set_once', key: 'initial_referring_domain', value: DIRECT_REFERRER },
    ];
  }
  const domain = referringDomain(referrer);
  if (domain && domain === referringDomain(text(page.url))) return [];
  const ops: TraitOp[] = [
    { op: 'set_once', key: 'initial_referrer', value: referrer },
    { op: 'set', key: 'last_referrer', value: referrer },
  ];
  if (domain) ops.push({ op: 'set_once', key: 'initial_referring_domain', value: domain });
  return ops;
}

function referringDomain(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Folds one event into a profile state: computed first/last-touch traits (`first_seen_at`,
 * `last_seen_at`, `initial_utm_*`, `last_utm_*`, `initial_referrer`, `last_referrer`,
 * `initial_referring_domain`; a direct first visit is {@link DIRECT_REFERRER}, navigations inside the
 * site are not touches), then `context.traits`, then an identify's own `traits` (so they win
 * within one event); a `group` call records the membership. Events must come in
 * {@link compareTraitEvents} order: a fold is then a pure function of the set of events.
 *
 * @example
 * foldEvent(state, { id: '7', ts: Date.now(), type: 'identify', payload: { traits: { plan: 'pro' } } });
 */
export function foldEvent(state: ProfileState, event: TraitEvent, options: TraitOptions = {}): void {
  const at = (source: TraitSource) => ({ ts: event.ts, eventId: event.id, source });
  for (const op of computedOps(event)) apply(state, op, at('computed'), options);
  const context = isObject(event.payload.context) ? event.payload.context : {};
  if (isObject(context.traits))
    for (const op of traitOps(context.traits)) apply(state, op, at('context.traits'), options);
  if (event.type === 'identify' && isObject(event.payload.traits)) {
    for (const op of traitOps(event.payload.traits)) apply(state, op, at('identify'), options);
  }
  const groupId = text(event.payload.groupId);
  if (event.type === 'group' && groupId) {
    const seen = state.groups.get(groupId);
    state.groups.set(groupId, {
      firstTs: seen?.firstTs ?? event.ts,
      lastTs: event.ts,
      eventId: event.id,
    });
  }
  if (options.rules?.fills.length) applyFills(state, options.rules, { ts: event.ts, eventId: event.id });
  state.through = { ts: event.ts, id: event.id };
}

/**
 * Folds events (sorted here) into `state`. Returns false and changes nothing when an event is not
 * after `state.through`: the caller must refold the profile from all its events instead.
 *
 * @example
 * if (!foldEvents(state, batch)) state = refold(allEventsOfProfile);
 */
export function foldEvents(state: ProfileState, events: readonly TraitEvent[], options: TraitOptions = {}): boolean {
  const sorted = [...events].sort(compareTraitEvents);
  const first = sorted[0];
  if (first && state.through && compareTraitEvents(first, state.through) <= 0) return false;
  for (const event of sorted) foldEvent(state, event, options);
  return true;
}
