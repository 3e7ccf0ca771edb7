import { randomUUID } from 'node:crypto';
import type { ParsedMail } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOnDatabases, type FlowHarness, flowHarness, until } from '../../testing/index.ts';
import { type SmtpReceiver, smtpReceiver } from '../../testing/smtp.ts';
import {
  classifyClick,
  classifyOpen,
  MACHINE_OPEN_MS,
  signClick,
  signOpen,
  trackMessage,
  verifyClick,
  verifyOpen,
} from './tracking.ts';

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked by the assertions
type Any = any;

const SECRET = 'tracking-test-secret-0123456789abcdef';
const PUBLIC = 'https://cairn.example.test';
const BROWSER =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';

/** A token with one byte of its sealed body flipped. */
function tampered(token: string, at = 20): string {
  const bytes = Buffer.from(token, 'base64url');
  bytes[at]! ^= 1;
  return bytes.toString('base64url');
}

describe('tracking tokens', () => {
  const claim = { deliveryId: '9007199254740993', linkIndex: 3, url: 'https://shop.test/p?email=ada@example.test' };

  it('round-trip, and carry neither the target nor the ids readably', () => {
    const token = signClick(SECRET, claim);
    expect(verifyClick(SECRET, token)).toEqual(claim);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    for (const as of ['base64url', 'base64', 'hex'] as const)
      for (const text of [Buffer.from(token, as).toString('latin1'), Buffer.from(token, as).toString('utf8')]) {
        expect(text).not.toContain('ada@example.test');
        expect(text).not.toContain('shop.test');
      }
    expect(verifyOpen(SECRET, signOpen(SECRET, '42'))).toBe('42');
    // Compact: the sealed overhead is 28 bytes over 11 + the URL.
    expect(Buffer.from(token, 'base64url').length).toBe(11 + claim.url.length + 28);
  });

  it('refuse tampering, another secret, the other kind and malformed input', () => {
    const token = signClick(SECRET, claim);
    expect(verifyClick(SECRET, tampered(token))).toBeNull();
    expect(verifyClick('another-secret-0123456789abcdef', token)).toBeNull();
    expect(verifyClick(SECRET, signOpen(SECRET, '1'))).toBeNull();
    expect(verifyOpen(SECRET, token)).toBeNull();
    for (const bad of ['', 'x', `${token}.`, `${token}!`, 'A'.repeat(5000), token.slice(0, 30)])
      expect(verifyClick(SECRET, bad)).toBeNull();
  });

  it('are never made for a target that is not http(s)', () => {
    for (const url of [
      'javascript:alert(1)',
      'data:text/html,<b>x</b>',
      'mailto:a@b.test',
      '//evil.test/',
      'ftp://x.test/',
    ])
      expect(() => signClick(SECRET, { ...claim, url })).toThrow(/http/);
  });
});

