// The console's pages: the navigation lists those with a title the caller may open; each is a chunk
// loaded the first time it is opened. Add a page here (and its file under pages/).
import type { PageModule } from './router.tsx';

export interface PageDef {
  path: string;
  /** Shown in the navigation; pages without a title (detail pages) are reached by links. */
  title?: string;
  /** The API permission the page needs to be useful. */
  permission: string;
  load: () => Promise<PageModule>;
}

export const PAGES: PageDef[] = [
  { path: '/events', title: 'Live events', permission: 'events:read', load: () => import('./pages/events.tsx') },
  { path: '/events/:id', permission: 'events:read', load: () => import('./pages/event.tsx') },
  { path: '/people', title: 'People', permission: 'profiles:read', load: () => import('./pages/people.tsx') },
  { path: '/people/:id', permission: 'profiles:read', load: () => import('./pages/people-person.tsx') },
  { path: '/analytics', title: 'Analytics', permission: 'analytics:read', load: () => import('./pages/analytics.tsx') },
  { path: '/analytics/:tab', permission: 'analytics:read', load: () => import('./pages/analytics.tsx') },
  { path: '/audiences', title: 'Audiences', permission: 'audiences:read', load: () => import('./pages/audiences.tsx') },
  { path: '/audiences/new', permission: 'audiences:write', load: () => import('./pages/audience.tsx') },
  { path: '/audiences/:key', permission: 'audiences:read', load: () => import('./pages/audience.tsx') },
  { path: '/tags/new', permission: 'audiences:write', load: () => import('./pages/audience.tsx') },
  { path: '/tags/:key', permission: 'audiences:read', load: () => import('./pages/audience.tsx') },
  { path: '/flows', title: 'Flows', permission: 'flows:read', load: () => import('./pages/flows.tsx') },
  { path: '/flows/:id', permission: 'flows:read', load: () => import('./pages/flow.tsx') },
  {
    path: '/destinations',
    title: 'Destinations',
    permission: 'destinations:read',
    load: () => import('./pages/destinations.tsx'),
  },
  { path: '/destinations/:id', permission: 'destinations:read', load: () => import('./pages/destination.tsx') },
  { path: '/setup', title: 'Setup', permission: 'self:read', load: () => import('./pages/setup.tsx') },
  { path: '/setup/sources', permission: 'sources:read', load: () => import('./pages/setup-sources.tsx') },
  { path: '/setup/people', permission: 'users:read', load: () => import('./pages/setup-people.tsx') },
  { path: '/setup/keys', permission: 'keys:read', load: () => import('./pages/setup-keys.tsx') },
  { path: '/setup/audit', permission: 'audit:read', load: () => import('./pages/setup-audit.tsx') },
];
