import {
  foldTrends,
  type KpiPeriod,
  type Pacing,
  pacing,
  percentChange,
  periodAt,
  previousToDate,
  robustBaseline,
  seasonalWindows,
  type TimeRange,
  type TrendRow,
  type TrendSeries,
  trendsQuery,
} from '@cairn/core';
import type { Sql } from '../../db/index.ts';
import type { Logger } from '../../log.ts';
import {
  type AlertMetric,
  type AlertRule,
  failedSends,
  getKpi,
  type Kpi,
  listAlertRules,
  noteChecked,
  recordTransition,
} from './alert-queries.ts';
import type { AnalyticsReader } from './reader.ts';

// Alert rules, checked by the measure stage on a schedule (stage.ts): each rule's condition is judged at
// the runtime clock's instant; a rule moves into an incident once (fired) and out of it once (resolved),
// whoever checks (alert-queries.ts recordTransition); the events are then sent through the rule's
// destination, retried by later checks until sent.

/** What checking needs: the database, the analytics reader, a way to send a notice, a clock and a log. */
export interface AlertDeps {
  sql: Sql;
  reader: AnalyticsReader;
  log: Logger;
  /** The deliver stage's sendNotice (absent: events are recorded, never sent). */
  send?: (
    destinationId: string,
    notice: { event: string; messageId: string; properties: Record<string, unknown>; recipient?: string | null },
  ) => Promise<{ status: string; error?: string }>;
}

/** A condition judged at one instant: whether it holds, the value seen and the bound it was held against. */
export interface Judgement {
  breached: boolean;
  value: number | null;
  threshold: number | null;
  detail: Record<string, unknown>;
}

/** Defaults of each kind's settings. */
export const ALERT_DEFAULTS = {
  pacing: { belowPct: 80, minElapsedPct: 10 },
  change: { changePct: -50 },
  anomaly: { weeks: 6, k: 3, direction: 'both' as 'below' | 'above' | 'both' },
  flowHealth: { failures: 50, windowMinutes: 60 },
} as const;

/** Gives up sending an alert event after this many tries (one per check). */
export const ALERT_SEND_ATTEMPTS = 10;

/**
 * The value of one series in each of several ascending, non-overlapping windows, in ONE statement:
 * the trends builder over the windows' bounds as bucket starts (the gaps between windows are buckets
 * of their own, skipped). Null where an average had nothing to average.
 *
 * @example
 * const [today] = await seriesValues(reader, series, [{ from, to }], now);
 */
export async function seriesValues(
  reader: AnalyticsReader,
  series: TrendSeries,
  windows: readonly { from: string; to: string }[],
  now: Date,
  signal?: AbortSignal,
): Promise<(number | null)[]> {
  const starts = windows.flatMap((w, i) => (i < windows.length - 1 ? [w.from, w.to] : [w.from]));
  const range = { from: windows[0]!.from, to: windows.at(-1)!.to, timezone: 'UTC' };
  if (!(Date.parse(range.from) < Date.parse(range.to))) return windows.map(() => (series.measure === 'avg' ? null : 0));
  const iso = starts.map((s) => new Date(s).toISOString());
  const rows = await reader.rows<TrendRow>(trendsQuery({ range, starts: iso, series: [series], now }), signal);
  const [line] = foldTrends(rows, { series: [series], buckets: iso.length, breakdown: false });
  return windows.map((w, i) => (Date.parse(w.from) < Date.parse(w.to) ? line!.values[i * 2]! : null));
}

/** A KPI's state at `at`: the current period, its value so far and the pacing against the target. */
export interface KpiStatus extends Pacing {
  period: TimeRange;
  at: string;
}

/**
 * The status of a KPI at the instant `at`: the period holding it, the value from its start to `at`,
 * achievement and linear pacing.
 *
 * @example
 * const s = await kpiStatus(reader, kpi, clock());
 */
export async function kpiStatus(reader: AnalyticsReader, kpi: Kpi, at: Date, signal?: AbortSignal): Promise<KpiStatus> {
  const period = periodAt(at, kpi.period, kpi.timezone);
  const to = new Date(Math.min(at.getTime(), Date.parse(period.to))).toISOString();
  const [value] = await seriesValues(reader, kpi.series, [{ from: period.from, to }], at, signal);
  return { period, at: at.toISOString(), ...pacing({ value: value ?? 0, target: kpi.target, range: period, at }) };
}

