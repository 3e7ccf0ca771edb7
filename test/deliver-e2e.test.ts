// Delivery end to end, with real clients on both sides. (1) An event sent with the @cairn/node SDK
// reaches a real webhook receiver signed (HMAC-SHA256 over the raw body), with its idempotency key
// `<messageId>:<destination id>` and the profile. (2) A real SMTP flow: an email-smtp destination
// sends to a local smtp-server; the test parses the message with mailparser, takes its
// `List-Unsubscribe` URL and POSTs `List-Unsubscribe=One-Click` to it exactly as a mail client does;
// the next event for that person is skipped (`unsubscribed…`) and no second message arrives, while a
// GET on another person's link (a link scanner) only shows a page and unsubscribes nobody.
import { createHmac, randomUUID } from 'node:crypto';
import { Cairn as CairnClient, type CairnError } from '@cairn/node';
import type { Cairn } from '@cairn/server';
import {
  createTestDatabase,
  type DbMode,
  freePort,
  POSTGRES_SKIP_REASON,
  sendEvents,
  startReceiver,
  startTestCairn,
  type TestDatabase,
} from '@cairn/server/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, waitFor } from './support/http.ts';
import { headerOf, type ReceivedMail, smtpReceiver, unsubscribeUrlOf } from './support/receivers.ts';

// biome-ignore lint/suspicious/noExplicitAny: ledger rows are checked by the assertions
type Any = any;

