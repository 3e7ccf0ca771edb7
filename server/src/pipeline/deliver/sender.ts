import { type ConsentPolicy, consentDecision, DEFAULT_CONSENT_POLICY } from '@cairn/core';
import {
  type Channel,
  createPluginFetch,
  type DeliveryItem,
  type DeliveryProfile,
  type ItemOutcome,
  type PluginContext,
  type PluginDefinition,
  sendBatch,
} from '@cairn/plugin-api';
import type { Job, PgBoss } from 'pg-boss';
import type { Config } from '../../config.ts';
import { oneRoundTrip, type Sql } from '../../db/index.ts';
import { type DeliverJob, destinationQueueName } from '../../jobs/queues.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { Pii } from '../../pii/index.ts';
import { deliveryItem } from './messages.ts';
import { recordInOrder } from './order.ts';
import type { PluginRegistry } from './plugins.ts';
import {
  circuitOf,
  claimProbe,
  type Destination,
  kvDelete,
  kvGet,
  kvSet,
  recordBatchHealth,
} from './queries/destinations.ts';
import {
  consentOf,
  type DeliveryRow,
  deliveriesToSend,
  markAttempts,
  type Outcome,
  profilesForDelivery,
  unsubscribed,
} from './queries/sending.ts';
import { contactFor, signUnsubscribe } from './unsubscribe.ts';

const MESSAGE_CHANNELS = new Set(['email', 'sms', 'push', 'chat']);

/** What a sender needs from the server. */
export interface SenderDeps {
  sql: Sql;
  boss: PgBoss;
  log: Logger;
  secret: string;
  /** Opens sealed PII: plugins get clear values (an email plugin needs the address). */
  pii: Pii;
  publicUrl: string;
  delivery: Config['delivery'];
  /** Aborted at shutdown: in-flight plugin calls stop and their items are retried. */
  signal: AbortSignal;
  metrics?: Metrics;
  /** The installed plugins (built at start, see plugins.ts). */
  plugins: PluginRegistry;
  /** Per-destination send rates of this server (the deliver stage's own). */
  limits: RateLimits;
}

/** The channel whose unsubscribes a destination honours, or null (plain data destinations). */
export function unsubscribeChannel(destination: Destination, plugin: PluginDefinition): string | null {
  if (destination.channel) return destination.channel;
  return plugin.channel && MESSAGE_CHANNELS.has(plugin.channel) ? plugin.channel : null;
}

/** Purposes a destination needs granted: its plugin's and its own. */
export function requiredPurposes(destination: Destination, plugin: PluginDefinition): string[] {
  return [...new Set([...plugin.purposes, ...destination.purposes])];
}

/** Destinations' send rates in this process: what `rate_limit` (items per second) allows. */
export interface RateLimits {
  /** Resolves once `n` items of `destination` may go (at once when it has no limit, or when `signal` aborts). */
  take(destination: Destination, n: number, signal: AbortSignal): Promise<void>;
}

/**
 * One token bucket per destination, refilled at its `rate_limit` items per second. Owned by the deliver
 * stage (one per server instance, never module state: two servers in one process keep their own).
 *
 * @example
 * const limits = createRateLimits();
 * await limits.take(destination, batch.length, signal);
 */
export function createRateLimits(): RateLimits {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    async take(destination, n, signal) {
      const rate = destination.rateLimit;
      if (!rate) return;
      const b = buckets.get(destination.id) ?? { tokens: rate, at: Date.now() };
      buckets.set(destination.id, b);
      for (;;) {
        const now = Date.now();
        b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
        b.at = now;
        if (b.tokens >= Math.min(n, rate) || signal.aborted) {
          b.tokens -= n;
          return;
        }
        await new Promise((r) => setTimeout(r, Math.ceil(((Math.min(n, rate) - b.tokens) / rate) * 1000)));
      }
    },
  };
}

/**
 * Builds the `ctx` a plugin receives for one destination.
 *
 * @example
 * const ctx = pluginContext(deps, destination, settings);
 */
