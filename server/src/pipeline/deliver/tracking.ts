import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject, randomBytes } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, Hono } from 'hono';
import { isbot } from 'isbot';
import type { Sql } from '../../db/index.ts';
import type { Logger } from '../../log.ts';
import type { Pii } from '../../pii/index.ts';
import type { EventWriter } from '../ingest/writer.ts';
import { writeProfileEvent } from './unsubscribe.ts';

// Tracked links (`/t/c/<token>`) and open pixels (`/t/o/<token>.gif`) in flows' email messages.
//
// A token is the ledger row's id (the delivery: one message to one person), for a link its index in the
// message and its target URL, packed in binary and sealed with AES-256-GCM under a key derived from the
// server secret: tamper-proof (the tag authenticates it), opaque (a personalised URL's query string is not
// readable in a link preview or a proxy's log) and compact (28 bytes over the packed claim). The target
// travels in the token, so the redirect needs no database and works every time, also for a row erased
// since; who clicked is read from the ledger row when the event is recorded.

const IV_BYTES = 12;
const TAG_BYTES = 16;
const AAD = Buffer.from('cairn-track-v1');
const KIND = { click: 1, open: 2 } as const;
/** Longer targets are left as they are (no token of several kilobytes in a message). */
export const TRACKED_URL_MAX = 2048;
const TOKEN_MAX = 4000;

function trackKey(secret: string): KeyObject {
  return createSecretKey(
    Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('cairn-track'), AAD, 32)),
  );
}

function seal(secret: string, plain: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', trackKey(secret), iv);
  cipher.setAAD(AAD);
  return Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]).toString('base64url');
}

function unseal(secret: string, token: string): Buffer | null {
  if (token.length > TOKEN_MAX || !/^[A-Za-z0-9_-]+$/.test(token)) return null;
  const data = Buffer.from(token, 'base64url');
  if (data.length <= IV_BYTES + TAG_BYTES) return null;
  const decipher = createDecipheriv('aes-256-gcm', trackKey(secret), data.subarray(0, IV_BYTES));
  decipher.setAAD(AAD);
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return null;
  }
}

/** Whether `url` is an absolute http(s) URL: the only targets a tracked link may have. */
export function isHttpUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !!u.hostname;
  } catch {
    return false;
  }
}

/** What a click token stands for. */
export interface ClickClaim {
  /** The ledger row (deliveries.id). */
  deliveryId: string;
  /** The link's place among the message's tracked links, from 0. */
  linkIndex: number;
  url: string;
}

/**
 * A click token: the delivery, the link's index and its target, sealed. Throws for a target that is not
 * an absolute http(s) URL or longer than {@link TRACKED_URL_MAX}: nothing else is ever redirected to.
 *
 * @example
 * const url = `${publicUrl}/t/c/${signClick(secret, { deliveryId: '42', linkIndex: 0, url: 'https://shop.test/' })}`;
 */
export function signClick(secret: string, claim: ClickClaim): string {
  if (!isHttpUrl(claim.url) || claim.url.length > TRACKED_URL_MAX) throw new TypeError('not an http(s) URL');
  const head = Buffer.alloc(11);
  head.writeUInt8(KIND.click, 0);
  head.writeBigUInt64BE(BigInt(claim.deliveryId), 1);
  head.writeUInt16BE(claim.linkIndex, 9);
  return seal(secret, Buffer.concat([head, Buffer.from(claim.url, 'utf8')]));
}

/**
 * The claim of a click token, or null when it was not made with this secret, was altered, or names a
 * target that is not http(s).
 *
 * @example
 * const claim = verifyClick(secret, token); if (!claim) return c.notFound();
 */
export function verifyClick(secret: string, token: string): ClickClaim | null {
  const plain = unseal(secret, token);
  if (!plain || plain.length <= 11 || plain.readUInt8(0) !== KIND.click) return null;
  const url = plain.subarray(11).toString('utf8');
  if (!isHttpUrl(url)) return null;
  return { deliveryId: plain.readBigUInt64BE(1).toString(), linkIndex: plain.readUInt16BE(9), url };
}

/**
 * An open-pixel token for a delivery, sealed.
 *
 * @example
 * const pixel = `${publicUrl}/t/o/${signOpen(secret, '42')}.gif`;
 */
export function signOpen(secret: string, deliveryId: string): string {
  const plain = Buffer.alloc(9);
  plain.writeUInt8(KIND.open, 0);
  plain.writeBigUInt64BE(BigInt(deliveryId), 1);
  return seal(secret, plain);
}

