// A definition's members per day as a small uPlot line: the series (GET …/daily-counts) is asked for when
// the row scrolls into view, and uPlot's chunk is loaded the first time a sparkline is drawn.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { fmt } from '../ui.tsx';

const DAYS = 30;

/**
 * The sparkline of `/audiences/<key>` or `/tags/<key>`, with its numbers in words for screen readers.
 *
 * @example
 * <Sparkline path="/audiences/vip" />
 */
export function Sparkline(props: { path: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [visible, setVisible] = useState(false);
  const [series, setSeries] = useState<{ day: string; members: number }[]>();
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        setVisible(true);
        seen.disconnect();
      }
    });
    seen.observe(el);
    return () => seen.disconnect();
  }, []);

  useEffect(() => {
    if (!visible) return;
    const ctl = new AbortController();
    api<{ data: { day: string; members: number }[] }>(`${props.path}/daily-counts?days=${DAYS}`, { signal: ctl.signal })
      .then((r) => setSeries(r.data))
      .catch((e: Error) => e.name !== 'AbortError' && setFailed(true));
    return () => ctl.abort();
  }, [visible, props.path]);

  useEffect(() => {
    const el = box.current;
    if (!el || !series) return;
    let plot: { destroy(): void } | undefined;
    let live = true;
    import('uplot').then(({ default: UPlot }) => {
      if (!live) return;
      const xs = series.map((_, i) => i);
      plot = new UPlot(
        {
          width: 120,
          height: 32,
          padding: [4, 3, 3, 3],
          cursor: { show: false },
          select: { show: false, left: 0, top: 0, width: 0, height: 0 },
          legend: { show: false },
          scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [{ show: false }, { show: false }],
          series: [{}, { stroke: '#0b5cad', fill: 'rgba(11, 92, 173, 0.15)', width: 2, points: { show: false } }],
        },
        [xs, series.map((p) => p.members)],
        el,
      );
    });
    return () => {
      live = false;
      plot?.destroy();
    };
  }, [series]);

  const words = series?.length
    ? `Members per day over the last ${DAYS} days: ${fmt(series[0]!.members, 0)} on ${series[0]!.day}, ${fmt(
        Math.max(...series.map((p) => p.members)),
        0,
      )} at most, ${fmt(series.at(-1)!.members, 0)} today`
    : failed
      ? 'Members over time could not be loaded'
      : 'Members over time, loading';
  return <div class="spark" ref={box} role="img" aria-label={words} title={words} />;
}
