// Analytics: one page with a view per question (trends, funnels, retention, paths, attribution, campaigns,
// KPIs), each its own chunk loaded when first opened, on the stage-6 query API (POST /api/analytics/*).
import { useEffect } from 'preact/hooks';
import { Lazy, Link, navigate, type PageModule } from '../router.tsx';
import { PageHeader } from '../ui.tsx';

const VIEWS: { tab: string; title: string; load: () => Promise<PageModule> }[] = [
  { tab: 'trends', title: 'Trends', load: () => import('./analytics-trends.tsx') },
  { tab: 'funnels', title: 'Funnels', load: () => import('./analytics-funnels.tsx') },
  { tab: 'retention', title: 'Retention', load: () => import('./analytics-retention.tsx') },
  { tab: 'paths', title: 'Paths', load: () => import('./analytics-paths.tsx') },
  { tab: 'attribution', title: 'Attribution', load: () => import('./analytics-attribution.tsx') },
  { tab: 'campaigns', title: 'Campaigns', load: () => import('./analytics-campaigns.tsx') },
  { tab: 'kpis', title: 'KPIs', load: () => import('./analytics-kpis.tsx') },
];

export default function Analytics(props: { params: Record<string, string> }) {
  const tab = props.params.tab;
  const view = VIEWS.find((v) => v.tab === tab);
  useEffect(() => {
    if (!tab) navigate('/analytics/trends', { replace: true });
  }, [tab]);
  if (!tab) return null;
  return (
    <>
      <PageHeader title={view ? `Analytics: ${view.title}` : 'Analytics'} />
      <nav aria-label="Analytics views">
        <ul
          style={{
            display: 'flex',
            flexWrap: 'wrap',
            gap: '4px 6px',
            listStyle: 'none',
            padding: '0 0 8px',
            margin: '0 0 12px',
            borderBottom: '1px solid var(--line)',
          }}
        >
          {VIEWS.map((v) => (
            <li key={v.tab}>
              <Link
                href={`/analytics/${v.tab}`}
                aria-current={v.tab === tab ? 'page' : undefined}
                style={{
                  display: 'inline-block',
                  padding: '4px 10px',
                  borderRadius: '6px',
                  textDecoration: 'none',
                  ...(v.tab === tab
                    ? { background: 'var(--accent)', color: '#fff', fontWeight: 600 }
                    : { color: 'var(--fg)', border: '1px solid var(--line)' }),
                }}
              >
                {v.title}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      {view ? <Lazy load={view.load} params={{}} key={view.tab} /> : <p>No such view.</p>}
    </>
  );
}
