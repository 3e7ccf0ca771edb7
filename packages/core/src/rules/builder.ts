import type {
  AggregateRule,
  AudienceRule,
  Comparison,
  ConsentRule,
  EventMatch,
  NumericComparison,
  OccurrenceRule,
  PerformedRule,
  PropertyFilter,
  Rule,
  Scalar,
  SubscriptionRule,
  TagRule,
  TimeUnit,
  Window,
} from './ast.ts';

/** Fluent comparisons: `r.trait('age').gte(18)`. */
export interface Compare<T> {
  eq(value: Scalar): T;
  ne(value: Scalar): T;
  lt(value: Scalar): T;
  lte(value: Scalar): T;
  gt(value: Scalar): T;
  gte(value: Scalar): T;
  between(low: Scalar, high: Scalar): T;
  in(...values: Scalar[]): T;
  contains(text: string): T;
  startsWith(text: string): T;
  matches(pattern: string): T;
  exists(): T;
  isEmpty(): T;
  withinLast(days: number): T;
  withinNext(days: number): T;
  olderThan(days: number): T;
  anniversaryWithin(days: number): T;
}

function compare<T>(make: (c: Comparison) => T): Compare<T> {
  return {
    eq: (value) => make({ cmp: '=', value }),
    ne: (value) => make({ cmp: '!=', value }),
    lt: (value) => make({ cmp: '<', value }),
    lte: (value) => make({ cmp: '<=', value }),
    gt: (value) => make({ cmp: '>', value }),
    gte: (value) => make({ cmp: '>=', value }),
    between: (low, high) => make({ cmp: 'between', value: [low, high] }),
    in: (...value) => make({ cmp: 'in', value }),
    contains: (value) => make({ cmp: 'contains', value }),
    startsWith: (value) => make({ cmp: 'starts_with', value }),
    matches: (value) => make({ cmp: 'regex', value }),
    exists: () => make({ cmp: 'exists' }),
    isEmpty: () => make({ cmp: 'is_empty' }),
    withinLast: (days) => make({ cmp: 'within_last', days }),
    withinNext: (days) => make({ cmp: 'within_next', days }),
    olderThan: (days) => make({ cmp: 'older_than', days }),
    anniversaryWithin: (days) => make({ cmp: 'anniversary_within', days }),
  };
}

/**
 * A typed builder for rules; the result is the plain JSON tree the API stores.
 *
 * @example
 * const dormantHighValue = r.and(
 *   r.not(r.performed('Order Completed', { within: r.last(90, 'days') })),
 *   r.aggregate('avg', 'Order Completed', { property: 'total' }).gte(500),
 *   r.performed('Order Completed', { min: 2, within: r.last(180, 'days') }),
 * );
 */
export const r = {
  and: (...rules: Rule[]): Rule => ({ op: 'and', rules }),
  or: (...rules: Rule[]): Rule => ({ op: 'or', rules }),
  not: (rule: Rule): Rule => ({ op: 'not', rule }),
  trait: (trait: string) => compare<Rule>((c) => ({ op: 'trait', trait, ...c })),
  computed: (trait: string) => compare<Rule>((c) => ({ op: 'computed', trait, ...c })),
  account: (trait: string) => compare<Rule>((c) => ({ op: 'account', trait, ...c })),
  /** An event property filter for `where`. */
  property: (property: string) => compare<PropertyFilter>((c) => ({ property, ...c })),
  last: (last: number, unit: TimeUnit): Window => ({ last, unit }),
  between: (from: string, to: string): Window => ({ from, to }),
  performed: (event: string, options: Omit<PerformedRule, 'op' | 'event'> = {}): Rule => ({
    op: 'performed',
    event,
    ...options,
  }),
  aggregate: (
    fn: AggregateRule['fn'],
    event: string,
    options: { property?: string; within?: Window; where?: PropertyFilter[] } = {},
  ) => ({
    eq: (value: number) => agg(fn, event, options, { cmp: '=', value }),
    ne: (value: number) => agg(fn, event, options, { cmp: '!=', value }),
    lt: (value: number) => agg(fn, event, options, { cmp: '<', value }),
    lte: (value: number) => agg(fn, event, options, { cmp: '<=', value }),
    gt: (value: number) => agg(fn, event, options, { cmp: '>', value }),
    gte: (value: number) => agg(fn, event, options, { cmp: '>=', value }),
    between: (low: number, high: number) => agg(fn, event, options, { cmp: 'between', value: [low, high] }),
  }),
  occurrence: (
    which: OccurrenceRule['which'],
    event: string,
    when: Pick<OccurrenceRule, 'before' | 'after'> & Pick<EventMatch, 'where'>,
  ): Rule => ({ op: 'occurrence', which, event, ...when }),
  hasTag: (tag: string): TagRule => ({ op: 'has_tag', tag }),
  inAudience: (audience: string): AudienceRule => ({ op: 'in_audience', audience }),
  consent: (purpose: string, state: ConsentRule['state']): ConsentRule => ({ op: 'consent', purpose, state }),
  subscription: (channel: string, state: SubscriptionRule['state'], topic?: string): SubscriptionRule => ({
    op: 'subscription',
    channel,
    state,
    ...(topic ? { topic } : {}),
  }),
};

function agg(
  fn: AggregateRule['fn'],
  event: string,
  options: { property?: string; within?: Window; where?: PropertyFilter[] },
  c: NumericComparison,
): Rule {
  return { op: 'aggregate', fn, event, ...options, ...c };
}
