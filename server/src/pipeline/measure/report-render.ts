import type { ReportPeriod } from '@cairn/core';
import type { MessageAttachment } from '@cairn/plugin-api';
import { escapeHtml } from '@cairn/plugin-email-smtp';

/** One series line of a report: the period's total beside the previous one's. */
export interface ReportLine {
  name: string;
  measure: string;
  group?: string | null;
  value: number | null;
  previous: number | null;
  /** % change from previous to value (null when previous is 0 or missing). */
  change: number | null;
  values: (number | null)[];
  previousValues: (number | null)[];
}

/** A built report: what every destination type renders from. */
export interface BuiltReport {
  report: { id: string; name: string };
  period: ReportPeriod;
  queries: { title: string; interval: string; buckets: string[]; previousBuckets: string[]; lines: ReportLine[] }[];
}

// A report as an email (HTML tables with the charts inline, and a plain-text part) and as a chat message.

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

/**
 * A value for people: thousands separated, at most two decimals, `–` for none.
 *
 * @example
 * formatValue(1234.5); // '1,234.5'
 */
export function formatValue(v: number | null): string {
  return v === null ? '–' : number.format(v);
}

/**
 * A change in %, signed, one decimal; `n/a` when the previous period had nothing.
 *
 * @example
 * formatChange(12.345); // '+12.3%'
 */
export function formatChange(c: number | null): string {
  if (c === null) return 'n/a';
  return `${c > 0 ? '+' : ''}${c.toFixed(1)}%`;
}

const lineName = (l: ReportLine) => (l.group !== undefined ? `${l.name}: ${l.group ?? '(none)'}` : l.name);

/**
 * The HTML body: per query a heading, its chart (`cid:` of the matching attachment) and a table of
 * value, previous and change per series.
 *
 * @example
 * const html = reportHtml(built, 'Weekly: 9 – 15 Nov 2026', await reportCharts(built));
 */
export function reportHtml(built: BuiltReport, title: string, charts: readonly MessageAttachment[]): string {
  const cell = 'style="padding:4px 10px;border-bottom:1px solid #ddd;text-align:right"';
  const head = 'style="padding:4px 10px;border-bottom:2px solid #999;text-align:right"';
  const sections = built.queries.map((q, i) => {
    const chart = charts[i];
    const rows = q.lines
      .map(
        (l) =>
          `<tr><td style="padding:4px 10px;border-bottom:1px solid #ddd">${escapeHtml(lineName(l))}</td>` +
          `<td ${cell}>${formatValue(l.value)}</td><td ${cell}>${formatValue(l.previous)}</td>` +
          `<td ${cell}>${formatChange(l.change)}</td></tr>`,
      )
      .join('\n');
    return [
      `<h2 style="font-size:16px;margin:24px 0 8px">${escapeHtml(q.title)}</h2>`,
      chart ? `<img src="cid:${chart.cid}" alt="${escapeHtml(q.title)}" width="520" style="max-width:100%">` : '',
      '<table style="border-collapse:collapse;font-size:14px">',
      `<tr><th style="padding:4px 10px;border-bottom:2px solid #999;text-align:left">Series</th><th ${head}>Value</th><th ${head}>Previous</th><th ${head}>Change</th></tr>`,
      rows,
      '</table>',
    ].join('\n');
  });
  return [
    '<!doctype html><html><body style="font-family:Arial,sans-serif;color:#222">',
    `<h1 style="font-size:20px">${escapeHtml(title)}</h1>`,
    `<p style="color:#666">Compared with ${escapeHtml(previousLabel(built))}.</p>`,
    ...sections,
    '</body></html>',
  ].join('\n');
}

function previousLabel(built: BuiltReport): string {
  const p = built.period.previous;
  return `the ${built.period.interval} before (${p.from.slice(0, 10)} – ${p.to.slice(0, 10)} UTC bounds)`;
}

/**
 * The text form: the email's plain part, or a chat message (`chat`: mrkdwn bold headings, Slack escapes
 * its own `&<>` when the plugin sends it).
 *
 * @example
 * const text = reportText(built, 'Weekly: 9 – 15 Nov 2026', 'chat');
 */
export function reportText(built: BuiltReport, title: string, form: 'plain' | 'chat'): string {
  const out = form === 'plain' ? [title, ''] : [];
  for (const q of built.queries) {
    out.push(form === 'chat' ? `*${q.title}*` : q.title);
    for (const l of q.lines)
      out.push(
        `• ${lineName(l)}: ${formatValue(l.value)} (previous ${formatValue(l.previous)}, ${formatChange(l.change)})`,
      );
    out.push('');
  }
  return out.join('\n').trim();
}