describe('trackMessage', () => {
  const track = (body: string) => trackMessage(body, { publicUrl: PUBLIC, secret: SECRET, deliveryId: '7' });

  it('rewrites http(s) links in order, leaves sentence punctuation, own pages and other schemes alone', () => {
    const body =
      'See https://shop.test/a?x=1&y=2. Or (https://shop.test/b_(c)) and https://shop.test/a?x=1&y=2!\n\n' +
      `Not javascript:alert(1), nor mailto:a@b.test, nor ${PUBLIC}/u/abc or ${PUBLIC}/t/c/xyz <script>`;
    const { text, html, links } = track(body);
    expect(links).toEqual(['https://shop.test/a?x=1&y=2', 'https://shop.test/b_(c)', 'https://shop.test/a?x=1&y=2']);
    const tokens = [...text.matchAll(/https:\/\/cairn\.example\.test\/t\/c\/([A-Za-z0-9_-]+)/g)].map((m) => m[1]!);
    // The three made here, then the body's own /t/c/xyz, kept as written.
    expect(tokens.at(-1)).toBe('xyz');
    expect(tokens.slice(0, -1).map((t) => verifyClick(SECRET, t))).toEqual(
      links.map((url, linkIndex) => ({ deliveryId: '7', linkIndex, url })),
    );
    expect(text).toMatch(/^See https:\/\/cairn\.example\.test\/t\/c\/[\w-]+\. Or \(https:\/\/cairn[^)]+\) and/);
    expect(text).toContain(`nor ${PUBLIC}/u/abc or ${PUBLIC}/t/c/xyz <script>`);
    expect(text).toContain('Not javascript:alert(1), nor mailto:a@b.test');
    // HTML: escaped text, anchors showing the original address, untracked own links as they are, the pixel.
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toContain('<script>');
    expect(html).toContain('>https://shop.test/a?x=1&amp;y=2</a>');
    expect(html).toContain(`<a href="${PUBLIC}/u/abc">${PUBLIC}/u/abc</a>`);
    expect(html).not.toMatch(/href="(javascript|mailto):/);
    expect(html).toContain('!</p>\n<p>Not javascript');
    expect(track('one\r\ntwo').html).toMatch(/^<p>one<br>\ntwo<\/p>/);
    const pixel = /<img src="https:\/\/cairn\.example\.test\/t\/o\/([\w-]+)\.gif" width="1" height="1"/.exec(html);
    expect(verifyOpen(SECRET, pixel![1]!)).toBe('7');
  });
});

describe('classifyOpen', () => {
  const sentAt = new Date('2026-05-01T10:00:00Z');
  const later = new Date(sentAt.getTime() + 60_000);
  const open = (userAgent: string | undefined, ip?: string, at = later) => classifyOpen({ userAgent, ip, sentAt, at });

  it('flags Apple MPP, bots, scanners, no user agent and opens at the send; not readers or webmail proxies', () => {
    expect(open(BROWSER, '192.0.2.1')).toEqual({ machine: false });
    expect(open('Mozilla/5.0')).toEqual({ machine: true, reason: 'apple-mpp' });
    expect(open(BROWSER, '17.58.101.4')).toEqual({ machine: true, reason: 'apple-mpp' });
    expect(open(BROWSER, '::ffff:17.1.2.3')).toEqual({ machine: true, reason: 'apple-mpp' });
    expect(open(BROWSER, '172.16.0.1')).toEqual({ machine: false });
    expect(open(undefined)).toEqual({ machine: true, reason: 'no-user-agent' });
    expect(open('Barracuda Sentinel (EE)')).toEqual({ machine: true, reason: 'scanner' });
    expect(open('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)').machine).toBe(true);
    expect(open('curl/8.5.0')).toEqual({ machine: true, reason: 'bot' });
    expect(open('Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)')).toEqual({
      machine: false,
    });
    expect(open(BROWSER, undefined, new Date(sentAt.getTime() + MACHINE_OPEN_MS - 1))).toEqual({
      machine: true,
      reason: 'at-send',
    });
    expect(open(BROWSER, undefined, new Date(sentAt.getTime() + MACHINE_OPEN_MS))).toEqual({ machine: false });
    expect(classifyClick({ userAgent: BROWSER, sentAt, at: later })).toEqual({ machine: false });
    expect(classifyClick({ userAgent: 'Mimecast Safe Links', sentAt, at: later })).toEqual({
      machine: true,
      reason: 'scanner',
    });
    expect(classifyClick({ userAgent: BROWSER, sentAt, at: new Date(sentAt.getTime() + 500) }).machine).toBe(true);
    expect(classifyOpen({ userAgent: BROWSER, ip: undefined, sentAt: null, at: later })).toEqual({
      machine: true,
      reason: 'before-send',
    });
  });
});

