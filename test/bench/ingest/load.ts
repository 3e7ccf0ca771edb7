import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

// A small HTTP load generator on node:http with keep-alive connections: closed loop (N clients,
// each sends its next request when the previous one is answered) and open loop (a fixed arrival
// rate, latency measured from the scheduled send time so a stalled server cannot hide its queue).

/** Where requests go and how they authenticate. */
export interface Target {
  host: string;
  port: number;
  headers: Record<string, string>;
}

/** One request to send: its path, body and how many events it carries. */
export interface Job {
  path: string;
  body: string;
  events: number;
}

/** What one load run measured. */
export interface RunResult {
  requests: number;
  /** Requests answered 200. */
  ok: number;
  /** Events carried by requests answered 200 (acknowledged as committed). */
  ackedEvents: number;
  /** Non-200 answers and network errors, by status and message. */
  errors: Map<string, number>;
  /** Latency of every request (ms), answered or not. */
  latencies: Float64Array;
  /** Seconds from the first send to the last answer. */
  seconds: number;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** One request on `agent`; resolves with its status and body (rejects on a network error). */
export function post(agent: Agent, target: Target, job: Job): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: target.host,
        port: target.port,
        method: 'POST',
        path: job.path,
        headers: { ...target.headers, 'Content-Length': Buffer.byteLength(job.body) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(job.body);
  });
}

function recorder() {
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  let ok = 0;
  let ackedEvents = 0;
  return {
    async send(agent: Agent, target: Target, job: Job, startedAt: number): Promise<void> {
      try {
        const res = await post(agent, target, job);
        if (res.status === 200) {
          ok++;
          ackedEvents += job.events;
        } else {
          const key = `HTTP ${res.status} ${res.body.slice(0, 200)}`;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      } catch (err) {
        const key = `network: ${(err as Error).message}`;
        errors.set(key, (errors.get(key) ?? 0) + 1);
      }
      latencies.push(performance.now() - startedAt);
    },
    result(seconds: number): RunResult {
      return { requests: latencies.length, ok, ackedEvents, errors, latencies: Float64Array.from(latencies), seconds };
    },
  };
}

/**
 * Closed loop: `concurrency` clients on as many keep-alive connections, for `durationMs`.
 *
 * @example
 * const r = await closedLoop(target, { concurrency: 16, durationMs: 10_000, next: () => job });
 */
export async function closedLoop(
  target: Target,
  options: { concurrency: number; durationMs: number; next: () => Job },
): Promise<RunResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const rec = recorder();
  const start = performance.now();
  const end = start + options.durationMs;
  const client = async () => {
    while (performance.now() < end) {
      const job = options.next();
      await rec.send(agent, target, job, performance.now());
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return rec.result(seconds);
}

/**
 * Open loop: `rate` requests per second for `durationMs`, whatever the answers do (up to
 * `maxConnections` in flight; beyond that requests wait for a connection, and that wait counts).
 *
 * @example
 * const r = await openLoop(target, { rate: 1000, durationMs: 10_000, maxConnections: 256, next: () => job });
 */
export async function openLoop(
  target: Target,
  options: { rate: number; durationMs: number; maxConnections: number; next: () => Job },
): Promise<RunResult & { maxLagMs: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxConnections });
  const rec = recorder();
  const total = Math.round((options.rate * options.durationMs) / 1000);
  const interval = 1000 / options.rate;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  let sent = 0;
  let maxLagMs = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - start) / interval) + 1);
      for (; sent < due; sent++) {
        const scheduled = start + sent * interval;
        maxLagMs = Math.max(maxLagMs, now - scheduled);
        pending.push(rec.send(agent, target, options.next(), scheduled));
      }
      if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
      else resolve();
    };
    tick();
  });
  await Promise.all(pending);
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { ...rec.result(seconds), maxLagMs };
}

/**
 * The q-th percentile (0-100, nearest rank) of a sample, in its unit.
 *
 * @example
 * percentile(r.latencies, 99);
 */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}