export function pluginContext<S>(deps: SenderDeps, destination: Destination, settings: S): PluginContext<S> {
  const prefix = `destination ${destination.id} (${destination.plugin})`;
  return {
    settings,
    destination: { id: destination.id, name: destination.name },
    fetch: createPluginFetch(deps.signal),
    log: {
      info: (m, d) => deps.log.info(`${prefix}: ${m}${d ? ` ${JSON.stringify(d)}` : ''}`),
      warn: (m, d) => deps.log.info(`${prefix}: warning: ${m}${d ? ` ${JSON.stringify(d)}` : ''}`),
      error: (m, d) => deps.log.error(`${prefix}: ${m}${d ? ` ${JSON.stringify(d)}` : ''}`),
    },
    kv: {
      get: (key) => kvGet(deps.sql, destination.id, key),
      set: (key, value, ttl) => kvSet(deps.sql, destination.id, key, value, ttl),
      delete: (key) => kvDelete(deps.sql, destination.id, key),
    },
    unsubscribeUrl: (profile: DeliveryProfile, channel: Channel, topic?: string) => {
      const contact = contactFor(channel, profile) ?? `profile:${profile.id}`;
      const token = signUnsubscribe(deps.secret, {
        p: profile.id,
        c: channel,
        t: topic ?? destination.topic,
        k: contact,
      });
      return `${deps.publicUrl}/u/${token}`;
    },
    now: () => new Date(),
    signal: deps.signal,
  };
}

/** Consent, unsubscribe and retry-window checks: the outcome for rows that must not be sent now. */
async function gate(
  deps: SenderDeps,
  destination: Destination,
  plugin: PluginDefinition,
  rows: DeliveryRow[],
  profiles: Map<string, DeliveryProfile>,
  consent: Map<string, Map<string, boolean>>,
): Promise<Map<string, Outcome>> {
  const gated = new Map<string, Outcome>();
  const purposes = requiredPurposes(destination, plugin);
  const channel = unsubscribeChannel(destination, plugin);
  const contacts = new Map<string, string | null>();
  for (const row of rows) {
    const profile = row.profileId ? profiles.get(row.profileId) : undefined;
    const contact = channel && profile ? contactFor(channel, profile) : null;
    // Subscriptions are keyed by the stored form of the contact point (blind index for email/phone).
    contacts.set(row.id, contact ? deps.pii.contactKey(contact) : null);
  }
  const blocked = channel
    ? await unsubscribed(
        deps.sql,
        [...new Set([...contacts.values()].filter((c): c is string => !!c))],
        channel,
        destination.topic,
      )
    : new Set<string>();
  const now = Date.now();
  for (const row of rows) {
    const policy = (row.consentPolicy as ConsentPolicy | null) ?? DEFAULT_CONSENT_POLICY;
    // An employee's notice goes to the employee: the person's consent and unsubscribes are not asked.
    const decision = row.message?.employee
      ? { allowed: true, missing: [] }
      : consentDecision(purposes, consent.get(row.profileId ?? '') ?? new Map(), policy);
    const contact = contacts.get(row.id);
    if (!decision.allowed) {
      gated.set(row.id, {
        id: row.id,
        status: 'skipped',
        reason: `consent: ${decision.missing.join(', ')} not granted`,
        attempted: false,
      });
    } else if (contact && blocked.has(contact) && !row.message?.employee) {
      gated.set(row.id, {
        id: row.id,
        status: 'skipped',
        reason: `unsubscribed from ${channel}${destination.topic ? `/${destination.topic}` : ''}`,
        attempted: false,
      });
    } else if (row.firstAttemptAt && now - row.firstAttemptAt.getTime() > destination.retryWindowSeconds * 1000) {
      gated.set(row.id, {
        id: row.id,
        status: 'dead',
        reason: `retry window of ${destination.retryWindowSeconds} s exhausted`,
        attempted: false,
      });
    }
  }
  return gated;
}

/** Longest last error a ledger row keeps (the receiver's body excerpt included). */
export const LAST_ERROR_MAX = 1024;

/**
 * Every string in a destination's secret settings (a webhook secret, an SMTP password, a Slack
 * webhook URL, secret headers' values): a receiver that echoes one back must not put it in the ledger.
 */
export function secretValues(plugin: Pick<PluginDefinition, 'secrets'>, settings: unknown): string[] {
  const found: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string' && v.length >= 4) found.push(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  for (const key of plugin.secrets ?? []) walk((settings as Record<string, unknown> | null)?.[key]);
  // Longest first: a secret that contains another is masked whole.
  return found.sort((a, b) => b.length - a.length);
}

