/** Options accepted by `init()` and, as `data-*` attributes (kebab-case), by the script tag. */
export interface Options {
  /** The source's write key (required). */
  writeKey: string;
  /** Base URL of the Cairn server. Default: the origin the IIFE was loaded from, or the page's origin for the ESM build. */
  host?: string;
  /** Send as soon as this many events are queued (default 20). */
  flushAt?: number;
  /** ...or this many milliseconds after the first queued event (default 1000). */
  flushInterval?: number;
  /** Events kept in the localStorage queue; beyond it the oldest are dropped and counted (default 500). */
  maxQueue?: number;
  /** Consent mode: send nothing and store nothing until `consent({ analytics: true })` (default false). */
  requireConsent?: boolean;
  /** Cookie domain for the anonymousId: '' = this host only (default), 'auto' = top-level domain, or a domain. */
  cookieDomain?: string;
  /** Send a page view when the snippet starts (default true). */
  autoPage?: boolean;
  /** Send a page view on pushState/popstate and on replaceState that changes the path (default true). */
  spa?: boolean;
  /** Put utm_* parameters in `context.campaign` (default true). */
  campaign?: boolean;
  /** Put page, locale, screen, timezone and userAgent in `context` (default true). */
  pageContext?: boolean;
  /** Log every event and every delivery decision to the console (default false). */
  debug?: boolean;
}

export type Props = Record<string, unknown>;

/** A Segment-compatible event as it goes on the wire. */
export interface CairnEvent {
  type: 'track' | 'identify' | 'page' | 'group' | 'alias';
  messageId: string;
  anonymousId: string;
  userId?: string;
  timestamp: string;
  context: Props;
  event?: string;
  name?: string;
  category?: string;
  properties?: Props;
  traits?: Props;
  groupId?: string;
  previousId?: string;
}

/** Returns the event (possibly changed) to keep it, or null/undefined to drop it. */
export type Middleware = (event: CairnEvent) => CairnEvent | null | undefined;

/** Consent per purpose, e.g. `{ analytics: true, marketing: false }`. */
export type Purposes = Record<string, boolean>;

/** Every method is safe to call at any time: before `init`, calls are buffered; errors never reach the page. */
export interface Cairn {
  init(options: Options): Cairn;
  identify(userId?: string | null | Props, traits?: Props): Cairn;
  track(event: string, properties?: Props): Cairn;
  /** `page()`, `page(name)`, `page(category, name)`, each optionally followed by properties. */
  page(category?: string | Props, name?: string | Props, properties?: Props): Cairn;
  group(groupId: string, traits?: Props): Cairn;
  alias(userId: string, previousId?: string): Cairn;
  reset(): Cairn;
  user(): { anonymousId?: string; userId?: string | null; traits: Props };
  ready(callback: () => void): Cairn;
  consent(purposes: Purposes): Cairn;
  use(middleware: Middleware): Cairn;
  debug(on?: boolean): Cairn;
}
