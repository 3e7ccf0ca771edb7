import { compileRule, describeRule, type Rule } from '@cairn/core';
import { TEST_ADMIN_KEY } from '@cairn/server/testing';
import type postgres from 'postgres';
import type { Sql } from '../../../server/src/db/index.ts';
import { evaluateRule } from '../../../server/src/pipeline/compute/evaluate.ts';
import type { Node } from '../identify/servers.ts';
import { type CpuUse, cpuMeter } from '../ingest/machine.ts';
import type { BenchAudience } from './rules.ts';
import { type PgActivity, sampleActivity } from './sampler.ts';

// Full recompute of an audience over every live profile: the rule's statements alone (evaluateRule,
// called from here, and the truth statement a recompute diffs in SQL), a plan (EXPLAIN ANALYZE), and
// the whole path through a running server (POST /api/audiences → the recompute job → members
// and audience.entered events recorded → computedAt set).

/** Timings of the rule's statements alone, in ms. */
export interface Evaluation {
  /** evaluateRule (members only, ids sent to the benchmark), each run. */
  membersMs: number[];
  members: number;
  /** The truth statement (every live profile with its truth, which a recompute diffs with the current members in SQL), executed in Postgres (EXPLAIN ANALYZE: rows not sent). */
  truthMs: number;
  truthRows: number;
  /** The members statement's plan. */
  plan?: PlanSummary;
}

/** The EXPLAIN (ANALYZE, BUFFERS) of a statement, reduced to the nodes that take the time. */
export interface PlanSummary {
  executionMs: number;
  /** Rows the statement returned. */
  rows: number;
  planningMs: number;
  /** Depth-first, nodes taking at least 3% of the execution time (inclusive). */
  nodes: PlanLine[];
  /** The plan as Postgres prints it (text format, from the same run's JSON), for the console. */
  text: string;
}

/** One plan node: what it is, its rows, its inclusive time and buffers. */
export interface PlanLine {
  depth: number;
  label: string;
  rows: number;
  loops: number;
  ms: number;
  hit: number;
  read: number;
  workers: number;
}

/** The full path through the server. */
export interface ApiRecompute {
  key: string;
  name: string;
  words: string;
  /** POST → computed_at set (polled every POLL_MS), or → the first attempt seen failed. */
  seconds: number;
  /** The recompute job: queued → started, started → completed, which includes handing the change events to fan-out after the commit (pg-boss's own timestamps). */
  queuedS: number;
  runS: number;
  members: number;
  /** audience.entered events recorded by the recompute. */
  enteredEvents: number;
  /** POST → the last change event recorded (large diffs record them after the commit, from the outbox), s. */
  eventsS: number;
  /** The job's error when an attempt failed (the audience is then deleted, so that retries stop). */
  error?: string;
  activity: PgActivity;
  cpu: CpuUse;
}

const POLL_MS = 200;
const API_TIMEOUT_MS = 15 * 60_000;

interface JsonPlan {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'CTE Name'?: string;
  'Subplan Name'?: string;
  Alias?: string;
  'Join Type'?: string;
  Strategy?: string;
  'Actual Total Time': number;
  'Actual Rows': number;
  'Actual Loops': number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Workers Launched'?: number;
  Plans?: JsonPlan[];
}

function labelOf(p: JsonPlan): string {
  let kind = p.Strategy && p['Node Type'] === 'Aggregate' ? `${p.Strategy} Aggregate` : p['Node Type'];
  const jt = p['Join Type'];
  if (jt && jt !== 'Inner')
    kind = kind.endsWith(' Join') ? kind.replace(/ Join$/, ` ${jt} Join`) : `${kind} ${jt} Join`;
  const parts = [kind];
  if (p['Index Name']) parts.push(`using ${p['Index Name']}`);
  const on = p['Relation Name'] ?? p['CTE Name'];
  if (on) parts.push(`on ${on}${p.Alias && p.Alias !== on ? ` ${p.Alias}` : ''}`);
  return (p['Subplan Name'] ? `[${p['Subplan Name']}] ` : '') + parts.join(' ');
}