/**
 * The delivery id of an open-pixel token, or null.
 *
 * @example
 * verifyOpen(secret, signOpen(secret, '42')); // '42'
 */
export function verifyOpen(secret: string, token: string): string | null {
  const plain = unseal(secret, token);
  if (plain?.length !== 9 || plain.readUInt8(0) !== KIND.open) return null;
  return plain.readBigUInt64BE(1).toString();
}

// URLs in a text body: http(s) only (a `javascript:`, `data:` or `mailto:` text is never a link here).
// Written by hand (a linkifier's fuzzy matching of bare domains and emails is not wanted): the trailing
// punctuation of a sentence is not part of the link, nor a closing bracket the link did not open.
const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function trimUrl(url: string): string {
  let u = url;
  for (;;) {
    const last = u.at(-1)!;
    if ('.,;:!?'.includes(last)) u = u.slice(0, -1);
    else if (last === ')' && u.split('(').length < u.split(')').length) u = u.slice(0, -1);
    else if (last === ']' && u.split('[').length < u.split(']').length) u = u.slice(0, -1);
    else return u;
  }
}

type Part = { text: string } | { url: string; href: string };

/** The text cut into plain runs and links, each link's href as `rewrite` makes it (null: the URL itself). */
function parts(text: string, rewrite: (url: string) => string | null): Part[] {
  const out: Part[] = [];
  let at = 0;
  for (const m of text.matchAll(URL_IN_TEXT)) {
    const url = trimUrl(m[0]);
    if (m.index > at) out.push({ text: text.slice(at, m.index) });
    out.push({ url, href: rewrite(url) ?? url });
    at = m.index + url.length;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]!);

/** Plain text as HTML: escaped, blank lines as paragraphs, line breaks kept. */
function textHtml(text: string): string {
  return escapeHtml(text).replace(/(?:\r?\n){1,}/g, (breaks) =>
    breaks.replaceAll('\r', '').length > 1 ? '</p>\n<p>' : '<br>\n',
  );
}

/**
 * A flow's text message with tracking: every http(s) link of `body` rewritten to `/t/c/<token>` (in order,
 * index 0, 1, …; never a link to this server's own `/u/` unsubscribe or `/t/` pages, nor one too long to
 * track), and its HTML form — the text escaped, the same links as anchors showing the original address,
 * then the open pixel. The text part keeps the tracked links so a text-only reader's clicks count too.
 *
 * @example
 * const { text, html, links } = trackMessage('Shop: https://shop.test/', { publicUrl, secret, deliveryId: '42' });
 */
export function trackMessage(
  body: string,
  o: { publicUrl: string; secret: string; deliveryId: string },
): { text: string; html: string; links: string[] } {
  const own = [`${o.publicUrl}/u/`, `${o.publicUrl}/t/`];
  const links: string[] = [];
  const list = parts(body, (url) => {
    if (own.some((p) => url.startsWith(p)) || url.length > TRACKED_URL_MAX || !isHttpUrl(url)) return null;
    if (links.length > 0xffff) return null; // the index is 16 bits; no real message comes near
    const token = signClick(o.secret, { deliveryId: o.deliveryId, linkIndex: links.length, url });
    links.push(url);
    return `${o.publicUrl}/t/c/${token}`;
  });
  const text = list.map((p) => ('text' in p ? p.text : p.href)).join('');
  const inner = list
    .map((p) => ('text' in p ? textHtml(p.text) : `<a href="${escapeHtml(p.href)}">${escapeHtml(p.url)}</a>`))
    .join('');
  const pixel = `${o.publicUrl}/t/o/${signOpen(o.secret, o.deliveryId)}.gif`;
  const html =
    `<p>${inner}</p>\n` +
    `<img src="${escapeHtml(pixel)}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0">`;
  return { text, html, links };
}

/** Opens and clicks this close to the send are a machine's (a mail scanner, a prefetching client), not a reader's. */
export const MACHINE_OPEN_MS = 2000;

// Mail security gateways that fetch every image and link of incoming mail to scan it (beyond isbot's list).
const SCANNERS = /barracuda|mimecast|proofpoint|messagelabs|trend ?micro|zscaler|fireeye|forcepoint|ironport|avanan/i;
// Webmail image proxies fetch when the reader opens the message (then cache): a human open, though isbot
// calls them bots.
const OPEN_PROXIES = /GoogleImageProxy|YahooMailProxy/;

