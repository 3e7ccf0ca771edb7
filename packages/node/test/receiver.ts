import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { CairnMessage } from '../src/index.ts';

/** One request the receiver saw, with its body decoded (gunzipped when `content-encoding: gzip`). */
export interface Received {
  headers: IncomingHttpHeaders;
  /** The uncompressed body as text. */
  text: string;
  body: { batch: CairnMessage[]; sentAt: string };
  /** The status this request was answered with. */
  status: number;
}

/** A scripted answer; once the script is used up the receiver answers 200 {"success":true}. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Wait this long before answering (to make a client time out). */
  delayMs?: number;
}

/**
 * A real HTTP server standing in for Cairn's `/v1/batch`: records requests, answers from a script, and can be
 * closed and re-opened on the same port to play "server down".
 */
export async function startReceiver() {
  const requests: Received[] = [];
  const script: Reply[] = [];
  let server: Server | undefined;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
          const reply = script.shift() ?? { status: 200, body: { success: true } };
          requests.push({ headers: req.headers, text, body: JSON.parse(text), status: reply.status });
          setTimeout(() => {
            if (res.destroyed) return;
            res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
            res.end(JSON.stringify(reply.body ?? { success: reply.status < 300 }));
          }, reply.delayMs ?? 0);
        });
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });

  await listen();
  return {
    requests,
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    /** Queue scripted answers for the next requests. */
    reply(...replies: Reply[]) {
      script.push(...replies);
    },
    /** messageIds the receiver acknowledged with 2xx, in order (with repeats if any). */
    deliveredIds(): string[] {
      return requests.filter((r) => r.status < 300).flatMap((r) => r.body.batch.map((m) => m.messageId));
    },
    /** Stop listening and cut open connections: the client now sees ECONNREFUSED. */
    async close() {
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    /** Listen again on the same port. */
    open: listen,
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;
