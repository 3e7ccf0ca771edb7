/**
 * The rule language: a JSON tree. Leaves read one fact about a profile (a trait, its events, its
 * tags, audiences, consent, subscriptions, accounts); `and`, `or`, `not` combine them. A leaf whose
 * fact is missing (no such trait, no matching event) is false, so `not` of it is true.
 */
export type Scalar = string | number | boolean;

/** How a value (trait, computed trait, account trait, event property) is compared. */
export type Comparison =
  | { cmp: '=' | '!=' | '<' | '<=' | '>' | '>='; value: Scalar }
  | { cmp: 'between'; value: [Scalar, Scalar] }
  | { cmp: 'in'; value: Scalar[] }
  | { cmp: 'contains' | 'starts_with' | 'regex'; value: string }
  | { cmp: 'exists' | 'is_empty' }
  /** Dates: within the last / next N days of now, more than N days ago, anniversary (birthday) within N days. */
  | { cmp: 'within_last' | 'within_next' | 'older_than' | 'anniversary_within'; days: number };

/** Comparisons of a number (an aggregate). */
export type NumericComparison =
  | { cmp: '=' | '!=' | '<' | '<=' | '>' | '>='; value: number }
  | { cmp: 'between'; value: [number, number] };

export type TimeUnit = 'minutes' | 'hours' | 'days';

/** A time window: the last N units before now, or fixed dates (from inclusive, to exclusive). */
export type Window = { last: number; unit: TimeUnit } | { from: string; to: string };

/** A condition on an event property (`path` inside `properties`, dot-separated). */
export type PropertyFilter = { property: string } & Comparison;

/** A point in time for first/last occurrence: N days before now, or a date. */
export type TimeRef = { daysAgo: number } | { date: string };

/**
 * Which events an event condition looks at: a name (a track event's, or a page's or screen's), of
 * any type unless `type` narrows it, with optional property filters.
 */
export interface EventMatch {
  event: string;
  type?: 'track' | 'page' | 'screen';
  where?: PropertyFilter[];
}

/** A condition on any field of the event from its root (`context.locale`, `userId`, `traits.plan`), dot-separated. */
export type FieldFilter = { field: string } & Comparison;

/** One condition of an event filter: on a property, on any field, or the negation of one of those. */
export type EventCondition = PropertyFilter | FieldFilter | { not: PropertyFilter | FieldFilter };

/** The six Segment event types (`EVENT_TYPES`). */
export type SegmentEventType = 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';

/**
 * Which single events match, read one event at a time: a destination's filter, a flow's trigger.
 * Every event leaf's `EventMatch` is one. `event` is a name (a track event's, a page's or screen's)
 * or any of several; `type` an event type or any of several; every `where` condition must hold.
 * An empty filter matches every event.
 */
export interface EventFilter {
  event?: string | string[];
  type?: SegmentEventType | SegmentEventType[];
  where?: EventCondition[];
}

export type AndRule = { op: 'and'; rules: Rule[] };
export type OrRule = { op: 'or'; rules: Rule[] };
export type NotRule = { op: 'not'; rule: Rule };
export type TraitRule = { op: 'trait'; trait: string } & Comparison;
export type ComputedRule = { op: 'computed'; trait: string } & Comparison;
export type AccountRule = { op: 'account'; trait: string } & Comparison;
/**
 * A trait encrypted at rest equals one of these values, compared by blind index
 * (`profile_traits.blind`, a keyed hash of the normalised value). The server writes it in place of
 * `=` / `in` / `!=` on such a trait, so a stored rule never holds the clear values.
 */
export type TraitIndexRule = { op: 'trait_index'; trait: string; in: string[] };
/** Performed an event at least `min` (default 1) and at most `max` times, within a window. */
export type PerformedRule = {
  op: 'performed';
  within?: Window;
  min?: number;
  max?: number;
} & EventMatch;
/** count / sum / avg / min / max of an event property within a window, compared. */
export type AggregateRule = {
  op: 'aggregate';
  fn: 'count' | 'sum' | 'avg' | 'min' | 'max';
  property?: string;
  within?: Window;
} & EventMatch &
  NumericComparison;
/** The first or last matching event happened before and/or after a time (false when there is none). */
export type OccurrenceRule = {
  op: 'occurrence';
  which: 'first' | 'last';
  before?: TimeRef;
  after?: TimeRef;
} & EventMatch;
export type TagRule = { op: 'has_tag'; tag: string };
export type AudienceRule = { op: 'in_audience'; audience: string };
/** Consent per purpose: the latest choice, or `unknown` when the person never chose. */
export type ConsentRule = { op: 'consent'; purpose: string; state: 'granted' | 'denied' | 'unknown' };
/** Subscription of the profile's contact point on a channel (and topic): unsubscribed = opted out. */
export type SubscriptionRule = {
  op: 'subscription';
  channel: string;
  topic?: string;
  state: 'subscribed' | 'unsubscribed';
};

export type Rule =
  | AndRule
  | OrRule
  | NotRule
  | TraitRule
  | TraitIndexRule
  | ComputedRule
  | AccountRule
  | PerformedRule
  | AggregateRule
  | OccurrenceRule
  | TagRule
  | AudienceRule
  | ConsentRule
  | SubscriptionRule;

export type RuleOp = Rule['op'];
