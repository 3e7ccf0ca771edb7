import { type ChildProcess, fork } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';

// The webhook receivers of bench:deliver, in a child process of their own so that their work and the
// load generator's never delay each other's clocks. Each receiver answers 200 at once and records, per
// event, its idempotency key (the `Idempotency-Key` header in single mode, each item's `idempotencyKey`
// in batch mode) and the wall-clock time its request's body was fully read. A signed receiver checks
// every request's `Cairn-Signature`. The parent asks for the records over IPC.

/** What a receiver is told at start. */
export interface ReceiverSpec {
  name: string;
  /** Check `Cairn-Signature` with this secret. */
  secret?: string;
}

/** Arrivals since the last `take`, per receiver, in arrival order. */
export interface Arrivals {
  keys: string[];
  /** Wall-clock ms (performance.timeOrigin + performance.now()), one per key. */
  at: number[];
  requests: number;
  badSignatures: number;
  /** Requests that were not a webhook delivery (erasure notices, bodies that did not parse). */
  other: number;
  /** Most connections open at the same time (the sender's parallelism). */
  connections: number;
}

type Message =
  | { id: number; cmd: 'start'; specs: ReceiverSpec[] }
  | { id: number; cmd: 'count' }
  | { id: number; cmd: 'take' }
  | { id: number; cmd: 'close' };

const now = () => performance.timeOrigin + performance.now();

function verify(secret: string, header: string | undefined, body: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const mac = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(mac, Buffer.from(m[2]!, 'hex'));
}

function empty(): Arrivals {
  return { keys: [], at: [], requests: 0, badSignatures: 0, other: 0, connections: 0 };
}

/** One receiver in the child: an HTTP server and its records. */
function receiver(spec: ReceiverSpec): { server: Server; take(): Arrivals; count(): number } {
  let rec = empty();
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = now();
      rec.requests++;
      const single = req.headers['idempotency-key'];
      // Single mode needs no body at all, except to check the signature.
      const body = spec.secret || !single ? Buffer.concat(chunks).toString('utf8') : '';
      if (spec.secret && !verify(spec.secret, req.headers['cairn-signature'] as string | undefined, body)) {
        rec.badSignatures++;
      }
      if (typeof single === 'string' && !single.startsWith('erasure:')) {
        rec.keys.push(single);
        rec.at.push(at);
      } else {
        try {
          const parsed = JSON.parse(body) as { batch?: { idempotencyKey: string }[] };
          if (!parsed.batch) rec.other++;
          for (const item of parsed.batch ?? []) {
            rec.keys.push(item.idempotencyKey);
            rec.at.push(at);
          }
        } catch {
          rec.other++;
        }
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    });
  });
  // The sender's parallelism: connections open at the same time (an idle keep-alive one is reused).
  let open = 0;
  server.on('connection', (socket) => {
    open++;
    if (open > rec.connections) rec.connections = open;
    socket.once('close', () => open--);
  });
  // Keep connections longer than the sender's client does (undici closes idle ones after 4 s).
  server.keepAliveTimeout = 60_000;
  return {
    server,
    take() {
      const out = rec;
      rec = empty();
      rec.connections = open;
      return out;
    },
    count: () => rec.keys.length,
  };
}

async function child(): Promise<void> {
  const receivers: ReturnType<typeof receiver>[] = [];
  const reply = (id: number, data: unknown) => process.send!({ id, data });
  process.on('message', async (m: Message) => {
    if (m.cmd === 'start') {
      const urls: string[] = [];
      for (const spec of m.specs) {
        const r = receiver(spec);
        await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
        const address = r.server.address();
        if (!address || typeof address === 'string') throw new Error('receiver did not bind a port');
        urls.push(`http://127.0.0.1:${address.port}/hook`);
        receivers.push(r);
      }
      reply(m.id, urls);
    } else if (m.cmd === 'count') {
      reply(
        m.id,
        receivers.map((r) => r.count()),
      );
    } else if (m.cmd === 'take') {
      reply(
        m.id,
        receivers.map((r) => r.take()),
      );
    } else if (m.cmd === 'close') {
      for (const r of receivers) r.server.closeAllConnections();
      await Promise.all(receivers.map((r) => new Promise((resolve) => r.server.close(resolve))));
      reply(m.id, null);
      process.disconnect();
    }
  });
}

/** The receivers as the parent sees them. */
export interface Receivers {
  pid: number;
  /** One URL per spec, in order. */
  urls: string[];
  /** Events recorded since the last take, per receiver (duplicates included). */
  count(): Promise<number[]>;
  /** The records since the last take, per receiver; starts new ones. */
  take(): Promise<Arrivals[]>;
  close(): Promise<void>;
}

/**
 * Forks the receiver process and starts one HTTP receiver per spec on 127.0.0.1.
 *
 * @example
 * const r = await startReceivers([{ name: 'signed', secret: 's3cret-s3cret-s3cret' }]);
 * const [signed] = await r.take();
 */
export async function startReceivers(specs: ReceiverSpec[]): Promise<Receivers> {
  const proc: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let next = 0;
  const waiting = new Map<number, (data: unknown) => void>();
  proc.on('message', (m: { id: number; data: unknown }) => {
    waiting.get(m.id)?.(m.data);
    waiting.delete(m.id);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ask = <T>(msg: Record<string, unknown>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, resolve as (data: unknown) => void);
      proc.send({ ...msg, id });
      exited.then(() => reject(new Error('the receiver process exited')));
    });
  const urls = await ask<string[]>({ cmd: 'start', specs });
  return {
    pid: proc.pid!,
    urls,
    count: () => ask<number[]>({ cmd: 'count' }),
    take: () => ask<Arrivals[]>({ cmd: 'take' }),
    async close() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      await ask({ cmd: 'close' });
      await exited;
    },
  };
}

if (process.argv.includes('--child') && process.send) await child();