type Watched = { metric: AlertMetric; kpi: Kpi | null };
const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);

/** Judges a rule at `at`; null when it cannot be judged (its KPI is gone, nothing to compare with). */
export async function judge(deps: AlertDeps, rule: AlertRule, at: Date): Promise<Judgement | null> {
  const p = rule.params;
  if (rule.kind === 'flow_health') {
    const minutes = num(p.windowMinutes, ALERT_DEFAULTS.flowHealth.windowMinutes);
    const failures = num(p.failures, ALERT_DEFAULTS.flowHealth.failures);
    const from = new Date(at.getTime() - minutes * 60_000);
    const n = await failedSends(deps.sql, {
      from,
      to: at,
      destinationId: typeof p.destinationId === 'string' ? p.destinationId : undefined,
      flowId: typeof p.flowId === 'string' ? p.flowId : undefined,
    });
    return { breached: n >= failures, value: n, threshold: failures, detail: { from: from.toISOString(), minutes } };
  }
  const watched = await watchedOf(deps, rule);
  if (!watched) return null;
  const { metric, kpi } = watched;
  if (rule.kind === 'pacing') {
    if (!kpi) return null;
    const s = await kpiStatus(deps.reader, kpi, at);
    const belowPct = num(p.belowPct, ALERT_DEFAULTS.pacing.belowPct);
    const threshold = (s.expected * belowPct) / 100;
    // Early in a period almost nothing is expected: no judgement before minElapsedPct of it has passed.
    const judged = s.elapsed * 100 >= num(p.minElapsedPct, ALERT_DEFAULTS.pacing.minElapsedPct);
    return {
      breached: judged && s.value < threshold,
      value: s.value,
      threshold,
      detail: { period: s.period, expected: s.expected, target: s.target, pacePct: s.pacePct, projected: s.projected },
    };
  }
  if (rule.kind === 'change') {
    const current = periodAt(at, metric.period, metric.timezone);
    const prev = previousToDate(current, metric.period, at);
    const [before, now] = await seriesValues(
      deps.reader,
      metric.series,
      [prev, { from: current.from, to: at.toISOString() }],
      at,
    );
    const change = percentChange(now ?? null, before ?? null);
    if (change === null) return null;
    const changePct = num(p.changePct, ALERT_DEFAULTS.change.changePct);
    return {
      breached: changePct < 0 ? change <= changePct : change >= changePct,
      value: now!,
      threshold: before! * (1 + changePct / 100),
      detail: { change, previous: before, previousRange: prev, period: current },
    };
  }
  // anomaly: today so far against the same weekday and span of the trailing weeks.
  const weeks = Math.round(num(p.weeks, ALERT_DEFAULTS.anomaly.weeks));
  const k = num(p.k, ALERT_DEFAULTS.anomaly.k);
  const direction = (p.direction as string) ?? ALERT_DEFAULTS.anomaly.direction;
  const windows = seasonalWindows(at, metric.timezone, weeks);
  const values = await seriesValues(deps.reader, metric.series, windows, at);
  const today = values.at(-1);
  const history = values.slice(0, -1).filter((v): v is number => v !== null);
  if (today === null || today === undefined || !history.length) return null;
  const b = robustBaseline(history, k);
  const low = today < b.lower;
  const high = today > b.upper;
  const breached = direction === 'below' ? low : direction === 'above' ? high : low || high;
  return {
    breached,
    value: today,
    threshold: low || direction === 'below' ? b.lower : b.upper,
    detail: { method: 'median ± k·1.4826·MAD', ...b, k, weeks, history, direction },
  };
}

async function watchedOf(deps: AlertDeps, rule: AlertRule): Promise<Watched | null> {
  if (rule.kpiId) {
    const kpi = await getKpi(deps.sql, rule.kpiId);
    return kpi ? { kpi, metric: { series: kpi.series, period: kpi.period, timezone: kpi.timezone } } : null;
  }
  return rule.metric ? { kpi: null, metric: rule.metric } : null;
}

/** What one check did. */
export interface CheckResult {
  checked: number;
  fired: number;
  resolved: number;
  delivered: number;
  failed: number;
}

/**
 * One check of every enabled rule at `at`: judge, move into or out of an incident (once, whoever
 * checks), note the value; then send the events not yet sent. A rule that cannot be judged keeps its
 * state; one rule's error is logged and the others are still checked.
 *
 * @example
 * await checkAlerts(deps, rt.clock());
 */