/** Whether an IPv4 address (also as `::ffff:a.b.c.d`) lies in Apple's 17.0.0.0/8, where MPP fetches from. */
function appleAddress(ip: string | undefined): boolean {
  return !!ip && /^(::ffff:)?17\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(ip.trim());
}

/** A machine's by its user agent or its timing (the rules opens and clicks share). */
function machineFetch(
  ua: string,
  o: { sentAt: Date | null; at: Date },
  humanProxies: RegExp | null,
): { machine: boolean; reason?: string } {
  if (!ua) return { machine: true, reason: 'no-user-agent' };
  if (SCANNERS.test(ua)) return { machine: true, reason: 'scanner' };
  if (!humanProxies?.test(ua) && isbot(ua)) return { machine: true, reason: 'bot' };
  if (!o.sentAt) return { machine: true, reason: 'before-send' };
  if (o.at.getTime() - o.sentAt.getTime() < MACHINE_OPEN_MS) return { machine: true, reason: 'at-send' };
  return { machine: false };
}

/**
 * Whether an open was a machine's, and why: Apple Mail Privacy Protection (its proxy sends the bare
 * user agent `Mozilla/5.0` — ua-parser/uap-core#509 — from Apple's 17.0.0.0/8; it downloads every image
 * when the message arrives, see SocketLabs' "Identifying Apple MPP opens"), a known bot, crawler or
 * mail scanner by user agent (isbot, plus security gateways), no user agent at all, or a fetch within
 * {@link MACHINE_OPEN_MS} of the send (or before it was recorded).
 *
 * @example
 * classifyOpen({ userAgent: 'Mozilla/5.0', ip: '17.58.1.2', sentAt, at }); // { machine: true, reason: 'apple-mpp' }
 */
export function classifyOpen(o: {
  userAgent: string | undefined;
  ip: string | undefined;
  sentAt: Date | null;
  at: Date;
}): { machine: boolean; reason?: string } {
  const ua = (o.userAgent ?? '').trim();
  if (ua === 'Mozilla/5.0' || appleAddress(o.ip)) return { machine: true, reason: 'apple-mpp' };
  return machineFetch(ua, o, OPEN_PROXIES);
}

/**
 * Whether a click was a machine's: a link scanner of a mail gateway (they follow every link of a message
 * as it arrives), a bot by user agent, no user agent, or within {@link MACHINE_OPEN_MS} of the send. Apple's
 * proxy fetches images only, so the address rules of opens do not apply.
 *
 * @example
 * classifyClick({ userAgent: 'Mimecast URL protect', sentAt, at }); // { machine: true, reason: 'scanner' }
 */
export function classifyClick(o: { userAgent: string | undefined; sentAt: Date | null; at: Date }): {
  machine: boolean;
  reason?: string;
} {
  return machineFetch((o.userAgent ?? '').trim(), o, null);
}

/** What the tracking routes need of the server. */
export interface TrackingDeps {
  sql: Sql;
  secret: string;
  writer: EventWriter;
  maxFutureSkewMs: number;
  pii: Pii;
  log: Logger;
  /** Read the client address from X-Forwarded-For (CAIRN_TRUST_PROXY). */
  trustProxy: boolean;
  clock: () => Date;
}

interface Sent {
  profile_id: string | null;
  idempotency_key: string;
  destination_id: string;
  message: { sealed?: string; flow?: { id: string; version?: number; node: string }; employee?: string } | null;
  sent_at: Date | null;
  db_now: Date;
}

/** The ledger row of a delivery, with the database's now (opens are timed against the row's own clock). */
async function sentMessage(sql: Sql, deliveryId: string): Promise<Sent | undefined> {
  const [row] = await sql<Sent[]>`
    SELECT profile_id, idempotency_key, destination_id, message,
      COALESCE(delivered_at, last_attempt_at) AS sent_at, now() AS db_now
    FROM deliveries
    WHERE id = ${deliveryId}
      AND message IS NOT NULL`;
  return row;
}

