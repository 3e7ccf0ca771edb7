import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { type TrackingEvent, validateEvent } from '@cairn/core';
import type { Context, Hono } from 'hono';
import { html } from 'hono/html';
import type { Sql, Tx } from '../../db/index.ts';
import type { Pii } from '../../pii/index.ts';
import { enrichEvent } from '../ingest/enrich.ts';
import type { EventWriter, WriteResult } from '../ingest/writer.ts';

/** What an unsubscribe link stands for. */
export interface UnsubscribeClaim {
  /** Profile id when the link was made (the contact point is what counts; profiles may merge). */
  p: string;
  /** Channel: email, sms, push, chat, webhook. */
  c: string;
  /** Topic, '' = every topic of the channel. */
  t: string;
  /** Contact point: `email:<address>`, `phone:<number>` or `userId:<id>`. */
  k: string;
}

// Tokens are AES-256-GCM sealed claims: opaque (no address or id readable in a URL, in a mail
// client's link preview, in a proxy's log) and tamper-proof (the tag authenticates them).
const IV_BYTES = 12;
const TAG_BYTES = 16;
// Binds a ciphertext to this use: nothing sealed for another purpose opens as a token.
const AAD = Buffer.from('cairn-unsubscribe-v2');
const TOKEN_MAX = 2000;

// One derivation per token (microseconds): tokens are made once per message sent, opened once per click.
function tokenKey(secret: string): KeyObject {
  const bytes = hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from('cairn-unsubscribe'), AAD, 32);
  return createSecretKey(Buffer.from(bytes));
}

/**
 * An opaque unsubscribe token: the claim sealed with AES-256-GCM under a key derived from the server
 * secret. It reveals nothing (the contact point inside is an email address or a phone number) and
 * cannot be forged or altered.
 *
 * @example
 * const url = `${publicUrl}/u/${signUnsubscribe(secret, { p, c: 'email', t: '', k: 'email:a@b.test' })}`;
 */
export function signUnsubscribe(secret: string, claim: UnsubscribeClaim): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', tokenKey(secret), iv);
  cipher.setAAD(AAD);
  const plain = Buffer.from(JSON.stringify({ p: claim.p, c: claim.c, t: claim.t, k: claim.k }), 'utf8');
  const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return sealed.toString('base64url');
}

function openToken(secret: string, token: string): unknown {
  const data = Buffer.from(token, 'base64url');
  if (data.length <= IV_BYTES + TAG_BYTES) return null;
  const decipher = createDecipheriv('aes-256-gcm', tokenKey(secret), data.subarray(0, IV_BYTES));
  decipher.setAAD(AAD);
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
  try {
    const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    return JSON.parse(plain.toString('utf8'));
  } catch {
    return null;
  }
}