describe.each(['postgres', 'embedded'] as const)('delivery end to end on %s', (mode: DbMode) => {
  if (mode === 'postgres' && POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }

  let db: TestDatabase;
  let cairn: Cairn;
  let writeKey: string;
  const run = randomUUID().slice(0, 8);

  /** Every row of a destination's ledger (paged), newest first. */
  const ledger = async (id: string): Promise<Any[]> => {
    const rows: Any[] = [];
    let before = '';
    for (;;) {
      const page = await admin(cairn.url, `/destinations/${id}/deliveries?limit=1000${before}`);
      rows.push(...page.data);
      if (!page.next) return rows;
      before = `&before=${page.next}`;
    }
  };
  /** Waits until every ledger row of a destination is final and there are at least `n` of them. */
  const settled = async (id: string, n: number): Promise<Any[]> =>
    (await waitFor(
      `${n} final ledger rows`,
      async () => {
        const rows = await ledger(id);
        return rows.length >= n && rows.every((r) => !['pending', 'waiting', 'retrying'].includes(r.status))
          ? rows
          : undefined;
      },
      60_000,
    ))!;

  beforeAll(async () => {
    db = await createTestDatabase(`test/deliver-e2e.test.ts:${mode}`, mode);
    // The server's own address must be known before it starts: it is the base of unsubscribe links.
    const port = await freePort();
    cairn = await startTestCairn({
      ...db.env,
      PORT: String(port),
      CAIRN_PUBLIC_URL: `http://127.0.0.1:${port}`,
      CAIRN_DELIVERY_RETRY_DELAY_S: '1',
      CAIRN_DELIVERY_RETRY_MAX_S: '2',
    });
    writeKey = cairn.demoSource!.writeKey;
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('an event from the SDK reaches a webhook receiver, signed, with its idempotency key and the profile', async () => {
    const hook = await startReceiver();
    const secret = `whsec-${randomUUID()}`;
    const dest = await admin(cairn.url, '/destinations', {
      method: 'POST',
      body: JSON.stringify({ name: `hook ${run}`, plugin: 'webhook', settings: { url: hook.url, secret } }),
    });
    const userId = `sdk-${run}`;
    const errors: CairnError[] = [];
    const sdk = new CairnClient({ writeKey, host: cairn.url, flushAt: 2, onError: (e) => errors.push(e) });
    const before = Math.floor(Date.now() / 1000);
    sdk.identify({ userId, traits: { email: `Ada.${run}@Example.test`, plan: 'pro' } });
    sdk.track({ userId, event: 'Order Completed', properties: { order_id: `o-${run}`, total: 42.5 } });
    await sdk.close(); // resolves once the server acknowledged (committed) both
    expect(errors).toEqual([]);

    const hit = (await waitFor('the track event at the receiver', async () =>
      hook.accepted.find((h) => h.body?.event?.event === 'Order Completed'),
    ))!;
    // The event as the SDK made it: its messageId is the SDK's, stored once by the server.
    const messageId: string = hit.body.event.messageId;
    expect(messageId).toMatch(/^[0-9a-f-]{36}$/);
    const stored = await admin(cairn.url, `/events?messageId=${messageId}`);
    expect(stored.data).toHaveLength(1);
    expect(hit.body.event).toMatchObject({
      type: 'track',
      userId,
      properties: { order_id: `o-${run}`, total: 42.5 },
      context: { library: { name: '@cairn/node' } },
    });

    // Idempotency key, in the header and in the envelope.
    expect(hit.headers['idempotency-key']).toBe(`${messageId}:${dest.id}`);
    expect(hit.body.idempotencyKey).toBe(`${messageId}:${dest.id}`);
    expect(hit.body.attempt).toBe(1);

    // Signature: HMAC-SHA256 of "<t>.<raw body>" under the destination's secret, recomputed here.
    const signature = String(hit.headers['cairn-signature']);
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature);
    expect(m, signature).not.toBeNull();
    const [, t, mac] = m!;
    expect(createHmac('sha256', secret).update(`${t}.${hit.raw}`).digest('hex')).toBe(mac);
    // …and it covers the body: another body or another secret does not verify.
    expect(createHmac('sha256', secret).update(`${t}.${hit.raw} `).digest('hex')).not.toBe(mac);
    expect(createHmac('sha256', `${secret}x`).update(`${t}.${hit.raw}`).digest('hex')).not.toBe(mac);
    expect(Number(t)).toBeGreaterThanOrEqual(before - 300);
    expect(Number(t)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 300);

    // The profile travels with the event: identities and traits from the identify before it.
    const profiles = await admin(cairn.url, `/profiles?userId=${userId}`);
    expect(hit.body.profile).toMatchObject({
      id: profiles.data[0].id,
      userId,
      email: `ada.${run}@example.test`, // normalised by the server
      traits: { plan: 'pro', email: `ada.${run}@example.test` },
    });

    // Both events delivered once each, as the ledger says.
    const rows = await settled(dest.id, 2);
    expect(rows.map((r: Any) => r.status).sort()).toEqual(['delivered', 'delivered']);
    expect(new Set(rows.map((r: Any) => r.idempotencyKey))).toEqual(
      new Set(hook.accepted.map((h) => h.headers['idempotency-key'])),
    );
    expect(hook.accepted).toHaveLength(2);
    await admin(cairn.url, `/destinations/${dest.id}`, { method: 'DELETE' }).catch(() => {});
    await hook.close();
  });

  it('email over real SMTP: one-click unsubscribe from the message stops the next one; a GET unsubscribes nobody', async () => {
    const smtp = await smtpReceiver();
    const dest = await admin(cairn.url, '/destinations', {
      method: 'POST',
      body: JSON.stringify({
        name: `newsletter ${run}`,
        plugin: 'email-smtp',
        settings: {
          host: '127.0.0.1',
          port: smtp.port,
          from: '"Acme News" <news@acme.example>',
          subject: 'Hello {{first_name | there}}',
          text: 'Hi! Unsubscribe: {{unsubscribe_url}}',
          timeoutMs: 10_000,
        },
      }),
    });
    expect(dest.requiredPurposes).toEqual(['marketing']);
    const [ann, bob] = [`ann-${run}`, `bob-${run}`];
    const address = (u: string) => `${u}@example.test`;
    const marketing = { consent: { categoryPreferences: { marketing: true } } };
    const send = (...events: object[]) => sendEvents(cairn, writeKey, events);
    const mailsTo = (u: string): ReceivedMail[] => smtp.mails.filter((m) => m.to.includes(address(u)));

    // Both identify with an address and grant marketing: the identify itself is emailed.
    await send(
      { type: 'identify', userId: ann, traits: { email: address(ann), first_name: 'Ann' }, context: marketing },
      { type: 'identify', userId: bob, traits: { email: address(bob), first_name: 'Bob' }, context: marketing },
    );
    await waitFor('a message to each', async () => mailsTo(ann).length === 1 && mailsTo(bob).length === 1, 60_000);
    const first = mailsTo(ann)[0]!.mail;
    expect(first.subject).toBe('Hello Ann');
    expect(headerOf(first, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    const annLink = unsubscribeUrlOf(first);
    const bobLink = unsubscribeUrlOf(mailsTo(bob)[0]!.mail);
    expect(annLink.startsWith(`${cairn.url}/u/`)).toBe(true);
    expect(first.text).toContain(annLink); // the body carries the same link
    // The link is opaque: no address in it, read as is or decoded (the token was base64 JSON in 0.1.0).
    const token = annLink.slice(`${cairn.url}/u/`.length);
    for (const text of [annLink, Buffer.from(token, 'base64url').toString('latin1')]) {
      expect(text.toLowerCase()).not.toContain(ann.toLowerCase());
    }
    const idKey = headerOf(first, 'x-cairn-idempotency-key');
    expect(idKey.endsWith(`:${dest.id}`)).toBe(true);

    // A link scanner GETs Bob's link: a page with one button, no unsubscribe.
    const page = await fetch(bobLink);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<form method="post">');
    expect(html).not.toContain(address(bob)); // the address is masked on the page

    // Ann's mail client does RFC 8058 one-click: POST the List-Unsubscribe URL with that body.
    const click = await fetch(annLink, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(click.status).toBe(200);
    expect(await click.text()).toContain('Unsubscribed');

    const annProfile = (await admin(cairn.url, `/profiles?userId=${ann}`)).data[0].id;
    const bobProfile = (await admin(cairn.url, `/profiles?userId=${bob}`)).data[0].id;
    expect((await admin(cairn.url, `/profiles/${annProfile}/subscriptions`)).data).toEqual([
      expect.objectContaining({
        contact: `email:${address(ann)}`,
        channel: 'email',
        subscribed: false,
        source: 'link',
      }),
    ]);
    expect((await admin(cairn.url, `/profiles/${bobProfile}/subscriptions`)).data).toEqual([]);

    // Another event for each: Bob gets his second message, Ann's is skipped and never sent.
    await send(
      { type: 'track', userId: ann, event: 'Weekly Digest' },
      { type: 'track', userId: bob, event: 'Weekly Digest' },
    );
    await waitFor('Bob’s second message', async () => mailsTo(bob).length === 2, 60_000);
    // 2 identifies, 2 tracks, and the `Unsubscribed` event recorded on Ann's profile: all final.
    const rows = await settled(dest.id, 5);
    const annRows = rows.filter((r: Any) => r.profileId === annProfile);
    const skipped = annRows.filter((r: Any) => r.status === 'skipped');
    expect(skipped.length).toBeGreaterThanOrEqual(2); // her track and the Unsubscribed event
    for (const r of skipped) expect(r.reason).toMatch(/^unsubscribed/);
    expect(annRows.filter((r: Any) => r.status === 'delivered')).toHaveLength(1);
    expect(rows.filter((r: Any) => r.status === 'dead')).toEqual([]);
    // Final ledger rows: nothing more can be sent, so these counts are the final ones.
    expect(mailsTo(ann)).toHaveLength(1);
    expect(mailsTo(bob)).toHaveLength(2);
    expect(mailsTo(bob)[1]!.mail.subject).toBe('Hello Bob');

    // Bob's link still works for Bob (the GET consumed nothing); POSTing it now unsubscribes him.
    const later = await fetch(bobLink, { method: 'POST', body: 'List-Unsubscribe=One-Click' });
    expect(later.status).toBe(200);
    expect((await admin(cairn.url, `/profiles/${bobProfile}/subscriptions`)).data).toEqual([
      expect.objectContaining({ contact: `email:${address(bob)}`, subscribed: false, source: 'link' }),
    ]);
    // A tampered token is refused.
    // (A changed payload character: the last signature characters may only carry base64 padding bits.)
    const at = annLink.indexOf('/u/') + 3;
    const tampered = `${annLink.slice(0, at)}${annLink[at] === 'e' ? 'f' : 'e'}${annLink.slice(at + 1)}`;
    expect((await fetch(tampered, { method: 'POST', body: 'List-Unsubscribe=One-Click' })).status).toBe(400);

    await admin(cairn.url, `/destinations/${dest.id}`, { method: 'DELETE' }).catch(() => {});
    await smtp.close();
  });
});
