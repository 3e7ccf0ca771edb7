// A line chart drawn by uPlot (canvas), sized to its container. Only the analytics views import this file,
// so uPlot is in their chunk and never in the console's first load. The canvas is an image to assistive
// technology: the caller gives it a summary (aria-label) and shows the numbers as text beside it.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** One line: its label, one value per x (null: a gap), its colour, dashed for a comparison period. */
export interface Line {
  label: string;
  values: (number | null)[];
  color: string;
  dash?: boolean;
}

/**
 * A line chart over time (x: bucket starts, ISO) with its own legend; the canvas is `role="img"`
 * named by `summary`.
 *
 * @example
 * <LineChart x={answer.buckets} lines={[{ label: 'Orders', values: [1, 4, 2], color: '#0b5cad' }]}
 *   summary="Orders per day: 7 in total" />
 */
export function LineChart(props: { x: string[]; lines: Line[]; summary: string; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const xs = props.x.map((t) => Date.parse(t) / 1000);
    const data: uPlot.AlignedData = [
      xs,
      ...props.lines.map((l) => xs.map((_, i) => l.values[i] ?? null) as (number | null)[]),
    ];
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: props.height ?? 280,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] } },
      axes: [{ stroke: '#57606a' }, { stroke: '#57606a', size: 56 }],
      series: [
        {},
        ...props.lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 2,
          ...(l.dash ? { dash: [6, 4] } : {}),
          points: { show: xs.length <= 60 },
        })),
      ],
    };
    const plot = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() =>
      plot.setSize({ width: Math.max(280, el.clientWidth), height: opts.height }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [props.x, props.lines, props.height]);
  return (
    <div>
      <div ref={box} role="img" aria-label={props.summary} />
      <ul
        aria-hidden="true"
        style={{ display: 'flex', flexWrap: 'wrap', gap: '4px 16px', listStyle: 'none', padding: 0 }}
      >
        {props.lines.map((l) => (
          <li key={l.label}>
            <span
              style={{
                display: 'inline-block',
                width: '18px',
                height: '0',
                borderTop: `3px ${l.dash ? 'dashed' : 'solid'} ${l.color}`,
                verticalAlign: 'middle',
                marginRight: '6px',
              }}
            />
            {l.label}
          </li>
        ))}
      </ul>
    </div>
  );
}
