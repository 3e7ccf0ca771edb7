import { rate } from '@cairn/core';
import type { ConversionRow, DeliveryMetricsRow, SkipRow } from '../../pipeline/measure/index.ts';

// The rows of a campaign's results statements folded into levels: the campaign, each flow, step and message.

/** One level's metrics (the answer's `Metrics` schema in api/analytics/campaigns.ts). */
export interface MetricsOut {
  sent: number;
  delivered: number;
  failed: number;
  pending: number;
  skipped: { count: number; reasons: { reason: string; count: number }[] };
  reached: number;
  opened: { people: number; messages: number; rate: number | null };
  clicked: { people: number; clicks: number; rate: number | null };
  unsubscribed: number;
  converted: number | null;
  conversions: number | null;
  revenue: number | null;
}

type Key = string;

/**
 * A level's key: the campaign (`keyOf(null)`), a flow, a step (flow, node), a message (flow, node, version).
 *
 * @example
 * keyOf('flw_1', 'welcome', 2);
 */ export const keyOf = (flow: string | null, node?: string | null, version?: number | null) =>
  JSON.stringify([flow, node ?? null, version ?? null]);

function emptyMetrics(goal: boolean): MetricsOut {
  return {
    sent: 0,
    delivered: 0,
    failed: 0,
    pending: 0,
    skipped: { count: 0, reasons: [] },
    reached: 0,
    opened: { people: 0, messages: 0, rate: null },
    clicked: { people: 0, clicks: 0, rate: null },
    unsubscribed: 0,
    converted: goal ? 0 : null,
    conversions: goal ? 0 : null,
    revenue: goal ? 0 : null,
  };
}

/**
 * The campaign's, flows', steps' and messages' metrics from the statements' rows: people counts as the
 * database counted them per level (distinct), skips added up through the levels (they are message counts).
 * Flows by name then id, steps by node, messages by version.
 *
 * @example
 * const { at, flows, utmConv } = foldResults({ metrics, skips, conversions, goal: true, names, flowIds });
 * at(keyOf(null)); // the campaign's totals
 */
export function foldResults(input: {
  metrics: readonly DeliveryMetricsRow[];
  skips: readonly SkipRow[];
  conversions: readonly ConversionRow[];
  goal: boolean;
  names: readonly { id: string; name: string }[];
  flowIds: readonly string[];
}) {
  const table = new Map<Key, MetricsOut>();
  const at = (k: Key) => {
    let m = table.get(k);
    if (!m) {
      m = emptyMetrics(input.goal);
      table.set(k, m);
    }
    return m;
  };
  const levels = (r: { flow: string; node: string; version: number }) => [
    keyOf(null),
    keyOf(r.flow),
    keyOf(r.flow, r.node),
    keyOf(r.flow, r.node, r.version),
  ];
  for (const r of input.metrics) {
    const m = at(
      r.g === 7
        ? keyOf(null)
        : r.g === 3
          ? keyOf(r.flow)
          : r.g === 1
            ? keyOf(r.flow, r.node)
            : keyOf(r.flow, r.node, r.version),
    );
    Object.assign(m, {
      sent: r.sent,
      delivered: r.delivered,
      failed: r.failed,
      pending: r.pending,
      reached: r.reached,
      opened: { people: r.opened_people, messages: r.opened_messages, rate: rate(r.opened_people, r.reached) },
      clicked: { people: r.clicked_people, clicks: r.clicks, rate: rate(r.clicked_people, r.reached) },
      unsubscribed: r.unsubscribed,
    });
  }
  // Skips are message counts: they add up through the levels.
  for (const s of input.skips)
    for (const k of levels(s)) {
      const m = at(k);
      m.skipped.count += s.count;
      const reason = m.skipped.reasons.find((x) => x.reason === s.reason);
      if (reason) reason.count += s.count;
      else m.skipped.reasons.push({ reason: s.reason, count: s.count });
    }
  const utmConv = new Map<string, ConversionRow>();
  for (const r of input.conversions) {
    if (r.level === 'utm') {
      utmConv.set(r.utm!, r);
      continue;
    }
    const k =
      r.level === 'campaign'
        ? keyOf(null)
        : r.level === 'flow'
          ? keyOf(r.flow)
          : r.level === 'step'
            ? keyOf(r.flow, r.node)
            : keyOf(r.flow, r.node, r.version);
    Object.assign(at(k), { converted: r.converted, conversions: r.conversions, revenue: Number(r.revenue) });
  }

  for (const m of table.values())
    m.skipped.reasons.sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  const parsed = [...table.keys()].map((k) => JSON.parse(k) as [string | null, string | null, number | null]);
  const nameOf = (flowId: string) => input.names.find((f) => f.id === flowId)?.name ?? null;
  // By name, then id (by code unit: the same order on every database).
  const byName = [...input.flowIds].sort((a, b) => {
    const [x, y] = [`${nameOf(a) ?? ''}\u0000${a}`, `${nameOf(b) ?? ''}\u0000${b}`];
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const flows = byName.map((flowId) => ({
    flowId,
    name: nameOf(flowId),
    ...at(keyOf(flowId)),
    steps: parsed
      .filter(([f, node, v]) => f === flowId && node !== null && v === null)
      .map(([, node]) => node!)
      .sort()
      .map((node) => ({
        node,
        ...at(keyOf(flowId, node)),
        messages: parsed
          .filter(([f, nd, v]) => f === flowId && nd === node && v !== null)
          .map(([, , v]) => v!)
          .sort((a, b) => a - b)
          .map((version) => ({ version, ...at(keyOf(flowId, node, version)) })),
      })),
  }));
  return { at, flows, utmConv };
}
