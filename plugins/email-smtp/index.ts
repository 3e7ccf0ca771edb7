import { createHash } from 'node:crypto';
import {
  type DeliveryItem,
  definePlugin,
  type ItemOutcome,
  itemScope,
  PermanentError,
  type PluginContext,
  RetryableError,
  render,
  sendEach,
} from '@cairn/plugin-api';
import nodemailer, { type NodemailerError, type SendMailOptions, type Transporter } from 'nodemailer';
import { z } from 'zod';

// One bare address: no display name, list separator or whitespace, so a stored email can never
// become several recipients or an injected header.
const ADDRESS = /^[^\s@<>()[\]",;:\\]+@[^\s@<>()[\]",;:\\]+\.[^\s@<>()[\]",;:\\]+$/;

const settings = z
  .object({
    host: z.string().min(1),
    /** 587 (submission, STARTTLS) by default; 465 with `secure: true`. */
    port: z.number().int().min(1).max(65_535).default(587),
    /** Implicit TLS from the first byte (port 465). Otherwise STARTTLS is used whenever offered. */
    secure: z.boolean().default(false),
    /** Refuse to send unless the server upgrades to TLS (STARTTLS). */
    requireTLS: z.boolean().default(false),
    user: z.string().min(1).optional(),
    pass: z.string().min(1).optional(),
    /** `"Acme News" <news@acme.example>` or a bare address; its domain names the Message-IDs. */
    from: z.string().refine((v) => /@[^\s@>]+\.[^\s@>]+>?\s*$/.test(v), 'must end with an email address'),
    replyTo: z.string().optional(),
    subject: z.string().min(1),
    text: z.string().min(1).optional(),
    html: z.string().min(1).optional(),
    /**
     * Appended, after a blank line, to the text of a flow's message (which is sent as the flow rendered
     * it, instead of `subject`/`text`/`html`), so every marketing email shows its unsubscribe link;
     * a template like `text`. Empty: nothing appended.
     */
    messageFooter: z.string().default('Unsubscribe: {{unsubscribe_url}}'),
    /** Unsubscribe topic passed to `ctx.unsubscribeUrl`: match the destination's topic. */
    topic: z.string().min(1).optional(),
    /** DKIM-sign here when the SMTP service does not (RFC 8058 wants the unsubscribe headers signed). */
    dkimDomain: z.string().min(1).optional(),
    dkimSelector: z.string().min(1).optional(),
    dkimPrivateKey: z.string().min(1).optional(),
    /** Limit for connecting, the greeting and each SMTP reply. */
    timeoutMs: z.number().int().min(1000).max(120_000).default(30_000),
  })
  .refine((s) => s.text || s.html, { message: 'set text, html or both', path: ['text'] })
  .refine((s) => !s.user === !s.pass, { message: 'set user and pass together', path: ['pass'] })
  .refine((s) => !s.dkimDomain === !s.dkimSelector && !s.dkimDomain === !s.dkimPrivateKey, {
    message: 'set dkimDomain, dkimSelector and dkimPrivateKey together',
    path: ['dkimDomain'],
  });

type Settings = z.infer<typeof settings>;

// RFC 8058 §4: the signature must cover both List-Unsubscribe headers; nodemailer's default list
// has only the first.
const DKIM_HEADERS =
  'From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:Content-Transfer-Encoding:' +
  'List-Unsubscribe:List-Unsubscribe-Post:X-Cairn-Idempotency-Key';

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Escapes text for HTML element content and quoted attribute values.
 *
 * @example
 * escapeHtml('<script>"x"</script>'); // '&lt;script&gt;&quot;x&quot;&lt;/script&gt;'
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * A Message-ID that is the same on every attempt and replay of one delivery, so a receiving system
 * that dedupes on Message-ID drops a resend; `domain` is the sender's.
 *
 * @example
 * messageIdFor('m1:dest_1', 'acme.example'); // '<3f0c…@acme.example>'
 */
export function messageIdFor(idempotencyKey: string, domain: string): string {
  return `<${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 40)}.cairn@${domain}>`;
}

/** The footer text as HTML: escaped, line breaks kept, the unsubscribe address as a link. */
function footerHtml(footer: string, unsubscribeUrl: string | undefined): string {
  const escaped = escapeHtml(footer).replace(/\r?\n/g, '<br>\n');
  if (!unsubscribeUrl) return escaped;
  const url = escapeHtml(unsubscribeUrl);
  return escaped.replaceAll(url, `<a href="${url}">${url}</a>`);
}

// Header values must stay on one line whatever a trait holds.
const oneLine = (text: string) => text.replace(/[\r\n\t]+/g, ' ');
const noControls = (text: string) => text.replace(/\p{Cc}/gu, '');

function senderDomain(from: string): string {
  return /@([^\s@>]+)>?\s*$/.exec(from)![1]!;
}

/**
 * The message for one item, or why it cannot be sent. Exported for tests and previews.
 *
 * @example
 * const m = compose(item, ctx); if ('failed' in m) return { status: 'failed', error: m.failed };
 */
export function compose(item: DeliveryItem, ctx: PluginContext<Settings>): SendMailOptions | { failed: string } {
  const s = ctx.settings;
  const profile = item.profile;
  const message = item.message;
  // A notice to an employee (message.to) goes to them, without the person's unsubscribe link and footer.
  const recipient = message?.to;
  const to = recipient ? recipient.email?.trim() : profile?.email?.trim();
  const whose = recipient ? `employee ${recipient.id}` : 'profile';
  if ((!profile && !recipient) || !to) return { failed: `${whose} has no email address` };
  if (!ADDRESS.test(to)) return { failed: `${whose} email is not a single plain address: ${JSON.stringify(to)}` };
  const unsubscribeUrl = profile && !recipient ? noControls(ctx.unsubscribeUrl(profile, 'email', s.topic)) : undefined;
  const scope = itemScope(item, unsubscribeUrl ? { unsubscribe_url: unsubscribeUrl } : {});
  // A flow's message comes rendered: its subject (else the destination's) and its body as the text.
  const subject = oneLine(message?.subject ?? render(s.subject, scope, oneLine)).trim();
  if (!subject) return { failed: 'subject rendered empty' };
  if (message && !message.body.trim()) return { failed: 'message body is empty' };
  const footer = message && unsubscribeUrl && s.messageFooter ? render(s.messageFooter, scope).trim() : '';
  const content = message
    ? {
        text: footer ? `${message.body}\n\n${footer}` : message.body,
        // A tracked message comes with its HTML form (links and open pixel made by Cairn); the footer follows
        // it, its unsubscribe address as a plain (untracked) link.
        ...(message.html
          ? { html: footer ? `${message.html}\n<p>${footerHtml(footer, unsubscribeUrl)}</p>` : message.html }
          : {}),
        // Inline images (a report's charts), shown by the HTML as cid: links: related parts of the message.
        ...(message.attachments?.length
          ? {
              attachments: message.attachments.map((a) => ({
                cid: a.cid,
                filename: a.filename,
                contentType: a.contentType,
                content: a.content,
                encoding: 'base64',
                contentDisposition: 'inline' as const,
              })),
            }
          : {}),
      }
    : {
        ...(s.text ? { text: render(s.text, scope) } : {}),
        ...(s.html ? { html: render(s.html, scope, escapeHtml) } : {}),
      };
  return {
    from: s.from,
    ...(s.replyTo ? { replyTo: s.replyTo } : {}),
    to,
    subject,
    ...content,
    messageId: messageIdFor(item.idempotencyKey, senderDomain(s.from)),
    date: ctx.now(),
    headers: {
      ...(unsubscribeUrl
        ? { 'List-Unsubscribe': `<${unsubscribeUrl}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' }
        : {}),
      'X-Cairn-Idempotency-Key': noControls(item.idempotencyKey),
    },
  };
}

/**
 * The retry decision for a nodemailer error. An SMTP reply decides by its class (RFC 5321: 4xx
 * transient, 5xx permanent, except 503 "bad sequence", which a new connection clears); an error
 * without a reply (refused, reset, timed out, TLS) is retried; settings nodemailer refuses are not.
 *
 * @example
 * smtpOutcome(Object.assign(new Error('mailbox full'), { responseCode: 452 })); // { status: 'retry', … }
 */
export function smtpOutcome(err: unknown): Exclude<ItemOutcome, { status: 'delivered' }> {
  const e = (err ?? {}) as NodemailerError;
  const error = oneLine(String(e.response ?? e.message ?? err)).slice(0, 500);
  if (typeof e.responseCode === 'number') {
    const permanent = e.permanent ?? (e.responseCode >= 500 && e.responseCode < 600 && e.responseCode !== 503);
    const statusCode = e.responseCode;
    return permanent ? { status: 'failed', error, statusCode } : { status: 'retry', error, statusCode };
  }
  if (e.code === 'ENOAUTH' || e.code === 'ECONFIG' || e.code === 'EENVELOPE') return { status: 'failed', error };
  return { status: 'retry', error };
}

function transportFor(s: Settings) {
  return nodemailer.createTransport({
    // One connection per batch, reused for every message of it.
    pool: true,
    maxConnections: 1,
    host: s.host,
    port: s.port,
    secure: s.secure,
    requireTLS: s.requireTLS,
    ...(s.user && s.pass ? { auth: { user: s.user, pass: s.pass } } : {}),
    connectionTimeout: s.timeoutMs,
    greetingTimeout: s.timeoutMs,
    socketTimeout: s.timeoutMs,
    // Messages are built from templates and profile data only: never let them read files or URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
    ...(s.dkimDomain && s.dkimSelector && s.dkimPrivateKey
      ? {
          dkim: {
            domainName: s.dkimDomain,
            keySelector: s.dkimSelector,
            privateKey: s.dkimPrivateKey,
            headerFieldNames: DKIM_HEADERS,
          },
        }
      : {}),
  });
}

// Errors nodemailer raises about one message (its envelope or content), not about the session.
const MESSAGE_ERRORS = new Set(['EENVELOPE', 'EMESSAGE', 'ESTREAM']);

/**
 * Whether an error is a failure of the session rather than of one message (no connection, refused
 * credentials, 421 "closing"): every later message of the batch would meet the same, so they are
 * not tried.
 *
 * @example
 * sessionFailed(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET' })); // true
 */
export function sessionFailed(err: unknown): boolean {
  const e = (err ?? {}) as NodemailerError;
  if (e.responseCode === 421 || e.code === 'EAUTH' || e.code === 'ENOAUTH') return true;
  return typeof e.responseCode !== 'number' && !MESSAGE_ERRORS.has(e.code ?? '');
}

/**
 * Sends one item's message over the batch's transport. A nodemailer error is rethrown as Cairn's, with
 * the SMTP reply's decision (smtpOutcome) and whether the session failed (sessionFailed: no
 * connection, refused credentials, 421), which stops the rest of the batch.
 */
async function mail(transport: Transporter, item: DeliveryItem, ctx: PluginContext<Settings>): Promise<ItemOutcome> {
  const message = compose(item, ctx);
  if ('failed' in message) return { status: 'failed', error: message.failed };
  try {
    const info = await transport.sendMail({ ...message, signal: ctx.signal });
    return { status: 'delivered', detail: oneLine(String(info.response ?? '')).slice(0, 200) };
  } catch (err) {
    const outcome = smtpOutcome(err);
    const systemic = sessionFailed(err);
    if (!systemic)
      ctx.log.warn('message refused', { reply: (err as NodemailerError).responseCode, error: outcome.error });
    const options = { statusCode: outcome.statusCode, systemic, cause: err };
    throw outcome.status === 'failed'
      ? new PermanentError(outcome.error, options)
      : new RetryableError(outcome.error, options);
  }
}

export default definePlugin({
  name: 'email-smtp',
  version: '0.1.0',
  description: 'Templated marketing email over SMTP with RFC 8058 one-click unsubscribe headers.',
  settings,
  purposes: ['marketing'],
  channel: 'email',
  accepts: ['track', 'identify', 'audience.entered', 'tag.added'],
  batchSize: 50,
  secrets: ['pass', 'dkimPrivateKey'],
  // The batch form, for one SMTP connection per batch; the loop itself is the framework's (sendEach).
  async send(items, ctx) {
    const transport = transportFor(ctx.settings);
    try {
      return await sendEach(items, ctx, (item) => mail(transport, item, ctx));
    } finally {
      transport.close();
    }
  },
});
