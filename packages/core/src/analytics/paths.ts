import type { EventFilter } from '../rules/ast.ts';
import { compileEventFilter } from '../rules/event-filter.ts';
import { type Fragment, join, sql } from '../rules/sql.ts';
import type { TimeRange } from './range.ts';

/** Limits and defaults of a paths query. */
export const PATHS_LIMITS = {
  maxSteps: 10,
  /** Distinct nodes per step before the rest become `$other`. */
  defaultTop: 10,
  maxTop: 50,
  /** Minutes of silence that end a path. */
  defaultSessionGap: 30,
  maxSessionGap: 1_440,
} as const;

/** The node of a step that stands for every node outside the step's top ones. */
export const OTHER_NODE = '$other';

/** The events that are path nodes when the query does not say: every type but `identify`. */
export const DEFAULT_PATH_EVENTS: EventFilter = { type: ['track', 'page', 'screen', 'group', 'alias'] };

/** What a paths statement is built from (see {@link pathsQuery} for the semantics). */
export interface PathsQuery {
  range: TimeRange;
  /** The event paths start from (`after`) or end at (`before`). */
  anchor: EventFilter;
  direction: 'after' | 'before';
  /** Nodes followed after (before) the anchor: 1..10. */
  steps: number;
  /** Minutes: a path stops at a silence longer than this between two of its events. */
  sessionGap: number;
  /** Which events are nodes (default {@link DEFAULT_PATH_EVENTS}); an anchor event always is one. */
  include?: EventFilter;
  /** `event`: the event's name (`$<type>` for an event without one); `page`: a page event's path. */
  label: 'event' | 'page';
  collapseRepeats: boolean;
  /** `first`: the first anchor per person in the range; `every`: each one starts a path. */
  occurrence: 'first' | 'every';
  /** The instant relative dates in event filters are read against. */
  now: Date;
}

/** A row of a paths statement: identical paths (node labels from the anchor on) and how many there are. */
export interface PathRow {
  /** The person (profile id) with `occurrence: 'every'`; null with `first`, where each path is one person. */
  person: string | null;
  /** Labels, the anchor's first: at most steps + 1; fewer when the path ended. */
  nodes: string[];
  paths: number;
}

/** How many paths, and how many distinct people they belong to. */
export interface PathCount {
  paths: number;
  people: number;
}

/** One step of a paths answer (step 0 is the anchor). */
export interface PathStep extends PathCount {
  step: number;
  /** Paths that reached step - 1 and ended there: no next event, or the next one after the session gap (0 at step 0). */
  dropOff: PathCount;
  nodes: (PathCount & { node: string; ended: PathCount })[];
  /** From the node at step - 1 to the node here (none at step 0). */
  edges: (PathCount & { from: string; to: string })[];
}

/** A paths answer without its `meta`. */
export interface PathsSummary {
  /** Anchor occurrences followed (paths), and their people. */
  anchors: PathCount;
  steps: PathStep[];
}

const minutes = (n: number) => n * 60_000;

// A node's label: the name the events table keeps (a track event's, a page's or screen's name), else `$<type>`; with
// `page`, a page event's path (properties.path, else context.page.path, else its name).
function labelOf(label: PathsQuery['label']): Fragment {
  const named = sql`coalesce(e.event, '$' || e.type)`;
  if (label === 'event') return named;
  const text = (path: string[]) =>
    sql`nullif(CASE WHEN jsonb_typeof(e.payload #> ${path}::text[]) = 'string' THEN e.payload #>> ${path}::text[] END, '')`;
  return sql`CASE WHEN e.type = 'page'
      THEN coalesce(${text(['properties', 'path'])}, ${text(['context', 'page', 'path'])}, e.event, '$page')
      ELSE ${named} END`;
}

/**
 * One statement that walks every path: for each person (events.profile_id, after merges) with an
 * anchor event in `[range.from, range.to)`, their node events ordered by (timestamp, id), cut into
 * sessions where two consecutive ones are more than `sessionGap` minutes apart (exactly `sessionGap`
 * still continues), with consecutive equal labels merged into one node when `collapseRepeats` (the
 * anchor's node too). From the node holding the anchor (the first anchor per person, or every
 * anchor), the path is that node and the next (previous) `steps` nodes of its session. The rows are
 * identical paths counted ({@link PathRow}); {@link summarizePaths} turns them into steps.
 *
 * Events are read from `steps × sessionGap` minutes before the range (`before`) to as long after it
 * (`after`): no path without merged repeats reaches further; with `collapseRepeats`, a long run of
 * repeats can reach past that horizon, and its path ends there.
 *
 * One ordered pass per person: one sort by (profile_id, timestamp, id); window functions over it mark
 * and number sessions (collapsing, runs of repeats too, grouped into nodes), and `lead`/`lag` over the
 * same order read each node's next (previous) labels, kept while still in its session — no join per
 * step. Measured against reading the rows into a JavaScript pass in docs/analytics.md ("Paths").
 *
 * @example
 * const q = pathsQuery({ range, anchor: { event: 'Product Viewed' }, direction: 'after', steps: 3,
 *   sessionGap: 30, label: 'event', collapseRepeats: false, occurrence: 'first', now: new Date() });
 * const rows = await reader.rows<PathRow>(q);
 */
