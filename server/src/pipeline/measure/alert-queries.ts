import type { KpiPeriod, TrendSeries } from '@cairn/core';
import type { Tx } from '../../db/index.ts';

// KPIs, alert rules and their events (migration 0027), as the admin API and the alert checker read them.

/** A KPI as stored: one trends series measured per period against a target. */
export interface Kpi {
  id: string;
  name: string;
  series: TrendSeries & { name?: string };
  period: KpiPeriod;
  timezone: string;
  target: number;
  createdAt: Date;
  updatedAt: Date;
}

/** What a KPI is made of (create and update). */
export type KpiFields = Pick<Kpi, 'name' | 'series' | 'period' | 'timezone' | 'target'>;

/** A metric an alert watches without a KPI: a series, its period and zone. */
export interface AlertMetric {
  series: TrendSeries;
  period: KpiPeriod;
  timezone: string;
}

/** The kinds of alert rules. */
export type AlertKind = 'pacing' | 'change' | 'anomaly' | 'flow_health';
export const ALERT_KINDS: readonly AlertKind[] = ['pacing', 'change', 'anomaly', 'flow_health'];

/** An alert rule as stored, with its incident state. */
export interface AlertRule {
  id: string;
  name: string;
  kind: AlertKind;
  kpiId: string | null;
  metric: AlertMetric | null;
  params: Record<string, unknown>;
  destinationId: string | null;
  recipient: string | null;
  enabled: boolean;
  firing: boolean;
  incident: number;
  lastValue: number | null;
  checkedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What an alert rule is made of (create and update). */
export type AlertRuleFields = Pick<
  AlertRule,
  'name' | 'kind' | 'kpiId' | 'metric' | 'params' | 'destinationId' | 'recipient' | 'enabled'
>;

/** One firing or resolve of a rule. */
export interface AlertEvent {
  id: string;
  ruleId: string;
  incident: number;
  status: 'fired' | 'resolved';
  value: number | null;
  threshold: number | null;
  detail: Record<string, unknown>;
  at: Date;
  deliveredAt: Date | null;
  deliveryAttempts: number;
  deliveryError: string | null;
}

const KPI = (sql: Tx) => sql`id, name, series, period, timezone, target,
  created_at AS "createdAt", updated_at AS "updatedAt"`;
const RULE = (sql: Tx) => sql`id, name, kind, kpi_id AS "kpiId", metric, params,
  destination_id AS "destinationId", recipient, enabled, firing, incident, last_value AS "lastValue",
  checked_at AS "checkedAt", created_at AS "createdAt", updated_at AS "updatedAt"`;
const EVENT = (sql: Tx) => sql`id::text, rule_id AS "ruleId", incident, status, value, threshold, detail, at,
  delivered_at AS "deliveredAt", delivery_attempts AS "deliveryAttempts", delivery_error AS "deliveryError"`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** KPIs by name. */
export async function listKpis(sql: Tx): Promise<Kpi[]> {
  return sql<Kpi[]>`SELECT ${KPI(sql)} FROM kpis ORDER BY name, id`;
}

/** One KPI, or undefined (also for an id that is not a uuid). */
export async function getKpi(sql: Tx, id: string): Promise<Kpi | undefined> {
  if (!UUID.test(id)) return undefined;
  const [row] = await sql<Kpi[]>`SELECT ${KPI(sql)} FROM kpis WHERE id = ${id}`;
  return row;
}

/** Creates a KPI; its id. */
export async function insertKpi(sql: Tx, k: KpiFields): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    INSERT INTO kpis (name, series, period, timezone, target)
    VALUES (${k.name}, ${sql.json(k.series as never)}, ${k.period}, ${k.timezone}, ${k.target})
    RETURNING id`;
  return row!.id;
}

/** Replaces a KPI's fields. */
export async function updateKpi(sql: Tx, id: string, k: KpiFields): Promise<void> {
  await sql`
    UPDATE kpis
    SET name = ${k.name}, series = ${sql.json(k.series as never)}, period = ${k.period},
      timezone = ${k.timezone}, target = ${k.target}, updated_at = now()
    WHERE id = ${id}`;
}

/** Deletes a KPI (and the rules on it); whether it existed. */
export async function deleteKpi(sql: Tx, id: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  return (await sql`DELETE FROM kpis WHERE id = ${id}`).count > 0;
}

/** Alert rules by name. */
export async function listAlertRules(sql: Tx, options: { enabledOnly?: boolean } = {}): Promise<AlertRule[]> {
  return sql<AlertRule[]>`
    SELECT ${RULE(sql)} FROM alert_rules
    ${options.enabledOnly ? sql`WHERE enabled` : sql``}
    ORDER BY name, id`;
}

/** One alert rule, or undefined. */
export async function getAlertRule(sql: Tx, id: string): Promise<AlertRule | undefined> {
  if (!UUID.test(id)) return undefined;
  const [row] = await sql<AlertRule[]>`SELECT ${RULE(sql)} FROM alert_rules WHERE id = ${id}`;
  return row;
}

/** Creates an alert rule; its id. */
export async function insertAlertRule(sql: Tx, r: AlertRuleFields): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    INSERT INTO alert_rules (name, kind, kpi_id, metric, params, destination_id, recipient, enabled)
    VALUES (${r.name}, ${r.kind}, ${r.kpiId}, ${r.metric ? sql.json(r.metric as never) : null},
      ${sql.json(r.params as never)}, ${r.destinationId}, ${r.recipient}, ${r.enabled})
    RETURNING id`;
  return row!.id;
}