// Tokens of 0.1.0 (`<base64url JSON claim>.<HMAC-SHA256>`), which carried the address in clear, are
// no longer made, but links already sent in messages keep working: an unsubscribe link must.
function openLegacyToken(secret: string, payload: string, signature: string): unknown {
  const expected = createHmac('sha256', secret).update(`unsubscribe:${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

/**
 * The claim of a token, or null when it was not made with this server's secret or is malformed.
 * Accepts the opaque tokens {@link signUnsubscribe} makes and the signed ones of Cairn 0.1.0.
 *
 * @example
 * const claim = verifyUnsubscribe(secret, token);
 */
export function verifyUnsubscribe(secret: string, token: string): UnsubscribeClaim | null {
  if (token.length > TOKEN_MAX || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$/.test(token)) return null;
  const [payload, signature] = token.split('.');
  const claim = (signature ? openLegacyToken(secret, payload!, signature) : openToken(secret, payload!)) as Record<
    string,
    unknown
  > | null;
  if (!claim || typeof claim !== 'object') return null;
  const { p, c, t, k } = claim;
  if (typeof p !== 'string' || typeof c !== 'string' || typeof k !== 'string') return null;
  return { p, c, t: typeof t === 'string' ? t : '', k };
}

/** The contact point a channel sends to, or null when the profile has none. */
export function contactFor(
  channel: string,
  profile: { email: string | null; phone: string | null; userId: string | null; id: string },
): string | null {
  if (channel === 'email') return profile.email ? `email:${profile.email.toLowerCase()}` : null;
  if (channel === 'sms') return profile.phone ? `phone:${profile.phone}` : null;
  return profile.userId ? `userId:${profile.userId}` : `profile:${profile.id}`;
}

/**
 * Records a subscription change for a contact point (idempotent: the latest state wins).
 *
 * @example
 * await setSubscription(sql, { contact: 'email:a@b.test', channel: 'email', topic: '', subscribed: false, ... });
 */
export async function setSubscription(
  sql: Tx,
  s: {
    contact: string;
    channel: string;
    topic: string;
    subscribed: boolean;
    profileId: string | null;
    source: string;
    actor: string | null;
  },
): Promise<void> {
  await sql`
    INSERT INTO subscriptions (contact, channel, topic, subscribed, profile_id, source, actor)
    VALUES (${s.contact}, ${s.channel}, ${s.topic}, ${s.subscribed}, ${s.profileId}, ${s.source}, ${s.actor})
    ON CONFLICT (contact, channel, topic) DO UPDATE
    SET subscribed = excluded.subscribed, profile_id = excluded.profile_id, source = excluded.source,
      actor = excluded.actor, updated_at = now()`;
}

function mask(contact: string): string {
  const value = contact.slice(contact.indexOf(':') + 1);
  const at = value.indexOf('@');
  if (at > 0) return `${value[0]}***${value.slice(at)}`;
  return value.length > 4 ? `${'*'.repeat(value.length - 4)}${value.slice(-4)}` : '****';
}

const page = (title: string, body: ReturnType<typeof html>) => html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${title}</title><style>body{font:16px system-ui;max-width:32rem;margin:4rem auto;padding:0 1rem}</style></head>
<body><h1>${title}</h1>${body}</body></html>`;

/**
 * `GET|POST /u/:token`. GET shows a confirmation page with one button (mail scanners follow GET
 * links; they must not unsubscribe anyone); POST unsubscribes at once — RFC 8058 one-click, which mail
 * clients send as `List-Unsubscribe=One-Click`. The change is kept per contact point, channel and
 * topic, and recorded as an `Unsubscribed` event on the profile.
 *
 * @example
 * unsubscribeRoutes(app, { sql, secret, writer });
 */
export function unsubscribeRoutes(
  app: Hono,
  deps: { sql: Sql; secret: string; writer: EventWriter; maxFutureSkewMs: number; pii: Pii },
) {
  const invalid = (c: Context) =>
    c.html(
      page(
        'Link not valid',
        html`<p>This unsubscribe link is not valid. Please use the link from the latest message.</p>`,
      ),
      400,
    );

  app.get('/u/:token', (c) => {
    const claim = verifyUnsubscribe(deps.secret, c.req.param('token'));
    if (!claim) return invalid(c);
    return c.html(
      page(
        'Unsubscribe',
        html`<p>Stop ${claim.t ? html`<b>${claim.t}</b> ` : ''}${claim.c} messages to ${mask(claim.k)}?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
      ),
    );
  });

  app.post('/u/:token', async (c) => {
    const claim = verifyUnsubscribe(deps.secret, c.req.param('token'));
    if (!claim) return invalid(c);
    await deps.sql.begin(async (tx) => {
      await setSubscription(tx, {
        // The token carries the contact point (sealed); the table keeps its stored form.
        contact: deps.pii.contactKey(claim.k),
        channel: claim.c,
        topic: claim.t,
        subscribed: false,
        profileId: claim.p,
        source: 'link',
        actor: null,
      });
    });
    await recordUnsubscribeEvent(deps, claim);
    return c.html(
      page(
        'Unsubscribed',
        html`<p>${mask(claim.k)} will get no more ${claim.t ? `${claim.t} ` : ''}${claim.c} messages.</p>`,
      ),
    );
  });
}

/** The unsubscribe as an event on the profile, through ingestion like any other (source `cairn`). */
async function recordUnsubscribeEvent(
  deps: { sql: Sql; writer: EventWriter; maxFutureSkewMs: number; pii: Pii },
  claim: UnsubscribeClaim,
): Promise<void> {
  await writeProfileEvent(deps, claim.p, {
    event: 'Unsubscribed',
    properties: { channel: claim.c, topic: claim.t || null },
  });
}

/**
 * Writes a `track` event Cairn itself observed about a profile (an unsubscribe, a click, an open) through
 * ingestion like any other (source `cairn`), so stages 2-4 see it. The person is named by the live
 * profile's strongest identity (the profile may have merged since); `messageId`, when given, makes the
 * write idempotent (a second write is a duplicate). Null when the profile is gone (erased).
 *
 * @example
 * await writeProfileEvent(deps, profileId, { event: 'Link Clicked', properties, messageId: 'cairn-click:42:0' });
 */
export async function writeProfileEvent(
  deps: { sql: Sql; writer: EventWriter; maxFutureSkewMs: number; pii: Pii },
  profileId: string,
  e: { event: string; properties: Record<string, unknown>; messageId?: string; receivedAt?: number },
): Promise<WriteResult | null> {
  const [live] = await deps.sql<{ key: string; type: string; value: string }[]>`
    WITH RECURSIVE chain AS (
      SELECT id, merged_into FROM profiles WHERE id = ${profileId}
      UNION SELECT p.id, p.merged_into FROM profiles p JOIN chain c ON p.id = c.merged_into)
    SELECT i.key, i.type, i.value FROM chain c JOIN identities i ON i.profile_id = c.id
    WHERE c.merged_into IS NULL
    ORDER BY CASE i.type WHEN 'userId' THEN 0 WHEN 'email' THEN 1 WHEN 'phone' THEN 2 WHEN 'anonymousId' THEN 4 ELSE 3 END, i.key
    LIMIT 1`;
  if (!live) return null; // erased meanwhile: nothing to attach the event to
  live.value = String(deps.pii.openValue(live.value));
  const who: Partial<TrackingEvent> =
    live.type === 'userId'
      ? { userId: live.value }
      : live.type === 'anonymousId'
        ? { anonymousId: live.value }
        : { anonymousId: `cairn:${live.key}` };
  const raw = {
    type: 'track',
    event: e.event,
    ...who,
    ...(e.messageId ? { messageId: e.messageId } : {}),
    properties: e.properties,
    context:
      live.type === 'email'
        ? { traits: { email: live.value } }
        : live.type === 'phone'
          ? { traits: { phone: live.value } }
          : {},
  };
  const valid = validateEvent(raw, '');
  if (!valid.ok) return null;
  const r = enrichEvent(
    valid.event,
    {
      sourceId: 'cairn',
      receivedAt: e.receivedAt ?? Date.now(),
      ip: undefined,
      batchSentAt: undefined,
      maxFutureSkewMs: deps.maxFutureSkewMs,
      pii: deps.pii,
    },
    '',
  );
  return r.ok ? deps.writer.write([r.row]) : null;
}