export async function checkAlerts(deps: AlertDeps, at: Date): Promise<CheckResult> {
  const result: CheckResult = { checked: 0, fired: 0, resolved: 0, delivered: 0, failed: 0 };
  for (const rule of await listAlertRules(deps.sql, { enabledOnly: true })) {
    try {
      const j = await judge(deps, rule, at);
      result.checked++;
      await noteChecked(deps.sql, rule.id, j?.value ?? null, at);
      if (!j || j.breached === rule.firing) continue;
      const to = j.breached ? 'fired' : 'resolved';
      const id = await deps.sql.begin((tx) => recordTransition(tx, rule.id, to, { ...j, at }));
      if (id) result[to]++;
    } catch (err) {
      deps.log.error(`alerts: rule ${rule.id} (${rule.name}) not checked`, err);
    }
  }
  const sent = await sendPending(deps);
  result.delivered = sent.delivered;
  result.failed = sent.failed;
  return result;
}

type Pending = {
  id: string;
  ruleId: string;
  name: string;
  kind: string;
  incident: number;
  status: string;
  value: number | null;
  threshold: number | null;
  detail: Record<string, unknown>;
  at: Date;
  destinationId: string | null;
  recipient: string | null;
  attempts: number;
};

// Events not yet sent are claimed for a minute (a lease committed before sending, so no transaction
// stays open during a plugin call, and embedded PGlite's one connection stays free): another server
// skips them meanwhile, so two checkers never send one event at once. A crash after the send but before
// it is marked sends it again once the claim lapses (at least once; the notice's messageId lets a
// receiver dedupe).
async function sendPending(deps: AlertDeps): Promise<{ delivered: number; failed: number }> {
  let delivered = 0;
  let failed = 0;
  if (!deps.send) return { delivered, failed };
  const rows = await deps.sql<Pending[]>`
    WITH claimed AS (
      UPDATE alert_events
      SET delivery_claimed_until = now() + interval '1 minute'
      WHERE id IN (
        SELECT e.id
        FROM alert_events e
        JOIN alert_rules r ON r.id = e.rule_id
        WHERE e.delivered_at IS NULL
          AND e.delivery_attempts < ${ALERT_SEND_ATTEMPTS}
          AND coalesce(e.delivery_claimed_until, '-infinity') < now()
          AND r.destination_id IS NOT NULL
        ORDER BY e.id
        LIMIT 50
        FOR UPDATE OF e SKIP LOCKED
      )
      RETURNING *
    )
    SELECT e.id::text, e.rule_id AS "ruleId", r.name, r.kind, e.incident, e.status, e.value, e.threshold,
      e.detail, e.at, r.destination_id AS "destinationId", r.recipient, e.delivery_attempts AS attempts
    FROM claimed e
    JOIN alert_rules r ON r.id = e.rule_id
    ORDER BY e.id`;
  for (const e of rows) {
    let error: string | null = null;
    try {
      const outcome = await deps.send(e.destinationId!, {
        event: e.status === 'fired' ? 'Cairn Alert Fired' : 'Cairn Alert Resolved',
        messageId: `alert-${e.ruleId}-${e.incident}-${e.status}`,
        recipient: e.recipient,
        properties: {
          alert: { id: e.ruleId, name: e.name, kind: e.kind },
          incident: e.incident,
          status: e.status,
          value: e.value,
          threshold: e.threshold,
          at: new Date(e.at).toISOString(),
          detail: e.detail,
        },
      });
      if (outcome.status !== 'delivered') error = `${outcome.status}: ${outcome.error ?? ''}`.trim();
    } catch (err) {
      error = (err as Error).message;
    }
    if (error) failed++;
    else delivered++;
    // A failure is tried again at the next check (the claim is dropped), up to ALERT_SEND_ATTEMPTS.
    await deps.sql`
      UPDATE alert_events
      SET delivery_attempts = delivery_attempts + 1,
        delivered_at = ${error ? null : new Date()},
        delivery_error = ${error?.slice(0, 1000) ?? null},
        delivery_claimed_until = NULL
      WHERE id = ${e.id}`;
  }
  return { delivered, failed };
}

/** The periods a KPI may have (re-exported for the API). */
export type { KpiPeriod };