/** The properties every tracking event carries: the flow, its step, the message, and its campaign if any. */
function messageProperties(deps: TrackingDeps, deliveryId: string, row: Sent): Record<string, unknown> {
  const flow = row.message?.flow;
  let campaign: unknown;
  try {
    if (row.message?.sealed) campaign = JSON.parse(deps.pii.openBytes(row.message.sealed).toString('utf8')).campaign;
  } catch {
    campaign = undefined;
  }
  return {
    flowId: flow?.id ?? null,
    ...(flow?.version === undefined ? {} : { flowVersion: flow.version }),
    nodeId: flow?.node ?? null,
    messageId: row.idempotency_key,
    deliveryId,
    destinationId: row.destination_id,
    ...(campaign === undefined || campaign === null ? {} : { campaign }),
  };
}

function clientIp(c: Context, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // not served by @hono/node-server (app.request in tests)
  }
}

// 1×1 transparent GIF (43 bytes).
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');

/**
 * `GET /t/c/:token` answers 302 to the link's target and records `Link Clicked` on the person (once per
 * delivery and link: the event's messageId is derived from both, so ingestion drops a repeat; a link
 * scanner's click is recorded apart, `machine: true`, see {@link classifyClick}, so it never hides the
 * reader's); a token that does not open is 404, never a redirect. `GET /t/o/:token.gif` answers a 1×1 GIF that no cache keeps and
 * records `Email Opened` once per delivery, and once more as a machine's open (`machine: true`, see
 * {@link classifyOpen}), so a scanner's fetch never hides the reader's. HEAD requests (link checkers)
 * record nothing. A failure to record is logged; the answer is the same.
 *
 * @example
 * trackingRoutes(app, { sql, secret, writer, maxFutureSkewMs, pii, log, trustProxy: false, clock });
 */
export function trackingRoutes(app: Hono, deps: TrackingDeps): void {
  const record = async (what: string, work: () => Promise<unknown>) => {
    try {
      await work();
    } catch (err) {
      deps.log.error(`tracking: recording ${what}`, err);
    }
  };

  app.get('/t/c/:token', async (c) => {
    const claim = verifyClick(deps.secret, c.req.param('token'));
    if (!claim) return c.text('Not found', 404);
    if (c.req.method === 'GET')
      await record('a click', async () => {
        const row = await sentMessage(deps.sql, claim.deliveryId);
        if (!row?.profile_id || row.message?.employee) return;
        const verdict = classifyClick({ userAgent: c.req.header('user-agent'), sentAt: row.sent_at, at: row.db_now });
        await writeProfileEvent(deps, row.profile_id, {
          event: 'Link Clicked',
          messageId: `cairn-click:${claim.deliveryId}:${claim.linkIndex}${verdict.machine ? ':machine' : ''}`,
          properties: {
            url: claim.url,
            linkIndex: claim.linkIndex,
            machine: verdict.machine,
            ...(verdict.reason ? { machineReason: verdict.reason } : {}),
            ...messageProperties(deps, claim.deliveryId, row),
          },
          receivedAt: deps.clock().getTime(),
        });
      });
    c.header('Cache-Control', 'no-store');
    // The tracked URL (with its token) stays here, not in the target's logs.
    c.header('Referrer-Policy', 'no-referrer');
    return c.redirect(new URL(claim.url).href, 302);
  });

  app.get('/t/o/:file', async (c) => {
    const file = c.req.param('file');
    const deliveryId = file.endsWith('.gif') ? verifyOpen(deps.secret, file.slice(0, -4)) : null;
    if (!deliveryId) return c.text('Not found', 404);
    if (c.req.method === 'GET')
      await record('an open', async () => {
        const row = await sentMessage(deps.sql, deliveryId);
        if (!row?.profile_id || row.message?.employee) return;
        const verdict = classifyOpen({
          userAgent: c.req.header('user-agent'),
          ip: clientIp(c, deps.trustProxy),
          sentAt: row.sent_at,
          at: row.db_now,
        });
        await writeProfileEvent(deps, row.profile_id, {
          event: 'Email Opened',
          messageId: `cairn-open:${deliveryId}${verdict.machine ? ':machine' : ''}`,
          properties: {
            machine: verdict.machine,
            ...(verdict.reason ? { machineReason: verdict.reason } : {}),
            ...messageProperties(deps, deliveryId, row),
          },
          receivedAt: deps.clock().getTime(),
        });
      });
    return c.body(new Uint8Array(PIXEL), 200, {
      'Content-Type': 'image/gif',
      'Content-Length': String(PIXEL.length),
      'Cache-Control': 'no-store, no-cache, must-revalidate, private, max-age=0',
      Pragma: 'no-cache',
      Expires: '0',
    });
  });
}