/**
 * Replaces a rule's fields. A change of what is watched or how starts afresh: a firing incident is
 * closed without a resolve (its condition no longer exists), so the next check judges the new rule.
 */
export async function updateAlertRule(sql: Tx, id: string, r: AlertRuleFields, reset: boolean): Promise<void> {
  await sql`
    UPDATE alert_rules
    SET name = ${r.name}, kind = ${r.kind}, kpi_id = ${r.kpiId},
      metric = ${r.metric ? sql.json(r.metric as never) : null}, params = ${sql.json(r.params as never)},
      destination_id = ${r.destinationId}, recipient = ${r.recipient}, enabled = ${r.enabled},
      firing = CASE WHEN ${reset} THEN false ELSE firing END, updated_at = now()
    WHERE id = ${id}`;
}

/** Deletes a rule and its events; whether it existed. */
export async function deleteAlertRule(sql: Tx, id: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  return (await sql`DELETE FROM alert_rules WHERE id = ${id}`).count > 0;
}

/** A rule's events, newest first. */
export async function listAlertEvents(
  sql: Tx,
  ruleId: string,
  q: { before?: string; limit: number },
): Promise<AlertEvent[]> {
  return sql<AlertEvent[]>`
    SELECT ${EVENT(sql)} FROM alert_events
    WHERE rule_id = ${ruleId}
      ${q.before ? sql`AND id < ${q.before}` : sql``}
    ORDER BY id DESC
    LIMIT ${q.limit}`;
}

/**
 * Moves a rule into (`fired`) or out of (`resolved`) an incident and records it, in one transaction.
 * The conditional UPDATE is the guard: of two servers checking at once only one sees the rule in the
 * other state, and the unique (rule, incident, status) key backs it. Null when nothing changed.
 */
export async function recordTransition(
  tx: Tx,
  ruleId: string,
  to: 'fired' | 'resolved',
  e: { value: number | null; threshold: number | null; detail: Record<string, unknown>; at: Date },
): Promise<string | null> {
  const [moved] =
    to === 'fired'
      ? await tx<{ incident: number }[]>`
          UPDATE alert_rules SET firing = true, incident = incident + 1
          WHERE id = ${ruleId} AND NOT firing
          RETURNING incident`
      : await tx<{ incident: number }[]>`
          UPDATE alert_rules SET firing = false
          WHERE id = ${ruleId} AND firing
          RETURNING incident`;
  if (!moved) return null;
  const [row] = await tx<{ id: string }[]>`
    INSERT INTO alert_events (rule_id, incident, status, value, threshold, detail, at)
    VALUES (${ruleId}, ${moved.incident}, ${to}, ${e.value}, ${e.threshold}, ${tx.json(e.detail as never)}, ${e.at})
    ON CONFLICT (rule_id, incident, status) DO NOTHING
    RETURNING id::text`;
  return row?.id ?? null;
}

/** Notes the value a check saw (for GET /api/alerts/:id). */
export async function noteChecked(sql: Tx, ruleId: string, value: number | null, at: Date): Promise<void> {
  await sql`UPDATE alert_rules SET last_value = ${value}, checked_at = ${at} WHERE id = ${ruleId}`;
}

/** Failed sends (rows retrying or dead) whose last attempt was in `[from, to)`, optionally of one destination or flow. */
export async function failedSends(
  sql: Tx,
  q: { from: Date; to: Date; destinationId?: string; flowId?: string },
): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n
    FROM deliveries
    WHERE status IN ('retrying', 'dead')
      AND last_attempt_at >= ${q.from}
      AND last_attempt_at < ${q.to}
      ${q.destinationId ? sql`AND destination_id = ${q.destinationId}` : sql``}
      ${q.flowId ? sql`AND message -> 'flow' ->> 'id' = ${q.flowId}` : sql``}`;
  return row!.n;
}