export function pathsQuery(q: PathsQuery): Fragment {
  const from = Date.parse(q.range.from);
  const to = Date.parse(q.range.to);
  const reach = minutes(q.steps * q.sessionGap);
  const lo = new Date(q.direction === 'before' ? from - reach : from).toISOString();
  const hi = new Date(q.direction === 'after' ? to + reach : to).toISOString();
  const rangeFrom = new Date(from).toISOString();
  const rangeTo = new Date(to).toISOString();
  const anchorOf = (alias: string) => compileEventFilter(q.anchor, { now: q.now, alias });
  const include = compileEventFilter(q.include ?? DEFAULT_PATH_EVENTS, { now: q.now, alias: 'e' });
  const step = q.direction === 'after' ? sql`lead` : sql`lag`;
  // The k-th next (previous) node, when it is in the same session (sessions only grow along a person's events).
  const next = Array.from(
    { length: q.steps },
    (_, i) =>
      sql`CASE WHEN ${step}(session, ${i + 1}::int) OVER s = session THEN ${step}(label, ${i + 1}::int) OVER s END`,
  );
  // Collapsing, a node is a run of equal labels (a GROUP BY); otherwise each event is one, in (timestamp, id) order.
  const nodes = q.collapseRepeats
    ? sql`
    numbered AS (
      SELECT profile_id, label, is_anchor, timestamp,
        count(*) FILTER (WHERE cut) OVER w AS session,
        count(*) FILTER (WHERE cut OR changed) OVER w AS node
      FROM cuts
      WINDOW w AS (PARTITION BY profile_id ORDER BY timestamp, id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    nodes AS (
      SELECT profile_id, node, min(session) AS session, min(label) AS label,
        count(*) FILTER (WHERE is_anchor) AS anchors
      FROM numbered
      GROUP BY profile_id, node
    )`
    : sql`
    nodes AS (
      SELECT profile_id, timestamp, id, label, is_anchor::int AS anchors,
        count(*) FILTER (WHERE cut) OVER w AS session
      FROM cuts
      WINDOW w AS (PARTITION BY profile_id ORDER BY timestamp, id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )`;
  const order = q.collapseRepeats ? sql`node` : sql`timestamp, id`;
  const walked = sql`
    WITH anchored AS (
      SELECT DISTINCT a.profile_id
      FROM events a
      WHERE a.profile_id IS NOT NULL
        AND a.timestamp >= ${rangeFrom}::timestamptz
        AND a.timestamp < ${rangeTo}::timestamptz
        AND ${anchorOf('a')}
    ),
    labelled AS (
      SELECT e.profile_id, e.timestamp, e.id, ${labelOf(q.label)} AS label,
        (${anchorOf('e')} AND e.timestamp >= ${rangeFrom}::timestamptz AND e.timestamp < ${rangeTo}::timestamptz) AS is_anchor
      FROM events e
      WHERE e.profile_id IN (SELECT profile_id FROM anchored)
        AND e.timestamp >= ${lo}::timestamptz
        AND e.timestamp < ${hi}::timestamptz
        AND (${include} OR ${anchorOf('e')})
    ),
    -- A silence longer than the gap starts a session; a label unlike the one before starts a node (collapsing).
    cuts AS (
      SELECT *,
        coalesce(timestamp - lag(timestamp) OVER w > ${q.sessionGap}::int * interval '1 minute', false) AS cut,
        label IS DISTINCT FROM lag(label) OVER w AS changed
      FROM labelled
      WINDOW w AS (PARTITION BY profile_id ORDER BY timestamp, id)
    ),${nodes},
    -- Every node's path; anchors_before finds each person's first anchor without another sort.
    walked AS (
      SELECT profile_id, anchors,
        sum(anchors) OVER s - anchors AS anchors_before,
        array_remove(ARRAY[label, ${join(next, sql`, `)}], NULL) AS nodes
      FROM nodes
      WINDOW s AS (PARTITION BY profile_id ORDER BY ${order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )`;
  if (q.occurrence === 'every')
    return sql`${walked}
      SELECT profile_id::text AS person, nodes, sum(anchors)::int AS paths
      FROM walked
      WHERE anchors > 0
      GROUP BY profile_id, nodes`;
  return sql`${walked}
    SELECT NULL::text AS person, nodes, count(*)::int AS paths
    FROM walked
    WHERE anchors > 0 AND anchors_before = 0
    GROUP BY nodes`;
}

