// What the destinations list and a destination's page share: the API's shapes, the circuit breaker's state
// and the delivery counts by outcome.
import { Badge, fmt } from '../ui.tsx';

/** A destination as GET /api/destinations shows it (secret settings masked by the server). */
export interface Destination {
  id: string;
  name: string;
  plugin: string;
  settings: Record<string, unknown>;
  filter: unknown;
  purposes: string[];
  requiredPurposes: string[];
  channel: string | null;
  topic: string;
  enabled: boolean;
  concurrency: number;
  rateLimit: number | null;
  retryWindowSeconds: number;
  circuit: { failures: number; openUntil: string | null };
  createdAt: string;
  updatedAt: string;
}

/** The ledger's statuses, in the order a delivery moves through them. */
export const STATUSES = ['pending', 'waiting', 'retrying', 'delivered', 'dead', 'skipped'] as const;
export type DeliveryStatus = (typeof STATUSES)[number];

/** GET /api/destinations/{id}: the destination with its ledger rows per status. */
export type DestinationDetail = Destination & { deliveries: Record<DeliveryStatus, number> };

/** What each status means, for titles and the legend. */
export const STATUS_HELP: Record<DeliveryStatus, string> = {
  pending: 'queued to be sent',
  waiting: 'held behind an earlier event of the same person (ordered destination)',
  retrying: 'an attempt failed; the next one is scheduled',
  delivered: 'the destination accepted it',
  dead: 'refused for good or out of the retry window: replayable',
  skipped: 'not sent: filter, consent or unsubscribe',
};

/**
 * The circuit breaker's state: closed (sending), open (paused after repeated failures, until a time),
 * half-open (the pause is over; the next batch is a probe that closes or reopens it).
 *
 * @example
 * circuitState({ failures: 0, openUntil: null }); // { state: 'closed', … }
 */
export function circuitState(c: Destination['circuit'], now = Date.now()) {
  if (!c.openUntil) return { state: 'closed' as const, tone: c.failures ? ('warn' as const) : ('ok' as const) };
  if (new Date(c.openUntil).getTime() > now) return { state: 'open' as const, tone: 'bad' as const };
  return { state: 'half-open' as const, tone: 'warn' as const };
}

/** The circuit as a badge with its failure count and, when open, until when. */
export function Circuit(props: { circuit: Destination['circuit'] }) {
  const { state, tone } = circuitState(props.circuit);
  const failures = props.circuit.failures;
  const until = props.circuit.openUntil ? new Date(props.circuit.openUntil).toLocaleTimeString() : '';
  return (
    <span>
      <Badge value={state} tone={tone} />{' '}
      <small class="muted">
        {state === 'open' ? `until ${until}` : state === 'half-open' ? 'probing' : ''}
        {failures ? ` ${failures} failed batch${failures === 1 ? '' : 'es'} in a row` : ''}
      </small>
    </span>
  );
}

/** Enabled or paused (disabled: its queue waits until it is enabled again). */
export function Enabled(props: { enabled: boolean }) {
  return props.enabled ? <Badge value="enabled" tone="ok" /> : <Badge value="paused" tone="warn" />;
}

/** A count cell: the number, muted when zero. */
export function Count(props: { n: number | undefined }) {
  return <td class={`num${props.n ? '' : ' muted'}`}>{props.n === undefined ? '…' : fmt(props.n, 0)}</td>;
}
