import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

// Report charts: a Vega-Lite spec compiled to Vega, rendered headless to SVG (vega's renderer 'none':
// no DOM, no canvas), then rasterised to PNG by resvg (Rust, prebuilt binary, no browser and no system
// libraries; fonts from the system). Chosen over chart.js + a canvas binding because the chart is data
// (a JSON spec, testable without pixels) and resvg's only native part ships as one prebuilt package.
// Measured on this machine: +28 MB in node_modules (vega, vega-lite, resvg); ~50 ms per chart warm,
// ~370 ms for the first (module and font loading).

/** One line of a chart: a name and a value per bucket. */
export interface ChartLine {
  name: string;
  values: readonly (number | null)[];
  /** Drawn dashed (the previous period). */
  dashed?: boolean;
}

/** What {@link renderLineChart} draws: bucket labels along x, one line per entry. */
export interface LineChart {
  title: string;
  labels: readonly string[];
  lines: readonly ChartLine[];
  width?: number;
  height?: number;
}

/**
 * The Vega-Lite spec of a line chart (exported for tests: what is drawn, without pixels).
 *
 * @example
 * const spec = lineChartSpec({ title: 'Orders', labels: ['Mon', 'Tue'], lines: [{ name: 'this week', values: [3, 5] }] });
 */
export function lineChartSpec(chart: LineChart): TopLevelSpec {
  const values = chart.lines.flatMap((line, l) =>
    chart.labels.map((label, i) => ({
      x: label,
      i,
      line: line.name,
      order: l,
      dashed: !!line.dashed,
      y: line.values[i] ?? null,
    })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: chart.title,
    width: chart.width ?? 520,
    height: chart.height ?? 200,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'ordinal', sort: { field: 'i' }, title: null, axis: { labelAngle: 0 } },
      y: { field: 'y', type: 'quantitative', title: null },
      color: { field: 'line', type: 'nominal', sort: { field: 'order' }, title: null, legend: { orient: 'bottom' } },
      strokeDash: {
        field: 'dashed',
        type: 'nominal',
        scale: {
          domain: [false, true],
          range: [
            [1, 0],
            [5, 4],
          ],
        },
        legend: null,
      },
    },
    config: { font: 'DejaVu Sans, Arial, sans-serif' },
  } as TopLevelSpec;
}

/**
 * Renders a line chart to PNG bytes (twice the spec's size, for sharp display on high-density screens).
 *
 * @example
 * const png = await renderLineChart({ title: 'Orders', labels, lines: [{ name: 'this week', values }] });
 */
export async function renderLineChart(chart: LineChart): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(lineChartSpec(chart)).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return Buffer.from(
      new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true } }).render().asPng(),
    );
  } finally {
    view.finalize();
  }
}
