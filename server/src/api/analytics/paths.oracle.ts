import { type EventFilter, matchEvent } from '@cairn/core';
import { expect } from 'vitest';
import type { GeneratedEvent } from '../../testing/analytics-data.ts';
import type { ApiAnswer } from '../../testing/http.ts';

// An independent evaluator of POST /api/analytics/paths over the generated ground truth: each person's
// events (by `person`) in time order, walked one anchor at a time, event by event. It shares no code with
// the statement (packages/core/src/analytics/paths.ts) or its summary; event filters are decided by the
// core's in-memory matcher, the reference both sides of every filter are held to.

/** A paths query as the API takes it (every field given, so the oracle needs no defaults). */
export interface PathsOracleQuery {
  range: { from: string; to: string; timezone: string };
  anchor: EventFilter;
  direction: 'after' | 'before';
  steps: number;
  sessionGap: number;
  include?: EventFilter;
  label: 'event' | 'page';
  top: number;
  collapseRepeats: boolean;
  occurrence: 'first' | 'every';
}

type Count = { paths: number; people: number };
type Body = GeneratedEvent['body'];

const MINUTE = 60_000;
const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

function labelOf(b: Body, label: PathsOracleQuery['label']): string {
  const name = b.type === 'track' ? b.event : b.type === 'page' ? b.name : undefined;
  if (label === 'page' && b.type === 'page') {
    const page = (b.context as { page?: { path?: unknown } } | undefined)?.page;
    return text(b.properties?.path) ?? text(page?.path) ?? name ?? '$page';
  }
  return name ?? `$${b.type}`;
}

/** The paths (node labels, anchor first) the query follows, with their person. */
export function expectedPaths(
  events: readonly GeneratedEvent[],
  q: PathsOracleQuery,
): { person: string; nodes: string[] }[] {
  const from = Date.parse(q.range.from);
  const to = Date.parse(q.range.to);
  const gap = q.sessionGap * MINUTE;
  // Events are read steps × gap past the range in the direction walked (a collapsed run can reach further).
  const lo = q.direction === 'before' ? from - q.steps * gap : from;
  const hi = q.direction === 'after' ? to + q.steps * gap : to;
  const now = Date.now();
  const isAnchor = (b: Body) => matchEvent(q.anchor, b, now);
  const isNode = (b: Body) => isAnchor(b) || (q.include ? matchEvent(q.include, b, now) : b.type !== 'identify');
  const byPerson = new Map<string, { at: number; b: Body }[]>();
  for (const e of events) {
    const at = Date.parse(e.body.timestamp);
    if (at < lo || at >= hi || !isNode(e.body)) continue;
    const list = byPerson.get(e.person) ?? [];
    list.push({ at, b: e.body });
    byPerson.set(e.person, list);
  }
  const out: { person: string; nodes: string[] }[] = [];
  for (const [person, list] of byPerson) {
    list.sort((x, y) => x.at - y.at);
    const anchors = list.flatMap((x, i) => (x.at >= from && x.at < to && isAnchor(x.b) ? [i] : []));
    for (const i of q.occurrence === 'first' ? anchors.slice(0, 1) : anchors) {
      const nodes = [labelOf(list[i]!.b, q.label)];
      const dir = q.direction === 'after' ? 1 : -1;
      for (let j = i + dir, prev = list[i]!.at; j >= 0 && j < list.length; j += dir) {
        if (Math.abs(list[j]!.at - prev) > gap) break;
        prev = list[j]!.at;
        const label = labelOf(list[j]!.b, q.label);
        if (q.collapseRepeats && label === nodes.at(-1)) continue;
        if (nodes.length === q.steps + 1) break;
        nodes.push(label);
      }
      out.push({ person, nodes });
    }
  }
  return out;
}