// A published flow sends two emails over real SMTP; the test reads them as received, follows the links
// and loads the pixel, and reads the events back as stage 2 attached them to the person.
describeOnDatabases('tracked links and opens of a flow’s email on %s', (mode) => {
  let h: FlowHarness;
  let smtp: SmtpReceiver | undefined;
  const mails: ParsedMail[] = [];
  const tag = randomUUID().slice(0, 8);
  const userId = `ada-${tag}`;
  const email = `ada-${tag}@example.test`;

  beforeAll(async () => {
    smtp = await smtpReceiver({ onMail: (mail) => mails.push(mail) });
    const port = smtp.port;
    h = await flowHarness('tracking.test.ts', mode);
    const dest = await h.post('/destinations', {
      name: 'mail',
      plugin: 'email-smtp',
      settings: { host: '127.0.0.1', port, from: 'Shop <shop@acme.test>', subject: 'Hello', text: 'unused' },
    });
    expect(dest.status, dest.text).toBe(201);
    await h.publish({
      version: 1,
      name: `Welcome ${tag}`,
      trigger: { type: 'event', event: 'Signed Up' },
      entry: { reentry: 'once' },
      nodes: [
        {
          id: 'welcome',
          type: 'send',
          destination: dest.body.id,
          message: {
            subject: 'Welcome',
            body:
              'Hi {{ traits.first_name }}! New in: https://shop.example.test/new?utm_campaign=spring&x=1\n\n' +
              'Help is at https://shop.example.test/help. Not a link: javascript:alert(document.cookie)',
          },
        },
        {
          id: 'plain',
          type: 'send',
          destination: dest.body.id,
          message: { subject: 'Receipt', body: 'Your receipt: https://shop.example.test/r/1', track: false },
        },
      ],
      edges: [{ from: 'welcome', to: 'plain', on: 'next' }],
    });
  });
  afterAll(async () => {
    await h?.close();
    await smtp?.close();
  });

  it('counts each link once per person, redirects every time, and tells human from machine opens', async () => {
    const consent = { consent: { categoryPreferences: { marketing: true } } };
    await h.send({ type: 'identify', userId, traits: { email, first_name: 'Ada' }, context: consent });
    await h.send({ type: 'track', userId, event: 'Signed Up', context: consent });
    const profileId = await h.profileOf(userId);
    const [welcome, receipt] = await until('both emails', async () => {
      const mine = mails.filter((m) => m.to && JSON.stringify(m.to).includes(email));
      const w = mine.find((m) => m.subject === 'Welcome');
      const r = mine.find((m) => m.subject === 'Receipt');
      return w && r ? [w, r] : undefined;
    });

    // The received HTML: two tracked anchors showing the original addresses, the footer's unsubscribe link
    // untracked, the javascript: text never a link, the pixel.
    const html = String(welcome!.html);
    const anchors = [...html.matchAll(/<a href="([^"]+)">([^<]*)<\/a>/g)].map((m) => ({ href: m[1]!, shown: m[2]! }));
    expect(anchors.map((a) => a.shown)).toEqual([
      'https://shop.example.test/new?utm_campaign=spring&amp;x=1',
      'https://shop.example.test/help',
      expect.stringContaining('/u/'),
    ]);
    const [first, second, unsubscribe] = anchors.map((a) => a.href.replaceAll('&amp;', '&'));
    expect(first).toMatch(new RegExp(`^${h.cairn.url.replace('127.0.0.1', 'localhost')}/t/c/[\\w-]+$`));
    expect(second).toContain('/t/c/');
    expect(unsubscribe).toMatch(/\/u\/[\w-]+$/);
    expect(html).toContain('Not a link: javascript:alert(document.cookie)');
    expect(html).not.toMatch(/href="javascript:/i);
    // The text part carries the same tracked links, the unsubscribe footer as it was.
    expect(welcome!.text).toContain(first);
    expect(welcome!.text).toContain(second);
    expect(welcome!.text).toContain(`Unsubscribe: ${unsubscribe}`);
    // `track: false`: the text as written, no HTML part, no pixel.
    expect(receipt!.text).toContain('Your receipt: https://shop.example.test/r/1');
    expect(receipt!.html, 'no HTML part').toBeFalsy();

    // Clicks and opens as a reader's come later than the 2 s machine window after the send.
    const pixel = /<img src="([^"]+\/t\/o\/[\w-]+\.gif)"/.exec(html)![1]!;
    await until(
      'the send 2.5 s old',
      async () => {
        const [row] = await h.cairn.sql<{ old: boolean }[]>`
          SELECT now() - delivered_at > interval '2.5 seconds' AS old
          FROM deliveries WHERE profile_id = ${profileId} AND idempotency_key LIKE ${'%:welcome:%'}`;
        return row?.old;
      },
      { tries: 200, intervalMs: 100 },
    );
    const click = (url: string, ua = BROWSER) => fetch(url, { redirect: 'manual', headers: { 'user-agent': ua } });
    for (let i = 0; i < 2; i++) {
      const res = await click(first!);
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('https://shop.example.test/new?utm_campaign=spring&x=1');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }
    const res2 = await click(second!);
    expect(res2.status).toBe(302);
    expect(res2.headers.get('location')).toBe('https://shop.example.test/help');
    // A gateway's link scanner: redirected, recorded apart as a machine's click.
    expect((await click(first!, 'Proofpoint URL Defense')).status).toBe(302);
    // A HEAD (a link checker) redirects too but counts nothing.
    expect((await fetch(second!, { method: 'HEAD', redirect: 'manual' })).status).toBe(302);

    // Tampered and made-up tokens: 404, never a redirect.
    const token = first!.slice(first!.lastIndexOf('/') + 1);
    for (const bad of [tampered(token), tampered(token, 60), 'nope', `${token}x`]) {
      const res = await click(`${h.cairn.url}/t/c/${bad}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('location')).toBeNull();
    }

    // Opens: the reader's, Apple's proxy's, each twice.
    for (const ua of [BROWSER, BROWSER, 'Mozilla/5.0', 'Mozilla/5.0']) {
      const res = await fetch(pixel, { headers: { 'user-agent': ua } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/gif');
      expect(res.headers.get('cache-control')).toContain('no-store');
      // Webmail pages load it from their own origin.
      expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
      expect((await res.arrayBuffer()).byteLength).toBe(43);
    }
    expect((await fetch(`${pixel.slice(0, -12)}AAAA.gif`)).status).toBe(404);
    expect((await fetch(pixel.replace('.gif', '.png'))).status).toBe(404);

    // The events, as stage 2 attached them to the person.
    const events = await until('the clicks and opens on the profile', async () => {
      const page = await h.api(`/profiles/${profileId}/events?limit=100`);
      const mine = (page.body.data as Any[]).filter((e) => e.event === 'Link Clicked' || e.event === 'Email Opened');
      return mine.length >= 5 ? mine : undefined;
    });
    const clicks = events.filter((e) => e.event === 'Link Clicked').map((e) => e.payload.properties);
    const opens = events.filter((e) => e.event === 'Email Opened').map((e) => e.payload.properties);
    expect(clicks.sort((a: Any, b: Any) => a.linkIndex - b.linkIndex || Number(a.machine) - Number(b.machine))).toEqual(
      [
        expect.objectContaining({
          url: 'https://shop.example.test/new?utm_campaign=spring&x=1',
          linkIndex: 0,
          machine: false,
          nodeId: 'welcome',
          flowId: expect.any(String),
          messageId: expect.stringMatching(/^flow:.*:welcome:/),
          deliveryId: expect.stringMatching(/^\d+$/),
        }),
        expect.objectContaining({ linkIndex: 0, machine: true, machineReason: 'scanner' }),
        expect.objectContaining({
          url: 'https://shop.example.test/help',
          linkIndex: 1,
          nodeId: 'welcome',
          machine: false,
        }),
      ],
    );
    expect(opens.map((o: Any) => [o.machine, o.machineReason ?? null]).sort()).toEqual([
      [false, null],
      [true, 'apple-mpp'],
    ]);
    // Nothing more was stored than the profile shows (a repeat is a duplicate at ingestion, not a new row).
    const stored = await h.cairn.sql<{ event: string; n: number }[]>`
      SELECT event, count(*)::int AS n FROM events
      WHERE source_id = 'cairn' AND event IN ('Link Clicked', 'Email Opened')
      GROUP BY event ORDER BY event`;
    expect(stored).toEqual([
      { event: 'Email Opened', n: 2 },
      { event: 'Link Clicked', n: 3 },
    ]);
  });
});