const byCount =
  <T extends { paths: number }>(key: (x: T) => string) =>
  (a: T, b: T) =>
    b.paths - a.paths || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

// Paths and people of a tally: a path row without a person is one person per path (occurrence 'first').
class Tally {
  paths = 0;
  private people = new Set<string>();
  private anonymous = 0;
  add(row: PathRow) {
    this.paths += row.paths;
    if (row.person === null) this.anonymous += row.paths;
    else this.people.add(row.person);
  }
  count(): PathCount {
    return { paths: this.paths, people: this.people.size + this.anonymous };
  }
}

function tallyOf<K>(map: Map<K, Tally>, key: K): Tally {
  const t = map.get(key) ?? new Tally();
  map.set(key, t);
  return t;
}

/**
 * Counts the paths of a paths statement per step: the nodes at each step (the `top` most frequent by
 * paths, ties by label in code point order; the rest merged as `$other`), the edges from the node at
 * step k - 1 to the node at step k, and the drop-off (paths that reached step k - 1 and ended there,
 * also per node as `ended`). Counts are paths and distinct people: equal with `occurrence: 'first'`.
 *
 * @example
 * summarizePaths([{ person: null, nodes: ['Home', 'Search'], paths: 3 }, { person: null, nodes: ['Home'], paths: 1 }],
 *   { steps: 2, top: 10 });
 * // steps[1]: { paths: 3, dropOff: { paths: 1, ... }, nodes: [{ node: 'Search', paths: 3, ... }], edges: [{ from: 'Home', to: 'Search', paths: 3, ... }] }
 */
export function summarizePaths(rows: readonly PathRow[], options: { steps: number; top: number }): PathsSummary {
  const { steps, top } = options;
  // The top labels of each step, by paths.
  const kept: Set<string>[] = [];
  for (let k = 0; k <= steps; k++) {
    const raw = new Map<string, number>();
    for (const r of rows) {
      const label = r.nodes[k];
      if (label !== undefined) raw.set(label, (raw.get(label) ?? 0) + r.paths);
    }
    const ranked = [...raw].map(([node, paths]) => ({ node, paths })).sort(byCount((x) => x.node));
    kept.push(new Set(ranked.slice(0, top).map((x) => x.node)));
  }
  const nodeAt = (r: PathRow, k: number) => {
    const label = r.nodes[k]!;
    return kept[k]!.has(label) ? label : OTHER_NODE;
  };

  const anchors = new Tally();
  const out: PathStep[] = [];
  for (let k = 0; k <= steps; k++) {
    const reached = new Tally();
    const dropOff = new Tally();
    const nodes = new Map<string, { all: Tally; ended: Tally }>();
    const edges = new Map<string, Tally>();
    for (const r of rows) {
      if (k === 0) anchors.add(r);
      if (r.nodes.length === k && k > 0) dropOff.add(r);
      if (r.nodes.length <= k) continue;
      reached.add(r);
      const node = nodeAt(r, k);
      const n = nodes.get(node) ?? { all: new Tally(), ended: new Tally() };
      nodes.set(node, n);
      n.all.add(r);
      if (r.nodes.length === k + 1 && k < steps) n.ended.add(r);
      if (k > 0) tallyOf(edges, JSON.stringify([nodeAt(r, k - 1), node])).add(r);
    }
    const other = (name: string) => (name === OTHER_NODE ? 1 : 0);
    out.push({
      step: k,
      ...reached.count(),
      dropOff: dropOff.count(),
      nodes: [...nodes]
        .map(([node, n]) => ({ node, ...n.all.count(), ended: n.ended.count() }))
        .sort((a, b) => other(a.node) - other(b.node) || byCount<{ node: string; paths: number }>((x) => x.node)(a, b)),
      edges: [...edges]
        .map(([key, t]) => {
          const [from, to] = JSON.parse(key) as [string, string];
          return { from, to, ...t.count() };
        })
        .sort(byCount((x) => `${x.from}\u0000${x.to}`)),
    });
  }
  return { anchors: anchors.count(), steps: out };
}