/**
 * A failure message as the ledger keeps it: secrets masked, at most {@link LAST_ERROR_MAX} characters.
 *
 * @example
 * scrub('401: bad token s3cret-abc', ['s3cret-abc']); // '401: bad token ********'
 */
export function scrub(message: string, secrets: readonly string[]): string {
  let text = message;
  for (const secret of secrets) text = text.replaceAll(secret, '********');
  return text.slice(0, LAST_ERROR_MAX);
}

function toOutcome(row: DeliveryRow, o: ItemOutcome, secrets: readonly string[]): Outcome {
  if (o.status === 'delivered') return { id: row.id, status: 'delivered', reason: o.detail ?? null, attempted: true };
  const message = scrub(o.error, secrets);
  const error = { statusCode: o.statusCode ?? null, message };
  return { id: row.id, status: o.status === 'failed' ? 'dead' : 'retrying', reason: message, attempted: true, error };
}

/**
 * Handles a fetch of jobs from a destination's queue: re-reads the ledger rows (already delivered or
 * skipped ones are not sent again), checks the circuit, consent, unsubscribes and the retry window at
 * send time, sends in the plugin's batch size (a profile's later events wait behind an earlier one
 * that must be retried), records every outcome (for ordered plugins, promoting the waiting rows that
 * final outcomes free, see order.ts), and fails the jobs that still hold work so pg-boss retries them
 * with backoff.
 *
 * @example
 * await boss.work(queueName, options, (jobs) => deliverJobs(deps, destination, plugin, settings, jobs));
 */
