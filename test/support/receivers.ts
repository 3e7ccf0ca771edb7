// Receivers for the delivery tests: a real HTTP webhook endpoint and a real SMTP server (smtp-server,
// parsed with mailparser), each recording exactly what arrived, plus helpers to read what they got.
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** One request a webhook receiver answered with 2xx. */
export interface WebhookHit {
  headers: IncomingHttpHeaders;
  /** The body exactly as it arrived (what the signature covers). */
  raw: string;
  // biome-ignore lint/suspicious/noExplicitAny: bodies are checked by the tests
  body: any;
  /** The Idempotency-Key header, or '' when absent. */
  key: string;
}

/**
 * A real HTTP receiver. `seen` records every Idempotency-Key at the moment its request arrives
 * (before answering, so a sender killed while waiting for the answer still counts as "seen");
 * `hits` records requests once answered with 2xx.
 *
 * @example
 * const hook = await webhookReceiver({ delayMs: () => 100 + Math.random() * 200 });
 */
export async function webhookReceiver(options: { delayMs?: () => number } = {}) {
  const hits: WebhookHit[] = [];
  const seen: string[] = [];
  let status = 200;
  const open = new Map<string, number>();
  let openNow = 0;
  let peakOpen = 0;
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    res.on('error', () => {});
    req.on('end', () => {
      const key = String(req.headers['idempotency-key'] ?? '');
      seen.push(key);
      open.set(key, (open.get(key) ?? 0) + 1);
      peakOpen = Math.max(peakOpen, ++openNow);
      const answer = () => {
        openNow--;
        if (open.get(key) === 1) open.delete(key);
        else open.set(key, open.get(key)! - 1);
        const raw = Buffer.concat(chunks).toString('utf8');
        if (status >= 200 && status < 300) {
          let body: unknown;
          try {
            body = JSON.parse(raw);
          } catch {
            body = undefined;
          }
          hits.push({ headers: req.headers, raw, body, key });
        }
        if (!res.destroyed) res.writeHead(status).end();
      };
      const delay = options.delayMs?.() ?? 0;
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    hits,
    seen,
    /** Idempotency keys of the requests received and not answered yet. */
    openKeys: () => [...open.keys()],
    /** The most requests that were open at once. */
    peakOpen: () => peakOpen,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    answer: (s: number) => {
      status = s;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** One message an SMTP receiver accepted. */
export interface ReceivedMail {
  /** Envelope recipients. */
  to: string[];
  mail: ParsedMail;
}

/**
 * A real SMTP server on loopback (plain SMTP, no STARTTLS, no auth) that accepts every message and
 * keeps it parsed.
 *
 * @example
 * const smtp = await smtpReceiver();
 * // destination settings: { host: '127.0.0.1', port: smtp.port, ... }
 */
export async function smtpReceiver() {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        simpleParser(Buffer.concat(chunks)).then(
          (mail) => {
            mails.push({ to: session.envelope.rcptTo.map((r) => r.address), mail });
            cb(null, 'queued');
          },
          (err: Error) => cb(err),
        );
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    mails,
    port: (server.server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A raw header of a parsed message, unfolded ('' when absent). */
export function headerOf(mail: ParsedMail, name: string): string {
  const line = mail.headerLines.find((h) => h.key === name.toLowerCase())?.line ?? '';
  return line
    .replace(/\r?\n[ \t]+/g, ' ')
    .slice(line.indexOf(':') + 1)
    .trim();
}

/** The https/http URL of a message's `List-Unsubscribe` header (RFC 2369: `<url>`). */
export function unsubscribeUrlOf(mail: ParsedMail): string {
  const value = headerOf(mail, 'list-unsubscribe');
  const url = /<(https?:\/\/[^>]+)>/.exec(value)?.[1];
  if (!url) throw new Error(`no http(s) List-Unsubscribe URL in ${JSON.stringify(value)}`);
  return url.replace(/\s+/g, '');
}

/**
 * A free port below Linux's ephemeral range, for a server whose own URL must be known before it
 * starts (CAIRN_PUBLIC_URL, the base of unsubscribe links).
 *
 * @example
 * const port = await freePort();
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createNetServer()
        .once('error', () => resolve(false))
        .listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}