/** What the API must answer (without `meta`), counted from {@link expectedPaths}. */
export function expectedAnswer(events: readonly GeneratedEvent[], q: PathsOracleQuery) {
  const paths = expectedPaths(events, q);
  const count = (ps: { person: string }[]): Count => ({
    paths: ps.length,
    people: new Set(ps.map((p) => p.person)).size,
  });
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  // The top labels of every step by paths, ties by label; the rest are $other.
  const shown = Array.from({ length: q.steps + 1 }, (_, k) => {
    const n = new Map<string, number>();
    for (const p of paths) if (p.nodes.length > k) n.set(p.nodes[k]!, (n.get(p.nodes[k]!) ?? 0) + 1);
    return new Set(
      [...n]
        .sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))
        .slice(0, q.top)
        .map(([label]) => label),
    );
  });
  const at = (p: { nodes: string[] }, k: number) => (shown[k]!.has(p.nodes[k]!) ? p.nodes[k]! : '$other');
  const groupBy = <T>(xs: T[], key: (x: T) => string) => {
    const m = new Map<string, T[]>();
    for (const x of xs) {
      const k = key(x);
      const list = m.get(k) ?? [];
      list.push(x);
      m.set(k, list);
    }
    return m;
  };
  const steps = Array.from({ length: q.steps + 1 }, (_, k) => {
    const here = paths.filter((p) => p.nodes.length > k);
    const nodes = [...groupBy(here, (p) => at(p, k))].map(([node, ps]) => ({
      node,
      ...count(ps),
      ended: count(ps.filter((p) => p.nodes.length === k + 1 && k < q.steps)),
    }));
    nodes.sort(
      (a, b) => Number(a.node === '$other') - Number(b.node === '$other') || b.paths - a.paths || cmp(a.node, b.node),
    );
    const edges =
      k === 0
        ? []
        : [...groupBy(here, (p) => JSON.stringify([at(p, k - 1), at(p, k)]))].map(([key, ps]) => {
            const [from, to] = JSON.parse(key) as string[];
            return { from: from!, to: to!, ...count(ps) };
          });
    edges.sort((a, b) => b.paths - a.paths || cmp(a.from, b.from) || cmp(a.to, b.to));
    const dropOff = k === 0 ? { paths: 0, people: 0 } : count(paths.filter((p) => p.nodes.length === k));
    return { step: k, ...count(here), dropOff, nodes, edges };
  });
  return { anchors: count(paths), steps };
}

/**
 * Runs paths queries through the API (zones and ranges cutting DST days and sessions, both directions,
 * first and every anchor, collapsed repeats, page labels, filters, small tops and short gaps) and expects
 * each answer to equal the evaluator's.
 *
 * @example
 * await checkPaths({ post: h.post, events });
 */
export async function checkPaths(ctx: {
  post: (path: string, body: unknown) => Promise<ApiAnswer>;
  events: readonly GeneratedEvent[];
}): Promise<void> {
  const span = { from: '2026-02-16T00:00:00Z', to: '2026-11-16T00:00:00Z', timezone: 'UTC' };
  const queries: PathsOracleQuery[] = [
    {
      // Cuts through the Berlin spring-forward day and through sessions at both edges.
      range: { from: '2026-03-28T12:17:00+01:00', to: '2026-03-30T06:41:00+02:00', timezone: 'Europe/Berlin' },
      anchor: { event: 'Product Viewed' },
      direction: 'after',
      steps: 4,
      sessionGap: 30,
      label: 'event',
      top: 10,
      collapseRepeats: false,
      occurrence: 'first',
    },
    {
      range: { from: '2026-10-31T18:05:00-04:00', to: '2026-11-02T03:30:00-05:00', timezone: 'America/New_York' },
      anchor: { event: 'Order Completed' },
      direction: 'before',
      steps: 5,
      sessionGap: 30,
      label: 'event',
      top: 10,
      collapseRepeats: false,
      occurrence: 'every',
    },
    {
      range: span,
      anchor: { type: 'page', event: 'Home' },
      direction: 'after',
      steps: 3,
      sessionGap: 10,
      include: { type: ['track', 'page'] },
      label: 'page',
      top: 3,
      collapseRepeats: true,
      occurrence: 'every',
    },
    {
      range: { from: '2026-06-01T00:00:00+02:00', to: '2026-10-26T00:00:00+01:00', timezone: 'Europe/Berlin' },
      anchor: { event: 'Product Added', where: [{ property: 'category', cmp: '=', value: 'books' }] },
      direction: 'after',
      steps: 10,
      sessionGap: 5,
      label: 'event',
      top: 2,
      collapseRepeats: false,
      occurrence: 'every',
    },
    {
      range: span,
      anchor: { event: 'Checkout Started' },
      direction: 'before',
      steps: 6,
      sessionGap: 60,
      include: { event: ['Product Viewed', 'Product Added', 'Search', 'Home'] },
      label: 'event',
      top: 4,
      collapseRepeats: true,
      occurrence: 'first',
    },
  ];
  for (const q of queries) {
    const res = await ctx.post('/analytics/paths', q);
    expect(res.status, res.text).toBe(200);
    const { meta, ...answer } = res.body;
    expect(meta.source).toBe('primary');
    expect(answer, JSON.stringify(q)).toEqual(expectedAnswer(ctx.events, q));
    expect(answer.anchors.paths, `${JSON.stringify(q)} follows some anchors`).toBeGreaterThan(0);
  }
}