export async function deliverJobs(
  deps: SenderDeps,
  destination: Destination,
  plugin: Readonly<PluginDefinition>,
  settings: unknown,
  jobs: Job<DeliverJob>[],
): Promise<void> {
  const queue = destinationQueueName(destination.id);
  // Round trip 1: the rows and the circuit; 2: the profiles and their consent; then per plugin batch 3: the
  // attempts counted, the send, 4: the outcomes, and for ordered plugins whose lines it frees, see
  // recordInOrder (pg-boss's fetch and completion are 0 and 5).
  const [rows, circuit] = await oneRoundTrip(deps.sql, (c) => [
    deliveriesToSend(
      c,
      jobs.flatMap((j) => j.data.ids),
    ),
    circuitOf(c, destination.id),
  ]);
  const retryJobs = async (why: string, which = jobs) => {
    if (which.length)
      await deps.boss.fail(
        queue,
        which.map((j) => j.id),
        { reason: why },
      );
  };
  if (!rows.length) return;

  // Circuit breaker: while open nothing is sent; when the pause is over, one batch probes.
  let probe = false;
  if (circuit.openUntil) {
    if (circuit.openUntil.getTime() > Date.now() || !(await claimProbe(deps.sql, destination.id, 60))) {
      return retryJobs('circuit open: destination paused after repeated failures');
    }
    probe = true;
  }

  const profileIds = [...new Set(rows.map((r) => r.profileId).filter((p): p is string => !!p))];
  const [profiles, consent] = profileIds.length
    ? await oneRoundTrip(deps.sql, (c) => [profilesForDelivery(c, profileIds, deps.pii), consentOf(c, profileIds)])
    : [new Map<string, DeliveryProfile>(), new Map<string, Map<string, boolean>>()];
  const outcomes = await gate(deps, destination, plugin, rows, profiles, consent);
  const sendable = rows.filter((r) => !outcomes.has(r.id));
  const ctx = pluginContext(deps, destination, settings);
  // Emails of flows get tracked links and an open pixel, on the public URL their unsubscribe links use.
  const tracking =
    unsubscribeChannel(destination, plugin) === 'email'
      ? { publicUrl: deps.publicUrl, secret: deps.secret }
      : undefined;
  const secrets = secretValues(plugin, settings);
  const size = plugin.batchSize ?? 1;
  const line = new Map(rows.map((r) => [r.id, r.lineProfileId]));
  const record = (o: Outcome[]) => recordInOrder(deps.boss, deps.sql, { destination, plugin }, o, line);
  const heldProfiles = new Set<string>();
  let delivered = 0;
  let retried = 0;
  const retryAfter = new Map<string, number>();
  for (let i = 0; i < sendable.length; i += size) {
    let batch = sendable.slice(i, i + size);
    if (plugin.ordering === 'profile') {
      for (const row of batch.filter((r) => r.lineProfileId && heldProfiles.has(r.lineProfileId))) {
        outcomes.set(row.id, {
          id: row.id,
          status: 'retrying',
          reason: 'waiting behind an earlier event of this profile',
          attempted: false,
        });
      }
      batch = batch.filter((r) => !(r.lineProfileId && heldProfiles.has(r.lineProfileId)));
    }
    if (!batch.length) continue;
    await deps.limits.take(destination, batch.length, deps.signal);
    // Counted before the send: if the outcome write below never happens (a crash), the re-send is attempt 2.
    const attempts = await markAttempts(
      deps.sql,
      batch.map((r) => r.id),
    );
    const items: DeliveryItem[] = batch.map((row) =>
      deliveryItem(
        row,
        deps.pii,
        row.profileId ? (profiles.get(row.profileId) ?? null) : null,
        // A row erased meanwhile is not counted (nothing to update) and goes out as it was read.
        attempts.get(row.id) ?? row.attempts + 1,
        tracking,
      ),
    );
    const timer = deps.metrics?.deliverySendDuration.startTimer({ destination: destination.id });
    const results = await sendBatch(plugin, items, ctx);
    timer?.();
    const sent: Outcome[] = [];
    results.forEach((o, n) => {
      const row = batch[n]!;
      const outcome = toOutcome(row, o, secrets);
      outcomes.set(row.id, outcome);
      sent.push(outcome);
      if (o.status === 'delivered') delivered++;
      if (o.status === 'retry') {
        retried++;
        if (o.retryAfter) retryAfter.set(row.id, o.retryAfter);
        if (row.lineProfileId) heldProfiles.add(row.lineProfileId);
      }
    });
    // Recorded per plugin batch, not at the end: a worker killed later re-sends only the batch in flight.
    await record(sent);
    if (probe) break; // a probe sends one batch; the rest waits for its verdict
  }
  for (const row of sendable) {
    if (!outcomes.has(row.id))
      outcomes.set(row.id, {
        id: row.id,
        status: 'retrying',
        reason: 'waiting for the circuit probe',
        attempted: false,
      });
  }
  await record([...outcomes.values()].filter((o) => !o.attempted));
  for (const o of outcomes.values()) deps.metrics?.deliveries.inc({ destination: destination.id, status: o.status });
  const healthy = delivered > 0 || retried === 0;
  // A healthy batch at a destination that had no failures when it was fetched changes nothing: no
  // statement (a failure recorded meanwhile by another worker is reset by the next healthy batch).
  const wasClean = !circuit.failures && !circuit.openUntil;
  if ((delivered > 0 || retried > 0 || probe) && !(healthy && wasClean)) {
    await recordBatchHealth(deps.sql, destination.id, healthy, {
      threshold: deps.delivery.circuitThreshold,
      pauseSeconds: deps.delivery.circuitPauseSeconds,
      maxPauseSeconds: deps.delivery.circuitMaxPauseSeconds,
    });
  }
  const open = new Set([...outcomes.values()].filter((o) => o.status === 'retrying').map((o) => o.id));
  const again = jobs.filter((j) => j.data.ids.some((id) => open.has(id)));
  await retryJobs('some deliveries will be retried', again);
  await honourRetryAfter(deps, queue, again, retryAfter);
}

/** A receiver's Retry-After pushes the job's next attempt later than the backoff would (never sooner). */
async function honourRetryAfter(
  deps: SenderDeps,
  queue: string,
  jobs: Job<DeliverJob>[],
  retryAfter: ReadonlyMap<string, number>,
): Promise<void> {
  for (const job of jobs) {
    const seconds = Math.max(0, ...job.data.ids.map((id) => retryAfter.get(id) ?? 0));
    if (!seconds) continue;
    const wanted = Date.now() + Math.min(seconds, 24 * 3600) * 1000;
    const current = await deps.boss.getJobById(queue, job.id);
    if (current && new Date(current.startAfter).getTime() < wanted) {
      await deps.boss.update(queue, undefined, { id: job.id, startAfter: new Date(wanted) });
    }
  }
}