// Inclusive time of a node: per-loop time x loops, except under a Gather, where the loops are the
// parallel processes and the per-loop time is already the wall time of the part.
function walkPlan(
  p: JsonPlan,
  depth: number,
  ctx: { out: PlanLine[]; minMs: number; text: string[] },
  parallel = false,
): void {
  const ms = p['Actual Total Time'] * (parallel ? 1 : p['Actual Loops']);
  const line: PlanLine = {
    depth,
    label: labelOf(p),
    rows: p['Actual Rows'] * p['Actual Loops'],
    loops: p['Actual Loops'],
    ms,
    hit: p['Shared Hit Blocks'] ?? 0,
    read: p['Shared Read Blocks'] ?? 0,
    workers: p['Workers Launched'] ?? 0,
  };
  ctx.text.push(
    `${'  '.repeat(depth)}-> ${line.label} (rows ${line.rows}, ${ms.toFixed(0)} ms, loops ${line.loops}, hit ${line.hit} read ${line.read})`,
  );
  if (ms >= ctx.minMs) ctx.out.push(line);
  const under = parallel || p['Node Type'] === 'Gather' || p['Node Type'] === 'Gather Merge';
  for (const c of p.Plans ?? []) walkPlan(c, depth + 1, ctx, under);
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of a compiled statement, summarised.
 *
 * @example
 * const plan = await explain(sql, compileRule(rule, { now }).members().render());
 */
export async function explain(sql: postgres.Sql, statement: { text: string; values: unknown[] }): Promise<PlanSummary> {
  // The compiler renders its own parameterised text; unsafe runs it with the values bound.
  const [row] = await sql.unsafe<
    { 'QUERY PLAN': [{ Plan: JsonPlan; 'Execution Time': number; 'Planning Time': number }] }[]
  >(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement.text}`, statement.values as never[]);
  const top = row!['QUERY PLAN'][0];
  const ctx = { out: [] as PlanLine[], minMs: top['Execution Time'] * 0.03, text: [] as string[] };
  walkPlan(top.Plan, 0, ctx);
  return {
    executionMs: top['Execution Time'],
    rows: top.Plan['Actual Rows'],
    planningMs: top['Planning Time'],
    nodes: ctx.out,
    text: ctx.text.join('\n'),
  };
}

/**
 * Times the rule's statements over every live profile: evaluateRule (members) `repeats` times, the
 * truth statement once in Postgres, and, when asked, the members statement's plan.
 *
 * @example
 * const e = await evaluation(sql, rule, new Date(), { repeats: 2, explain: true });
 */
export async function evaluation(
  sql: postgres.Sql,
  rule: Rule,
  now: Date,
  o: { repeats: number; explain: boolean },
): Promise<Evaluation> {
  const membersMs: number[] = [];
  let members = 0;
  for (let i = 0; i < o.repeats; i++) {
    const t0 = performance.now();
    members = (await evaluateRule(sql as unknown as Sql, rule, { now })).size;
    membersMs.push(performance.now() - t0);
  }
  const compiled = compileRule(rule, { now });
  const truth = await explain(sql, compiled.truth().render());
  const plan = o.explain ? await explain(sql, compiled.members().render()) : undefined;
  return { membersMs, members, truthMs: truth.executionMs, truthRows: truth.rows, plan };
}

async function api(node: Node, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${node.server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
  return (text ? JSON.parse(text) : {}) as Record<string, unknown>;
}

/**
 * Creates an audience through the API (or, with `again`, asks for the recompute of an existing one)
 * and waits until its full recompute is done: computedAt set (or moved).
 *
 * @example
 * const r = await recomputeThroughApi(node, sql, { url, database }, REPEAT_BUYERS);
 */
export async function recomputeThroughApi(
  node: Node,
  sql: postgres.Sql,
  db: { url: string; database: string },
  audience: BenchAudience,
  again = false,
): Promise<ApiRecompute> {
  const before = again ? (await api(node, 'GET', `/api/audiences/${audience.key}`)).computedAt : null;
  const stopSampling = sampleActivity(db.url, db.database);
  const stopCpu = cpuMeter(node.server.proc.pid, db.database);
  const t0 = performance.now();
  if (again) await api(node, 'POST', `/api/audiences/${audience.key}/recompute`);
  else await api(node, 'POST', '/api/audiences', audience);
  // Polled in SQL: GET /api/audiences/:key counts the members on every call, which would add its
  // own load to what is measured (19% of Postgres time during a 100k-member recompute).
  const since = again ? new Date(String(before)) : new Date(0);
  let error: string | undefined;
  for (;;) {
    const [row] = await sql<{ done: boolean; state: string | null; message: string | null }[]>`
      SELECT a.computed_at IS NOT NULL AND a.computed_at > ${since} AS done, j.state, j.output ->> 'message' AS message
      FROM audiences a
      LEFT JOIN LATERAL (
        SELECT state, output FROM pgboss.job
        WHERE name = 'recompute' AND data ->> 'key' = a.key
        ORDER BY created_on DESC LIMIT 1) j ON true
      WHERE a.key = ${audience.key}`;
    if (row?.done) break;
    // A failed attempt: pg-boss retries it (with backoff), which would run during the next phases.
    if (row?.state === 'retry' || row?.state === 'failed') {
      error = row.message ?? `job ${row.state}`;
      break;
    }
    if (performance.now() - t0 > API_TIMEOUT_MS) throw new Error(`audience ${audience.key} was not computed in time`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = stopCpu();
  const activity = await stopSampling();
  if (error) {
    // Deleting the audience turns the job's retries into no-ops (its definition is gone).
    await api(node, 'DELETE', `/api/audiences/${audience.key}`);
    return {
      key: audience.key,
      name: audience.name,
      words: describeRule(audience.rule),
      seconds,
      queuedS: Number.NaN,
      runS: Number.NaN,
      members: Number.NaN,
      enteredEvents: 0,
      eventsS: Number.NaN,
      error,
      activity,
      cpu,
    };
  }
  const seen = await api(node, 'GET', `/api/audiences/${audience.key}`);
  // The job completes after computedAt is committed: it then hands the change events to fan-out.
  let job: { queued: number; run: number | null } | undefined;
  for (const until = performance.now() + 60_000; performance.now() < until; ) {
    [job] = await sql<{ queued: number; run: number | null }[]>`
      SELECT extract(epoch FROM started_on - created_on)::float8 AS queued,
        extract(epoch FROM completed_on - started_on)::float8 AS run
      FROM pgboss.job WHERE name = 'recompute' AND data ->> 'key' = ${audience.key}
      ORDER BY created_on DESC LIMIT 1`;
    if (!job || job.run !== null) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  // Change events of a large diff are recorded after computedAt, from the outbox (migration 0009).
  for (const until = performance.now() + API_TIMEOUT_MS; performance.now() < until; ) {
    const [left] = await sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM compute_changes WHERE key = ${audience.key}`;
    if (!left?.n) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const eventsS = (performance.now() - t0) / 1000;
  const [entered] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM events
    WHERE event = 'audience.entered' AND profile_id IS NOT NULL AND source_id = 'cairn'
      AND payload #>> '{properties,audience,key}' = ${audience.key}`;
  return {
    key: audience.key,
    name: audience.name,
    words: String(seen.words),
    seconds,
    queuedS: job?.queued ?? Number.NaN,
    runS: job?.run ?? Number.NaN,
    members: Number(seen.members),
    enteredEvents: entered!.n,
    eventsS,
    activity,
    cpu,
  };
}
