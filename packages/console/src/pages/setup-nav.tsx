// Setup's sections: each listed only for callers whose role holds its permission (the API would refuse it).
import type { ComponentChildren } from 'preact';
import { Link, useLocation } from '../router.tsx';
import { PageHeader, useMe } from '../ui.tsx';

/** Setup's sections, with the permission each needs. */
export const SETUP_SECTIONS = [
  { path: '/setup', title: 'Your account', permission: 'self:read' },
  { path: '/setup/sources', title: 'Sources', permission: 'sources:read' },
  { path: '/setup/people', title: 'People and roles', permission: 'users:read' },
  { path: '/setup/keys', title: 'API keys', permission: 'keys:read' },
  { path: '/setup/audit', title: 'Audit log', permission: 'audit:read' },
] as const;

/** A Setup page: its title, the sections the caller may open, then the page. */
export function SetupLayout(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  const { path } = useLocation();
  const me = useMe();
  const allowed = SETUP_SECTIONS.filter((s) => me.permissions.includes(s.permission));
  return (
    <>
      <PageHeader title={props.title}>{props.actions}</PageHeader>
      <nav aria-label="Setup sections" class="setup-nav">
        <ul class="filters" style={{ listStyle: 'none', padding: 0 }}>
          {allowed.map((s) => (
            <li key={s.path}>
              <Link
                href={s.path}
                aria-current={path === s.path ? 'page' : undefined}
                style={path === s.path ? { fontWeight: 700 } : undefined}
              >
                {s.title}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      {props.children}
    </>
  );
}
